"""The backups folder: which `vPICList_lite_YYYY_MM.<ext>` a run restores, and cheap checks that
a file is what its name says (header, zip member) before anything is restored."""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vehicle_etl import releases
from vehicle_etl.errors import RestoreError
from vehicle_etl.source.connect import SQLITE_MAGIC

log = logging.getLogger(__name__)

Kind = Literal["bak", "pgdump", "sqlite"]

# The release part is loose here on purpose: a file with a bad month is reported, not ignored silently.
BACKUP_NAME_RE = re.compile(
    r"^vPICList_lite_(?P<release>\d{4}_\d{2})\.(?P<ext>bak\.zip|bak|plain\.zip|sql|db|sqlite)$"
)
_KIND_OF_EXT: dict[str, Kind | None] = {
    "bak": "bak",
    "plain.zip": "pgdump",
    "sql": "pgdump",
    "db": "sqlite",
    "sqlite": "sqlite",
    "bak.zip": None,  # recognised so the error can say "unzip it", never restorable as is
}
# When one release exists in several formats: SQL Server's .bak is NHTSA's primary artefact.
_PREFERENCE = ("bak", "plain.zip", "sql", "db", "sqlite", "bak.zip")
MTF_MAGIC = b"TAPE"  # Microsoft Tape Format header that starts every SQL Server .bak


@dataclass(frozen=True)
class Backup:
    path: Path
    release: str  # YYYY_MM
    kind: Kind

def find_backup(backups_dir: Path, release: str | None = None, kinds: Iterable[Kind] | None = None, *,
                not_after: str | None = None) -> Backup:
    """The newest `vPICList_lite_YYYY_MM.*` in `backups_dir` (or exactly `release`), format-checked.

    `kinds` limits the formats considered (e.g. only "bak" on a stack without PostgreSQL source);
    `not_after` (YYYY_MM, a backfill run's month) the releases considered when none is named.
    """
    if release is not None:
        releases.validate(release, optional=False)  # before any file is touched: it may come from a trigger form
    if not_after is not None:
        releases.validate(not_after, optional=False)
    backups_dir = Path(backups_dir)
    if not backups_dir.is_dir():
        raise RestoreError(
            f"backups folder {backups_dir} does not exist: create it and put vPICList_lite_YYYY_MM.bak "
            "(or .plain.zip / .db) in it, or set VPIC_BACKUPS_DIR."
        )
    allowed = set(kinds) if kinds is not None else {"bak", "pgdump", "sqlite"}
    candidates: dict[str, list[tuple[str, Path]]] = {}
    bad_names: list[str] = []
    for entry in sorted(backups_dir.iterdir()):
        m = BACKUP_NAME_RE.match(entry.name)
        if not m or not entry.is_file():
            if entry.name.startswith("vPICList_lite_"):
                bad_names.append(entry.name)
            continue
        if not releases.RELEASE_RE.fullmatch(m["release"]):
            bad_names.append(entry.name)
            continue
        kind = _KIND_OF_EXT[m["ext"]]
        if kind is not None and kind not in allowed:
            continue
        candidates.setdefault(m["release"], []).append((m["ext"], entry))
    if bad_names:
        log.warning("ignoring backup files with an unusable name: %s", ", ".join(bad_names))

    if release is not None:
        if release not in candidates:
            have = ", ".join(sorted(candidates)) or "none"
            raise RestoreError(
                f"no backup for release {release} in {backups_dir} (releases present: {have}). "
                f"Put vPICList_lite_{release}.bak (or .plain.zip / .db) there, or enable the download."
            )
        chosen_release = release
    elif not_after is not None:
        older = [r for r in candidates if r <= not_after]
        if not older:
            have = ", ".join(sorted(candidates)) or "none"
            raise RestoreError(
                f"no backup of a release published in {not_after} or earlier in {backups_dir} (releases present: "
                f"{have}). Put that backup there, or name the release in the run conf."
            )
        chosen_release = max(older)
    else:
        if not candidates:
            extra = f"; unusable names: {', '.join(bad_names)}" if bad_names else ""
            raise RestoreError(
                f"no vPIC backup in {backups_dir}{extra}. Expected vPICList_lite_YYYY_MM.bak, "
                ".plain.zip, .sql, .db or .sqlite (download them from NHTSA's vPIC page, or set "
                "VPIC_DOWNLOAD_BASE_URL to download automatically)."
            )
        chosen_release = max(candidates)  # YYYY_MM sorts chronologically as text

    files = sorted(candidates[chosen_release], key=lambda c: _PREFERENCE.index(c[0]))
    ext, path = files[0]
    kind = _KIND_OF_EXT[ext]
    if kind is None:
        raise RestoreError(
            f"{path.name} is still zipped: unzip it into {backups_dir} (SQL Server restores the .bak "
            "inside), or let the download step do it."
        )
    backup = Backup(path=path, release=chosen_release, kind=kind)
    check_format(backup)
    return backup


def check_format(backup: Backup) -> None:
    """Cheap checks that the file is what its name says; RestoreError naming the problem otherwise."""
    path = backup.path
    try:
        size = path.stat().st_size
        if size == 0:
            raise RestoreError(f"backup {path} is empty (an interrupted copy or download?): fetch it again.")
        if backup.kind == "bak":
            with path.open("rb") as fh:
                head = fh.read(4)
            if head != MTF_MAGIC:
                hint = " (it is a zip: unzip it first)" if head[:2] == b"PK" else ""
                raise RestoreError(
                    f"{path} is not a SQL Server backup: its header is {head!r}, "
                    f"expected {MTF_MAGIC!r}{hint}."
                )
        elif backup.kind == "sqlite":
            with path.open("rb") as fh:
                head = fh.read(16)
            if head != SQLITE_MAGIC:
                raise RestoreError(f"{path} is not a SQLite database (wrong header).")
        elif path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                member = dump_member(zf, path)
                with zf.open(member) as fh:
                    head = fh.read(65536)
            _check_dump_head(head, f"{path}!{member.filename}")
        else:
            with path.open("rb") as fh:
                _check_dump_head(fh.read(65536), str(path))
    except zipfile.BadZipFile as exc:
        raise RestoreError(f"{path} is not a readable zip ({exc}): download it again.") from exc
    except OSError as exc:
        raise RestoreError(f"cannot read backup {path}: {exc}") from exc


def dump_member(zf: zipfile.ZipFile, path: Path) -> zipfile.ZipInfo:
    sql_members = [i for i in zf.infolist() if i.filename.lower().endswith(".sql") and not i.is_dir()]
    if not sql_members:
        names = ", ".join(i.filename for i in zf.infolist()[:5]) or "nothing"
        raise RestoreError(f"{path} holds no .sql file (it contains {names}): is it NHTSA's .plain.zip?")
    return max(sql_members, key=lambda i: i.file_size)


def _check_dump_head(head: bytes, where: str) -> None:
    if b"PostgreSQL database dump" in head or re.search(rb"^(CREATE|SET|COPY)\b", head, re.M):
        return
    raise RestoreError(
        f"{where} does not look like a plain PostgreSQL dump (no SET/CREATE/COPY at its start)."
    )
