"""The whole pipeline without a scheduler, against a real PostgreSQL database."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import psycopg
import pytest

from vehicle_etl import cli, pipeline, runs
from vehicle_etl.config import SAMPLE_DB, Settings
from vehicle_etl.errors import ConcurrentRunError, EtlError, QualityGateError, SourceError
from vehicle_etl.platform_db import connect, schema_exists, schema_tables
from vehicle_etl.release import history, store
from vehicle_etl.source import reference


def live_checksum(settings: Settings, schema: str = "vehicles") -> dict[str, str]:
    """md5 of every table's rows in a stable order: equal checksums mean byte-for-byte equal data."""
    with connect(settings) as conn:
        tables = schema_tables(conn, schema)  # the views of vehicles / vehicles_previous, or tables
        return {t: conn.execute(
            f'SELECT md5(coalesce(string_agg(x::text, \'|\' ORDER BY x::text), \'\')) FROM "{schema}"."{t}" x'
        ).fetchone()[0] for t in tables}


def sample_counts() -> dict[str, int]:
    with sqlite3.connect(SAMPLE_DB) as raw:
        return {t: raw.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                for t in ("Make", "Model", "Wmi", "Pattern", "VinSchema")}


@pytest.fixture
def built(platform_db: Settings) -> dict:
    return pipeline.build_catalog(platform_db, release="2026_02")


def test_build_catalog_makes_sample_live(platform_db: Settings, built: dict) -> None:
    assert built["status"] == "success"
    expected = sample_counts()
    assert built["counts"]["make"] == expected["Make"]
    assert built["counts"]["model"] == expected["Model"]
    assert built["counts"]["pattern"] == expected["Pattern"]
    with connect(platform_db) as conn:
        assert conn.execute("SELECT count(*) FROM vehicles.make").fetchone()[0] == expected["Make"]
        assert conn.execute("SELECT count(*) FROM vehicles.model_year").fetchone()[0] > 0
        assert conn.execute("SELECT release FROM vehicles.catalog_info").fetchone()[0] == "2026_02"
        assert not schema_exists(conn, "vehicles_staging")
        # keys were declared after the load
        # (on the live version's own tables: `vehicles` holds views over them)
        pks = conn.execute("SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
                           "WHERE n.nspname = %s AND c.contype = 'p'", (store.live_schema(conn),)).fetchone()[0]
        assert pks >= 15
        run = history.get_run(conn, built["run_id"])
    assert run["status"] == "success" and run["finished_at"] is not None
    assert set(run["durations"]) >= {"extract_load", "transform", "key_checks", "build_keys", "swap"}
    marker = json.loads(Path(built["marker"]).read_text())
    assert marker["run_id"] == built["run_id"] and marker["counts"]["make"] == expected["Make"]


def test_second_build_keeps_exactly_one_previous_and_rollback_restores_it(
        platform_db: Settings, built: dict, tmp_path: Path) -> None:
    first = live_checksum(platform_db)
    db = tmp_path / "v.db"
    shutil.copy(SAMPLE_DB, db)
    with sqlite3.connect(db) as raw:
        # a visible change the golden VINs do not see (they check make, model and year)
        raw.execute("UPDATE Manufacturer SET Name = Name || ' X' WHERE Id = (SELECT min(Id) FROM Manufacturer)")
    second = pipeline.build_catalog(platform_db, source=f"sqlite:///{db}", release="2026_03")
    assert second["status"] == "success"
    assert live_checksum(platform_db, "vehicles_previous") == {
        k: v for k, v in first.items()}  # the first version, untouched, is the previous one
    assert live_checksum(platform_db) != first
    with connect(platform_db) as conn:
        schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'vehicles%'")}
    with connect(platform_db) as conn:
        live, previous = store.control(conn)
    # the views, the store, and exactly the two versions' own schemas
    assert schemas == {"vehicles", "vehicles_previous", "vehicles_store", f"vehicles_v{live}", f"vehicles_v{previous}"}

    result = pipeline.rollback(platform_db)
    assert result["release"] == "2026_02"
    assert live_checksum(platform_db) == first
    with connect(platform_db) as conn:
        statuses = [r["status"] for r in history.recent_runs(conn)]
        assert conn.execute("SELECT release FROM vehicles.catalog_info").fetchone()[0] == "2026_02"
    assert statuses == ["rolled_back", "success", "success"]


def test_failed_source_leaves_live_untouched(platform_db: Settings, built: dict, tmp_path: Path) -> None:
    before = live_checksum(platform_db)
    db = tmp_path / "broken.db"
    shutil.copy(SAMPLE_DB, db)
    with sqlite3.connect(db) as raw:
        raw.execute("ALTER TABLE Wmi_VinSchema DROP COLUMN YearTo")
    with pytest.raises(SourceError, match="Wmi_VinSchema lacks column"):
        pipeline.build_catalog(platform_db, source=f"sqlite:///{db}", release="2026_03")
    assert live_checksum(platform_db) == before
    with connect(platform_db) as conn:
        last = history.recent_runs(conn, 1)[0]
    assert last["status"] == "failed" and "YearTo" in last["error"]


def test_key_gate_failure_names_the_check_and_keeps_staging(
        platform_db: Settings, built: dict, tmp_path: Path) -> None:
    before = live_checksum(platform_db)
    db = tmp_path / "dup.db"
    shutil.copy(SAMPLE_DB, db)
    with sqlite3.connect(db) as raw:
        raw.execute("INSERT INTO Make (Id, Name) SELECT Id, Name || ' dup' FROM Make LIMIT 1")
    with pytest.raises(QualityGateError, match="unique_make_id"):
        pipeline.build_catalog(platform_db, source=f"sqlite:///{db}", release="2026_03")
    assert live_checksum(platform_db) == before
    with connect(platform_db) as conn:
        assert schema_exists(conn, "vehicles_staging")  # kept for inspection
        last = history.recent_runs(conn, 1)[0]
    assert last["status"] == "failed"
    assert any(c["name"] == "unique_make_id" and not c["passed"] for c in last["checks"])


def test_invalid_release_is_rejected_before_any_work(platform_db: Settings) -> None:
    for bad in ("2026_02; DROP SCHEMA vehicles", "../../etc", "2026_13", "x" * 5000):
        with pytest.raises(EtlError, match="invalid release"):
            pipeline.build_catalog(platform_db, release=bad)
    with connect(platform_db) as conn:
        assert not schema_exists(conn, "vehicles")


def test_source_url_with_password_is_refused(platform_db: Settings) -> None:
    with pytest.raises(SourceError, match="must not carry a password"):
        pipeline.build_catalog(platform_db, source="postgresql+psycopg://u:secret@127.0.0.1/vpic")


def test_second_concurrent_run_fails_fast(platform_db: Settings) -> None:
    with runs.run_lock(platform_db), pytest.raises(ConcurrentRunError, match="another vehicle ETL run"):
        pipeline.build_catalog(platform_db)


def test_status_exit_codes(platform_db: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status"]) == 2  # never ran
    pipeline.build_catalog(platform_db)
    assert cli.main(["status"]) == 0
    capsys.readouterr()
    assert cli.main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["code"] == 0
    with pytest.raises(SourceError):
        pipeline.build_catalog(platform_db, source=f"sqlite:///{tmp_path / 'missing.db'}")
    assert cli.main(["status"]) == 1
    with connect(platform_db) as conn:  # a success older than 8 days is stale
        conn.execute("DELETE FROM etl.run_history WHERE status = 'failed'")
        conn.execute("UPDATE etl.run_history SET finished_at = now() - interval '9 days'")
    assert cli.main(["status"]) == 2


def test_cli_build_catalog_and_summary(platform_db: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["build-catalog", "--release", "2026_02"]) == 0
    out = capsys.readouterr().out
    assert "success" in out and "release   2026_02" in out
    assert cli.main(["summary"]) == 0
    assert "dbname=" in capsys.readouterr().out
    assert cli.main(["build-catalog", "--source", "sqlite:////nonexistent/vpic.db"]) == 1


def test_reader_sees_no_staging_after_failure_and_cleanup(platform_db: Settings, tmp_path: Path) -> None:
    db = tmp_path / "dup.db"
    shutil.copy(SAMPLE_DB, db)
    with sqlite3.connect(db) as raw:
        raw.execute("INSERT INTO Wmi (Id, Wmi) SELECT Id, Wmi FROM Wmi LIMIT 1")
    with pytest.raises(QualityGateError):
        pipeline.build_catalog(platform_db, source=f"sqlite:///{db}")
    assert cli.main(["cleanup"]) == 0
    with psycopg.connect(platform_db_dsn(platform_db)) as conn:
        assert not schema_exists(conn, "vehicles_staging")


def platform_db_dsn(settings: Settings) -> str:
    from vehicle_etl.config import platform_conninfo

    return platform_conninfo(settings)


def test_a_run_whose_staging_was_replaced_cannot_promote_it(platform_db: Settings) -> None:
    """Between two Airflow tasks another run may rebuild staging: the first run must not go on with it."""
    ref = reference.source_ref(platform_db, None, "2026_02")
    for run_id in ("run-a", "run-b"):
        runs.start_run(platform_db, run_id, ref, "manual")
        pipeline.extract_load_step(platform_db, run_id, ref)  # run-b replaces run-a's staging
    with pytest.raises(EtlError, match="belongs to run run-b, not to this run"):
        pipeline.key_checks_step(platform_db, "run-a")
    with pytest.raises(EtlError, match="belongs to run run-b"):
        pipeline.swap_step(platform_db, "run-a", ref)
    with connect(platform_db) as conn:
        assert not schema_exists(conn, "vehicles")
        assert history.get_run(conn, "run-a")["status"] == "failed"
    pipeline.key_checks_step(platform_db, "run-b")  # the owner carries on


def test_retried_transform_and_build_keys_steps_resume_and_the_run_goes_live(platform_db: Settings) -> None:
    """Airflow retries a failed task: transform run again over derived tables it committed, and
    build_keys over keys it committed, must pass (derived tables rebuilt, indexes IF NOT EXISTS,
    keys skipped once declared, functions replaced), and the run must go on."""
    ref = reference.source_ref(platform_db, None, "2026_02")
    run_id = "run-retry"
    runs.start_run(platform_db, run_id, ref, "manual")
    pipeline.extract_load_step(platform_db, run_id, ref)
    pipeline.key_checks_step(platform_db, run_id)
    pipeline.transform_step(platform_db, run_id)
    pipeline.transform_step(platform_db, run_id)  # a retried transform rebuilds its tables
    pipeline.build_keys_step(platform_db, run_id)
    with connect(platform_db) as conn:
        keys_before = conn.execute(
            "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE n.nspname = 'vehicles_staging' AND c.contype IN ('p', 'u', 'f')").fetchone()[0]
    pipeline.build_keys_step(platform_db, run_id)  # the retry
    with connect(platform_db) as conn:
        keys_after = conn.execute(
            "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE n.nspname = 'vehicles_staging' AND c.contype IN ('p', 'u', 'f')").fetchone()[0]
    assert keys_after == keys_before >= 30  # 17 primary/unique keys and 13 foreign keys, once each
    pipeline.validate_step(platform_db, run_id)
    pipeline.swap_step(platform_db, run_id, ref)
    with connect(platform_db) as conn:
        assert conn.execute("SELECT run_id FROM vehicles.catalog_info").fetchone()[0] == run_id
        assert conn.execute("SELECT vehicles.decode_vin('5YJ3E1EA7HF000001')->>'Make'").fetchone()[0] == "TESLA"
