"""The complete release's tables (VinException, WMIYearValidChars, DefaultValue, ErrorCode, VinDescriptor,
VehicleSpec*): extracted when the source has them, from a SQLite copy and from NHTSA's PostgreSQL dump
(schema vpic), counted in run history and covered by the key gate; a source without them loads as before."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import create_database, drop_database, dsn
from psycopg import sql

from vehicle_etl import pipeline, runs
from vehicle_etl.config import PROJECT_ROOT, SAMPLE_DB, STAGING_SCHEMA, Settings, platform_conninfo
from vehicle_etl.quality import keys
from vehicle_etl.quality.results import enforce
from vehicle_etl.release import history
from vehicle_etl.source import pgdump, reference
from vehicle_etl.source.backups import Backup
from vehicle_etl.source.connect import open_source
from vehicle_etl.spec import COMPLETE_RELEASE_ONLY, LOADED_TABLES, TABLES
from vehicle_etl.staging import load

_spec = importlib.util.spec_from_file_location("synthesize_release", PROJECT_ROOT / "scripts" / "synthesize_release.py")
assert _spec and _spec.loader
synth = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("synthesize_release", synth)
_spec.loader.exec_module(synth)

NEW_TABLES = {  # source table -> platform table
    "VinException": "vin_exception", "WMIYearValidChars": "wmi_year_valid_chars",
    "WMIYearValidChars_CacheExceptions": "wmi_year_valid_chars_exception", "DefaultValue": "default_value",
    "ErrorCode": "error_code", "VinDescriptor": "vin_descriptor", "VehicleSpecSchema": "vehicle_spec_schema",
    "VehicleSpecSchema_Model": "vehicle_spec_schema_model", "VehicleSpecSchema_Year": "vehicle_spec_schema_year",
    "VSpecSchemaPattern": "vspec_schema_pattern", "VehicleSpecPattern": "vehicle_spec_pattern",
}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("complete") / "vpic_synth.db"
    synth.synthesize(SAMPLE_DB, out, 0.001, log=lambda *_: None)
    return out


def _source_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {t: int(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in NEW_TABLES}


@pytest.fixture
def staging_db() -> Iterator[str]:
    name = create_database("vetl_i13_stage")
    try:
        yield name
    finally:
        drop_database(name)


def _load(url: str, dbname: str, workers: int = 1) -> load.LoadReport:
    source = open_source(url)
    try:
        with psycopg.connect(dsn(dbname), autocommit=True) as conn:
            load.prepare_staging(conn)
        return load.extract_load(source, dsn(dbname), 5000, workers)
    finally:
        source.engine.dispose()


def test_every_new_table_is_declared_optional() -> None:
    assert set(NEW_TABLES) == COMPLETE_RELEASE_ONLY
    declared = {t.source: t for t in TABLES}
    for src, target in NEW_TABLES.items():
        assert declared[src].target == target and not declared[src].required


def test_sqlite_release_loads_every_new_table(release: Path, staging_db: str) -> None:
    report = _load(f"sqlite:///{release}", staging_db, workers=2)  # WMIYearValidChars in 2 shards
    assert not set(NEW_TABLES) & set(report.absent_optional)
    expected = _source_counts(release)
    for src, target in NEW_TABLES.items():
        assert report.counts[target] == expected[src] > 0, target
    with psycopg.connect(dsn(staging_db)) as conn:
        # Values survive: NHTSA's check-digit flag as a boolean, the cache's characters as written.
        assert conn.execute(f"SELECT bool_and(check_digit) FROM {STAGING_SCHEMA}.vin_exception").fetchone() == (True,)
        chars = {r[0] for r in conn.execute(f"SELECT DISTINCT valid_char FROM {STAGING_SCHEMA}.wmi_year_valid_chars")}
        assert chars <= set(synth.AN36) and len(chars) > 20
        results = keys.key_checks(conn, tables=LOADED_TABLES)
    by_name = {r.name: r for r in results}
    for name in ("unique_wmi_year_valid_chars_id", "unique_error_code_id", "unique_vin_descriptor",
                 "fk_default_value_element", "fk_vehicle_spec_pattern_vsp"):
        assert by_name[name].passed, by_name[name]


def test_gate_blocks_a_duplicated_key_in_a_new_table(release: Path, staging_db: str) -> None:
    _load(f"sqlite:///{release}", staging_db)
    with psycopg.connect(dsn(staging_db), autocommit=True) as conn:
        conn.execute(sql.SQL("INSERT INTO {}.error_code SELECT * FROM {}.error_code WHERE error_code_id = 1").format(
            sql.Identifier(STAGING_SCHEMA), sql.Identifier(STAGING_SCHEMA)))
        conn.execute(sql.SQL("DELETE FROM {}.vspec_schema_pattern WHERE vspec_schema_pattern_id = 1").format(
            sql.Identifier(STAGING_SCHEMA)))
        results = {r.name: r for r in keys.key_checks(conn, tables=LOADED_TABLES)}
    assert not results["unique_error_code_id"].passed and results["unique_error_code_id"].observed == 1
    assert not results["fk_vehicle_spec_pattern_vsp"].passed
    with pytest.raises(Exception, match="unique_error_code_id"):
        enforce(list(results.values()), "key checks")


def test_source_without_the_new_tables_loads_as_before(staging_db: str) -> None:
    report = _load(f"sqlite:///{SAMPLE_DB}", staging_db)
    assert set(NEW_TABLES) <= set(report.absent_optional)
    assert all(report.counts[t] == 0 for t in NEW_TABLES.values())
    assert report.counts["pattern"] > 0


def test_postgres_dump_path_schema_vpic(release: Path, tmp_path: Path, staging_db: str) -> None:
    """The release as NHTSA's plain dump: restored with psql into schema vpic, then extracted."""
    dump = tmp_path / "vPICList_lite_2026_03.sql"
    synth.write_pg_dump(release, dump)
    source_db = create_database("vetl_i13_src")
    try:
        url = pgdump.restore_pgdump(Backup(dump, "2026_03", "pgdump"), dsn(source_db))
        report = _load(url, staging_db)
        expected = _source_counts(release)
        for src, target in NEW_TABLES.items():
            assert report.counts[target] == expected[src] > 0, target
        with psycopg.connect(dsn(staging_db)) as conn:
            got = conn.execute(f"SELECT count(*) FROM {STAGING_SCHEMA}.wmi_year_valid_chars "
                               "WHERE position = 4 AND valid_char IS NOT NULL").fetchone()[0]
        with sqlite3.connect(release) as lite:
            assert got == lite.execute("SELECT count(*) FROM WMIYearValidChars WHERE Position = 4").fetchone()[0]
    finally:
        drop_database(source_db)


def test_run_history_counts_the_new_tables(release: Path, platform_db: Settings) -> None:
    run_id = runs.new_run_id()
    ref = reference.SourceRef(f"sqlite:///{release}", "2026_03")
    runs.start_run(platform_db, run_id, ref, "test")
    pipeline.extract_load_step(platform_db, run_id, ref)
    pipeline.key_checks_step(platform_db, run_id)
    with psycopg.connect(platform_conninfo(platform_db)) as conn:
        run = history.get_run(conn, run_id)
    assert run is not None
    expected = _source_counts(release)
    for src, target in NEW_TABLES.items():
        assert run["counts"][target] == expected[src], target
    names = {c["name"] for c in run["checks"]}
    assert {"unique_wmi_year_valid_chars_id", "unique_vin_exception_id", "fk_default_value_element"} <= names
