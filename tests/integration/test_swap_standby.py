"""The swap with 16 readers on a hot standby: a primary + streaming standby pair started by the
test (tests/standby_cluster.py: the machine's PostgreSQL binaries, free loopback ports,
pg_basebackup -R, default standby settings), every server process stopped by PID at the end.

Before the version store, recovery replaying the swap's ACCESS EXCLUSIVE locks deadlocked with
standby readers (issue 11: 28 errors in 217,760 calls). Now the flip replays as an UPDATE of one
row; attaching takes ACCESS EXCLUSIVE only on staging tables no reader reads; dropping an old
version replays one table's lock at a time, on a table no reader reads and no cached plan names any
more (the cleanup invalidates such plans first, cleanup._invalidate_plans).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from conftest import SAMPLE_DB
from standby_cluster import StandbyPair
from swap_readers import Inputs, Readers, RunIdWatch, stage_copy

from vehicle_etl import staging as load
from vehicle_etl.release import cleanup, swap
from vehicle_etl.serving.decode import ensure_reader_role
from vehicle_etl.source.connect import open_source

# The app's calls (short statements). decode_vins with 500 VINs runs for seconds on this machine:
# with hot_standby_feedback off, a standby statement that long is canceled by PostgreSQL itself
# whenever the primary's cleanup of old row versions waits on it past max_standby_streaming_delay,
# whatever the swap does (docs/ARCHITECTURE.md); it is covered on the primary (tests/integration/test_swap.py).
STANDBY_KINDS = ["decode_vin"] * 7 + ["dropdown_makes"] * 4 + ["dropdown_models", "dropdown_options",
                                                                 "plain_select", "every_table", "prepared_sql"]



@pytest.fixture(scope="module")
def pair() -> Iterator[StandbyPair]:
    cluster = StandbyPair()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()  # by PID, also when start() failed half-way


def _build(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_reader_role(conn)
        load.prepare_staging(conn)
        load.extract_load(open_source(f"sqlite:///{SAMPLE_DB}"), dsn, 20000, workers=1)
        load.repair(conn)
        load.derive(conn, workers=1)
        load.build_keys(conn, workers=1)
        conn.execute("INSERT INTO vehicles_staging.catalog_info (release, source, run_id) "
                     "VALUES ('2026_02', 'sample', 'v0')")
        swap.promote(conn)
        ensure_reader_role(conn)


def test_sixteen_standby_readers_through_swaps_and_a_rollback(pair: StandbyPair,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Two promotions (the second marks the first version's partitions detached), a rollback, then
    the cleanup visit after the grace period (DETACH ... FINALIZE and DROP, replayed on the
    standby) — all while 16 standby readers loop."""
    started = time.monotonic()
    monkeypatch.setattr(cleanup, "DETACH_GRACE_S", 4.0)  # 600 s in production; the test's statements are short
    db = "mvp-platform-vehicles"
    with psycopg.connect(pair.dsn("primary"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    primary, standby = pair.dsn("primary", db), pair.dsn("standby", db)
    _build(primary)
    pair.wait_replayed()
    with psycopg.connect(standby, autocommit=True) as s:
        inp = Inputs.load(s)
    committed: dict[str, float] = {}
    marked_at = [time.monotonic()]
    watch = RunIdWatch(standby)
    watch.start()
    try:
        with psycopg.connect(primary, autocommit=True) as conn, Readers(standby, inp, STANDBY_KINDS) as readers:
            assert len(readers.threads) == 16
            for n in (1, 2):
                stage_copy(conn, n)
                # the moment of the flip (its commit follows within milliseconds)
                swap.promote(conn, in_transaction=lambda _c, n=n: committed.setdefault(f"copy ~V{n}", time.monotonic()))
                marked_at[0] = time.monotonic()
                time.sleep(1.0)
            swap.rollback(conn)
            lag_rollback = pair.wait_replayed()
            marked = conn.execute("SELECT count(*) FROM vehicles_store.version "
                                  "WHERE detach_started IS NOT NULL").fetchone()[0]  # type: ignore[index]
            time.sleep(max(0.0, cleanup.DETACH_GRACE_S + 0.5 - (time.monotonic() - marked_at[0])))
            cleanup.cleanup(conn)  # FINALIZE + DROP of version 0, one table per transaction
            pair.wait_replayed()
            versions = conn.execute("SELECT count(*) FROM vehicles_store.version").fetchone()[0]  # type: ignore[index]
            time.sleep(1.0)
    finally:
        watch.stop.set()
        watch.join(10)
    assert not readers.errors(), readers.errors()[:5]
    assert not readers.mixed(), readers.mixed()[:5]
    assert readers.calls() > 200
    assert {"1", "2"} <= readers.seen() <= {"", "1", "2"}
    for run_id in ("copy ~V1", "copy ~V2"):
        lag = watch.first_seen[run_id] - committed[run_id]
        assert lag < 5, f"the standby served {run_id} {lag:.1f} s after the primary's commit"
    assert lag_rollback < 5
    assert marked == 1 and versions == 2  # version 0 was marked, then finalized and dropped
    assert time.monotonic() - started < 150  # bounded (~2 min on the shared 2-core machine): it runs in make test
