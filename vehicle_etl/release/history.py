"""Run history (table etl.run_history in the platform database) and the JSON completion marker."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from vehicle_etl.platform_db import sql_file

log = logging.getLogger(__name__)


def ensure_schema(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute(sql_file("schema/etl.sql").encode())


def start_run(conn: psycopg.Connection, run_id: str, release: str | None, source: str, trigger: str) -> None:
    """Record a run as running (or restart the record when Airflow retries the same run)."""
    with conn.transaction():
        conn.execute(
            """INSERT INTO etl.run_history (run_id, release, source, trigger, status)
               VALUES (%s, %s, %s, %s, 'running')
               ON CONFLICT (run_id) DO UPDATE SET status = 'running', release = EXCLUDED.release,
                   source = EXCLUDED.source, error = NULL, finished_at = NULL""",
            (run_id, release, source, trigger),
        )


def update_run(conn: psycopg.Connection, run_id: str, **fields: Any) -> None:
    """Merge counts/durations (jsonb ||) and set the other columns given."""
    sets, params = [], []
    for key, value in fields.items():
        if key in ("counts", "durations"):
            sets.append(f"{key} = {key} || %s")
            params.append(Jsonb(value))
        elif key in ("checks", "diff"):
            sets.append(f"{key} = %s")
            params.append(Jsonb(value))
        elif key in ("release", "source", "status", "error"):
            sets.append(f"{key} = %s")
            params.append(value)
        else:
            raise ValueError(f"unknown run_history field {key}")
    if fields.get("status") in ("success", "failed", "noop", "rolled_back"):
        sets.append("finished_at = now()")
    params.append(run_id)
    conn.execute(f"UPDATE etl.run_history SET {', '.join(sets)} WHERE run_id = %s", params)


def finish_run(conn: psycopg.Connection, run_id: str, status: str, error: str | None = None) -> None:
    with conn.transaction():
        update_run(conn, run_id, status=status, error=error)


ABANDONED = ("abandoned: the process running it stopped without recording an outcome (killed?); "
             "marked failed by the next run that took the pipeline lock")


def fail_abandoned(conn: psycopg.Connection, keep: str | None = None) -> list[str]:
    """Mark rows still 'running' as failed. Call only with the pipeline lock held: then no run that
    holds the lock is alive, so a 'running' row belongs to a process that died (SIGKILL, OOM, a lost
    machine) and could not record its own failure. Returns the run ids it marked."""
    if conn.execute("SELECT to_regclass('etl.run_history')").fetchone()[0] is None:  # type: ignore[index]
        return []
    with conn.transaction():
        rows = conn.execute(
            "UPDATE etl.run_history SET status = 'failed', finished_at = now(), "
            "error = coalesce(error || '; ', '') || %s WHERE status = 'running' AND run_id IS DISTINCT FROM %s "
            "RETURNING run_id", (ABANDONED, keep)).fetchall()
    for (run_id,) in rows:
        log.warning("run %s was left 'running' by a process that died; marked failed", run_id)
    return [r[0] for r in rows]


def get_run(conn: psycopg.Connection, run_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM etl.run_history WHERE run_id = %s", (run_id,)).fetchone()


def recent_runs(conn: psycopg.Connection, limit: int = 20) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM etl.run_history ORDER BY started_at DESC LIMIT %s", (limit,)
        ).fetchall()


@dataclass(frozen=True)
class Health:
    code: int  # 0 healthy, 1 last run failed, 2 no successful run within `max_age`
    message: str
    last_run: dict[str, Any] | None
    last_success: dict[str, Any] | None


def health(conn: psycopg.Connection, max_age_days: int = 8) -> Health:
    with conn.cursor(row_factory=dict_row) as cur:
        exists = cur.execute("SELECT to_regclass('etl.run_history') AS t").fetchone()
        if not exists or exists["t"] is None:
            return Health(2, "no run history: the ETL has never run against this database", None, None)
        last = cur.execute(
            "SELECT * FROM etl.run_history WHERE status <> 'running' ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
        # A no-op run verified that the live release is still the newest, so it counts as fresh.
        ok = cur.execute(
            "SELECT * FROM etl.run_history WHERE status IN ('success', 'noop') ORDER BY finished_at DESC LIMIT 1"
        ).fetchone()
    if last is not None and last["status"] == "failed":
        return Health(1, f"last run {last['run_id']} failed: {last['error']}", last, ok)
    if ok is None:
        return Health(2, "no successful run recorded", last, ok)
    age = datetime.now(UTC) - ok["finished_at"]
    if age.days >= max_age_days:
        return Health(2, f"last successful run {ok['run_id']} finished {age.days} days ago", last, ok)
    return Health(0, f"healthy: release {ok['release']} verified {ok['finished_at']:%Y-%m-%d %H:%M}Z", last, ok)


def write_marker(marker_dir: Path, payload: dict[str, Any]) -> Path:
    """Write `<marker_dir>/latest.json` (and one per run) atomically: a reader never sees half a file."""
    marker_dir.mkdir(parents=True, exist_ok=True)
    body = json.dumps(payload, indent=2, sort_keys=True, default=str)
    run_file = marker_dir / f"run_{payload['run_id']}.json".replace(":", "-").replace("+", "-")
    for target in (run_file, marker_dir / "latest.json"):
        fd, tmp = tempfile.mkstemp(dir=marker_dir, prefix=".marker-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    log.info("completion marker written: %s", marker_dir / "latest.json")
    return marker_dir / "latest.json"
