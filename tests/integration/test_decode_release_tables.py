"""What NHTSA's complete-release tables change in a decode, each with rows made to NHTSA's rules.

A copy of the shipped sample gets VinException, WMIYearValidChars, DefaultValue and ErrorCode rows
(NHTSA's names and columns, as scripts/synthesize_release.py writes them); its catalog is compared
with the sample's own (`sample_catalog`, no such tables: the decoder's fallbacks). decode_vin and
decode_vins answer alike on both.
"""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import build_catalog, create_database, drop_database, dsn

from vehicle_etl.config import PROJECT_ROOT, SAMPLE_DB

_spec = importlib.util.spec_from_file_location("synthesize_release", PROJECT_ROOT / "scripts" / "synthesize_release.py")
assert _spec and _spec.loader
synth = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("synthesize_release", synth)
_spec.loader.exec_module(synth)

CLEAN_CAR = "19XCY1F20RA000001"        # 2024 Accord LX, decodes clean (0) on the sample
EXCEPTION_VIN = "19XCY1F25RA000001"    # the same with a wrong check digit, listed in VinException
WRONG_DIGIT = "19XCY1F31RA000001"      # a wrong check digit NHTSA does not excuse
DESCRIBED = "19XCY1F28RB000001"        # 2024 Accord LX; VinDescriptor names 2023 for its descriptor
CACHED = "1HGCM82633A004352"           # 2003 Accord, clean; the cache for (1HG, 2003) says position 5 is N


def _write_release(path: Path) -> None:
    shutil.copyfile(SAMPLE_DB, path)
    conn = sqlite3.connect(path)
    try:
        for name in ("VinException", "WMIYearValidChars", "DefaultValue", "ErrorCode", "VinDescriptor",
                     "VehicleSpecSchema", "VehicleSpecSchema_Model", "VehicleSpecSchema_Year", "VSpecSchemaPattern",
                     "VehicleSpecPattern"):
            conn.execute(f'CREATE TABLE "{name}" ({synth.CREATE[name]})')
        conn.execute("INSERT INTO VinException (Id, VIN, CheckDigit) VALUES (1, ?, 1)", (EXCEPTION_VIN,))
        # The cache of (1HG, 2003): every position admits the VIN's own character, except position 5
        # (the VIN has M), which admits only N; serial positions 16-17 their digits.
        rows, n = [], 0
        for pos in (4, 5, 6, 7, 8, 10, 11, 12, 13, 14):
            for ch in ("N" if pos == 5 else CACHED[pos - 1]):
                n += 1
                rows.append((n, "1HG", 2003, pos, ch))
        for pos in (16, 17):
            for ch in "0123456789":
                n += 1
                rows.append((n, "1HG", 2003, pos, ch))
        conn.executemany("INSERT INTO WMIYearValidChars (id, WMI, Year, Position, Char) VALUES (?, ?, ?, ?, ?)", rows)
        # A passenger car (VehicleType 2) prints "Not Applicable" for bus fields and a default body
        # class only if no pattern gave one.
        conn.executemany("INSERT INTO DefaultValue (Id, ElementId, VehicleTypeId, DefaultValue) VALUES (?, ?, ?, ?)",
                         [(1, 149, 2, "Not Applicable"), (2, 148, 2, "Not Applicable"), (3, 5, 2, "Not Applicable"),
                          (4, 149, 5, "")])
        # The release's error codes: NHTSA's, with code 1 renamed (no "1 - " prefix, as a release
        # might spell it) and code 8 weighted so that a pass without patterns wins.
        codes = []
        for cid, name, addl, weight in synth.ERROR_CODES:
            if cid == 1:
                name = "Check Digit (9th position) does not calculate properly [release text]"
            if cid == 8:
                weight = 5000
            codes.append((cid, name, addl, weight))
        conn.executemany("INSERT INTO ErrorCode (Id, Name, AdditionalErrorText, weight) VALUES (?, ?, ?, ?)", codes)
        # The live API's model-year override for one descriptor (positions 1-8, '*', 10-11).
        conn.execute("INSERT INTO VinDescriptor (Id, Descriptor, ModelYear) VALUES (1, ?, 2023)",
                     (DESCRIBED[:8] + "*" + DESCRIBED[9:11],))
        # A spec sheet for Honda (474) passenger cars (2), model Accord (1861), 2024: sheet pattern 1 is
        # keyed on BodyClass Sedan/Saloon (13) and fills ESC (99) = Standard (1); sheet pattern 2 is
        # keyed on Coupe (3) and fills TractionControl (100): it must not apply to a sedan.
        conn.execute("INSERT INTO VehicleSpecSchema (Id, MakeId, CreatedOn, VehicleTypeId, TobeQCed) "
                     "VALUES (1, 474, '2026-03-01', 2, 0)")
        conn.execute("INSERT INTO VehicleSpecSchema_Model (Id, VehicleSpecSchemaId, ModelId) VALUES (1, 1, 1861)")
        conn.execute("INSERT INTO VehicleSpecSchema_Year (Id, VehicleSpecSchemaId, Year) VALUES (1, 1, 2024)")
        conn.executemany("INSERT INTO VSpecSchemaPattern (Id, SchemaId) VALUES (?, 1)", [(1,), (2,)])
        conn.executemany("INSERT INTO VehicleSpecPattern (Id, VSpecSchemaPatternId, IsKey, ElementId, AttributeId) "
                         "VALUES (?, ?, ?, ?, ?)",
                         [(1, 1, 1, 5, "13"), (2, 1, 0, 99, "1"), (3, 1, 0, 5, "3"),
                          (4, 2, 1, 5, "3"), (5, 2, 0, 100, "1")])
        conn.commit()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def release_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[psycopg.Connection]:
    path = tmp_path_factory.mktemp("release") / "vpic_release.db"
    _write_release(path)
    name = create_database("vetl_i13_decode")
    try:
        build_catalog(name, f"sqlite:///{path}")
        with psycopg.connect(dsn(name), autocommit=True) as conn:
            yield conn
    finally:
        drop_database(name)


def _decode(conn: psycopg.Connection, vin: str, year: int | None = None) -> dict[str, Any]:
    one = conn.execute("SELECT vehicles.decode_vin(%s, %s)", (vin, year)).fetchone()[0]
    if year is None:  # decode_vins takes no year: it must agree with decode_vin
        batch = conn.execute("SELECT result FROM vehicles.decode_vins(%s)", ([vin],)).fetchone()[0]
        assert batch == one, vin
    return one


def _codes(res: dict[str, Any]) -> list[str]:
    return res["ErrorCode"].split(",")


def test_vin_exception_excuses_the_check_digit(sample_catalog: psycopg.Connection,
                                               release_catalog: psycopg.Connection) -> None:
    assert "1" in _codes(_decode(sample_catalog, EXCEPTION_VIN))
    res = _decode(release_catalog, EXCEPTION_VIN)
    assert "1" not in _codes(res) and "0" in _codes(res), res["ErrorCode"]
    assert res["Model"] == "Accord"
    # Only the listed VIN: another wrong check digit of the same model is still error 1.
    assert "1" in _codes(_decode(release_catalog, WRONG_DIGIT))


def test_valid_chars_cache_drives_codes_2_to_5(sample_catalog: psycopg.Connection,
                                               release_catalog: psycopg.Connection) -> None:
    before = _decode(sample_catalog, CACHED)
    assert _codes(before) == ["0"] and before["SuggestedVIN"] == ""
    res = _decode(release_catalog, CACHED)
    assert "2" in _codes(res) and "0" not in _codes(res), res["ErrorCode"]
    assert res["SuggestedVIN"] == CACHED[:4] + "N" + CACHED[5:]
    assert res["PossibleValues"] == "(5:N)"
    # Another year of the same WMI has no cache rows: the schemas' characters apply, as before.
    other = "1HGCM82634A004352"
    assert _decode(release_catalog, other)["ErrorCode"] == _decode(sample_catalog, other)["ErrorCode"]


def test_default_value_fills_empty_elements_only(sample_catalog: psycopg.Connection,
                                                 release_catalog: psycopg.Connection) -> None:
    before = _decode(sample_catalog, CLEAN_CAR)
    assert before["BusType"] == "" and before["BusFloorConfigType"] == ""
    res = _decode(release_catalog, CLEAN_CAR)
    assert res["BusType"] == "Not Applicable" and res["BusFloorConfigType"] == "Not Applicable"
    assert res["BodyClass"] == before["BodyClass"] == "Sedan/Saloon"  # a pattern's value is never replaced
    assert set(res) == set(before)  # the answer's shape does not change


def test_error_code_names_and_weights_come_from_the_release(sample_catalog: psycopg.Connection,
                                                            release_catalog: psycopg.Connection) -> None:
    res = _decode(release_catalog, WRONG_DIGIT)
    assert "1 - Check Digit (9th position) does not calculate properly [release text]" in res["ErrorText"]
    assert "[release text]" not in _decode(sample_catalog, WRONG_DIGIT)["ErrorText"]  # the embedded fallback
    # A caller's year without schemas gives a pass with error 8 (-1000 embedded): the VIN's own
    # year wins. The release weights 8 at +5000, so the caller's pass wins there.
    assert _decode(sample_catalog, CLEAN_CAR, 1990)["ModelYear"] == "2024"
    won = _decode(release_catalog, CLEAN_CAR, 1990)
    assert won["ModelYear"] == "1990" and "8" in _codes(won)


def test_vin_descriptor_names_the_model_year(sample_catalog: psycopg.Connection,
                                            release_catalog: psycopg.Connection) -> None:
    assert _decode(sample_catalog, DESCRIBED)["ModelYear"] == "2024"
    res = _decode(release_catalog, DESCRIBED)
    assert res["ModelYear"] == "2023"
    assert "may be incorrect" not in res["AdditionalErrorText"]  # the override is conclusive
    assert _decode(release_catalog, CLEAN_CAR)["ModelYear"] == "2024"  # another descriptor: position 10 as before


def test_vehicle_spec_sheet_fills_model_level_values(sample_catalog: psycopg.Connection,
                                                     release_catalog: psycopg.Connection) -> None:
    before = _decode(sample_catalog, CLEAN_CAR)
    assert before["ESC"] == "" and before["TractionControl"] == ""
    res = _decode(release_catalog, CLEAN_CAR)
    assert res["ESC"] == "Standard"           # the sedan sheet's value, its lookup name
    assert res["BodyClass"] == "Sedan/Saloon"  # a sheet never replaces a pattern's value
    assert res["TractionControl"] == ""       # the coupe sheet's key does not match
    # Another year of the same model: the sheet lists 2024 only.
    assert _decode(release_catalog, "1HGCM82633A004352")["ESC"] == ""
