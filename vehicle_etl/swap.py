"""Promote staging to live (`vehicles`) in one short transaction; keep one previous version.

Tables are moved one by one with ALTER TABLE ... SET SCHEMA inside a single transaction rather
than renaming schemas: each move takes an ACCESS EXCLUSIVE lock on its table and sends a
relcache invalidation, so a reader either finishes on the old tables before the swap commits or
waits and then re-resolves `vehicles.<table>` to the new one — never a mix within one statement,
and cached plans of long-lived connections are re-planned instead of failing. The lock timeout
is shorter than PostgreSQL's deadlock_timeout so that, if a reader and the swap ever wait on each
other, the swap gives way and retries; the reader never gets the error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import psycopg
from psycopg import sql

from vehicle_etl.config import LIVE_SCHEMA, PREVIOUS_SCHEMA, READER_ROLE, STAGING_SCHEMA
from vehicle_etl.errors import SwapError
from vehicle_etl.platform_db import run_in_schema, schema_exists, schema_tables, sql_files

log = logging.getLogger(__name__)

ATTEMPTS = 20


def _move_all(conn: psycopg.Connection, src: str, dst: str) -> int:
    tables = schema_tables(conn, src)
    for t in tables:
        conn.execute(sql.SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(
            sql.Identifier(src), sql.Identifier(t), sql.Identifier(dst)))
    return len(tables)


_SIGNATURES = (
    "SELECT p.oid::regprocedure::text, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' "
    "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s")


def _install_functions(conn: psycopg.Connection, schema: str, reference: str | None = None) -> None:
    """Re-run the function files for `schema`; drop functions the new release no longer defines.

    CREATE OR REPLACE keeps each function's OID, so a caller that resolved it just before the swap
    still finds it; the rendered body names `<schema>.<table>` and re-resolves to the moved tables.
    A function whose signature changed would otherwise linger beside its successor and make calls
    ambiguous: `reference` (staging, where build_keys installed the new set) says what to keep.
    """
    wanted = {sig for _, sig in conn.execute(_SIGNATURES, (reference,))} if reference else set()
    for path in sql_files("functions"):
        run_in_schema(conn, schema, path.read_text())
    if wanted:
        for regproc, sig in conn.execute(_SIGNATURES, (schema,)).fetchall():
            if sig not in wanted:
                conn.execute(f"DROP FUNCTION {regproc}")  # regprocedure text is already quoted


def _ensure_schema(conn: psycopg.Connection, schema: str) -> None:
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def _grant_live(conn: psycopg.Connection) -> None:
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER_ROLE,)).fetchone():
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
            sql.Identifier(LIVE_SCHEMA), sql.Identifier(READER_ROLE)))


def _exchange(
    conn: psycopg.Connection,
    incoming: str,
    lock_timeout_ms: int,
    in_transaction: Callable[[psycopg.Connection], None] | None,
) -> float:
    """Live -> previous, `incoming` -> live, in one transaction, retried on lock timeouts."""
    if not schema_exists(conn, incoming) or not schema_tables(conn, incoming):
        raise SwapError(f"schema {incoming} has no tables to promote; live is unchanged")
    last_error: Exception | None = None
    for attempt in range(1, ATTEMPTS + 1):
        started = time.monotonic()
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{lock_timeout_ms}ms")))
                conn.execute("SET LOCAL statement_timeout = '60s'")
                parking = f"{PREVIOUS_SCHEMA}_old"
                # The version that was previous is dropped at the end of this same transaction.
                if schema_exists(conn, PREVIOUS_SCHEMA):
                    conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                        sql.Identifier(PREVIOUS_SCHEMA), sql.Identifier(parking)))
                _ensure_schema(conn, PREVIOUS_SCHEMA)
                _ensure_schema(conn, LIVE_SCHEMA)
                _move_all(conn, LIVE_SCHEMA, PREVIOUS_SCHEMA)
                _move_all(conn, incoming, LIVE_SCHEMA)
                _install_functions(conn, LIVE_SCHEMA, reference=incoming)
                _grant_live(conn)
                if incoming != PREVIOUS_SCHEMA:
                    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(incoming)))
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(parking)))
                if in_transaction is not None:
                    in_transaction(conn)
            elapsed = time.monotonic() - started
            log.info("swap committed in %.3fs (attempt %d)", elapsed, attempt)
            return elapsed
        except psycopg.errors.LockNotAvailable as exc:
            last_error = exc
            log.warning("swap attempt %d: readers hold locks (lock_timeout %dms); retrying",
                        attempt, lock_timeout_ms)
            time.sleep(min(0.2 * attempt, 2.0))
    raise SwapError(f"could not take the swap locks after {ATTEMPTS} attempts ({last_error}); live is unchanged")


def promote(
    conn: psycopg.Connection,
    lock_timeout_ms: int = 500,
    in_transaction: Callable[[psycopg.Connection], None] | None = None,
) -> float:
    """Staging becomes live; live becomes previous; the old previous is dropped. Returns lock seconds.

    `in_transaction` runs inside the swap transaction (the run-history write), so history and
    the live catalog can never disagree.
    """
    return _exchange(conn, STAGING_SCHEMA, lock_timeout_ms, in_transaction)


def rollback(
    conn: psycopg.Connection,
    lock_timeout_ms: int = 500,
    in_transaction: Callable[[psycopg.Connection], None] | None = None,
) -> float:
    """Previous becomes live again and the rolled-back version becomes previous (so it can be undone)."""
    if not schema_exists(conn, PREVIOUS_SCHEMA) or not schema_tables(conn, PREVIOUS_SCHEMA):
        raise SwapError("there is no previous version to roll back to; live is unchanged")
    swap_name = f"{PREVIOUS_SCHEMA}_rollback"
    with conn.transaction():
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(swap_name)))
        conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
            sql.Identifier(PREVIOUS_SCHEMA), sql.Identifier(swap_name)))
    try:
        return _exchange(conn, swap_name, lock_timeout_ms, in_transaction)
    except BaseException:
        with conn.transaction():  # put the previous version back where it was
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(PREVIOUS_SCHEMA)))
            conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                sql.Identifier(swap_name), sql.Identifier(PREVIOUS_SCHEMA)))
        raise
