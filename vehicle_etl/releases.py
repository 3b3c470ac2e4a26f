"""vPIC release names (YYYY_MM): the one parser and validator, and the rules deciding which release
a run builds, applied in the run's first task, before anything is extracted.

A release is accepted only when the source can be it:
- it is not in the future (no month after the current one, UTC);
- it agrees with a release in the source's file name (vPICList_lite_2026_02.db, vpic.lite.2025_07.db);
- the source has no change stamped (CreatedOn/UpdatedOn) later than the month after it: NHTSA
  publishes mid-month, and copies carry a few later edits (the 2026_02 snapshot and the shipped
  sample hold rows stamped 2026-03-12), so one month of lag is allowed, not more;
- from a backups folder: a backup of it is there (vehicle_etl.source.backups.find_backup).
Without a requested release: the file name's, else the known release of the shipped sample, else
the month of the newest stamp; when nothing tells, UNKNOWN, recorded as such (never "already live").
A backfill run (`not_after`) may not build a release published after its logical date's month.

Imported by the DAG at parse time: nothing heavy at module level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from vehicle_etl.errors import ReleaseError

if TYPE_CHECKING:
    from vehicle_etl.source.connect import Source

RELEASE_PATTERN = r"^\d{4}_(0[1-9]|1[0-2])$"  # also the DAG's `release` Param pattern
RELEASE_RE = re.compile(RELEASE_PATTERN)
UNKNOWN = "unknown"
ALLOWED_LAG_MONTHS = 1
# YYYY_MM as its own token of a file name (not inside a longer number).
_IN_NAME = re.compile(r"(?<![0-9])(\d{4})_(0[1-9]|1[0-2])(?![0-9])")
_STAMP = re.compile(r"^(\d{4})-(\d{2})")
CHANGE_COLUMNS = ("CreatedOn", "UpdatedOn")  # vPIC's change stamps (not e.g. Wmi.PublicAvailabilityDate)


def validate(release: Any, *, optional: bool = True) -> str | None:
    """`release` when it is YYYY_MM with a real month; None for no release (None or "") when
    `optional`; ReleaseError otherwise. Run before any SQL or file access: the value may come from
    a trigger form or the CLI."""
    if optional and release in (None, ""):
        return None
    if not isinstance(release, str) or not RELEASE_RE.fullmatch(release):
        raise ReleaseError(f"invalid release {str(release)[:40]!r}: use YYYY_MM with a month 01-12, e.g. 2026_02")
    return release


def is_release(value: Any) -> bool:
    """True for a YYYY_MM release name (False for None, "unknown" and anything else): a release
    that orders as text among the others."""
    return isinstance(value, str) and RELEASE_RE.fullmatch(value) is not None


def in_file_name(path: str | None) -> str | None:
    """The release named in a file name (its last path part only), e.g. vPICList_lite_2026_02.bak."""
    if not path:
        return None
    found = _IN_NAME.findall(PurePath(path).name)
    return f"{found[-1][0]}_{found[-1][1]}" if found else None


def month_of(value: Any) -> str | None:
    """YYYY_MM of a timestamp (datetime/date, or text starting YYYY-MM as vPIC's copies store it)."""
    if isinstance(value, datetime | date):
        return f"{value.year:04d}_{value.month:02d}"
    found = _STAMP.match(str(value or "").strip())
    if not found or not 1 <= int(found[2]) <= 12:
        return None
    return f"{found[1]}_{found[2]}"


def shift(release: str, months: int) -> str:
    year, month = divmod(int(release[:4]) * 12 + int(release[5:]) - 1 + months, 12)
    return f"{year:04d}_{month + 1:02d}"


def current(now: datetime | None = None) -> str:
    return month_of(now or datetime.now(UTC))  # type: ignore[return-value]


@dataclass(frozen=True)
class Stamp:
    """The newest change in a source: its month, where it is, and the value as stored."""

    month: str
    where: str  # Table.Column
    value: str


def newest_stamp(source: Source) -> Stamp | None:
    """The newest CreatedOn/UpdatedOn over the vPIC tables the source has (one max() per column)."""
    import sqlalchemy as sa

    from vehicle_etl.spec import TABLES

    present = source.existing_tables()
    newest: Stamp | None = None
    with source.engine.connect() as conn:
        for spec in TABLES:
            stamped = [c.source for c in spec.columns if c.source in CHANGE_COLUMNS]
            if not stamped or spec.source.lower() not in present:
                continue
            table = source.table(spec.source, stamped)
            row = conn.execute(sa.select(*(sa.func.max(table.c[c]) for c in stamped))).one()
            for column, value in zip(stamped, row, strict=True):
                month = month_of(value)
                if month and (newest is None or month > newest.month):
                    newest = Stamp(month, f"{spec.source}.{column}", str(value))
    return newest


def not_in_future(release: str | None, now: datetime | None = None) -> None:
    """The first rule, checked before any source is looked for (a backup of it cannot exist either)."""
    if release is not None and release != UNKNOWN and release > current(now):
        raise ReleaseError(f"release {release} is in the future (this is {current(now)}): no source can provide "
                           "it; leave release empty for the newest available, or name a published one")


def resolve(requested: str | None, *, file_name: str | None = None, stamp: Stamp | None = None,
            known: str | None = None, not_after: str | None = None, now: datetime | None = None) -> str:
    """The release a run builds from a source (see the module's rules), or ReleaseError naming the rule."""
    named = in_file_name(file_name)
    if requested is not None and named is not None and requested != named:
        raise ReleaseError(
            f"release {requested} disagrees with the source file name {PurePath(file_name or '').name} "
            f"(release {named}): pass release {named}, or point the source at the file of release {requested}")
    release = requested or named or known or (stamp.month if stamp else None)
    if release is None:
        return UNKNOWN
    label = f"release {release}" + ("" if requested else f" (from {_origin(named, known, stamp)})")
    if release > current(now):
        raise ReleaseError(f"{label} is in the future (this is {current(now)}): no source can provide it; "
                           "leave release empty for the newest available, or name a published one")
    if stamp is not None and stamp.month > shift(release, ALLOWED_LAG_MONTHS):
        raise ReleaseError(
            f"the source cannot be release {release}: it holds changes stamped {stamp.value} ({stamp.where}), "
            f"so it is release {stamp.month} or later (at most {ALLOWED_LAG_MONTHS} month of later edits is "
            "accepted); leave release empty to take it from the source, or point the source at that release")
    if not_after is not None and release > not_after:
        raise ReleaseError(
            f"this backfill run is for {not_after}, but the source holds release {release}, published later; "
            "name the release in the run conf ({\"release\": \"YYYY_MM\"}) or put the backup of a release "
            f"of {not_after} or earlier in VPIC_BACKUPS_DIR")
    return release


def _origin(named: str | None, known: str | None, stamp: Stamp | None) -> str:
    if named:
        return "the file name"
    if known:
        return "the shipped sample"
    return f"the newest change, {stamp.where} {stamp.value}" if stamp else "nowhere"
