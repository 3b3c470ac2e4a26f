"""The PostgreSQL channel on which a swap announces a new live release to `vehicle-etl serve`.

Kept free of the web stack so that the pipeline can import it: `announce` runs inside the swap's
transaction (pipeline.swap_step / rollback, `in_transaction`), so PostgreSQL delivers the
notification when, and only when, the swap commits. The payload is for logs only: the service
reads the live release itself when it is told (vpic_api/release_watch.py).
"""

from __future__ import annotations

import psycopg

from vehicle_etl.platform_db import sql_file

CHANNEL = "mvp_platform_vehicles_release"  # also named in include/sql/api/listen_release.sql


def announce(conn: psycopg.Connection, release: str | None, run_id: str | None) -> None:
    conn.execute(sql_file("api/announce_release.sql"),
                 {"channel": CHANNEL, "payload": f"{release or 'none'}; run={run_id or 'none'}"})
