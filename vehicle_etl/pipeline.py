"""The pipeline as plain functions: the DAG's tasks and the CLI's build-catalog call the same steps.

State between steps lives in the platform database (staging schema, etl.run_history keyed by
run id), so Airflow tasks pass only the run id and a source reference, never data or secrets.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from vehicle_etl import releases
from vehicle_etl.config import (
    LIVE_SCHEMA,
    PREVIOUS_SCHEMA,
    SAMPLE_DB,
    STAGING_SCHEMA,
    Settings,
    platform_conninfo,
)
from vehicle_etl.errors import EtlError
from vehicle_etl.platform_db import connect, schema_exists, sibling, table_counts
from vehicle_etl.quality import gate, keys
from vehicle_etl.quality.results import enforce
from vehicle_etl.release import channel as release_channel
from vehicle_etl.release import history, id_history, swap
from vehicle_etl.runs import new_run_id, record_failure, run_lock, start_run, step
from vehicle_etl.source.reference import (
    SourceRef,
    check_release,
    open_ref,
    source_file_name,
    source_ref,
    validate_source,
)
from vehicle_etl.spec import DERIVED_TABLES, LOADED_TABLES
from vehicle_etl.staging import derived, load

log = logging.getLogger(__name__)


def resolve_step(settings: Settings, run_id: str, trigger: str, source: str | None = None,
                 release: str | None = None, *, not_after: str | None = None) -> SourceRef:
    """The run's first step: record the run, find (restore) the source, decide and check the release.

    The run's row is written first, with the release as far as it is known (the requested one,
    else the one in the source's file name, else 'unknown'), so that a failure here (a missing
    file, a release the source cannot be) is in run history and its alert names the release.
    """
    requested = releases.validate(release)  # hostile arguments: rejected before any SQL or file access
    validate_source(source)
    if not_after is not None:
        releases.validate(not_after, optional=False)
    asked = source or (f"conn:{settings.source_conn_id}" if settings.source_conn_id else None) or \
        ("env" if settings.source_url else None) or \
        (str(settings.backups_dir) if settings.backups_dir else f"sqlite:///{SAMPLE_DB}")
    known = requested or releases.in_file_name(source_file_name(settings, asked)) or releases.UNKNOWN
    start_run(settings, run_id, SourceRef(asked, known), trigger)
    with step(settings, run_id, "restore") as conn:
        releases.not_in_future(requested)  # before a backup of it is looked for (or downloaded)
        ref = check_release(settings, source_ref(settings, source, requested, not_after=not_after),
                            not_after=not_after)
        with conn.transaction():
            history.update_run(conn, run_id, release=ref.release, source=ref.url)
    return ref


# -- steps -------------------------------------------------------------------------------------
def extract_load_step(settings: Settings, run_id: str, ref: SourceRef) -> dict[str, int]:
    with step(settings, run_id, "extract_load") as conn:
        source = open_ref(settings, ref)
        try:
            load.prepare_staging(conn, owner=run_id)
            report = load.extract_load(source, platform_conninfo(settings), settings.batch_rows, settings.workers)
        finally:
            source.engine.dispose()
        with conn.transaction():
            history.update_run(conn, run_id, counts=report.counts)
        return report.counts


def key_checks_step(settings: Settings, run_id: str) -> None:
    """Gate 1 on the loaded tables (after the documented repairs), before anything is derived."""
    with step(settings, run_id, "key_checks") as conn:
        derived.repair(conn)
        results = keys.key_checks(conn, tables=LOADED_TABLES)
        with conn.transaction():
            history.update_run(conn, run_id, checks=[r.as_dict() for r in results])
        enforce(results, "key checks")


def transform_step(settings: Settings, run_id: str) -> dict[str, int]:
    """Derive the dropdown and decoder tables, then check their keys like the loaded ones."""
    with step(settings, run_id, "transform") as conn:
        derived.derive(conn, workers=settings.workers)
        counts = table_counts(conn, STAGING_SCHEMA, list(DERIVED_TABLES))
        results = keys.key_checks(conn, tables=DERIVED_TABLES)
        previous = (history.get_run(conn, run_id) or {}).get("checks") or []
        with conn.transaction():
            history.update_run(conn, run_id, counts=counts, checks=previous + [r.as_dict() for r in results])
        enforce(results, "derived key checks")
        return counts


def build_keys_step(settings: Settings, run_id: str) -> None:
    with step(settings, run_id, "build_keys") as conn:
        load.build_keys(conn, workers=settings.workers)


def validate_step(
    settings: Settings, run_id: str, *, allow_drift: bool = False, allow_element_change: bool = False,
    requested_release: str | None = None,
) -> None:
    """The full quality gate; its results join the key checks in history, then the release diff.

    The gate judges the run's own release (run history): the golden VINs it is held to and the
    drift baseline depend on it. `requested_release` is the release the run named (Param or
    --release): naming an older release than live's is how a backfill is confirmed.
    """
    from vehicle_etl.release import diff  # what going live would change, stored with the run

    def release_diff(conn: psycopg.Connection) -> dict[str, Any]:
        with sibling(conn) as c:
            return diff.diff_report(c)

    with step(settings, run_id, "validate") as conn, ThreadPoolExecutor(1, thread_name_prefix="diff") as pool:
        report = pool.submit(release_diff, conn)  # a read beside the gate's reads; kept only if it passes
        run = history.get_run(conn, run_id) or {}
        results = gate.validate(conn, settings, allow_drift=allow_drift, release=run.get("release"),
                                   requested_release=requested_release, allow_element_change=allow_element_change)
        previous = run.get("checks") or []
        with conn.transaction():
            history.update_run(conn, run_id, checks=previous + [r.as_dict() for r in results])
        enforce(results, "validation")
        release_report = report.result()
        breaking = gate.breaking_check(release_report.get("breaking"))
        with conn.transaction():
            history.update_run(conn, run_id, diff=release_report,
                               checks=previous + [r.as_dict() for r in [*results, breaking]])


def swap_step(settings: Settings, run_id: str, ref: SourceRef) -> float:
    """Promote staging: catalog_info is written into staging first (it goes live with the version); the
    history row is written in the swap transaction."""
    with step(settings, run_id, "swap") as conn:
        if not schema_exists(conn, STAGING_SCHEMA):
            raise EtlError("there is no staging schema to promote: run the load first")

        with conn.transaction():  # part of the version that goes live (a retried step rewrites it)
            conn.execute(f"DELETE FROM {STAGING_SCHEMA}.catalog_info")
            conn.execute(
                f"INSERT INTO {STAGING_SCHEMA}.catalog_info (release, source, run_id) VALUES (%s, %s, %s)",
                (ref.release or releases.UNKNOWN, ref.url, run_id))

        def record(c: psycopg.Connection) -> None:
            history.update_run(c, run_id, status="success")
            release_channel.announce(c, ref.release or releases.UNKNOWN, run_id)  # `serve` learns it at commit

        return swap.promote(conn, settings.swap_lock_timeout_ms, in_transaction=record, run_id=run_id,
                            grace_s=settings.detach_grace_s)


def run_ref(settings: Settings, run_id: str) -> SourceRef:
    """The source reference of a run, as its first step recorded it in run history (the DAG's later
    tasks read it there: between tasks only the run id travels)."""
    with connect(settings) as conn:
        run = history.get_run(conn, run_id)
    if run is None or not run.get("source"):
        raise EtlError(f"run {run_id} is not in run history: its first task (restore) did not run")
    return SourceRef(run["source"], run["release"])


def marker_step(settings: Settings, run_id: str) -> Path:
    """The completion marker (JSON) of a promoted run, from its run-history row."""
    with connect(settings) as conn:
        run = history.get_run(conn, run_id)
    if run is None:
        raise EtlError(f"run {run_id} is not in run history")
    payload = {
        "run_id": run_id, "release": run["release"], "source": run["source"], "status": run["status"],
        "live_schema": LIVE_SCHEMA, "previous_schema": PREVIOUS_SCHEMA, "counts": run["counts"],
        "durations": run["durations"], "started_at": run["started_at"], "finished_at": run["finished_at"],
    }
    try:
        return history.write_marker(settings.markers, payload)
    except OSError as exc:
        raise EtlError(f"the catalog is live but the completion marker could not be written to "
                       f"{settings.markers}: {exc}. Fix the folder (VEHICLE_ETL_MARKER_DIR) and rerun "
                       "`vehicle-etl status`; the database is consistent.") from exc


def publish_step(settings: Settings, run_id: str) -> None:
    """After the swap and its marker: the id history, the app's cache invalidation (when configured),
    the success summary (when enabled)."""
    from vehicle_etl.notify import alerts, cache

    with connect(settings) as conn:
        run = history.get_run(conn, run_id) or {}
        id_history.record(conn, run.get("release"), run_id)  # after the swap: no lock held on live
    cache.invalidate_after_swap(release=run.get("release"), run_id=run_id)
    alerts.send_success_summary(run_id)  # only when ALERT_ON_SUCCESS=1


# -- the whole pipeline without a scheduler ----------------------------------------------------
def build_catalog(
    settings: Settings,
    *,
    source: str | None = None,
    release: str | None = None,
    trigger: str = "cli",
    allow_drift: bool = False,
    allow_element_change: bool = False,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Restore → extract/load → key checks → transform → keys → validate → swap → marker."""
    run_id = run_id or new_run_id()
    started = time.monotonic()
    releases.validate(release)  # hostile arguments are rejected before any SQL or file access
    validate_source(source)
    with run_lock(settings, run_id):
        ref = resolve_step(settings, run_id, trigger, source, release)
        extract_load_step(settings, run_id, ref)
        key_checks_step(settings, run_id)
        transform_step(settings, run_id)
        gate.preload_gx()  # GX's import (seconds of Python) beside the key build (one core in use)
        build_keys_step(settings, run_id)
        validate_step(settings, run_id, allow_drift=allow_drift, allow_element_change=allow_element_change,
                      requested_release=release)
        swap_step(settings, run_id, ref)
        marker = marker_step(settings, run_id)
        publish_step(settings, run_id)
    with connect(settings) as conn:
        run = history.get_run(conn, run_id) or {}
    return {
        "run_id": run_id, "release": run.get("release"), "source": run.get("source"),
        "status": run.get("status"), "counts": run.get("counts"), "durations": run.get("durations"),
        "seconds": round(time.monotonic() - started, 2), "marker": str(marker),
        "breaking": (run.get("diff") or {}).get("breaking"),
    }


def rollback(settings: Settings) -> dict[str, Any]:
    """Make the previous version live again; recorded in run history as a 'rolled_back' run."""
    run_id = f"rollback__{datetime.now(UTC):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"
    with run_lock(settings), connect(settings) as conn:
        history.ensure_schema(conn)
        prev = conn.execute(
            f"SELECT release, source FROM {PREVIOUS_SCHEMA}.catalog_info LIMIT 1"
        ).fetchone() if schema_exists(conn, PREVIOUS_SCHEMA) else None
        history.start_run(conn, run_id, prev[0] if prev else None, prev[1] if prev else "", "rollback")

        def record(c: psycopg.Connection) -> None:
            history.update_run(c, run_id, status="rolled_back")
            release_channel.announce(c, prev[0] if prev else None, run_id)  # `serve` learns it at commit

        try:
            seconds = swap.rollback(conn, settings.swap_lock_timeout_ms, in_transaction=record)
        except EtlError as exc:
            record_failure(conn, run_id, "rollback", exc)
            raise
        id_history.record(conn, prev[0] if prev else None, run_id)
    return {"run_id": run_id, "release": prev[0] if prev else None, "lock_seconds": round(seconds, 3)}


def is_noop(settings: Settings, ref: SourceRef, force: bool) -> bool:
    """True when this release is already live and was verified by a successful run (and not forced).

    A run whose release could not be determined ('unknown') is never a no-op: nothing says that
    what is live is what it would build."""
    if force or ref.release in (None, releases.UNKNOWN):
        return False
    with connect(settings) as conn:
        if conn.execute("SELECT to_regclass('vehicles.catalog_info')").fetchone()[0] is None:  # type: ignore[index]
            return False
        live = conn.execute(
            "SELECT 1 FROM vehicles.catalog_info c JOIN etl.run_history h "
            "ON h.run_id = c.run_id AND h.status = 'success' WHERE c.release = %s", (ref.release,)
        ).fetchone()
    return live is not None


def go_on(settings: Settings, run_id: str, ref: SourceRef, *, force: bool = False) -> bool:
    """False (and the run recorded as a no-op) when the release is already live and verified."""
    if is_noop(settings, ref, force):
        mark_noop(settings, run_id)
        return False
    return True


def mark_noop(settings: Settings, run_id: str) -> None:
    with connect(settings) as conn:
        history.finish_run(conn, run_id, "noop")
