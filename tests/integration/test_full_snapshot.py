"""build-catalog on the full vPIC snapshot from ../shared (runs whenever the snapshot is present)."""

from __future__ import annotations

import sqlite3

import pytest

from vehicle_etl import cli
from vehicle_etl.config import Settings
from vehicle_etl.platform_db import connect

pytestmark = pytest.mark.full


def test_build_catalog_full_snapshot(platform_db: Settings, full_snapshot_url: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["build-catalog", "--source", full_snapshot_url, "--release", "2026_02"]) == 0
    assert "success" in capsys.readouterr().out
    with sqlite3.connect(full_snapshot_url.removeprefix("sqlite:///")) as raw:
        expected = {t: raw.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                    for t in ("Make", "Model", "Wmi", "VinSchema", "Wmi_VinSchema", "Pattern", "Element")}
    with connect(platform_db) as conn:
        got = {t: conn.execute(f"SELECT count(*) FROM vehicles.{t}").fetchone()[0]
               for t in ("make", "model", "wmi", "vin_schema", "wmi_vin_schema", "pattern", "element")}
        years = conn.execute("SELECT min(model_year), max(model_year), count(DISTINCT make_id) "
                             "FROM vehicles.model_year").fetchone()
    assert got == {"make": expected["Make"], "model": expected["Model"], "wmi": expected["Wmi"],
                   "vin_schema": expected["VinSchema"], "wmi_vin_schema": expected["Wmi_VinSchema"],
                   "pattern": expected["Pattern"], "element": expected["Element"]}
    assert years[0] >= 1980 and years[1] <= 2028 and years[2] > 1000
    assert cli.main(["status"]) == 0
