"""The swap (a version switch by data, vehicle_etl/release/swap.py) under readers of every documented kind.

One real build of the sample per module; further versions are tagged copies of live
(tests/swap_readers.py) promoted by the real swap, so a test can run many swaps in seconds.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import create_database, drop_database, dsn, settings_for
from swap_readers import Inputs, Readers, stage_copy

from vehicle_etl import pipeline
from vehicle_etl.config import SAMPLE_DB, Settings
from vehicle_etl.errors import SwapError
from vehicle_etl.platform_db import render, run_in_schema, sql_files
from vehicle_etl.release import cleanup, store, swap

ALL_KINDS = ["decode_vin", "decode_vin", "decode_vins", "dropdown_makes", "dropdown_models", "dropdown_options",
             "plain_select", "plain_select", "every_table", "prepared_sql"]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    name = create_database("vetl_swap")
    saved = dict(os.environ)
    try:
        settings = settings_for(name, tmp_path_factory.mktemp("swap"))
        assert pipeline.build_catalog(settings, release="2026_02")["status"] == "success"
        yield name, settings
    finally:
        os.environ.clear()
        os.environ.update(saved)
        drop_database(name)


@pytest.fixture(autouse=True)
def no_detach_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a primary alone the grace between marking and dropping an old version only delays the
    drop (tests/test_swap_standby.py covers it on a standby); here versions drop at once."""
    monkeypatch.setattr(cleanup, "DETACH_GRACE_S", 0.0)


_counter = iter(range(1, 10_000))


def promote_copy(conn: psycopg.Connection, **kw: object) -> tuple[str, float]:
    """A new tagged version goes live through swap.promote; returns (tag, flip seconds)."""
    n = next(_counter)
    stage_copy(conn, n)
    return str(n), swap.promote(conn, **kw)  # type: ignore[arg-type]


def live_run_id(conn: psycopg.Connection) -> str:
    return conn.execute("SELECT run_id FROM vehicles.catalog_info").fetchone()[0]  # type: ignore[index]


def test_readers_of_every_kind_through_swaps_and_rollbacks(catalog: tuple[str, Settings]) -> None:
    """Ten long-lived reader connections as mvp_platform_reader (decode_vin, decode_vins with 500
    VINs, every dropdown, plain SELECTs on every readable view, an explicit PREPARE) loop with no
    pause through three promotions and two rollbacks: no error, no statement with names of two
    versions, and every new version is what they read next."""
    db, _ = catalog
    with psycopg.connect(dsn(db), autocommit=True) as conn:
        inp = Inputs.load(conn)
        live_tags: list[str] = []
        flips: list[float] = []
        with Readers(dsn(db), inp, ALL_KINDS) as readers:
            for _ in range(3):
                tag, secs = promote_copy(conn)
                live_tags.append(tag)
                flips.append(secs)
                time.sleep(0.5)
            for _ in range(2):
                flips.append(swap.rollback(conn))
                time.sleep(0.5)
            calls_before_end = readers.calls()
        assert live_run_id(conn) == f"copy ~V{live_tags[-1]}"  # two rollbacks: back where it was
        live, previous = store.control(conn)
    assert not readers.errors(), readers.errors()[:5]
    assert not readers.mixed(), readers.mixed()[:5]
    assert calls_before_end > 100
    # the readers saw the versions the swaps made live (and nothing else)
    assert set(live_tags) <= readers.seen() <= {"", *live_tags}
    assert max(flips) < 5, flips
    assert previous is not None and live != previous


def test_the_flip_holds_no_lock_that_conflicts_with_a_reader(catalog: tuple[str, Settings]) -> None:
    """Inside the flip transaction (where the run-history write runs), every lock on a relation a
    reader reads is at most ROW EXCLUSIVE, which does not conflict with a reader's ACCESS SHARE; and
    nothing is ACCESS EXCLUSIVE, so a hot standby has nothing to replay against its readers."""
    db, _ = catalog
    held: list[tuple[str, str]] = []

    def record(c: psycopg.Connection) -> None:
        held.extend(c.execute(
            "SELECT coalesce(n.nspname || '.' || cl.relname, l.relation::text), l.mode FROM pg_locks l "
            "LEFT JOIN pg_class cl ON cl.oid = l.relation LEFT JOIN pg_namespace n ON n.oid = cl.relnamespace "
            "WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted").fetchall())

    with psycopg.connect(dsn(db), autocommit=True) as conn:
        promote_copy(conn, in_transaction=record)
        swap.rollback(conn, in_transaction=record)
    assert held, "the lock snapshot was not taken"
    reader_visible = ("vehicles.", "vehicles_previous.", "vehicles_store.", "vehicles_v")
    strong = [(rel, mode) for rel, mode in held
              if rel.startswith(reader_visible) and mode not in ("AccessShareLock", "RowShareLock", "RowExclusiveLock")]
    assert not strong, strong
    assert not [h for h in held if h[1] == "AccessExclusiveLock"], held


def test_an_open_reader_transaction_neither_blocks_the_swap_nor_fails(catalog: tuple[str, Settings]) -> None:
    """An app connection that keeps a transaction open across swaps (what docs/ARCHITECTURE.md
    tells apps not to do) does not hold the swap up; its later statements read the new version.
    Only dropping the version older than previous waits for it: that is left for the next run."""
    db, _ = catalog
    with psycopg.connect(dsn(db), autocommit=True) as conn:
        promote_copy(conn)
        holder = psycopg.connect(dsn(db))  # not autocommit: one open transaction
        try:
            holder.execute("SET ROLE mvp_platform_reader")
            holder.execute("SELECT vehicles.decode_vin('5YJ3A1E12HF000001')")
            holder.execute("SELECT count(*) FROM vehicles.pattern")
            started = time.monotonic()
            tag, _ = promote_copy(conn)
            took = time.monotonic() - started
            # read committed: the next statement of the open transaction reads the new version
            assert holder.execute("SELECT run_id FROM vehicles.catalog_info").fetchone()[0] == f"copy ~V{tag}"  # type: ignore[index]
            versions_while_open = conn.execute("SELECT count(*) FROM vehicles_store.version").fetchone()[0]  # type: ignore[index]
        finally:
            holder.close()
        assert took < 60
        assert versions_while_open == 3  # the oldest could not be detached while the transaction was open
        cleanup.cleanup(conn)
        assert conn.execute("SELECT count(*) FROM vehicles_store.version").fetchone()[0] == 2  # type: ignore[index]


def test_swap_gives_up_cleanly_when_another_session_holds_the_control_row(
        catalog: tuple[str, Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    db, _ = catalog
    monkeypatch.setattr(swap, "ATTEMPTS", 2)
    with psycopg.connect(dsn(db), autocommit=True) as conn:
        before = live_run_id(conn)
        other = psycopg.connect(dsn(db))
        try:
            other.execute("SELECT * FROM vehicles_store.control FOR UPDATE")  # another ETL session mid-flip
            with pytest.raises(SwapError, match="live is unchanged"):
                promote_copy(conn, lock_timeout_ms=200)
        finally:
            other.close()
        assert live_run_id(conn) == before
        assert conn.execute("SELECT to_regnamespace('vehicles_staging')").fetchone()[0] is not None  # type: ignore[index]
        swap.promote(conn)  # the retried step finds its version already attached
        assert live_run_id(conn) != before


def test_swap_drops_functions_the_new_release_no_longer_defines(catalog: tuple[str, Settings]) -> None:
    """An old signature left beside its successor would make calls ambiguous after an upgrade."""
    db, _ = catalog
    with psycopg.connect(dsn(db), autocommit=True) as conn:
        conn.execute("CREATE FUNCTION vehicles.dropdown_makes(model_year integer) RETURNS TABLE(\"Make_ID\" int, "
                     "\"Make_Name\" text) LANGUAGE sql AS $$ SELECT 1, 'OLD'::text $$")
        with pytest.raises(psycopg.errors.AmbiguousFunction):
            conn.execute("SELECT * FROM vehicles.dropdown_makes(2020)")
        promote_copy(conn)
        names = [r[1] for r in conn.execute("SELECT * FROM vehicles.dropdown_makes(2020)")]
    assert names and "OLD" not in names


def test_unchanged_functions_are_not_reinstalled_and_changed_ones_are(catalog: tuple[str, Settings]) -> None:
    """Same definitions: the pg_proc rows stay as they are (no re-compile in every reader session).
    A changed definition is installed in the flip, keeping the function's OID (prepared statements
    that resolved it keep working); a rollback brings the previous version's definition back."""
    db, _ = catalog
    q = ("SELECT oid, xmin::text, prosrc FROM pg_proc "
         "WHERE oid = 'vehicles.dropdown_makes(integer, boolean)'::regprocedure")
    with psycopg.connect(dsn(db), autocommit=True) as conn:
        before = conn.execute(q).fetchone()
        promote_copy(conn)
        assert conn.execute(q).fetchone() == before
        # the next version's function set differs (a comment in its body)
        stage_copy(conn, 900)
        with conn.transaction():
            for path in sql_files("functions"):
                text = path.read_text().replace("SELECT d.make_id, d.make_name",
                                                "SELECT /* v900 */ d.make_id, d.make_name")
                run_in_schema(conn, "vehicles_staging", text)
        swap.promote(conn)
        changed = conn.execute(q).fetchone()
        assert changed[0] == before[0] and "v900" in changed[2]  # type: ignore[index]
        swap.rollback(conn)
        back = conn.execute(q).fetchone()
        assert back[0] == before[0] and "v900" not in back[2]  # type: ignore[index]
        swap.rollback(conn)  # forward again, so the module's later tests start from a normal state
        assert "v900" in conn.execute(q).fetchone()[2]  # type: ignore[index]
        promote_copy(conn)
        assert "v900" not in conn.execute(q).fetchone()[2]  # type: ignore[index]


def test_versions_older_than_previous_are_dropped(catalog: tuple[str, Settings]) -> None:
    db, _ = catalog
    with psycopg.connect(dsn(db), autocommit=True) as conn:
        for _ in range(2):
            promote_copy(conn)
        live, previous = store.control(conn)
        versions = {r[0] for r in conn.execute("SELECT version FROM vehicles_store.version")}
        schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname ~ '^vehicles_v[0-9]+$'")}
        parents = {r[0] for r in conn.execute(
            "SELECT DISTINCT i.inhparent::regclass::text FROM pg_inherits i")}
        partitions = conn.execute("SELECT count(*) FROM pg_inherits").fetchone()[0]  # type: ignore[index]
    assert versions == {live, previous}
    assert schemas == {f"vehicles_v{live}", f"vehicles_v{previous}"}
    assert partitions == 2 * len(parents)


def _locked_in(reader: psycopg.Connection, vin: str, schema: str) -> list[str]:
    """The relations of `schema` that one decode_vin call of `reader` locks (its cached plans)."""
    with reader.transaction():
        reader.execute("SELECT vehicles.decode_vin(%s)", (vin,))
        return [r[0] for r in reader.execute(
            "SELECT l.relation::regclass::text FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE l.pid = pg_backend_pid() AND c.relnamespace = %s::regnamespace", (schema,))]


def test_a_plan_made_with_a_snapshot_from_before_the_mark_is_invalidated_before_the_drop(
        catalog: tuple[str, Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    """The race behind issue 11's standby cancels, made deterministic: a reader whose snapshot
    predates the mark re-plans (the mark invalidated its plans) with the marked partitions still in
    and caches that generic plan, which later statements reuse. The cleanup's second visit must
    invalidate it before FINALIZE and DROP take ACCESS EXCLUSIVE there (cleanup.PLAN_SETTLE_S)."""
    monkeypatch.setattr(cleanup, "DETACH_GRACE_S", 3600.0)  # mark only, drop on a later visit
    db, _ = catalog
    with psycopg.connect(dsn(db), autocommit=True) as conn, psycopg.connect(dsn(db), autocommit=True) as reader:
        vin = Inputs.load(conn).vins[0]
        promote_copy(conn)
        promote_copy(conn)
        cleanup.cleanup(conn, grace_s=0)  # only live and previous remain, nothing marked
        old = store.control(conn)[1]  # previous now: the next promotion marks it
        old_schema = store.version_schema(old)  # type: ignore[arg-type]
        for _ in range(3):
            reader.execute("SELECT vehicles.decode_vin(%s)", (vin,))
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        reader.execute("SELECT 1")  # the snapshot, taken before the mark
        promote_copy(conn)  # flips and marks version `old` detached
        assert conn.execute("SELECT detach_started IS NOT NULL FROM vehicles_store.version WHERE version = %s",
                            (old,)).fetchone() == (True,)
        reader.execute("SELECT vehicles.decode_vin(%s)", (vin,))  # re-plans with the old snapshot
        reader.execute("COMMIT")
        # the precondition: PostgreSQL (15) keeps that plan, with the marked partitions in it
        assert _locked_in(reader, vin, old_schema), "the race did not happen: nothing to prove"
        seen_at_finalize: list[list[str]] = []
        finalize_and_drop = cleanup._finalize_and_drop

        def first_checks(c: psycopg.Connection, schema: str, table: str, timeout_ms: int) -> None:
            if not seen_at_finalize:  # what the reader's plans lock when the first FINALIZE begins
                seen_at_finalize.append(_locked_in(reader, vin, old_schema))
            finalize_and_drop(c, schema, table, timeout_ms)

        monkeypatch.setattr(cleanup, "_finalize_and_drop", first_checks)
        cleanup.cleanup(conn, grace_s=0)
        assert seen_at_finalize == [[]]  # re-planned before the finalize: the marked partitions are out
        assert store.version_schema(old) not in {  # type: ignore[arg-type]
            r[0] for r in conn.execute("SELECT nspname FROM pg_namespace")}
        assert reader.execute("SELECT vehicles.decode_vin(%s)", (vin,)).fetchone()[0]  # type: ignore[index]


def test_a_failed_attempt_after_attach_is_released_by_the_next_build(catalog: tuple[str, Settings]) -> None:
    """Staging attached but never flipped (the run died between the steps): rebuilding staging
    detaches it first (dropping an attached partition would lock the parent against readers)."""
    db, _ = catalog
    with psycopg.connect(dsn(db), autocommit=True) as conn:
        before = live_run_id(conn)
        stage_copy(conn, 901)
        swap.prepare(conn)
        assert conn.execute("SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                            "JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = 'vehicles_staging'").fetchone()[0] > 0  # type: ignore[index]
        assert live_run_id(conn) == before  # attached, not live
        tag, _ = promote_copy(conn)  # prepare_staging releases the attached tables, then a normal swap
        assert live_run_id(conn) == f"copy ~V{tag}"
        assert not conn.execute("SELECT 1 FROM vehicles_store.version WHERE schema_oid NOT IN "
                                "(SELECT oid FROM pg_namespace)").fetchone()


def test_upgrade_from_the_layout_before_the_store(tmp_path: Path) -> None:
    """A database whose `vehicles` holds the tables themselves (the layout before the version store)
    is converted by its next promotion, with a reader connected throughout."""
    name = create_database("vetl_swap_legacy")
    try:
        with psycopg.connect(dsn(name), autocommit=True) as conn:
            from vehicle_etl import staging as load
            from vehicle_etl.source.connect import open_source

            load.prepare_staging(conn)
            load.extract_load(open_source(f"sqlite:///{SAMPLE_DB}"), dsn(name), 20000)
            load.repair(conn)
            load.derive(conn)
            load.build_keys(conn)
            with conn.transaction():  # what the old swap left: tables and functions in `vehicles`
                conn.execute("ALTER SCHEMA vehicles_staging RENAME TO vehicles")
                conn.execute("SET LOCAL search_path TO vehicles, public")
                for path in sql_files("functions"):
                    conn.execute(render(path.read_text(), "vehicles").encode())
                conn.execute("INSERT INTO vehicles.catalog_info VALUES ('old', 'x', 'legacy-run')")
            tag = stage_from_legacy(conn)
            reader = psycopg.connect(dsn(name), autocommit=True)
            errors: list[BaseException] = []
            stop = threading.Event()

            def loop() -> None:
                while not stop.is_set():
                    try:
                        reader.execute("SELECT vehicles.decode_vin('5YJ3A1E12HF000001')").fetchone()
                        reader.execute("SELECT count(*) FROM vehicles.dropdown_makes(2020)").fetchone()
                    except BaseException as exc:
                        errors.append(exc)
                        return

            t = threading.Thread(target=loop, daemon=True)
            t.start()
            try:
                swap.promote(conn)
            finally:
                stop.set()
                t.join(30)
                reader.close()
            assert not errors, errors[:3]
            assert live_run_id(conn) == f"copy ~V{tag}"
            kinds = {r[0] for r in conn.execute("SELECT c.relkind FROM pg_class c JOIN pg_namespace n "
                                                "ON n.oid = c.relnamespace WHERE n.nspname = 'vehicles'")}
            assert kinds == {"v"}
            assert conn.execute("SELECT to_regnamespace('vehicles_legacy')").fetchone()[0] is None  # type: ignore[index]
            assert conn.execute("SELECT vehicles.decode_vin('5YJ3A1E12HF000001')->>'Make'").fetchone()[0] \
                .startswith("TESLA")  # type: ignore[index]
    finally:
        drop_database(name)


def stage_from_legacy(conn: psycopg.Connection) -> str:
    """stage_copy reads the live version's schema; before the store that is `vehicles` itself."""
    n = next(_counter)
    conn.execute("CREATE SCHEMA vehicles_store")
    conn.execute("CREATE TABLE vehicles_store.control (live int)")
    conn.execute("INSERT INTO vehicles_store.control VALUES (0)")
    conn.execute("ALTER SCHEMA vehicles RENAME TO vehicles_v0")
    try:
        stage_copy(conn, n)
    finally:
        conn.execute("ALTER SCHEMA vehicles_v0 RENAME TO vehicles")
        conn.execute("DROP SCHEMA vehicles_store CASCADE")
    return str(n)
