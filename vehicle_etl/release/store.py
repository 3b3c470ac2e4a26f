"""The version store's layout and state (include/sql/schema/store.sql): the schema of the
parents, the name of a version's schema, the control row. Read by the swap (release/swap.py) and
by the cleanup of old versions (release/cleanup.py)."""

from __future__ import annotations

import psycopg

from vehicle_etl.platform_db import sql_file

STORE_SCHEMA = "vehicles_store"
VERSION_COLUMN = "version"


def version_schema(version: int) -> str:
    return f"vehicles_v{version}"


def ensure_store(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute(sql_file("schema/store.sql").encode())


def control(conn: psycopg.Connection) -> tuple[int | None, int | None]:
    """(live, previous) versions; (None, None) before the first promotion."""
    if conn.execute("SELECT to_regclass('vehicles_store.control')").fetchone()[0] is None:  # type: ignore[index]
        return None, None
    row = conn.execute("SELECT live, previous FROM vehicles_store.control").fetchone()
    return (row[0], row[1]) if row else (None, None)


def live_schema(conn: psycopg.Connection) -> str | None:
    """The schema holding the live version's own tables (vehicles_v<N>), None before the first swap."""
    live, _ = control(conn)
    return version_schema(live) if live is not None else None


def columns(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (schema, table))]


def base_tables(conn: psycopg.Connection, schema: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r' ORDER BY 1", (schema,))]
