"""Release names and the rules deciding a run's release (vehicle_etl.releases), without a database: the
rest of the release tests (tests/integration/test_releases.py) run the first step for real."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vehicle_etl import releases
from vehicle_etl.config import SAMPLE_DB
from vehicle_etl.errors import ReleaseError, RestoreError
from vehicle_etl.source import backups

NOW = datetime(2026, 12, 2, tzinfo=UTC)
SAMPLE_STAMP = "2026-03-12T04:06:32.436Z"  # the sample's newest change (corgi's own rows, see data/sample)


# -- the rules, as plain functions -------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("", None), ("2026_02", "2026_02"), ("1999_12", "1999_12")])
def test_validate_accepts_real_months(value: str | None, expected: str | None) -> None:
    assert releases.validate(value) == expected


@pytest.mark.parametrize("bad", ["2026_13", "2026_00", "2026-02", "26_02", " 2026_02", "2026_02\n", 202602, "x" * 999])
def test_validate_rejects_everything_else(bad: object) -> None:
    with pytest.raises(ReleaseError, match="invalid release"):
        releases.validate(bad)


def test_validate_not_optional_rejects_empty() -> None:
    with pytest.raises(ReleaseError, match="invalid release"):
        releases.validate("", optional=False)


@pytest.mark.parametrize(("name", "release"), [
    ("/backups/vPICList_lite_2026_02.bak", "2026_02"), ("vpic.lite.2025_07.db", "2025_07"),
    ("/data/2024_01/vpic.db", None), ("vpic_sample.db", None), ("dump_20260215.db", None),
    ("vPICList_lite_2026_13.db", None), (None, None)])
def test_release_in_file_name(name: str | None, release: str | None) -> None:
    assert releases.in_file_name(name) == release


def test_month_of_reads_both_stamp_formats_and_datetimes() -> None:
    assert releases.month_of("2025-10-15 15:50:17.207000") == "2025_10"
    assert releases.month_of(SAMPLE_STAMP) == "2026_03"
    assert releases.month_of(datetime(2026, 2, 16, 9, 53)) == "2026_02"
    assert releases.month_of("16/02/2026") is None and releases.month_of(None) is None
    assert releases.shift("2025_12", 1) == "2026_01" and releases.shift("2026_01", -1) == "2025_12"


def stamp(value: str) -> releases.Stamp:
    return releases.Stamp(releases.month_of(value) or "", "Pattern.UpdatedOn", value)


def test_resolve_rules() -> None:
    s = stamp(SAMPLE_STAMP)
    assert releases.resolve("2026_02", stamp=s, now=NOW) == "2026_02"  # one month of later edits
    assert releases.resolve(None, stamp=s, now=NOW) == "2026_03"  # inferred from the newest change
    assert releases.resolve(None, stamp=s, known="2026_02", now=NOW) == "2026_02"
    assert releases.resolve(None, file_name="/b/vPICList_lite_2026_02.db", stamp=s, now=NOW) == "2026_02"
    assert releases.resolve(None, now=NOW) == releases.UNKNOWN
    with pytest.raises(ReleaseError, match=r"release 2027_01 is in the future \(this is 2026_12\)"):
        releases.resolve("2027_01", now=NOW)
    with pytest.raises(ReleaseError, match=r"release 2027_01 \(from the file name\) is in the future"):
        releases.resolve(None, file_name="vPICList_lite_2027_01.db", now=NOW)
    with pytest.raises(ReleaseError, match=r"cannot be release 2026_01: it holds changes stamped "
                                           r"2026-03-12T04:06:32.436Z \(Pattern.UpdatedOn\)"):
        releases.resolve("2026_01", stamp=s, now=NOW)
    with pytest.raises(ReleaseError, match=r"release 2026_01 disagrees with the source file name "
                                           r"vPICList_lite_2026_02.db \(release 2026_02\)"):
        releases.resolve("2026_01", file_name="/x/vPICList_lite_2026_02.db", now=NOW)
    with pytest.raises(ReleaseError, match=r"this backfill run is for 2025_12, but the source holds release 2026_02"):
        releases.resolve(None, known="2026_02", not_after="2025_12", now=NOW)
    assert releases.resolve("2025_10", not_after="2025_12", now=NOW) == "2025_10"


def test_find_backup_for_a_backfill_month(tmp_path: Path) -> None:
    for release in ("2025_07", "2025_10", "2026_02"):
        shutil.copy(SAMPLE_DB, tmp_path / f"vPICList_lite_{release}.db")
    assert backups.find_backup(tmp_path, not_after="2025_12").release == "2025_10"
    assert backups.find_backup(tmp_path, not_after="2025_10").release == "2025_10"
    assert backups.find_backup(tmp_path).release == "2026_02"
    with pytest.raises(RestoreError, match=r"no backup of a release published in 2025_06 or earlier .*"
                                           r"releases present: 2025_07, 2025_10, 2026_02"):
        backups.find_backup(tmp_path, not_after="2025_06")
