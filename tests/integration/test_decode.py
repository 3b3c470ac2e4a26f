"""decode_vin / decode_vins against real PostgreSQL: the sample catalog, and the golden set on the full snapshot."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from conftest import SHARED, build_catalog, create_database, drop_database, dsn

from vehicle_etl.config import PROJECT_ROOT
from vehicle_etl.serving import decode as dec
from vehicle_etl.source.connect import open_source
from vehicle_etl.staging import derived, load

GOLDEN_SAMPLE = PROJECT_ROOT / "tests" / "golden_sample.csv"
DEV_VINS = SHARED / "data" / "vin_ground_truth" / "dev_vins.csv"


@pytest.fixture(scope="module")
def sample_db(sample_catalog: psycopg.Connection) -> psycopg.Connection:
    return sample_catalog


def d(conn: psycopg.Connection, vin: str | None, year: int | None = None) -> dict[str, str]:
    return conn.execute("SELECT vehicles.decode_vin(%s, %s)", (vin, year)).fetchone()[0]  # type: ignore[index]


def codes(res: dict[str, str]) -> set[str]:
    return set(res["ErrorCode"].split(","))


# A Tesla Model 3 (synthetic serial, valid check digit); the sample holds Tesla and Kia.
VIN = "5YJ3A1E12HF000001"


def with_char(vin: str, pos: int, ch: str) -> str:
    return vin[: pos - 1] + ch + vin[pos:]


def test_known_vin_decodes_clean(sample_db: psycopg.Connection) -> None:
    res = d(sample_db, VIN)
    assert (res["Make"], res["Model"], res["ModelYear"]) == ("TESLA", "Model 3", "2017")
    assert res["ErrorCode"] == "0"
    assert res["ErrorText"].startswith("0 - VIN decoded clean")
    assert res["VehicleType"] == "PASSENGER CAR" and res["Manufacturer"].isupper()
    assert res["MakeID"] and res["ModelID"]
    # every DecodeVinValues key is present, empty when unknown
    assert {"BodyClass", "DriveType", "TransmissionStyle", "SuggestedVIN", "VehicleDescriptor"} <= res.keys()
    assert res["VehicleDescriptor"] == "5YJ3A1E1*HF"


@pytest.mark.parametrize(
    ("vin", "expected"),
    [
        (None, {"6", "7", "11"}),
        ("", {"6", "7", "11"}),
        ("5YJ", {"6"}),
        ("5YJ3A1", {"6"}),
        (VIN[:16], {"6"}),
        (with_char(VIN, 6, " "), {"400"}),  # inner space
        (with_char(VIN, 14, "O"), {"400"}),  # letter O in the serial
        ("IOQ" + VIN[3:], {"7", "400"}),  # illegal letters, unknown WMI
        (VIN + "Z" * 10_000, {"0"}),  # NHTSA reads 17 characters (its varchar(17))
        (with_char(VIN, 10, "0"), {"11", "400"}),  # position 10 '0' is no model year
    ],
)
def test_invalid_inputs_get_error_codes_not_exceptions(
    sample_db: psycopg.Connection, vin: str | None, expected: set[str]
) -> None:
    res = d(sample_db, vin)
    assert expected <= codes(res), res["ErrorCode"]
    assert res["ErrorText"]
    if "400" in expected:
        assert "Invalid character(s)" in res["AdditionalErrorText"]
        assert "!" in res["SuggestedVIN"]


def test_lower_case_and_outer_spaces_are_normalised(sample_db: psycopg.Connection) -> None:
    assert d(sample_db, f"  {VIN.lower()} ") == d(sample_db, VIN)


def test_check_digit(sample_db: psycopg.Connection) -> None:
    def cd(vin: str) -> str:
        return sample_db.execute("SELECT vehicles.vin_check_digit(%s, true)", (vin,)).fetchone()[0]  # type: ignore[index]

    assert cd("1HGCM82633A004352") == "3"  # NHTSA's worked example
    assert cd("11111111111111111") == "1"
    assert cd(VIN) == "2"
    assert cd("1M8GDM9AXKP042788") == "X"  # remainder 10 is written X
    assert cd("1HGCM8263IA004352") == "?"  # I is not a VIN character
    assert cd("1HGCM82633A00435") == ""  # only 17-character VINs have one
    wrong = d(sample_db, with_char(VIN, 9, "5"))
    assert "1" in codes(wrong) and "0" not in codes(wrong)
    assert wrong["Model"] == "Model 3"  # a wrong check digit still decodes


def test_six_character_wmi(sample_db: psycopg.Connection) -> None:
    wmi, manufacturer = sample_db.execute(
        "SELECT w.wmi, w.manufacturer_name FROM vehicles.decode_wmi w "
        "WHERE length(w.wmi) = 6 AND w.public_availability_date <= now() AND w.manufacturer_name IS NOT NULL "
        "ORDER BY w.wmi LIMIT 1"
    ).fetchone()  # type: ignore[misc]
    vin = wmi[:3] + "AAAAA0A" + "A" + wmi[3:] + "000"
    assert len(vin) == 17
    res = d(sample_db, vin)
    assert res["Manufacturer"] == manufacturer, res["ErrorCode"]
    assert "7" not in codes(res)
    # the same first three characters without the 12-14 suffix are not a known WMI
    res_short = d(sample_db, vin[:11])
    assert "7" in codes(res_short)


def test_model_year_rules(sample_db: psycopg.Connection) -> None:
    def my(vin: str, car_lt: bool) -> int | None:
        return sample_db.execute("SELECT vehicles.vin_model_year(%s, %s)", (vin, car_lt)).fetchone()[0]  # type: ignore[index]

    # cars, MPVs, light trucks: a digit in position 7 means 1980-2009, a letter 2010+; conclusive
    assert my("1HGCM82633A004352", True) == 2003
    assert my(VIN, True) == 2017
    # other vehicle types: inconclusive (negative), both cycles are decoded
    assert my(VIN, False) == -2017
    # more than two years ahead drops by 30; no year for I, O, Q, U, Z, 0
    assert my(with_char(VIN, 10, "Y"), False) == 2000
    assert my(with_char(VIN, 10, "U"), True) is None
    assert d(sample_db, VIN)["ModelYear"] == "2017"
    assert "may be incorrect" not in d(sample_db, VIN)["AdditionalErrorText"]
    # digit in position 7 gives 1987, but 5YJ has schemas for 2017 only: the other cycle is taken
    assert d(sample_db, with_char(VIN, 7, "1"))["ModelYear"] == "2017"
    # caller's year agreeing with the VIN: no error 12; conflicting: error 12
    assert "12" not in codes(d(sample_db, VIN, 2017))
    assert "12" in codes(d(sample_db, VIN, 2019))
    # inconclusive types (motorcycles, trailers...) decode both cycles and say so
    moto = sample_db.execute(
        "SELECT w.wmi FROM vehicles.decode_wmi w WHERE w.vehicle_type_id = 1 "
        "AND w.public_availability_date <= now() AND length(w.wmi) = 3 ORDER BY w.wmi LIMIT 1"
    ).fetchone()
    if moto:
        res = d(sample_db, moto[0] + "AAAAA0E0000001")
        assert "may be incorrect" in res["AdditionalErrorText"]


def test_decode_vins_keeps_order_duplicates_and_nulls(sample_db: psycopg.Connection) -> None:
    vins = [VIN, None, "5YJSA1E26HF200000", VIN, "bad"]
    rows = sample_db.execute("SELECT vin, result FROM vehicles.decode_vins(%s)", (vins,)).fetchall()
    assert [r[0] for r in rows] == vins
    assert rows[0][1] == rows[3][1]
    assert rows[2][1]["Make"] == "TESLA"
    assert dec.decode(sample_db, vins) == [r[1] for r in rows]


EDGE_VINS = [None, "", "5YJ", "bad vin", VIN, VIN.lower() + "  ", with_char(VIN, 9, "5"), with_char(VIN, 6, " "),
             with_char(VIN, 14, "O"), with_char(VIN, 10, "0"), with_char(VIN, 7, "1"), "IOQ" + VIN[3:],
             VIN + "Z" * 40, VIN[:16], "5YJSA1E26HF200000", "KNDJP3A5XH7000001"]


def test_decode_vins_is_identical_to_decode_vin(sample_db: psycopg.Connection) -> None:
    """The set-based batch path answers exactly as the per-VIN path (decode_vin + decode_vin_pass),
    on the golden sample and on invalid inputs, in one batch (passes of different VINs must not mix)."""
    vins: list[str | None] = [*EDGE_VINS]
    if GOLDEN_SAMPLE.is_file():
        vins += [r["vin"] for r in dec.load_golden(GOLDEN_SAMPLE)]
    # wrong check digits and a wrong character in the VDS exercise error codes 1-5 and 14
    vins += [with_char(v, 9, "0" if v[8] != "0" else "1") for v in vins[16:60] if v]
    vins += [with_char(v, 5, "Z") for v in vins[16:60] if v]
    batch = sample_db.execute("SELECT vin, result FROM vehicles.decode_vins(%s)", (vins,)).fetchall()
    assert [r[0] for r in batch] == vins
    single = [d(sample_db, v) for v in vins]
    diffs = [(v, {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)})
             for v, (_, a), b in zip(vins, batch, single, strict=True) if a != b]
    assert not diffs, diffs[:3]
    seen = {c for r in single for c in r["ErrorCode"].split(",")}
    assert {"0", "1", "6", "7", "14", "400"} <= seen, seen  # the comparison covered the error paths
    assert seen & {"2", "3", "4", "5"}, seen


def test_check_digit_matches_nhtsa_definition(sample_db: psycopg.Connection) -> None:
    """vin_check_digit (one regex + transliteration) against a plain implementation of NHTSA's rule."""
    values = dict(zip("ABCDEFGHJKLMNPRSTUVWXYZ", [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9],
                      strict=True))
    weights = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]

    def expected(vin: str) -> str:
        total = sum((int(c) if c.isdigit() else values[c]) * w for c, w in zip(vin, weights, strict=True)) % 11
        return "X" if total == 10 else str(total)

    import random

    rnd = random.Random(4)
    chars = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
    vins = []
    for _ in range(300):
        v = [rnd.choice(chars) for _ in range(17)]
        v[9] = rnd.choice("ABCDEFGHJKLMNPRSTVWXY123456789")
        v[12:17] = [rnd.choice("0123456789") for _ in range(5)]
        vins.append("".join(v))
    got = sample_db.execute("SELECT array_agg(vehicles.vin_check_digit(v, true) ORDER BY o) "
                            "FROM unnest(%s::text[]) WITH ORDINALITY u(v, o)", (vins,)).fetchone()[0]  # type: ignore[index]
    assert got == [expected(v) for v in vins]


def test_decode_works_in_staging_after_build_keys(sample_url: str) -> None:
    """The quality gate decodes the golden set with the staged release before it goes live."""
    name = create_database("vetl_decode_stg")
    try:
        with psycopg.connect(dsn(name), autocommit=True) as conn:
            load.prepare_staging(conn)
            load.extract_load(open_source(sample_url), dsn(name), 20000)
            derived.repair(conn)
            derived.derive(conn)
            load.build_keys(conn)
            res = dec.decode(conn, [VIN], schema="vehicles_staging")[0]
            assert res["Model"] == "Model 3"
    finally:
        drop_database(name)


def test_golden_sample_accuracy(sample_db: psycopg.Connection) -> None:
    if not GOLDEN_SAMPLE.is_file():
        pytest.skip("tests/golden_sample.csv is not there yet")
    report = dec.golden_accuracy(sample_db, GOLDEN_SAMPLE, "vehicles")
    assert report.fields["make"].compared > 0
    unknown_wmi = sample_db.execute(
        "SELECT count(*) FROM unnest(%s::text[]) v WHERE NOT EXISTS "
        "(SELECT 1 FROM vehicles.wmi w"
        " WHERE w.wmi = left(upper(v), 3) OR w.wmi = left(upper(v), 3) || substr(upper(v), 12, 3))",
        ([r["vin"] for r in dec.load_golden(GOLDEN_SAMPLE)],),
    ).fetchone()[0]  # type: ignore[index]
    if unknown_wmi > 0.05 * report.vins:
        pytest.skip(f"golden_sample.csv and the sample disagree: {unknown_wmi} VINs of WMIs the sample lacks")
    # make and year are release-stable; model drifts on synthetic VINs (docs/DECODER.md)
    # measured on the sample: make 97.7 %, model 81.1 %, model year 98.0 %. The misses are
    # synthetic VINs of the 2024_03 release whose VDS the Feb 2026 schemas no longer list
    # (errors 5/14, release drift; docs/DECODER.md)
    assert report.rate("make") >= 0.96, report.summary()
    assert report.rate("model_year") >= 0.96, report.summary()
    assert report.rate("model") >= 0.78, report.summary()


@pytest.mark.skipif(os.environ.get("VEHICLE_ETL_SKIP_FULL") == "1", reason="full snapshot disabled")
def test_dev_vins_accuracy_on_full_snapshot(full_snapshot_url: str) -> None:
    """Thresholds measured on the Feb 2026 snapshot (bench/decode_accuracy.py): make 99.79 %,
    model year 99.77 %, model 77.8 % (synthetic Honda VINs of the 2024_03 release drift)."""
    if not Path(DEV_VINS).is_file():
        pytest.skip("dev_vins.csv is not present")
    name = create_database("vetl_decode_full")
    try:
        build_catalog(name, full_snapshot_url)
        with psycopg.connect(dsn(name), autocommit=True) as conn:
            report = dec.golden_accuracy(conn, DEV_VINS, "vehicles", fields=("make", "model", "model_year"))
    finally:
        drop_database(name)
    assert report.vins > 10_000
    assert report.rate("make") >= 0.995, report.summary()
    assert report.rate("model_year") >= 0.995, report.summary()
    assert report.rate("model") >= 0.77, report.summary()
