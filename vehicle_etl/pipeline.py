"""The pipeline as plain functions: the DAG's tasks and the CLI's build-catalog call the same steps.

State between steps lives in the platform database (staging schema, etl.run_history keyed by
run id), so Airflow tasks pass only the run id and a source reference, never data or secrets.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from vehicle_etl import releases
from vehicle_etl.config import (
    LIVE_SCHEMA,
    PREVIOUS_SCHEMA,
    SAMPLE_DB,
    STAGING_SCHEMA,
    Settings,
    default_source_url,
    platform_conninfo,
)
from vehicle_etl.errors import ConcurrentRunError, EtlError, SourceError
from vehicle_etl.platform_db import connect, schema_exists, sibling, table_counts
from vehicle_etl.quality import gate, keys
from vehicle_etl.quality.results import enforce
from vehicle_etl.release import history, id_history, swap
from vehicle_etl.serving.vpic_api import release_channel
from vehicle_etl.source.connect import Source, open_source, url_from_airflow_connection
from vehicle_etl.spec import DERIVED_TABLES, LOADED_TABLES, TABLES
from vehicle_etl.staging import load

log = logging.getLogger(__name__)

SAMPLE_RELEASE = "2026_02"  # the shipped sample is cut from vPIC's February 2026 release (data/sample/README.md)
LOCK_KEY = int(hashlib.sha1(b"vehicle_etl.pipeline").hexdigest()[:15], 16)  # stable bigint


def new_run_id() -> str:
    return f"cli__{datetime.now(UTC):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"


# -- sources -----------------------------------------------------------------------------------
SOURCE_MAX_LEN = 500  # as the DAG's `source` Param
CONN_ID_RE = re.compile(r"^conn:[A-Za-z0-9_.-]{1,200}$")
SOURCE_BACKENDS = ("sqlite", "postgresql", "mssql")


def validate_source(source: str | None) -> str | None:
    """Reject a hostile or malformed source argument before any SQL or file access (SourceError)."""
    if source in (None, ""):
        return None
    if not isinstance(source, str) or len(source) > SOURCE_MAX_LEN or not source.isprintable():
        raise SourceError(f"invalid source {str(source)[:40]!r}...: at most {SOURCE_MAX_LEN} printable characters")
    if source.startswith("conn:"):
        if not CONN_ID_RE.fullmatch(source):
            raise SourceError(f"invalid Airflow connection reference {source[:40]!r}: conn:<letters, digits, _.->")
        return source
    try:
        url = make_url(source)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError and friends: not a URL at all
        raise SourceError(f"invalid source {source[:40]!r}: not a database URL ({type(exc).__name__})") from None
    if url.get_backend_name() not in SOURCE_BACKENDS:
        raise SourceError(f"unsupported source type {url.get_backend_name()[:20]!r}: use sqlite:///path, "
                          "postgresql+psycopg://user@host/db, mssql+pymssql://... or conn:<id>")
    if url.password:
        raise SourceError("a source URL given as a parameter must not carry a password: "
                          "put the credentials in an Airflow connection and pass conn:<id>")
    if ".." in Path(url.database or "").parts:
        raise SourceError(f"invalid source {source[:40]!r}: '..' is not allowed in the path")
    return source


@dataclass(frozen=True)
class SourceRef:
    """Where to read vPIC from, without secrets (safe in XCom, logs and run history).

    `url` never holds a password: sources that need one are named by Airflow connection id
    (`conn:<id>`) or by the environment (VPIC_SOURCE_URL), and resolved in the task that reads.
    """

    url: str  # sqlite:///path | postgresql+psycopg://user@host/db | conn:<airflow conn id> | env
    release: str | None
    schema: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "release": self.release, "schema": self.schema}


def source_ref(settings: Settings, source: str | None, release: str | None, *,
               not_after: str | None = None) -> SourceRef:
    """Decide the source of this run (restoring a backup when a backups folder is configured).

    The release is the requested one, or the backup's; check_release then decides whether the
    source can be it. `not_after` (a backfill run's month) limits the backups considered.
    """
    release = releases.validate(release)
    if validate_source(source):
        return SourceRef(source, release)
    if settings.backups_dir is not None:
        from vehicle_etl.source import backups, download, restore

        # Optional (VPIC_DOWNLOAD_BASE_URL): fetch the named or newest release into the folder first
        # (not for a backfill run without a release: it takes what the folder holds for its month).
        if release:
            download.download_release(release, settings.backups_dir)
        elif not_after is None:
            download.download_latest(settings.backups_dir)
        backup = backups.find_backup(settings.backups_dir, release, not_after=not_after)
        restored = restore.restore(backup, settings)
        return SourceRef(_strip_password(restored), backup.release)
    if settings.source_conn_id:
        return SourceRef(f"conn:{settings.source_conn_id}", release)
    if settings.source_url:
        return SourceRef("env", release)
    return SourceRef(f"sqlite:///{SAMPLE_DB}", release)


def _strip_password(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True).replace(":***@", "@")


def _file_name(settings: Settings, url: str) -> str | None:
    """The file a source reference reads, for the release in its name (SQLite sources only)."""
    if url == "env":
        url = settings.source_url or ""
    if url.startswith("conn:") or not url:
        return None
    try:
        parsed = make_url(url)
    except Exception:
        return None
    return parsed.database if parsed.get_backend_name() == "sqlite" else None


def _is_sample(settings: Settings, ref: SourceRef) -> bool:
    name = _file_name(settings, ref.url)
    return name is not None and Path(name).resolve() == SAMPLE_DB.resolve()


def check_release(settings: Settings, ref: SourceRef, *, not_after: str | None = None) -> SourceRef:
    """Open the source and decide the run's release by the rules of vehicle_etl.releases.

    Fails here, in the run's first step, when the source is missing or unreadable (SourceError
    naming it), lacks a vPIC table, or cannot be the release asked for (ReleaseError).
    """
    source = open_ref(settings, ref)
    try:
        source.check(TABLES)
        stamp = releases.newest_stamp(source)
    finally:
        source.engine.dispose()
    release = releases.resolve(ref.release, file_name=_file_name(settings, ref.url), stamp=stamp,
                               known=SAMPLE_RELEASE if _is_sample(settings, ref) else None, not_after=not_after)
    if release == releases.UNKNOWN:
        log.warning("the release of %s cannot be determined (no release in its name, no change stamps): "
                    "recorded as %r; pass release to name it", ref.url, release)
    else:
        log.info("release %s (newest change in the source: %s)", release,
                 f"{stamp.value} in {stamp.where}" if stamp else "none stamped")
    return SourceRef(ref.url, release, ref.schema)


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
    known = requested or releases.in_file_name(_file_name(settings, asked)) or releases.UNKNOWN
    start_run(settings, run_id, SourceRef(asked, known), trigger)
    with step(settings, run_id, "restore") as conn:
        releases.not_in_future(requested)  # before a backup of it is looked for (or downloaded)
        ref = check_release(settings, source_ref(settings, source, requested, not_after=not_after),
                            not_after=not_after)
        with conn.transaction():
            history.update_run(conn, run_id, release=ref.release, source=ref.url)
    return ref


def open_ref(settings: Settings, ref: SourceRef) -> Source:
    """Open the source a reference names, putting back the password kept out of the reference."""
    if ref.url.startswith("conn:"):
        return open_source(url_from_airflow_connection(ref.url[5:]), ref.schema)
    if ref.url == "env":
        return open_source(default_source_url(settings), ref.schema)
    url = make_url(ref.url)
    if url.get_backend_name() != "sqlite" and url.password is None:
        from vehicle_etl.source import restore

        url = restore.with_password(url, settings)  # a database restore() made
        if url.password is None and settings.source_url:  # or the server named in the environment
            env_url = make_url(settings.source_url)
            if (env_url.host, env_url.username) == (url.host, url.username):
                url = url.set(password=env_url.password)
    return open_source(url, ref.schema)


# -- run bookkeeping ---------------------------------------------------------------------------
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
                        _record_failure(fresh, run_id, name, exc)
                except Exception:
                    log.exception("could not record the failure of run %s in run history", run_id)
            else:
                conn.rollback()
                _record_failure(conn, run_id, name, exc)
            raise
        else:
            with conn.transaction():
                history.update_run(conn, run_id, durations={name: round(time.monotonic() - started, 3)})
    log.info("step %s finished in %.2fs", name, time.monotonic() - started)


def _record_failure(conn: psycopg.Connection, run_id: str, name: str, exc: BaseException) -> None:
    message = f"{name}: {exc}" if isinstance(exc, EtlError) else f"{name}: {type(exc).__name__}: {exc}"
    try:
        with conn.transaction():
            history.update_run(conn, run_id, status="failed", error=message[:4000])
    except Exception:  # the database itself may be what failed; the task log still has the error
        log.exception("could not record the failure of run %s in run history", run_id)


def start_run(settings: Settings, run_id: str, ref: SourceRef, trigger: str) -> None:
    with connect(settings) as conn:
        history.ensure_schema(conn)
        _ensure_reader_role(conn)
        id_history.ensure(conn)
        history.start_run(conn, run_id, ref.release, ref.url, trigger)


def _ensure_reader_role(conn: psycopg.Connection) -> None:
    from vehicle_etl.serving import decode

    decode.ensure_reader_role(conn)


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


def key_gate_step(settings: Settings, run_id: str) -> None:
    """Gate 1 on the loaded tables (after the documented repairs), before anything is derived."""
    with step(settings, run_id, "key_checks") as conn:
        load.repair(conn)
        results = keys.key_checks(conn, tables=LOADED_TABLES)
        with conn.transaction():
            history.update_run(conn, run_id, checks=[r.as_dict() for r in results])
        enforce(results, "key checks")


def transform_step(settings: Settings, run_id: str) -> dict[str, int]:
    """Derive the dropdown and decoder tables, then check their keys like the loaded ones."""
    with step(settings, run_id, "transform") as conn:
        load.derive(conn, workers=settings.workers)
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


def marker_step(settings: Settings, run_id: str) -> Path:
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


def publish_step(settings: Settings, run_id: str) -> Path:
    """After a swap: the completion marker, then the app's cache invalidation (when configured)."""
    from vehicle_etl.notify import alerts, cache

    marker = marker_step(settings, run_id)
    with connect(settings) as conn:
        run = history.get_run(conn, run_id) or {}
        id_history.record(conn, run.get("release"), run_id)  # after the swap: no lock held on live
    cache.invalidate_after_swap(release=run.get("release"), run_id=run_id)
    alerts.send_success_summary(run_id)  # only when ALERT_ON_SUCCESS=1
    return marker


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
        key_gate_step(settings, run_id)
        transform_step(settings, run_id)
        gate.preload_gx()  # GX's import (seconds of Python) beside the key build (one core in use)
        build_keys_step(settings, run_id)
        validate_step(settings, run_id, allow_drift=allow_drift, allow_element_change=allow_element_change,
                      requested_release=release)
        swap_step(settings, run_id, ref)
        marker = publish_step(settings, run_id)
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
            _record_failure(conn, run_id, "rollback", exc)
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


def mark_noop(settings: Settings, run_id: str) -> None:
    with connect(settings) as conn:
        history.finish_run(conn, run_id, "noop")
