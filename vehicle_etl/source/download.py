"""Optional: fetch NHTSA's monthly vPIC backup into the backups folder (off unless VPIC_DOWNLOAD_BASE_URL is set).

`<base>/vPICList_lite_YYYY_MM.bak.zip` (SQL Server) or `.plain.zip` (PostgreSQL dump) is downloaded to
a `.part` file with HTTP Range resume and retries with exponential backoff, verified as a zip
(every member's CRC), then put in place atomically: the `.bak` is unzipped (SQL Server cannot read a
zip), the `.plain.zip` is kept as is (the restore streams from it). Only the newest
VPIC_KEEP_RELEASES releases (default 3) are kept. A corrupt archive is deleted, never unpacked.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
import zipfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Literal

import requests

from vehicle_etl.config import Settings
from vehicle_etl.errors import RestoreError
from vehicle_etl.releases import is_release, validate
from vehicle_etl.source.backups import BACKUP_NAME_RE

log = logging.getLogger(__name__)

Format = Literal["bak", "plain"]
SUFFIX: dict[Format, str] = {"bak": ".bak.zip", "plain": ".plain.zip"}
CHUNK = 1 << 16  # small enough that a cut connection loses little of what was received
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class DownloadError(RestoreError):
    """A backup could not be downloaded or its archive is corrupt."""


class NotPublished(DownloadError):
    """The server has no file for that release (HTTP 404)."""


def base_url() -> str | None:
    return Settings().download_base_url


def keep_releases() -> int:
    raw = Settings().keep_releases
    try:
        value = int(raw)
    except ValueError as exc:
        raise DownloadError(f"VPIC_KEEP_RELEASES={raw!r} is not a number: use e.g. 3") from exc
    if value < 1:
        raise DownloadError("VPIC_KEEP_RELEASES must be at least 1 (the release being restored)")
    return value


def _fetch(url: str, part: Path, *, retries: int, backoff: float, timeout: float) -> None:
    """Download `url` into `part`, resuming with Range after a cut connection; raises after `retries`."""
    attempt = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with requests.get(url, headers=headers, stream=True, timeout=timeout) as resp:
                if resp.status_code == 404:
                    raise NotPublished(f"{url} is not published (HTTP 404)")
                if resp.status_code == 416 and have:
                    part.unlink()  # our partial file is longer than the remote one: start over
                    raise requests.ConnectionError("range not satisfiable; restarting from zero")
                if resp.status_code in _RETRY_STATUS:
                    raise requests.ConnectionError(f"HTTP {resp.status_code}")
                if resp.status_code not in (200, 206):
                    raise DownloadError(f"{url} answered HTTP {resp.status_code}: check VPIC_DOWNLOAD_BASE_URL")
                if resp.status_code == 206:
                    m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range", ""))
                    if not m or int(m.group(1)) != have:
                        raise DownloadError(f"{url} answered a Range request with an unusable Content-Range")
                    total = int(m.group(2)) if m.group(2) != "*" else None
                    mode = "ab"
                else:  # 200: the server ignored Range (or this is the first try): whole file again
                    total = int(resp.headers["Content-Length"]) if "Content-Length" in resp.headers else None
                    have, mode = 0, "wb"
                if have:
                    log.info("resuming %s at %.1f MB", url, have / 1e6)
                started = last = time.monotonic()
                done = have
                with part.open(mode) as fh:
                    for chunk in resp.iter_content(CHUNK):
                        fh.write(chunk)
                        done += len(chunk)
                        now = time.monotonic()
                        if now - last >= 10:
                            rate = (done - have) / (now - started) / 1e6
                            log.info("  %s: %.1f MB of %s (%.1f MB/s)", part.name, done / 1e6,
                                     f"{total / 1e6:.1f}" if total else "?", rate)
                            last = now
                if total is not None and done != total:
                    raise requests.ConnectionError(f"got {done} of {total} bytes")
                return
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"downloading {url} failed after {retries} retries ({exc}); the partial file "
                    f"{part} is kept and the next run resumes it. Check the network and VPIC_DOWNLOAD_BASE_URL."
                ) from exc
            delay = backoff * 2 ** (attempt - 1)
            log.warning("download of %s interrupted (%s); retry %d/%d in %.1fs", url, exc, attempt, retries, delay)
            time.sleep(delay)


def verify_zip(path: Path) -> list[zipfile.ZipInfo]:
    """Every member's CRC checked; DownloadError on a damaged or non-zip file."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            members = zf.infolist()
    except (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile) as exc:
        raise DownloadError(f"{path.name} is not a valid zip ({exc}); it was deleted, download it again") from exc
    if bad is not None:
        raise DownloadError(f"{path.name} is corrupt (CRC error in {bad}); it was deleted, download it again")
    return members


def _install(part: Path, release: str, fmt: Format, backups_dir: Path) -> Path:
    """Verified archive → its place in the backups folder (atomic rename; nothing half-written)."""
    try:
        members = verify_zip(part)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    if fmt == "plain":
        if not any(m.filename.lower().endswith(".sql") for m in members):
            part.unlink(missing_ok=True)
            raise DownloadError(f"{part.name} holds no .sql dump; not installed")
        target = backups_dir / f"vPICList_lite_{release}.plain.zip"
        part.replace(target)
        return target
    baks = [m for m in members if m.filename.lower().endswith(".bak") and not m.is_dir()]
    if not baks:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{part.name} holds no .bak file; not installed")
    member = max(baks, key=lambda m: m.file_size)
    target = backups_dir / f"vPICList_lite_{release}.bak"  # our name, never the member's path (zip slip)
    tmp = target.with_name(target.name + ".unzipping")
    try:
        with zipfile.ZipFile(part) as zf, zf.open(member) as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
        with tmp.open("rb") as fh:
            if fh.read(4) != b"TAPE":
                raise DownloadError(f"{member.filename} in {part.name} is not a SQL Server backup; not installed")
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    part.unlink()
    return target


def existing(backups_dir: Path, release: str) -> Path | None:
    for name in (f"vPICList_lite_{release}.bak", f"vPICList_lite_{release}.plain.zip"):
        if (backups_dir / name).is_file():
            return backups_dir / name
    return None


def download_release(
    release: str,
    backups_dir: Path,
    *,
    url: str | None = None,
    formats: Sequence[Format] = ("bak", "plain"),
    keep: int | None = None,
    retries: int = 5,
    backoff: float = 2.0,
    timeout: float = 60.0,
) -> Path | None:
    """Make `release` present in `backups_dir`; None when downloading is off (no base URL).

    Formats are tried in order; a 404 moves on to the next. Returns the installed file.
    """
    validate(release, optional=False)
    url = url or base_url()
    if not url:
        log.info("backup download is off (VPIC_DOWNLOAD_BASE_URL unset)")
        return None
    backups_dir.mkdir(parents=True, exist_ok=True)
    present = existing(backups_dir, release)
    if present is not None:
        log.info("release %s already in %s: %s", release, backups_dir, present.name)
        return present
    partial_dir = backups_dir / ".partial"
    partial_dir.mkdir(exist_ok=True)
    missing: list[str] = []
    for fmt in formats:
        name = f"vPICList_lite_{release}{SUFFIX[fmt]}"
        file_url = url.rstrip("/") + "/" + name
        part = partial_dir / (name + ".part")
        log.info("downloading %s", file_url)
        try:
            _fetch(file_url, part, retries=retries, backoff=backoff, timeout=timeout)
        except NotPublished:
            missing.append(name)
            continue
        installed = _install(part, release, fmt, backups_dir)
        log.info("installed %s (%.1f MB)", installed.name, installed.stat().st_size / 1e6)
        prune(backups_dir, keep if keep is not None else keep_releases())
        return installed
    raise NotPublished(f"release {release} is not published at {url} (tried {', '.join(missing)})")


def _previous_months(today: date, months: int) -> list[str]:
    out, y, m = [], today.year, today.month
    for _ in range(months):
        out.append(f"{y:04d}_{m:02d}")
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out


def download_latest(
    backups_dir: Path, *, url: str | None = None, today: date | None = None, months_back: int = 3, **kwargs
) -> Path | None:
    """The newest published release (this month first, then earlier ones): NHTSA publishes mid-month."""
    url = url or base_url()
    if not url:
        log.info("backup download is off (VPIC_DOWNLOAD_BASE_URL unset)")
        return None
    for release in _previous_months(today or date.today(), months_back):
        try:
            return download_release(release, backups_dir, url=url, **kwargs)
        except NotPublished:
            log.info("release %s not published yet", release)
    raise NotPublished(f"no release of the last {months_back} months is published at {url}")


def prune(backups_dir: Path, keep: int) -> list[Path]:
    """Delete backup files of all but the newest `keep` releases; other files are left alone."""
    if keep < 1:
        raise DownloadError("keep must be at least 1")
    by_release: dict[str, list[Path]] = {}
    for entry in backups_dir.iterdir():
        m = BACKUP_NAME_RE.match(entry.name)
        if m and entry.is_file() and is_release(m["release"]):
            by_release.setdefault(m["release"], []).append(entry)
    removed: list[Path] = []
    for release in sorted(by_release, reverse=True)[keep:]:
        for path in by_release[release]:
            path.unlink()
            removed.append(path)
            log.info("removed old backup %s (keeping %d releases)", path.name, keep)
    return removed
