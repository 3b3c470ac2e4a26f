"""test-connections: real PostgreSQL and Redis; SQL Server only as far as pymssql's real client errors."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import pytest

from vehicle_etl.config import Settings
from vehicle_etl.connections import check_connections as run_checks

OPTIONAL_ENV = (
    "VPIC_MSSQL_CONN_ID", "AIRFLOW_CONN_MSSQL_SOURCE", "VPIC_SOURCE_URL", "VPIC_SOURCE_CONN_ID",
    "VPIC_RESTORE_PG_URL", "MVP_PLATFORM_REDIS_URL",
)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in OPTIONAL_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _by_name(results: list[tuple[str, bool | None, str]]) -> dict[str, tuple[bool | None, str]]:
    assert all(isinstance(r, tuple) and len(r) == 3 for r in results)
    return {name.split(" (")[0]: (ok, msg) for name, ok, msg in results}


def test_unconfigured_services_are_skipped(platform_db: Settings, clean_env: pytest.MonkeyPatch) -> None:
    results = _by_name(run_checks(Settings()))
    assert list(results) == ["SQL Server", "platform PostgreSQL", "vPIC source", "source PostgreSQL", "Redis"]
    ok, msg = results["platform PostgreSQL"]
    assert ok is True and "database vetl_test_" in msg and "on 127.0.0.1:5432" in msg
    for name in ("SQL Server", "vPIC source", "source PostgreSQL", "Redis"):
        assert results[name][0] is None, results[name]
        assert results[name][1].startswith("not configured")


def test_configured_services_pass(platform_db: Settings, clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    db = tmp_path / "vpic.db"
    sqlite3.connect(db).execute("CREATE TABLE Make (Id int)").connection.commit()
    clean_env.setenv("VPIC_SOURCE_URL", f"sqlite:///{db}")
    clean_env.setenv("VPIC_RESTORE_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/vpic_source_never_created")
    clean_env.setenv("MVP_PLATFORM_REDIS_URL", "redis://127.0.0.1:6379/0")
    results = _by_name(run_checks(Settings()))
    assert results["vPIC source"][0] is True and "sqlite source" in results["vPIC source"][1]
    assert results["source PostgreSQL"][0] is True
    assert "will be created by the first restore" in results["source PostgreSQL"][1]
    assert results["Redis"][0] is True and results["Redis"][1].startswith("Redis ")
    assert results["SQL Server"][0] is None


def test_failures_are_one_clear_line_without_passwords(
    platform_db: Settings, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    closed = _closed_port()
    clean_env.setenv("VPIC_MSSQL_CONN_ID", "mssql_source")
    clean_env.setenv("AIRFLOW_CONN_MSSQL_SOURCE", json.dumps(
        {"conn_type": "mssql", "host": "127.0.0.1", "port": closed, "login": "sa", "password": "Sekr1t-mssql"}))
    clean_env.setenv("VPIC_SOURCE_URL", f"sqlite:///{tmp_path / 'missing.db'}")
    clean_env.setenv("VPIC_RESTORE_PG_URL", f"postgresql+psycopg://postgres:Sekr1t-pg@127.0.0.1:{closed}/vpic")
    clean_env.setenv("MVP_PLATFORM_REDIS_URL", f"redis://:Sekr1t-redis@127.0.0.1:{closed}/0")
    clean_env.setenv("MVP_PLATFORM_DB_PORT", str(closed))
    results = run_checks(Settings())
    by = _by_name(results)
    assert [ok for _, ok, _ in results] == [False] * 5
    assert "connection refused" in by["SQL Server"][1] and "sa@127.0.0.1" in by["SQL Server"][1]
    assert "check MVP_PLATFORM_DB_HOST/PORT/NAME/USER/PASSWORD" in by["platform PostgreSQL"][1]
    assert "vPIC SQLite file not found" in by["vPIC source"][1]
    assert "check VPIC_RESTORE_PG_URL" in by["source PostgreSQL"][1]
    assert "check MVP_PLATFORM_REDIS_URL redis://:***@127.0.0.1" in by["Redis"][1]
    for _, _, msg in results:
        assert "Sekr1t" not in msg and "\n" not in msg


def test_explicit_sql_server_connection_missing_is_a_failure(
    platform_db: Settings, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("VPIC_MSSQL_CONN_ID", "mssql_nowhere")
    ok, msg = _by_name(run_checks(Settings()))["SQL Server"]
    assert ok is False and "AIRFLOW_CONN_MSSQL_NOWHERE" in msg
