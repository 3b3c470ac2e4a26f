"""Stream a vPIC source into a fresh staging schema with COPY; after the derive step (derive.py), key
and index it, install the functions and grant the reader (build_keys)."""

from __future__ import annotations

import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from vehicle_etl.config import READER_ROLE, STAGING_SCHEMA
from vehicle_etl.platform_db import run_in_schema, schema_tables, sibling, sql_file, sql_files
from vehicle_etl.source import extract
from vehicle_etl.source.connect import Source
from vehicle_etl.spec import (
    DERIVED_TABLES,
    LOOKUP_TARGET,
    LOOKUPS_WITH_OWN_TABLE,
    SHARDED_TABLES,
    TABLES,
    by_source,
)

log = logging.getLogger(__name__)


@dataclass
class LoadReport:
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    absent_optional: list[str] = field(default_factory=list)
    missing_lookups: list[str] = field(default_factory=list)


def prepare_staging(conn: psycopg.Connection, schema: str = STAGING_SCHEMA, owner: str | None = None) -> None:
    """Drop any leftover staging (a failed or inspected earlier run) and create the empty tables.

    `owner` (the run id) is written as the schema's comment: the later steps of that run check it,
    so a run whose staging another run replaced between two Airflow tasks fails instead of
    promoting someone else's data.
    """
    if schema == STAGING_SCHEMA:
        from vehicle_etl.release import swap

        swap.release_staging(conn)  # tables an unfinished swap attached: detached first, never locking readers
    with conn.transaction():
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        if owner is not None:
            conn.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(sql.Identifier(schema), sql.Literal(owner)))
        run_in_schema(conn, schema, sql_file("schema/tables.sql"))


def staging_owner(conn: psycopg.Connection, schema: str = STAGING_SCHEMA) -> str | None:
    row = conn.execute("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s",
                       (schema,)).fetchone()
    return row[0] if row else None


def copy_rows(
    conn: psycopg.Connection,
    schema: str,
    target: str,
    columns: list[str],
    batches,
    label: str,
) -> tuple[int, float]:
    """COPY streamed batches into schema.target; log progress (rows, rows/s) every few seconds."""
    stmt = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
        sql.Identifier(schema), sql.Identifier(target), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    started = last_log = time.monotonic()
    rows = 0
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        for batch in batches:
            for row in batch:
                copy.write_row(row)
            rows += len(batch)
            now = time.monotonic()
            if now - last_log >= 5:
                log.info("  %s: %d rows so far (%.0f rows/s)", label, rows, rows / (now - started))
                last_log = now
    elapsed = time.monotonic() - started
    log.info("extracted %-34s %9d rows in %6.2fs (%.0f rows/s)", label, rows, elapsed, rows / max(elapsed, 1e-9))
    return rows, elapsed


@dataclass(frozen=True)
class CopyJob:
    """One COPY: a source table (or one shard of it) into a platform table."""

    label: str
    source_table: str
    target: str
    columns: tuple[str, ...]
    lookup: bool = False
    shard: tuple[int, int] | None = None  # (k, n): only rows whose id % n == k

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CopyJob:
        """The inverse of dataclasses.asdict after a JSON round trip (lists back to tuples)."""
        shard = d.get("shard")
        return cls(d["label"], d["source_table"], d["target"], tuple(d["columns"]), bool(d.get("lookup")),
                   (int(shard[0]), int(shard[1])) if shard else None)


def plan_jobs(source: Source, absent_optional: list[str], workers: int, batch_rows: int) -> tuple[
        list[CopyJob], list[str]]:
    """All COPY jobs, the big Pattern table split in `workers` shards; and the lookups the source lacks."""
    jobs: list[CopyJob] = []
    for spec in TABLES:
        if spec.source in absent_optional:
            continue
        shards = workers if spec.source in SHARDED_TABLES and workers > 1 else 1
        for k in range(shards):
            label = f"{spec.source} -> {spec.target}" + (f" [{k + 1}/{shards}]" if shards > 1 else "")
            jobs.append(CopyJob(label, spec.source, spec.target, tuple(spec.target_columns),
                                shard=(k, shards) if shards > 1 else None))
    present = source.existing_tables()
    named = extract.stream(source, extract.select_distinct_lookup_tables(source), batch_rows)
    wanted = {r[0].strip() for batch in named for r in batch if r[0] and r[0].strip()}
    missing: list[str] = []
    for lookup in sorted(wanted - LOOKUPS_WITH_OWN_TABLE):
        if lookup.lower() not in present:
            missing.append(lookup)
            continue
        jobs.append(CopyJob(f"{lookup} -> {LOOKUP_TARGET}", lookup, LOOKUP_TARGET,
                            ("lookup_table", "lookup_id", "lookup_name"), lookup=True))
    jobs.sort(key=lambda j: j.shard is None)  # the big shards first, so workers finish together
    return jobs, missing


def copy_job(source: Source, conn: psycopg.Connection, schema: str, job: CopyJob, batch_rows: int) -> tuple[
        str, int, float]:
    """One COPY job in its own transaction on `conn` (autocommit); returns (target, rows, seconds)."""
    if job.lookup:
        stmt = extract.select_lookup(source, job.source_table)
    else:
        stmt = extract.select_table(source, by_source(job.source_table), job.shard)
    with conn.transaction():
        rows, secs = copy_rows(conn, schema, job.target, list(job.columns),
                               extract.stream(source, stmt, batch_rows), job.label)
    return job.target, rows, secs


def run_jobs(source: Source, conninfo: str, schema: str, jobs: list[CopyJob], batch_rows: int) -> list[
        tuple[str, int, float]]:
    """Run COPY jobs on one platform connection (in this process); returns (target, rows, seconds)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return [copy_job(source, conn, schema, job, batch_rows) for job in jobs]


def extract_load(
    source: Source, conninfo: str, batch_rows: int, workers: int = 1, schema: str = STAGING_SCHEMA
) -> LoadReport:
    """Check the source, then stream every table of the spec into `schema` (already prepared).

    With workers > 1 the COPY jobs run in that many worker processes (vehicle_etl.staging.copy_pool; Pattern,
    ~80 % of the rows, split in shards): extraction is CPU-bound in Python, so processes, not
    threads, use the second core.
    """
    report = LoadReport()
    report.absent_optional = source.check(TABLES)
    for name in report.absent_optional:
        log.warning("optional source table %s is absent; the platform table stays empty", name)
        report.counts[by_source(name).target] = 0
    jobs, report.missing_lookups = plan_jobs(source, report.absent_optional, workers, batch_rows)
    if report.missing_lookups:
        log.warning("%d lookup tables named by Element.LookupTable are not in the source (their values decode "
                    "as ids): %s", len(report.missing_lookups), ", ".join(report.missing_lookups))
    if workers <= 1:
        results = run_jobs(source, conninfo, schema, jobs, batch_rows)
    else:
        from vehicle_etl.staging import copy_pool

        url = (source.origin or source.engine.url).render_as_string(hide_password=False)
        results = copy_pool.run_parallel(url, source.schema, conninfo, schema, jobs, batch_rows, workers)
    report.counts.setdefault(LOOKUP_TARGET, 0)
    for target, rows, secs in results:
        report.counts[target] = report.counts.get(target, 0) + rows
        report.seconds[target] = report.seconds.get(target, 0.0) + secs
    return report


def build_keys(conn: psycopg.Connection, schema: str = STAGING_SCHEMA, workers: int = 2) -> float:
    """Build indexes, collect statistics, declare keys, install the SQL functions, grant the reader.

    The index builds (schema/indexes.sql) and the statistics are independent statements, spread
    over `workers` connections (`sibling`). The keys (over the built indexes), foreign keys,
    functions and grants then follow in one transaction on `conn`.
    """
    t = time.monotonic()
    statements: list[sql.Composable] = [
        sql.SQL(s.strip()) for s in re.split(r";[ \t]*$", sql_file("schema/indexes.sql"), flags=re.M) if _has_sql(s)]
    statements += _statistics(conn, schema)
    if workers < 2:
        _run_each(conn, schema, statements)
    else:
        def run_own(share: list[sql.Composable]) -> None:
            with sibling(conn) as c:
                _run_each(c, schema, share)

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="index") as pool:
            shares = [statements[k::workers] for k in range(workers)]  # in order: the big tables first
            for future in [pool.submit(run_own, share) for share in shares]:
                future.result()
    t_indexes = time.monotonic()
    with conn.transaction():
        declared = conn.execute("SELECT 1 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
                                "WHERE n.nspname = %s AND c.conname = 'pattern_pkey'", (schema,)).fetchone()
        if not declared:  # a retried step whose keys committed before a later statement failed
            run_in_schema(conn, schema, sql_file("schema/keys.sql"))
        for path in sql_files("functions"):
            run_in_schema(conn, schema, path.read_text())
        _grant_reader(conn, schema)
    elapsed = time.monotonic() - t
    log.info("indexes, statistics, keys and functions built in %.2fs (indexes and statistics %.2fs)",
             elapsed, t_indexes - t)
    return elapsed


def _statistics(conn: psycopg.Connection, schema: str) -> list[sql.Composable]:
    """Planner statistics for what derive() has not analyzed: the derived tables (the loaded ones
    were analyzed before deriving and have not changed) and the expression index of engine_model.
    The dropdown tables are read by index-only scans, which need a visibility map: VACUUM sets it,
    so the app's first calls skip heap fetches."""
    present = set(schema_tables(conn, schema))
    out: list[sql.Composable] = []
    for table in (*DERIVED_TABLES, "engine_model"):
        if table in present:
            verb = "VACUUM (ANALYZE)" if table in DROPDOWN_TABLES else "ANALYZE"
            out.append(sql.SQL(verb + " {}").format(sql.Identifier(schema, table)))
    return out


def _run_each(conn: psycopg.Connection, schema: str, statements: list[sql.Composable]) -> None:
    """Each statement on its own (autocommit: VACUUM cannot run in a transaction), `schema` first
    on the search path for the unqualified names of the SQL files."""
    conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema)))
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.execute("RESET search_path")


def _has_sql(chunk: str) -> bool:
    """A chunk of a split SQL file holds a statement, not only comments and blank lines."""
    return any(line.strip() and not line.strip().startswith("--") for line in chunk.splitlines())


DROPDOWN_TABLES = ("model_year", "dropdown_make", "public_schema_link", "model_trim_option",
                   "model_engine_option", "model_transmission_option")


def analyze(conn: psycopg.Connection, schema: str) -> None:
    tables = schema_tables(conn, schema)
    if tables:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(
            sql.Identifier(schema, t) for t in tables)))


def _grant_reader(conn: psycopg.Connection, schema: str) -> None:
    """Table grants travel with the tables at the swap; schema USAGE is granted on live only."""
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER_ROLE,)).fetchone()
    if exists:
        conn.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
                sql.Identifier(schema), sql.Identifier(READER_ROLE)
            )
        )
