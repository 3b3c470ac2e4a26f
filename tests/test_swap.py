"""The swap under concurrent readers: no errors, no statement sees two versions."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import psycopg
import pytest

from vehicle_etl import pipeline, swap
from vehicle_etl.config import SAMPLE_DB, Settings, platform_conninfo
from vehicle_etl.errors import SwapError
from vehicle_etl.platform_db import connect

# One statement reading two tables: a version's run id with that version's make count.
PROBE = ("SELECT c.run_id, (SELECT count(*) FROM vehicles.make), (SELECT count(*) FROM vehicles.model) "
         "FROM vehicles.catalog_info c")


def _smaller_sample(tmp: Path) -> str:
    db = tmp / "v2.db"
    shutil.copy(SAMPLE_DB, db)
    with sqlite3.connect(db) as raw:  # a visibly different version: fewer makes without models
        raw.execute("DELETE FROM Make WHERE Id NOT IN (SELECT MakeId FROM Make_Model) "
                    "AND Id NOT IN (SELECT MakeId FROM Wmi_Make) AND Id NOT IN (SELECT MakeId FROM Manufacturer_Make)")
        raw.execute("DELETE FROM Make WHERE Id IN (SELECT Id FROM Make WHERE Id NOT IN "
                    "(SELECT MakeId FROM Wmi_Make) AND Id NOT IN (SELECT MakeId FROM Make_Model) LIMIT 5)")
    return f"sqlite:///{db}"


def test_readers_never_error_or_see_a_mix(platform_db: Settings, tmp_path: Path) -> None:
    v1 = pipeline.build_catalog(platform_db, release="2026_02")
    dsn = platform_conninfo(platform_db)
    with psycopg.connect(dsn) as c:
        valid = {c.execute(PROBE).fetchone()}
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[tuple] = []

    def reader() -> None:
        deadline = time.monotonic() + 120  # bounded even if the swap hangs
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    seen.append(conn.execute(PROBE, prepare=True).fetchone())
                except BaseException as exc:  # any error is a failure of the swap's promise
                    errors.append(exc)
                    return

    # A long-lived connection with a prepared statement from before the swap.
    old_conn = psycopg.connect(dsn, autocommit=True)
    before = old_conn.execute(PROBE, prepare=True).fetchone()
    old_conn.execute(PROBE, prepare=True)  # psycopg prepares server-side from the second run on

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        v2 = pipeline.build_catalog(platform_db, source=_smaller_sample(tmp_path), release="2026_03")
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    with psycopg.connect(dsn) as c:
        valid.add(c.execute(PROBE).fetchone())
    after = old_conn.execute(PROBE, prepare=True).fetchone()
    old_conn.close()

    assert not errors, errors[:3]
    assert len(valid) == 2, "the two versions must differ for this test to mean anything"
    assert set(seen) <= valid, set(seen) - valid
    assert before[0] == v1["run_id"] and after[0] == v2["run_id"]
    assert after in valid


def test_swap_waits_for_a_reader_then_succeeds(platform_db: Settings) -> None:
    pipeline.build_catalog(platform_db, release="2026_02")
    dsn = platform_conninfo(platform_db)
    holder = psycopg.connect(dsn)
    holder.execute("SELECT count(*) FROM vehicles.make")  # holds AccessShare until its transaction ends
    release_at = time.monotonic() + 1.5
    threading.Thread(target=lambda: (time.sleep(max(0, release_at - time.monotonic())), holder.rollback()),
                     daemon=True).start()
    summary = pipeline.build_catalog(platform_db, release="2026_02")
    holder.close()
    assert summary["status"] == "success"
    assert time.monotonic() >= release_at  # it could only commit after the reader let go


def test_swap_gives_up_cleanly_when_locks_never_come(platform_db: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline.build_catalog(platform_db, release="2026_02")
    before = None
    with connect(platform_db) as conn:
        before = conn.execute("SELECT run_id FROM vehicles.catalog_info").fetchone()
    monkeypatch.setattr(swap, "ATTEMPTS", 2)
    holder = psycopg.connect(platform_conninfo(platform_db))
    holder.execute("SELECT count(*) FROM vehicles.pattern")
    try:
        with pytest.raises(SwapError, match="live is unchanged"):
            pipeline.build_catalog(platform_db, release="2026_02")
    finally:
        holder.close()
    with connect(platform_db) as conn:
        assert conn.execute("SELECT run_id FROM vehicles.catalog_info").fetchone() == before
        assert conn.execute("SELECT status FROM etl.run_history ORDER BY started_at DESC LIMIT 1").fetchone()[0] \
            == "failed"


def test_swap_drops_functions_the_new_release_no_longer_defines(platform_db: Settings) -> None:
    """An old signature left beside its successor would make calls ambiguous after an upgrade."""
    pipeline.build_catalog(platform_db, release="2026_02")
    with connect(platform_db) as conn:
        conn.execute("CREATE FUNCTION vehicles.dropdown_makes(model_year integer) RETURNS TABLE(\"Make_ID\" int, "
                     "\"Make_Name\" text) LANGUAGE sql AS $$ SELECT 1, 'OLD'::text $$")
        with pytest.raises(psycopg.errors.AmbiguousFunction):
            conn.execute("SELECT * FROM vehicles.dropdown_makes(2020)")
    pipeline.build_catalog(platform_db, release="2026_02")
    with connect(platform_db) as conn:
        names = [r[1] for r in conn.execute("SELECT * FROM vehicles.dropdown_makes(2020)")]
    assert names and "OLD" not in names
