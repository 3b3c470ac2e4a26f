"""Dropdown functions on the sample catalog: documented columns, and the trim/engine compatibility rule."""

from __future__ import annotations

import psycopg
import pytest


@pytest.fixture(scope="module")
def cat(sample_catalog: psycopg.Connection) -> psycopg.Connection:
    return sample_catalog


def columns(conn: psycopg.Connection, call: str) -> list[str]:
    cur = conn.execute(f"SELECT * FROM vehicles.{call} LIMIT 0")
    return [c.name for c in cur.description or []]


def test_documented_columns(cat: psycopg.Connection) -> None:
    assert columns(cat, "dropdown_makes()") == ["Make_ID", "Make_Name"]
    assert columns(cat, "dropdown_models(1)") == ["Make_ID", "Make_Name", "Model_ID", "Model_Name"]
    assert columns(cat, "dropdown_trims(1, 1, 2020)") == ["Make_ID", "Model_ID", "Model_Year", "Trim"]
    assert columns(cat, "dropdown_engines(1, 1, 2020)") == [
        "Make_ID", "Model_ID", "Model_Year", "Engine", "DisplacementL", "EngineCylinders", "EngineModel",
        "FuelTypePrimary"]
    assert columns(cat, "dropdown_transmissions(1, 1, 2020)") == [
        "Make_ID", "Model_ID", "Model_Year", "Transmission", "TransmissionStyle", "TransmissionSpeeds"]


def test_year_make_model_chain(cat: psycopg.Connection) -> None:
    makes = cat.execute("SELECT * FROM vehicles.dropdown_makes(2020)").fetchall()
    names = [m[1] for m in makes]
    assert "TESLA" in names and names == sorted(names)
    tesla = next(m[0] for m in makes if m[1] == "TESLA")
    models = cat.execute("SELECT * FROM vehicles.dropdown_models(%s, 2020)", (tesla,)).fetchall()
    assert "Model 3" in [m[3] for m in models]
    assert all(m[0] == tesla and m[1] == "TESLA" for m in models)
    # all years >= one year
    assert len(cat.execute("SELECT * FROM vehicles.dropdown_makes()").fetchall()) >= len(makes)
    assert cat.execute("SELECT count(*) FROM vehicles.dropdown_makes(1900)").fetchone()[0] == 0  # type: ignore[index]


def test_dropdown_makes_order_and_filter_in_custom_and_generic_plans(cat: psycopg.Connection) -> None:
    """dropdown_makes answers in (Make_Name, Make_ID) order under the database collation, road makes by
    default and every make with all_types, whether planned per call or as a prepared generic plan."""
    trailers_left_out = False
    for year in (None, 2020, 1995):
        y = 0 if year is None else year
        want_all = cat.execute("SELECT make_id, make_name FROM vehicles.dropdown_make WHERE model_year = %s "
                               "ORDER BY make_name, make_id", (y,)).fetchall()
        want_road = cat.execute("SELECT make_id, make_name FROM vehicles.dropdown_make WHERE model_year = %s "
                                "AND road ORDER BY make_name, make_id", (y,)).fetchall()
        assert want_road
        trailers_left_out |= len(want_all) > len(want_road)
        for mode in ("force_custom_plan", "force_generic_plan"):
            with cat.transaction():
                cat.execute(f"SET LOCAL plan_cache_mode = {mode}")
                for all_types, want in ((False, want_road), (True, want_all)):
                    got = cat.execute("SELECT * FROM vehicles.dropdown_makes(%s, %s)", (year, all_types),
                                      prepare=True).fetchall()
                    assert got == want, (year, mode, all_types)
    assert trailers_left_out  # the road filter was exercised (Formula Trailers in the sample)


def test_options_only_when_a_vin_could_decode_to_both(cat: psycopg.Connection) -> None:
    """A constructed schema: two models told apart by position 4, each with its own trim and engine."""
    from vehicle_etl.platform_db import render, sql_files

    # The live catalog's tables are views over the version store: the test edits the live
    # version's own tables (vehicles_v<N>, where inserted rows take the version's number by default)
    # and calls the functions installed over them, all in a transaction that is rolled back.
    with cat.transaction():
        flat = f"vehicles_v{cat.execute('SELECT live FROM vehicles_store.control').fetchone()[0]}"  # type: ignore[index]
        cat.execute(f"SET LOCAL search_path = {flat}, public")
        for path in sql_files("functions"):
            cat.execute(render(path.read_text(), flat).encode())
        w = cat.execute("SELECT wmi_id FROM decode_wmi WHERE public_availability_date <= now() "
                        "AND single_make_id IS NOT NULL ORDER BY wmi LIMIT 1").fetchone()[0]  # type: ignore[index]
        make = cat.execute("SELECT single_make_id FROM decode_wmi WHERE wmi_id = %s", (w,)).fetchone()[0]  # type: ignore[index]
        cat.execute("INSERT INTO vin_schema VALUES (990001, 'test schema', false, now(), now())")
        cat.execute("INSERT INTO wmi_vin_schema VALUES (990001, %s, 990001, 2021, 2021)", (w,))
        for mid, name in ((990001, 'Alpha'), (990002, 'Beta')):
            cat.execute("INSERT INTO model VALUES (%s, %s, now(), now())", (mid, name))
            cat.execute("INSERT INTO make_model VALUES (%s, %s)", (make, mid))
        rows = [
            (990001, "A", 28, "990001"), (990002, "B", 28, "990002"),     # model by position 4
            (990003, "A*[12]", 38, "Alpha Trim"), (990004, "B", 38, "Beta Trim"),
            (990005, "[AC]**2", 13, "2.0"), (990006, "B***3", 13, "3.0"),
            (990007, "*", 38, "Every Trim"),
        ]
        for pid, keys, el, attr in rows:
            cat.execute("INSERT INTO pattern VALUES (%s, 990001, %s, %s, %s, now(), now())", (pid, keys, el, attr))
        # rebuild the derived tables from the edited catalog, in this transaction only
        from vehicle_etl.spec import DERIVED_TABLES
        cat.execute(f"DROP TABLE {', '.join(DERIVED_TABLES)} CASCADE")
        from vehicle_etl.staging.derived import derive_files
        for step in derive_files():
            cat.execute(render(step.path.read_text(), flat).encode())
        trims_a = {r[3] for r in cat.execute(f"SELECT * FROM {flat}.dropdown_trims(%s, 990001, 2021)", (make,))}
        trims_b = {r[3] for r in cat.execute(f"SELECT * FROM {flat}.dropdown_trims(%s, 990002, 2021)", (make,))}
        eng_a = {r[4] for r in cat.execute(f"SELECT * FROM {flat}.dropdown_engines(%s, 990001, 2021)", (make,))}
        eng_b = {r[4] for r in cat.execute(f"SELECT * FROM {flat}.dropdown_engines(%s, 990002, 2021)", (make,))}
        other_year = cat.execute(
            f"SELECT count(*) FROM {flat}.dropdown_trims(%s, 990001, 2022)", (make,)).fetchone()[0]  # type: ignore[index]
        models = {r[3] for r in cat.execute(f"SELECT * FROM {flat}.dropdown_models(%s, 2021)", (make,))}
        cat.execute("ROLLBACK")  # leave the shared catalog as it was
    assert trims_a == {"Alpha Trim", "Every Trim"}
    assert trims_b == {"Beta Trim", "Every Trim"}
    assert eng_a == {"2.0"} and eng_b == {"3.0"}
    assert other_year == 0
    assert {"Alpha", "Beta"} <= models
