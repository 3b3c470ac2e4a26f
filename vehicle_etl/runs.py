"""A run's bookkeeping: one run at a time per platform database (an advisory lock), each step
timed in run history, a failure recorded there before it is re-raised, staging owned by its run."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg

from vehicle_etl.config import (
    Settings,
)
from vehicle_etl.errors import ConcurrentRunError, EtlError
from vehicle_etl.platform_db import connect
from vehicle_etl.release import history, id_history
from vehicle_etl.source.reference import SourceRef
from vehicle_etl.staging import load

log = logging.getLogger(__name__)

# A stable bigint for the advisory lock; the name it hashes is where the lock was born (keep the value).
LOCK_KEY = int(hashlib.sha1(b"vehicle_etl.pipeline").hexdigest()[:15], 16)



def new_run_id() -> str:
    return f"cli__{datetime.now(UTC):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def run_lock(settings: Settings, run_id: str | None = None) -> Iterator[None]:
    """One pipeline at a time per platform database (a session advisory lock, released on exit).

    The CLI holds it for a whole build; each Airflow task holds it for its step (`run_id` is then
    the DAG run's, whose own 'running' row is of course not abandoned).
    """
    with connect(settings, autocommit=True) as conn:
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]  # type: ignore[index]
        if not got:
            holder = conn.execute(
                "SELECT a.application_name, a.pid, a.backend_start FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                "AND l.objid = %s::bigint %% 4294967296 LIMIT 1", (LOCK_KEY,)).fetchone()
            who = f" (held by pid {holder[1]}, started {holder[2]:%Y-%m-%d %H:%M:%S})" if holder else ""
            raise ConcurrentRunError(
                f"another vehicle ETL run is in progress on this platform database{who}; "
                "wait for it to finish (vehicle-etl status) and try again")
        history.fail_abandoned(conn, keep=run_id)  # with the lock held, a 'running' row is a run that died
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


@contextlib.contextmanager
def step(settings: Settings, run_id: str, name: str) -> Iterator[psycopg.Connection]:
    """A timed step: duration goes to run history; an error marks the run failed and re-raises."""
    started = time.monotonic()
    with connect(settings) as conn:
        with conn.transaction():  # a retried task resumes a run an earlier attempt marked failed
            history.update_run(conn, run_id, status="running", error=None)
        try:
            if name not in ("restore", "extract_load"):  # every later step works on the staging this run made
                owner = load.staging_owner(conn)
                if owner != run_id:
                    raise EtlError(f"the staging schema belongs to {'run ' + owner if owner else 'no run'}, "
                                   f"not to this run ({run_id}): another run replaced it. Live was not "
                                   "changed; start this run again.")
            yield conn
        except BaseException as exc:
            if conn.broken:  # the step's own connection died (killed backend, server restart)
                try:
                    with connect(settings) as fresh:
                        record_failure(fresh, run_id, name, exc)
                except Exception:
                    log.exception("could not record the failure of run %s in run history", run_id)
            else:
                conn.rollback()
                record_failure(conn, run_id, name, exc)
            raise
        else:
            with conn.transaction():
                history.update_run(conn, run_id, durations={name: round(time.monotonic() - started, 3)})
    log.info("step %s finished in %.2fs", name, time.monotonic() - started)


def record_failure(conn: psycopg.Connection, run_id: str, name: str, exc: BaseException) -> None:
    message = f"{name}: {exc}" if isinstance(exc, EtlError) else f"{name}: {type(exc).__name__}: {exc}"
    try:
        with conn.transaction():
            history.update_run(conn, run_id, status="failed", error=message[:4000])
    except Exception:  # the database itself may be what failed; the task log still has the error
        log.exception("could not record the failure of run %s in run history", run_id)


def start_run(settings: Settings, run_id: str, ref: SourceRef, trigger: str) -> None:
    with connect(settings) as conn:
        history.ensure_schema(conn)
        ensure_reader_role(conn)
        id_history.ensure(conn)
        history.start_run(conn, run_id, ref.release, ref.url, trigger)


def ensure_reader_role(conn: psycopg.Connection) -> None:
    from vehicle_etl.serving import decode

    decode.ensure_reader_role(conn)
