"""Promote staging to live by switching versions by DATA, never by DDL on what readers touch.

Layout (include/sql/schema/store.sql; docs/ARCHITECTURE.md "Schemas"):

- `vehicles_store.<table>`: a parent partitioned BY LIST (version); each release's tables are its
  partitions, kept in the release's own schema `vehicles_v<N>` (staging renamed).
- `vehicles.<table>` / `vehicles_previous.<table>`: permanent views over the parents, filtered by
  `version = (SELECT live|previous FROM vehicles_store.control)`. The documented functions in
  `vehicles` read the views and are replaced only when their definition changed.

A promotion is three steps:

1. prepare (before the flip; nothing live changes): allocate a version N, give each staging table a
   constant `version` column with a CHECK (version = N), drop its foreign keys (the gate and
   build_keys have verified them; partitions that do not reference each other can be dropped one by
   one later), ATTACH it to its parent. ATTACH takes SHARE UPDATE EXCLUSIVE on the parent (readers
   take ACCESS SHARE: no conflict) and ACCESS EXCLUSIVE only on the staging table, which no reader
   reads; the CHECK lets it skip the validation scan.
2. flip (one short transaction): UPDATE the control row, rename vehicles_staging to vehicles_v<N>,
   create views for tables new in this release, reinstall the functions only if they differ, and the
   caller's history write. No lock stronger than ROW EXCLUSIVE on any relation a reader reads, and
   ROW EXCLUSIVE does not conflict with ACCESS SHARE: the flip never waits on a reader and a reader
   never waits on it, on the primary and on a hot standby (nothing ACCESS EXCLUSIVE to replay). A
   statement reads the control row with its one snapshot (the functions are STABLE, so every
   statement inside them shares the caller's snapshot): it sees one version, never two.
3. cleanup (release/cleanup.py, after the flip; failures only logged, retried by the next run):
   versions other than live and previous are marked detached, and after a grace their plans are
   invalidated and they are finalized and dropped one table per transaction.

Rollback is the same flip with live and previous exchanged.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from vehicle_etl.config import LIVE_SCHEMA, PREVIOUS_SCHEMA, READER_ROLE, STAGING_SCHEMA
from vehicle_etl.errors import SwapError
from vehicle_etl.platform_db import render, schema_exists, sql_files
from vehicle_etl.release.cleanup import cleanup, drop_version
from vehicle_etl.release.store import (
    STORE_SCHEMA,
    VERSION_COLUMN,
    base_tables,
    columns,
    control,
    ensure_store,
    version_schema,
)

log = logging.getLogger(__name__)

ATTEMPTS = 5  # the flip takes no lock a reader holds: a retry only covers other ETL sessions
_SOURCE = {LIVE_SCHEMA: "live", PREVIOUS_SCHEMA: "previous"}


# -- the function set -------------------------------------------------------------------------
_DEFINITIONS = (
    "SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid) "
    "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s ORDER BY 1")


def _digest(conn: psycopg.Connection, schema: str) -> str:
    """What the functions of `schema` are, with the schema's own name normalised to `vehicles`:
    equal digests mean installing one set over the other would change nothing (grants included)."""
    rows = conn.execute(_DEFINITIONS, (schema,)).fetchall()
    acl = conn.execute("SELECT string_agg(coalesce(p.proacl::text, ''), ',' ORDER BY p.oid::regprocedure::text) "
                       "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s",
                       (schema,)).fetchone()[0]  # type: ignore[index]
    text = _normalise("\n".join(d for _, d in rows) + "\n" + (acl or ""), schema)
    return hashlib.sha256(text.encode()).hexdigest()


def _normalise(text: str, schema: str) -> str:
    quoted = sql.Identifier(schema).as_string(None)  # how render() wrote it into the bodies
    return text.replace(f"{quoted}.", '"vehicles".').replace(f"{schema}.", "vehicles.")


def _function_sql(conn: psycopg.Connection, schema: str) -> str:
    """The functions of `schema` (staging: what build_keys installed and the gate tested), as one
    text that installs them into `vehicles` (stored per version, so a rollback restores them)."""
    defs = [_normalise(d, schema) for _, d in conn.execute(_DEFINITIONS, (schema,)).fetchall()]
    grants = [p for p in sql_files("functions") if p.name.endswith("_grants.sql")]
    return ("SET LOCAL check_function_bodies = off;\n" + "".join(f"{d};\n" for d in defs)
            + "".join(render(p.read_text(), LIVE_SCHEMA) for p in grants))


_SIGNATURES = ("SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' FROM pg_proc p "
               "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s ORDER BY 1")


def _install_functions(conn: psycopg.Connection, text: str, wanted: list[str]) -> None:
    """Run the function set; drop functions of `vehicles` it does not define (an old signature left
    beside its successor would make calls ambiguous). CREATE OR REPLACE keeps each function's OID,
    so prepared statements and cached plans that resolved it keep working; it takes no lock that a
    caller holds (callers do not lock functions), and a running call finishes on its old body."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(LIVE_SCHEMA)))
        cur.execute(text.encode())
        stale = cur.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s AND NOT (p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')') "
            "= ANY (%s)", (LIVE_SCHEMA, wanted)).fetchall()
        for (regproc,) in stale if wanted else []:  # no list recorded: keep everything
            cur.execute(f"DROP FUNCTION {regproc}")  # regprocedure text is already quoted
        cur.execute("RESET search_path")


# -- prepare ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    version: int
    tables: list[str]


def _prepared_version(conn: psycopg.Connection) -> int | None:
    row = conn.execute("SELECT v.version FROM vehicles_store.version v JOIN pg_namespace n ON n.oid = v.schema_oid "
                       "WHERE n.nspname = %s", (STAGING_SCHEMA,)).fetchone()
    return row[0] if row else None


def prepare(conn: psycopg.Connection, run_id: str | None = None) -> Prepared:
    """Attach every staging table as a partition of a new, not yet live, version (idempotent: a
    retried swap step finds its version already attached). Nothing a reader reads changes."""
    ensure_store(conn)
    tables = base_tables(conn, STAGING_SCHEMA) if schema_exists(conn, STAGING_SCHEMA) else []
    if not tables:
        raise SwapError(f"schema {STAGING_SCHEMA} has no tables to promote; live is unchanged")
    with conn.transaction():
        version = _prepared_version(conn)
        if version is None:
            version = conn.execute("SELECT nextval('vehicles_store.version_seq')").fetchone()[0]  # type: ignore[index]
            conn.execute(
                "INSERT INTO vehicles_store.version (version, schema_oid, run_id, functions_sql, functions_digest, "
                "function_names) SELECT %s, oid, %s, %s, %s, %s FROM pg_namespace WHERE nspname = %s",
                (version, run_id, _function_sql(conn, STAGING_SCHEMA), _digest(conn, STAGING_SCHEMA),
                 [r[0] for r in conn.execute(_SIGNATURES, (STAGING_SCHEMA,))], STAGING_SCHEMA))
    with conn.transaction():
        # All foreign keys first, before any table is attached: dropping one locks the table it
        # references too (ACCESS EXCLUSIVE), and an attached table is one readers read.
        for fk, table in conn.execute(
                "SELECT c.conname, r.relname FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid "
                "JOIN pg_namespace n ON n.oid = r.relnamespace WHERE n.nspname = %s AND c.contype = 'f'",
                (STAGING_SCHEMA,)).fetchall():
            conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(STAGING_SCHEMA, table), sql.Identifier(fk)))
    started = time.monotonic()
    for table in tables:
        # One transaction per table: each holds SHARE UPDATE EXCLUSIVE on one parent only.
        with conn.transaction():
            _attach(conn, table, version)
    attached = time.monotonic()
    for table in tables:
        # Statistics of the whole hierarchy (pg_statistic with stainherit): without them the planner
        # estimates joins over the parents with default selectivities (plans 1000x too big, JIT).
        # ANALYZE takes SHARE UPDATE EXCLUSIVE on the parent and ACCESS SHARE on the partitions.
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(STORE_SCHEMA, table)))
    log.info("attached %d staging tables as version %d in %.2fs (statistics %.2fs)", len(tables), version,
             attached - started, time.monotonic() - attached)
    return Prepared(version, tables)


def _attach(conn: psycopg.Connection, table: str, version: int) -> None:
    staging = sql.Identifier(STAGING_SCHEMA, table)
    parent = sql.Identifier(STORE_SCHEMA, table)
    if conn.execute("SELECT c.relispartition FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relname = %s", (STAGING_SCHEMA, table)).fetchone()[0]:  # type: ignore[index]
        return  # attached by an earlier attempt of this step
    cols = dict(columns(conn, STAGING_SCHEMA, table))
    if VERSION_COLUMN in cols:
        raise SwapError(f"staging table {table} has a column named {VERSION_COLUMN!r}, which the store uses "
                        "to tell versions apart; rename it in the SQL that builds it. Live is unchanged.")
    # A constant default is stored once in the catalog (no rewrite); the CHECK costs one scan of the
    # staging table here and lets ATTACH skip its own validation.
    conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} integer NOT NULL DEFAULT {} CONSTRAINT {} CHECK ({} = {}), "
                         "SET (vacuum_truncate = false)").format(
        staging, sql.Identifier(VERSION_COLUMN), sql.Literal(version), sql.Identifier(f"{table}_version_check"),
        sql.Identifier(VERSION_COLUMN), sql.Literal(version)))
    conn.execute(sql.SQL("ANALYZE {} ({})").format(staging, sql.Identifier(VERSION_COLUMN)))  # one value, known
    parent_cols = columns(conn, STORE_SCHEMA, table)
    if not parent_cols:
        # The columns and types only (no NOT NULL but the version's, no defaults, no indexes): what
        # a partition must have in common with its parent, and nothing that would make ATTACH
        # lock or build more than it does now.
        conn.execute(sql.SQL("CREATE TABLE {} ({}, {} integer NOT NULL) PARTITION BY LIST ({})").format(
            parent, sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in cols.items()),
            sql.Identifier(VERSION_COLUMN), sql.Identifier(VERSION_COLUMN)))
    elif dict(parent_cols) != {**cols, VERSION_COLUMN: "integer"}:
        raise SwapError(
            f"table {table} of this release has other columns than the live one "
            f"({sorted(set(cols) ^ {c for c, _ in parent_cols if c != VERSION_COLUMN}) or 'types differ'}); "
            "a layout change cannot go live by a version switch. Live is unchanged; see docs/RUNBOOK.md "
            "(layout changes).")
    conn.execute(sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN ({})").format(
        parent, staging, sql.Literal(version)))


def release_staging(conn: psycopg.Connection) -> None:
    """Before staging is dropped and rebuilt: detach what an earlier, never flipped attempt attached
    (dropping an attached partition would lock its parent, which readers read)."""
    if conn.execute("SELECT to_regclass('vehicles_store.version')").fetchone()[0] is None:  # type: ignore[index]
        return
    version = _prepared_version(conn)
    if version is not None:
        drop_version(conn, version, STAGING_SCHEMA, force=True)


# -- flip -------------------------------------------------------------------------------------
def _ensure_views(conn: psycopg.Connection, tables: list[str]) -> list[str]:
    """Create the views of `tables` that do not exist yet (existing views are never replaced:
    that would lock them against readers)."""
    created = []
    for schema, source in _SOURCE.items():
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for table in tables:
            if conn.execute("SELECT to_regclass(%s)", (f'{schema}."{table}"',)).fetchone()[0] is not None:  # type: ignore[index]
                continue
            cols = [c for c, _ in columns(conn, STORE_SCHEMA, table) if c != VERSION_COLUMN]
            # A scalar subquery, not a function call: evaluated once per statement (an InitPlan),
            # each row then compares with a parameter; and the view's owner, not the reader, needs
            # the right to read the control row.
            conn.execute(sql.SQL("CREATE VIEW {} AS SELECT {} FROM {} WHERE {} = (SELECT c.{} FROM {} c)").format(
                sql.Identifier(schema, table), sql.SQL(", ").join(map(sql.Identifier, cols)),
                sql.Identifier(STORE_SCHEMA, table), sql.Identifier(VERSION_COLUMN), sql.Identifier(source),
                sql.Identifier(STORE_SCHEMA, "control")))
            created.append(f"{schema}.{table}")
    if created and conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER_ROLE,)).fetchone():
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
            sql.Identifier(LIVE_SCHEMA), sql.Identifier(READER_ROLE)))
        live = [c.split(".", 1)[1] for c in created if c.startswith(f"{LIVE_SCHEMA}.")]
        if live:
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(
                sql.SQL(", ").join(sql.Identifier(LIVE_SCHEMA, t) for t in live), sql.Identifier(READER_ROLE)))
    return created


def _legacy(conn: psycopg.Connection) -> list[str]:
    """Schemas of the layout before the version store (tables in vehicles / vehicles_previous)."""
    return [s for s in (LIVE_SCHEMA, PREVIOUS_SCHEMA) if base_tables(conn, s)]


def _flip(
    conn: psycopg.Connection,
    live: int,
    previous: int | None,
    lock_timeout_ms: int,
    in_transaction: Callable[[psycopg.Connection], None] | None,
    rename_staging: bool,
) -> float:
    last_error: Exception | None = None
    for attempt in range(1, ATTEMPTS + 1):
        started = time.monotonic()
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{lock_timeout_ms}ms")))
                conn.execute("SET LOCAL statement_timeout = '60s'")
                # Serialises against another flip; readers never lock rows.
                conn.execute("SELECT 1 FROM vehicles_store.control FOR UPDATE")
                legacy = _legacy(conn)
                for schema in legacy:
                    # One time, from the layout before the store: the old schema is renamed away
                    # (a catalog update; statements running on its tables finish there) and dropped
                    # by the cleanup.
                    conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                        sql.Identifier(schema), sql.Identifier(f"{schema}_legacy")))
                conn.execute("UPDATE vehicles_store.control SET live = %s, previous = %s, switched_at = now()",
                             (live, previous))
                if rename_staging:
                    conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                        sql.Identifier(STAGING_SCHEMA), sql.Identifier(version_schema(live))))
                tables = [r[0] for r in conn.execute(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relkind = 'p' ORDER BY 1", (STORE_SCHEMA,))]
                created = _ensure_views(conn, tables)
                if created:
                    log.info("created %d views (tables new to the store)", len(created))
                row = conn.execute("SELECT functions_sql, functions_digest, function_names FROM vehicles_store.version "
                                   "WHERE version = %s", (live,)).fetchone()
                if row is None:
                    raise SwapError(f"version {live} is not in vehicles_store.version; live is unchanged")
                if legacy or _digest(conn, LIVE_SCHEMA) != row[1]:
                    _install_functions(conn, row[0], row[2])
                    log.info("installed the function set of version %d", live)
                if in_transaction is not None:
                    in_transaction(conn)
            elapsed = time.monotonic() - started
            log.info("version %d is live (previous %s); flip committed in %.3fs (attempt %d)",
                     live, previous, elapsed, attempt)
            return elapsed
        except psycopg.errors.LockNotAvailable as exc:  # only another ETL session can cause this
            last_error = exc
            log.warning("swap attempt %d: lock not available (lock_timeout %dms); retrying", attempt, lock_timeout_ms)
            time.sleep(min(0.2 * attempt, 2.0))
    raise SwapError(f"could not take the swap locks after {ATTEMPTS} attempts ({last_error}); live is unchanged")


def promote(
    conn: psycopg.Connection,
    lock_timeout_ms: int = 500,
    in_transaction: Callable[[psycopg.Connection], None] | None = None,
    run_id: str | None = None,
    grace_s: float | None = None,
) -> float:
    """Staging becomes live; live becomes previous; older versions are dropped. Returns the flip's seconds.

    `in_transaction` runs inside the flip transaction (the run-history write), so history and
    the live catalog can never disagree.
    """
    prepared = prepare(conn, run_id)
    live, _ = control(conn)
    seconds = _flip(conn, prepared.version, live, lock_timeout_ms, in_transaction, rename_staging=True)
    cleanup(conn, grace_s)
    return seconds


def rollback(
    conn: psycopg.Connection,
    lock_timeout_ms: int = 500,
    in_transaction: Callable[[psycopg.Connection], None] | None = None,
) -> float:
    """Previous becomes live again and the rolled-back version becomes previous (so it can be undone)."""
    live, previous = control(conn)
    if live is None or previous is None:
        raise SwapError("there is no previous version to roll back to; live is unchanged")
    return _flip(conn, previous, live, lock_timeout_ms, in_transaction, rename_staging=False)
