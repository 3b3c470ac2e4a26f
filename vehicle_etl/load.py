"""Stream a vPIC source into a fresh staging schema with COPY, derive, then key and index it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from vehicle_etl import extract
from vehicle_etl.config import READER_ROLE, STAGING_SCHEMA
from vehicle_etl.platform_db import run_in_schema, schema_tables, sql_file, sql_files
from vehicle_etl.sources import Source
from vehicle_etl.spec import LOOKUP_TARGET, LOOKUPS_WITH_OWN_TABLE, TABLES

log = logging.getLogger(__name__)


@dataclass
class LoadReport:
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    absent_optional: list[str] = field(default_factory=list)
    missing_lookups: list[str] = field(default_factory=list)


def prepare_staging(conn: psycopg.Connection, schema: str = STAGING_SCHEMA) -> None:
    """Drop any leftover staging (a failed or inspected earlier run) and create the empty tables."""
    with conn.transaction():
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        run_in_schema(conn, schema, sql_file("schema/tables.sql"))


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


def extract_load(
    source: Source, conn: psycopg.Connection, batch_rows: int, schema: str = STAGING_SCHEMA
) -> LoadReport:
    """Check the source, then stream every table of the spec into `schema` (already prepared)."""
    report = LoadReport()
    report.absent_optional = source.check(TABLES)
    for name in report.absent_optional:
        log.warning("optional source table %s is absent; the platform table stays empty", name)
    with conn.transaction():
        for spec in TABLES:
            if spec.source in report.absent_optional:
                report.counts[spec.target] = 0
                continue
            stmt = extract.select_table(source, spec)
            rows, secs = copy_rows(
                conn, schema, spec.target, spec.target_columns,
                extract.stream(source, stmt, batch_rows), f"{spec.source} -> {spec.target}",
            )
            report.counts[spec.target] = rows
            report.seconds[spec.target] = secs

        present = source.existing_tables()
        wanted = [
            r[0] for batch in extract.stream(source, extract.select_distinct_lookup_tables(source), batch_rows)
            for r in batch
        ]
        total, secs_total = 0, 0.0
        for lookup in sorted({w.strip() for w in wanted if w and w.strip()} - LOOKUPS_WITH_OWN_TABLE):
            if lookup.lower() not in present:
                report.missing_lookups.append(lookup)
                continue
            rows, secs = copy_rows(
                conn, schema, LOOKUP_TARGET, ["lookup_table", "lookup_id", "lookup_name"],
                extract.stream(source, extract.select_lookup(source, lookup), batch_rows),
                f"{lookup} -> {LOOKUP_TARGET}",
            )
            total += rows
            secs_total += secs
        report.counts[LOOKUP_TARGET] = total
        report.seconds[LOOKUP_TARGET] = secs_total
        if report.missing_lookups:
            log.warning(
                "%d lookup tables named by Element.LookupTable are not in the source (their values decode "
                "as ids): %s", len(report.missing_lookups), ", ".join(report.missing_lookups),
            )
    return report


def derive(conn: psycopg.Connection, schema: str = STAGING_SCHEMA) -> dict[str, float]:
    """Build the derived tables (include/sql/derive/*.sql) from the loaded ones."""
    seconds: dict[str, float] = {}
    with conn.transaction():
        for path in sql_files("derive"):
            t = time.monotonic()
            run_in_schema(conn, schema, path.read_text())
            seconds[path.stem] = time.monotonic() - t
            log.info("derived %s in %.2fs", path.stem, seconds[path.stem])
    return seconds


def build_keys(conn: psycopg.Connection, schema: str = STAGING_SCHEMA) -> float:
    """Declare keys and indexes, install the SQL functions, grant the reader, analyze."""
    t = time.monotonic()
    with conn.transaction():
        run_in_schema(conn, schema, sql_file("schema/keys.sql"))
        for path in sql_files("functions"):
            run_in_schema(conn, schema, path.read_text())
        _grant_reader(conn, schema)
    for table in schema_tables(conn, schema):  # planner statistics for the decoder and dropdowns
        conn.execute(sql.SQL("ANALYZE {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
    elapsed = time.monotonic() - t
    log.info("keys, indexes, functions and statistics built in %.2fs", elapsed)
    return elapsed


def _grant_reader(conn: psycopg.Connection, schema: str) -> None:
    """Table grants travel with the tables at the swap; schema USAGE is granted on live only."""
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER_ROLE,)).fetchone()
    if exists:
        conn.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
                sql.Identifier(schema), sql.Identifier(READER_ROLE)
            )
        )
