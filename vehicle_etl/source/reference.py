"""Which source a run reads and which release it builds: the source argument checked, the backup
found and restored, the reference (no secrets: safe in XCom, logs and run history) and its release."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from vehicle_etl import releases
from vehicle_etl.config import (
    SAMPLE_DB,
    Settings,
    default_source_url,
)
from vehicle_etl.errors import SourceError
from vehicle_etl.source.connect import Source, open_source, url_from_airflow_connection
from vehicle_etl.spec import TABLES

log = logging.getLogger(__name__)

SAMPLE_RELEASE = "2026_02"  # the shipped sample is cut from vPIC's February 2026 release (data/sample/README.md)


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


def source_file_name(settings: Settings, url: str) -> str | None:
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
    name = source_file_name(settings, ref.url)
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
    release = releases.resolve(ref.release, file_name=source_file_name(settings, ref.url), stamp=stamp,
                               known=SAMPLE_RELEASE if _is_sample(settings, ref) else None, not_after=not_after)
    if release == releases.UNKNOWN:
        log.warning("the release of %s cannot be determined (no release in its name, no change stamps): "
                    "recorded as %r; pass release to name it", ref.url, release)
    else:
        log.info("release %s (newest change in the source: %s)", release,
                 f"{stamp.value} in {stamp.where}" if stamp else "none stamped")
    return SourceRef(ref.url, release, ref.schema)


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
