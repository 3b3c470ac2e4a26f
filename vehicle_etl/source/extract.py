"""Dialect-neutral SELECTs over a vPIC source, streamed in bounded batches.

One code path for SQLite, PostgreSQL and SQL Server: the statements are SQLAlchemy Core and
compile to each dialect (tests compile them for mssql, run them on SQLite and PostgreSQL).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from vehicle_etl.source.connect import Source
from vehicle_etl.spec import LOOKUP_COLUMNS, Col, TableSpec

log = logging.getLogger(__name__)


def _expr(table: sa.Table, col: Col) -> sa.ColumnElement[Any]:
    c = table.c[col.source]
    if col.kind in ("name", "trim"):
        # Names carry stray spaces in real vPIC data; trimming here repairs them at the source.
        trimmed = sa.func.ltrim(sa.func.rtrim(c))
        # A missing required name becomes '' so the quality gate reports it by name (a NULL would
        # stop the COPY with a bare constraint error instead).
        return (sa.func.coalesce(trimmed, "") if col.kind == "name" else trimmed).label(col.target)
    if col.kind == "bool":
        return sa.func.coalesce(sa.cast(c, sa.Integer), 0).label(col.target)
    return c.label(col.target)


def select_table(source: Source, spec: TableSpec, shard: tuple[int, int] | None = None) -> sa.Select[Any]:
    """SELECT of one table; `shard=(k, n)` keeps the rows whose first (id) column is k modulo n."""
    table = source.table(spec.source, spec.source_columns)
    stmt = sa.select(*(_expr(table, c) for c in spec.columns))
    if shard is not None:
        k, n = shard
        stmt = stmt.where(table.c[spec.columns[0].source] % n == k)
    return stmt


def select_lookup(source: Source, lookup_table: str) -> sa.Select[Any]:
    table = source.table(lookup_table, [c.source for c in LOOKUP_COLUMNS])
    return sa.select(
        sa.literal(lookup_table, sa.String).label("lookup_table"),
        *(_expr(table, c) for c in LOOKUP_COLUMNS),
    )


def select_distinct_lookup_tables(source: Source) -> sa.Select[Any]:
    element = source.table("Element", ["LookupTable"])
    return sa.select(element.c.LookupTable).where(element.c.LookupTable.is_not(None)).distinct()


def stream(source: Source, stmt: sa.Select[Any], batch_rows: int) -> Iterator[Sequence[Any]]:
    """Yield lists of rows (tuple-like), at most `batch_rows` each: memory stays bounded by the batch."""
    with source.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(stmt)
        yield from result.partitions(batch_rows)


def compile_sql(stmt: sa.Select[Any], dialect: sa.engine.Dialect) -> str:
    """The SQL text a dialect would run (used to inspect the T-SQL sent to SQL Server)."""
    return str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
