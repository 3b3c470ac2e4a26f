"""Id history: the Make_ID / Model_ID values live catalogs have had, so a stored id stays resolvable.

After every swap and rollback the live catalog's ids and names are recorded in schema
`catalog_ids` (include/sql/id_history/); ids the new live release lacks are marked retired
by it. The app reads the history only through `vehicles.make_by_id` / `vehicles.model_by_id`
(include/sql/functions/40_id_lookup.sql, docs/API.md).
"""

from __future__ import annotations

import logging

import psycopg

from vehicle_etl.platform_db import sql_file

log = logging.getLogger(__name__)


def ensure(conn: psycopg.Connection) -> None:
    """The history tables and the reader's read grant (idempotent; after the reader role exists)."""
    with conn.transaction():
        conn.execute(sql_file("id_history/10_tables.sql").encode())
        conn.execute(sql_file("id_history/20_grants.sql").encode())


def record(conn: psycopg.Connection, release: str | None, run_id: str) -> dict[str, int]:
    """Record the live catalog's ids as of `release` (made live by `run_id`); returns the retired counts."""
    ensure(conn)
    with conn.transaction():
        # Several statements with parameters: client-side binding (the server's binds one statement).
        with psycopg.ClientCursor(conn) as cur:
            cur.execute(sql_file("id_history/30_record.sql"), {"release": release or "unknown", "run_id": run_id})
        retired = dict(conn.execute("SELECT kind, count(*) FROM catalog_ids.retired_id GROUP BY kind").fetchall())
    log.info("id history recorded for release %s: retired makes %s, models %s",
             release, retired.get("make", 0), retired.get("model", 0))
    return {"make": retired.get("make", 0), "model": retired.get("model", 0)}
