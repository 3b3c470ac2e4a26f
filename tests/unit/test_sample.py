"""The shipped vPIC sample (data/sample/vpic_sample.db, made by scripts/build_sample.py)."""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import full_snapshot

from vehicle_etl.config import PROJECT_ROOT, SAMPLE_DB
from vehicle_etl.spec import COMPLETE_RELEASE_ONLY, TABLES

MAX_BYTES = 5_000_000
GOLDEN_SAMPLE = PROJECT_ROOT / "tests" / "golden_sample.csv"
# every table the ETL reads from a snapshot (the complete release's own tables are not in one)
REQUIRED_TABLES = tuple(t.source for t in TABLES if t.source not in COMPLETE_RELEASE_ONLY)


def _open_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)


@pytest.fixture(scope="module")
def sample() -> Iterator[sqlite3.Connection]:
    assert SAMPLE_DB.is_file(), f"{SAMPLE_DB} is missing (scripts/build_sample.py makes it)"
    conn = _open_ro(SAMPLE_DB)
    try:
        yield conn
    finally:
        conn.close()


def test_sample_file_exists_and_is_small() -> None:
    assert SAMPLE_DB.is_file(), f"{SAMPLE_DB} is missing (scripts/build_sample.py makes it)"
    size = SAMPLE_DB.stat().st_size
    assert 0 < size <= MAX_BYTES, f"{size:,} bytes"
    with SAMPLE_DB.open("rb") as fh:
        assert fh.read(16) == b"SQLite format 3\x00"


def test_sample_is_a_healthy_sqlite_db(sample: sqlite3.Connection) -> None:
    assert sample.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # a rollback-journal database: no -wal/-shm files appear next to the shipped file when read
    assert sample.execute("PRAGMA journal_mode").fetchone()[0] != "wal"


@pytest.mark.parametrize("table", REQUIRED_TABLES)
def test_required_table_has_rows(sample: sqlite3.Connection, table: str) -> None:
    tables = {name for (name,) in sample.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert table in tables
    assert sample.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] >= 1


@pytest.mark.parametrize(
    ("child", "column", "parent"),
    [
        ("Pattern", "VinSchemaId", "VinSchema"),
        ("Wmi_VinSchema", "VinSchemaId", "VinSchema"),
        ("Wmi_VinSchema", "WmiId", "Wmi"),
        ("Wmi_Make", "WmiId", "Wmi"),
        ("Wmi_Make", "MakeId", "Make"),
        ("Make_Model", "MakeId", "Make"),
        ("Make_Model", "ModelId", "Model"),
        ("Wmi", "ManufacturerId", "Manufacturer"),
        ("Manufacturer_Make", "ManufacturerId", "Manufacturer"),
    ],
)
def test_referential_closure(sample: sqlite3.Connection, child: str, column: str, parent: str) -> None:
    orphans = sample.execute(
        f'SELECT DISTINCT c."{column}" FROM "{child}" c '
        f'WHERE c."{column}" IS NOT NULL AND c."{column}" NOT IN (SELECT Id FROM "{parent}")'
    ).fetchall()
    assert orphans == [], f"{child}.{column} not in {parent}: {orphans[:10]}"


def test_every_model_pattern_names_a_model_in_the_sample(sample: sqlite3.Connection) -> None:
    """The decoder derives Make from the decoded Model, so Model patterns must resolve in the sample."""
    missing = sample.execute(
        "SELECT DISTINCT p.AttributeId FROM Pattern p JOIN Element e ON e.Id = p.ElementId "
        "WHERE e.LookupTable = 'Model' AND p.AttributeId NOT IN (SELECT CAST(Id AS TEXT) FROM Model)"
    ).fetchall()
    assert missing == []


def test_sample_has_the_cases_the_decoder_tests_need(sample: sqlite3.Connection) -> None:
    wmis = {w: vt for w, vt in sample.execute("SELECT Wmi, VehicleTypeId FROM Wmi")}
    assert any(len(w) == 6 and w[2] == "9" for w in wmis), "no 6-character WMI"
    assert 1 in wmis.values(), "no motorcycle WMI (inconclusive model years)"
    assert 6 in wmis.values(), "no trailer WMI"
    assert {"1HG", "5YJ"} <= wmis.keys()


def test_sample_makes_are_real_makes_of_the_full_snapshot(sample: sqlite3.Connection) -> None:
    sample_makes = {(i, n) for i, n in sample.execute("SELECT Id, Name FROM Make")}
    assert sample_makes
    full = full_snapshot()
    if full is None:  # ../shared is not on this machine: nothing to compare with
        return
    conn = _open_ro(full)
    try:
        full_makes = {(i, n) for i, n in conn.execute("SELECT Id, Name FROM Make")}
        full_tables = {
            name: sql for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
        }
    finally:
        conn.close()
    assert sample_makes <= full_makes, sorted(sample_makes - full_makes)[:10]
    # same tables, same definitions
    sample_tables = dict(sample.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
    assert sample_tables == full_tables


def test_golden_sample_matches_the_sample() -> None:
    assert GOLDEN_SAMPLE.is_file(), f"{GOLDEN_SAMPLE} is missing (scripts/build_sample.py makes it)"
    with GOLDEN_SAMPLE.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert 50 <= len(rows) <= 400
    assert {"vin", "make", "model", "model_year", "source"} <= rows[0].keys()
    conn = _open_ro(SAMPLE_DB)
    try:
        wmis = {w for (w,) in conn.execute("SELECT Wmi FROM Wmi")}
        makes = {n.strip().upper() for (n,) in conn.execute("SELECT Name FROM Make")}
    finally:
        conn.close()
    for row in rows:
        vin = row["vin"].upper()
        wmi = vin[:3] + vin[11:14] if vin[2] == "9" else vin[:3]
        assert wmi in wmis, row["vin"]
        assert row["make"].strip().upper() in makes, row["vin"]
    assert len({r["make"].upper() for r in rows}) >= 3
