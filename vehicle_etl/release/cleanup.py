"""Dropping versions other than live and previous, without ever making a reader wait or fail, on
the primary and on hot standbys (docs/ARCHITECTURE.md "Why it cannot deadlock with readers"):
mark detached at one visit; at a later one, after the grace, invalidate the plans that still name
the partitions, then FINALIZE and DROP one table per transaction under a short lock timeout."""

from __future__ import annotations

import logging
import time

import psycopg
from psycopg import sql

from vehicle_etl.config import LIVE_SCHEMA, PREVIOUS_SCHEMA, STAGING_SCHEMA
from vehicle_etl.errors import SwapError
from vehicle_etl.platform_db import schema_exists, sibling
from vehicle_etl.release.store import STORE_SCHEMA, base_tables, control

log = logging.getLogger(__name__)

# A hot standby does not wait for its readers before replaying DETACH's second phase (ACCESS
# EXCLUSIVE on the partition) or a DROP: a standby statement that began before the first phase was
# replayed may still include the partition, hold locks on other tables and wait for it, while
# recovery waits on that statement's snapshot (a deadlock cut by max_standby_streaming_delay,
# i.e. a canceled reader). So a version is dropped in two visits at least DETACH_GRACE_S apart:
# the first only marks its partitions detached (the first phase: SHARE UPDATE EXCLUSIVE, nothing
# replayed against readers; new plans leave the partitions out); a later one finalizes and drops
# them, when no statement from before the mark can still be running (it would have been canceled
# by the standby's own limits long before).
# Why the finalize cannot make a reader fail on the primary: DETACH ... FINALIZE takes ACCESS
# EXCLUSIVE on the partition and then waits for every older snapshot; a reader that started before
# it and then asks for the partition (a cached generic plan made before the mark locks every
# relation it names before it notices it must re-plan) would close a cycle. Every lock the cleanup
# waits for is therefore bounded by a lock_timeout below the server's deadlock_timeout: the
# cleanup always gives way first (the reader waits less than deadlock_timeout, so it never even
# runs the deadlock check), and the next visit retries. DROP TABLE of a detached table waits only
# for that table and its own indexes, under the same bound.
# Why the mark alone does not keep readers off the partition (found on a hot standby, issue 11):
# the mark's invalidation makes a reader re-plan, and a reader whose statement snapshot predates the
# mark re-plans *with* the partition (it is not yet detached for that snapshot) and caches that
# generic plan; no later invalidation touches it, so weeks later it still locks the partition
# first (before it could notice anything) and queues behind the replayed ACCESS EXCLUSIVE of the
# FINALIZE while recovery waits on its snapshot. So the second visit first invalidates every plan
# that names an old partition (a REVOKE on the partition: it rewrites the partition's pg_class row
# and takes no lock readers could meet); every plan made from then on is made with
# a snapshot newer than the mark and leaves the partition out; after PLAN_SETTLE_S (longer than any
# statement that began before that invalidation) the finalize and drop meet no plan that names it.
DETACH_GRACE_S = 600.0
PLAN_SETTLE_S = 3.0
FINALIZE_ATTEMPTS = 20


def _cleanup_timeout_ms(conn: psycopg.Connection) -> int:
    """Half the server's deadlock_timeout, at most 200 ms (PostgreSQL's default is 1 s)."""
    deadlock_ms = conn.execute(
        "SELECT setting::int FROM pg_settings WHERE name = 'deadlock_timeout'").fetchone()[0]  # type: ignore[index]
    return max(10, min(200, deadlock_ms // 2))


def _partition_state(conn: psycopg.Connection, schema: str, table: str) -> tuple[bool, bool, str | None]:
    row = conn.execute(
        "SELECT c.relispartition, coalesce(i.inhdetachpending, false), p.relname FROM pg_class c "
        "LEFT JOIN pg_inherits i ON i.inhrelid = c.oid LEFT JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE c.oid = %s::regclass", (f'{schema}."{table}"',)).fetchone()
    return (bool(row[0]), bool(row[1]), row[2]) if row else (False, False, None)


def _mark_detached(conn: psycopg.Connection, schema: str, table: str, parent: str) -> None:
    """The first phase of DETACH PARTITION CONCURRENTLY only. It commits, then waits for the
    lockers of the parent; a sibling session of ours holds a lock there, so the wait ends at our
    lock_timeout and the second phase is left to FINALIZE, later."""
    with sibling(conn) as blocker, blocker.transaction():
        blocker.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(sql.Identifier(STORE_SCHEMA, parent)))
        conn.execute("SET lock_timeout = '100ms'")  # the first phase waits for no reader; then our sibling
        try:
            conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY").format(
                sql.Identifier(STORE_SCHEMA, parent), sql.Identifier(schema, table)))
        except psycopg.errors.LockNotAvailable:
            pass  # expected: the first phase committed
        finally:
            conn.execute("RESET lock_timeout")
    is_part, pending, _ = _partition_state(conn, schema, table)
    if is_part and not pending:
        raise SwapError(f"{schema}.{table} could not be marked detached")


def _invalidate_plans(conn: psycopg.Connection, schema: str, tables: list[str], timeout_ms: int) -> None:
    """Invalidate, on the primary and (by replay) on every standby, each cached plan that names one
    of these marked partitions (see PLAN_SETTLE_S). A REVOKE rewrites the partition's pg_class row
    (even when it revokes nothing), whose relcache invalidation drops every plan that lists it;
    ALTER TABLE is refused on a partition with an incomplete detach. Nobody reads an old version's
    partition directly, so revoking PUBLIC's rights changes nothing else."""
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{timeout_ms}ms")))
        for table in tables:
            conn.execute(sql.SQL("REVOKE ALL ON TABLE {} FROM PUBLIC").format(sql.Identifier(schema, table)))


def _finalize_and_drop(conn: psycopg.Connection, schema: str, table: str, timeout_ms: int) -> None:
    """One table: detach (FINALIZE of a marked partition; CONCURRENTLY for staging that never went
    live) and drop, each statement its own transaction, retried on a lock timeout."""
    conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{timeout_ms}ms")))
    try:
        for attempt in range(1, FINALIZE_ATTEMPTS + 1):
            try:
                is_part, pending, parent = _partition_state(conn, schema, table)
                if is_part:
                    verb = "FINALIZE" if pending else "CONCURRENTLY"
                    conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {} " + verb).format(
                        sql.Identifier(STORE_SCHEMA, parent), sql.Identifier(schema, table)))  # type: ignore[arg-type]
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, table)))
                return
            except psycopg.errors.LockNotAvailable:
                if attempt == FINALIZE_ATTEMPTS:
                    raise
                time.sleep(0.05 * attempt)  # a reader's statement is running: let it end
    finally:
        conn.execute("RESET lock_timeout")


def drop_version(conn: psycopg.Connection, version: int, schema: str, *, force: bool = False,
                 grace_s: float | None = None) -> bool:
    """One visit of the cleanup of one version (see DETACH_GRACE_S); True when it is gone.
    `force`: no grace (staging that never went live: no reader can have planned with it)."""
    grace = DETACH_GRACE_S if grace_s is None else grace_s
    row = conn.execute("SELECT detach_started, now() - detach_started >= make_interval(secs => %s) "
                       "FROM vehicles_store.version WHERE version = %s", (grace, version)).fetchone()
    tables = base_tables(conn, schema)
    attached = [(t, st) for t in tables if (st := _partition_state(conn, schema, t))[0]]
    try:
        if not force and attached and (row is None or row[0] is None):
            for table, (_, pending, parent) in attached:
                if not pending:
                    _mark_detached(conn, schema, table, parent)  # type: ignore[arg-type]
            with conn.transaction():
                conn.execute("UPDATE vehicles_store.version SET detach_started = now() WHERE version = %s",
                             (version,))
            log.info("version %d: partitions marked detached; dropped by a run at least %.0f s from now",
                     version, grace)
            if grace > 0:
                return False
            row = (True, True)
        if not force and attached and not (row and row[1]):
            return False  # within the grace period
        timeout_ms = _cleanup_timeout_ms(conn)
        if not force and attached:
            _invalidate_plans(conn, schema, [t for t, _ in attached], timeout_ms)
            time.sleep(min(PLAN_SETTLE_S, grace))  # no grace configured: no wait for statements either
        for table in tables:
            _finalize_and_drop(conn, schema, table, timeout_ms)
    except (psycopg.errors.OperationalError, SwapError) as exc:  # lock timeout, canceled: the next run retries
        log.warning("cleanup of version %d (%s) stays for now (%s); the next run continues it", version, schema, exc)
        return False
    with conn.transaction():
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))  # functions only
        conn.execute("DELETE FROM vehicles_store.version WHERE version = %s", (version,))
    return True


def cleanup(conn: psycopg.Connection, grace_s: float | None = None) -> None:
    """Drop every version other than live and previous, and the pre-store layout's schemas.
    Never fails the run: what cannot be dropped now (a reader holds a transaction open for
    minutes) is logged and dropped by the next run. `grace_s`: DETACH_GRACE_S unless given."""
    if conn.execute("SELECT to_regclass('vehicles_store.version')").fetchone()[0] is None:  # type: ignore[index]
        return  # nothing was ever promoted here
    live, previous = control(conn)
    rows = conn.execute(
        "SELECT v.version, n.nspname, v.detach_started IS NOT NULL FROM vehicles_store.version v "
        "LEFT JOIN pg_namespace n ON n.oid = v.schema_oid "
        "WHERE v.version IS DISTINCT FROM %s AND v.version IS DISTINCT FROM %s ORDER BY 1", (live, previous)).fetchall()
    marked = {version for version, _, is_marked in rows if is_marked}
    for version, schema, _ in rows:
        if marked and version not in marked and schema not in (None, STAGING_SCHEMA):
            # PostgreSQL allows one pending detach per parent: this one is marked once those are dropped
            log.info("version %d waits until version(s) %s are dropped", version, sorted(marked))
            continue
        if schema == STAGING_SCHEMA:
            continue  # attached but never flipped: release_staging handles it before staging is rebuilt
        if schema is None:
            with conn.transaction():
                conn.execute("DELETE FROM vehicles_store.version WHERE version = %s", (version,))
            continue
        if drop_version(conn, version, schema, grace_s=grace_s):
            log.info("dropped version %d (%s)", version, schema)
            marked.discard(version)
    for schema in (f"{LIVE_SCHEMA}_legacy", f"{PREVIOUS_SCHEMA}_legacy"):
        if schema_exists(conn, schema):
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                        sql.Literal(f"{_cleanup_timeout_ms(conn)}ms")))  # gives way to readers (see above)
                    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
                log.info("dropped %s (the layout before the version store)", schema)
            except psycopg.errors.OperationalError as exc:
                log.warning("%s stays for now (%s); the next run drops it", schema, exc)
