"""Connections to the MVP Platform database and the SQL files that run in it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from vehicle_etl.config import SQL_DIR, Settings, platform_conninfo


@contextlib.contextmanager
def connect(settings: Settings, *, autocommit: bool = True) -> Iterator[psycopg.Connection]:
    """Autocommit by default: every unit of work is an explicit `with conn.transaction()`, so a
    stray read never leaves an implicit transaction open that would turn later blocks into savepoints."""
    conn = psycopg.connect(platform_conninfo(settings), autocommit=autocommit)
    try:
        yield conn
    finally:
        conn.close()


def sibling(conn: psycopg.Connection) -> psycopg.Connection:
    """A second autocommit connection to the database `conn` is connected to (same parameters and
    password), for work that runs beside it; the caller closes it (`with sibling(conn) as c:`)."""
    return psycopg.connect(**conn.info.get_parameters(), password=conn.info.password, autocommit=True)


def sql_file(relative: str) -> str:
    return (SQL_DIR / relative).read_text()


def sql_files(folder: str) -> list[Path]:
    """The .sql files of include/sql/<folder>, in name order (their numeric prefixes order them)."""
    return sorted((SQL_DIR / folder).glob("*.sql"))


def render(text: str, schema: str | None = None, **schemas: str) -> str:
    """Put schema names into a SQL file that says {{schema}} (or {{live}}, ...) where they go: the
    one renderer of the SQL files (quoted as identifiers).

    Files that create functions name their schema this way so the same definition can be
    installed into staging (to test it against staged data) and into live at the swap; the checks
    and the release diff name the staged and the live schema.
    """
    if schema is not None:
        schemas = {"schema": schema, **schemas}
    for key, value in schemas.items():
        text = text.replace("{{" + key + "}}", sql.Identifier(value).as_string(None))
    return text


def run_in_schema(conn: psycopg.Connection, schema: str, text: str) -> None:
    """Run a multi-statement SQL text with `schema` first on the search path (and {{schema}} rendered)."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(schema)))
        cur.execute(render(text, schema).encode())


def table_counts(conn: psycopg.Connection, schema: str, tables: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    with conn.cursor() as cur:
        for t in tables:
            cur.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(t)))
            counts[t] = cur.fetchone()[0]  # type: ignore[index]
    return counts


def schema_tables(conn: psycopg.Connection, schema: str) -> list[str]:
    """The catalog tables of `schema`: tables in staging, the views over the version store in
    `vehicles` and `vehicles_previous` (vehicle_etl/release/swap.py)."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v') ORDER BY 1",
        (schema,),
    ).fetchall()
    return [r[0] for r in rows]


def schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None
