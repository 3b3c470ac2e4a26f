"""The quality gate on real PostgreSQL: faults injected into staged copies of the sample name the
right check; end to end, a faulty sample fails the run at the gate, live stays byte-for-byte the
same, run history says failed with the checks, and an alert e-mail reaches a real SMTP server."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from conftest import create_database, drop_database, dsn, settings_for
from psycopg import sql

from vehicle_etl.config import LIVE_SCHEMA, Settings
from vehicle_etl.errors import EtlError, QualityGateError
from vehicle_etl.notify import alerts
from vehicle_etl.platform_db import schema_tables
from vehicle_etl.quality import checks, drift, gx_suite, keys
from vehicle_etl.quality import gate as quality_gate
from vehicle_etl.quality import golden as quality_golden
from vehicle_etl.quality import results as quality_results
from vehicle_etl.release import history


@dataclass
class Gate:
    settings: Settings
    dbname: str
    sample: Path

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(dsn(self.dbname))


@pytest.fixture(scope="module")
def gate(sample_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gate]:
    """A platform database with the clean sample live (built by the real pipeline, gate included)."""
    from vehicle_etl import pipeline

    name = create_database("vetl_gate")
    mp = pytest.MonkeyPatch()
    try:
        settings = settings_for(name, tmp_path_factory.mktemp("gate"), mp)
        mp.delenv("VEHICLE_ETL_GOLDEN_CSV", raising=False)
        pipeline.build_catalog(settings, source=sample_url, run_id="clean_sample")
        yield Gate(settings, name, Path(sample_url.removeprefix("sqlite:///")))
    finally:
        mp.undo()
        drop_database(name)


@pytest.fixture
def staged(gate: Gate) -> Iterator[Callable[[str], str]]:
    """Clone live into a scratch schema (plain tables, no constraints) that a test can break."""
    made: list[str] = []

    def make(label: str) -> str:
        schema = f"t_{label}"
        with gate.connect() as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            for t in schema_tables(conn, LIVE_SCHEMA):
                conn.execute(sql.SQL("CREATE TABLE {}.{} AS TABLE {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(t), sql.Identifier(LIVE_SCHEMA), sql.Identifier(t)))
        made.append(schema)
        return schema

    yield make
    with gate.connect() as conn:
        for schema in made:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _run(gate: Gate, schema: str, statements: list[str]) -> None:
    with gate.connect() as conn:
        for stmt in statements:
            conn.execute(stmt.replace("{s}", schema).encode())


def _by_name(results: list[quality_results.CheckResult]) -> dict[str, quality_results.CheckResult]:
    return {r.name: r for r in results}


def _blocking(results: list[quality_results.CheckResult]) -> set[str]:
    return {r.name for r in results if r.blocking and not r.passed}


# -- the clean sample ---------------------------------------------------------------------------
def test_clean_sample_passes_with_documented_warnings_only(gate: Gate) -> None:
    with gate.connect() as conn:
        run = history.get_run(conn, "clean_sample")
    assert run is not None and run["status"] == "success"
    checks = run["checks"]
    names = {c["name"] for c in checks}
    # both gates are in history: key checks, SQL, drift, golden hook and the GX suite
    assert {"unique_make_id", "not_empty_model_name", "drift_vs_live", "golden_vin_accuracy",
            "gx_wmi_code_format"} <= names
    assert not [c for c in checks if c["blocking"] and not c["passed"]]
    # the sample keeps real vPIC faults; they are tolerated as warnings, not hidden
    warned = {c["name"] for c in checks if not c["passed"]}
    assert warned <= {"wmi_without_schema", "wmi_without_make", "vin_schema_unlinked", "pattern_lookup_orphans",
                      "no_stray_whitespace_pattern_attribute_id", "no_stray_whitespace_vin_schema_name",
                      "gx_wmi_public_date_present", "gx_wmi_code_format", "gx_wmi_vin_schema_year_to_range"}


# -- gate 1: keys ---------------------------------------------------------------------------------
def test_duplicate_make_id_fails_unique_make_id(gate: Gate, staged: Callable[[str], str]) -> None:
    s = staged("dup_make")
    _run(gate, s, ["INSERT INTO {s}.make SELECT * FROM {s}.make ORDER BY make_id LIMIT 1"])
    with gate.connect() as conn:
        results = keys.key_checks(conn, s)
    assert _blocking(results) == {"unique_make_id"}
    with pytest.raises(QualityGateError, match="unique_make_id"):
        quality_results.enforce(results, "key checks")


def test_orphan_pattern_fails_fk_pattern_schema(gate: Gate, staged: Callable[[str], str]) -> None:
    s = staged("orphan_pattern")
    _run(gate, s, ["INSERT INTO {s}.pattern (pattern_id, vin_schema_id, keys, element_id, attribute_id) "
                   "SELECT max(pattern_id) + 1, 999999999, '*****|*', min(element_id), '1' FROM {s}.pattern"])
    with gate.connect() as conn:
        results = keys.key_checks(conn, s)
    assert _blocking(results) == {"fk_pattern_schema"}
    assert _by_name(results)["fk_pattern_schema"].observed == 1


def test_key_checks_leave_no_transaction_open(gate: Gate) -> None:
    # A read left open would turn the pipeline's history write into a savepoint that is lost
    # when the failed gate rolls back.
    with gate.connect() as conn:
        keys.key_checks(conn, LIVE_SCHEMA)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        quality_gate.validate(conn, None, schema=LIVE_SCHEMA, live="nowhere", use_gx=False)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


# -- gate 2: SQL checks ---------------------------------------------------------------------------
def test_null_model_name_fails_not_empty(gate: Gate, staged: Callable[[str], str]) -> None:
    s = staged("null_model")
    _run(gate, s, ["UPDATE {s}.model SET model_name = NULL WHERE model_id = (SELECT min(model_id) FROM {s}.model)"])
    with gate.connect() as conn:
        results = checks.sql_checks(conn, s)
    assert _blocking(results) == {"not_empty_model_name"}


def test_whitespace_only_names_fail_not_empty(gate: Gate, staged: Callable[[str], str]) -> None:
    # extraction trims spaces, so '   ' arrives as ''; a tab-only name survives trimming as is
    s = staged("blank_names")
    _run(gate, s, ["UPDATE {s}.model SET model_name = '' WHERE model_id = (SELECT min(model_id) FROM {s}.model)",
                   "UPDATE {s}.make SET make_name = E'\\t ' WHERE make_id = (SELECT min(make_id) FROM {s}.make)"])
    with gate.connect() as conn:
        results = checks.sql_checks(conn, s)
    assert {"not_empty_model_name", "not_empty_make_name"} <= _blocking(results)


def test_stray_whitespace_blocks_on_names_and_is_tiered_on_attributes(gate: Gate, staged: Callable[[str], str]) -> None:
    s = staged("stray")
    _run(gate, s, ["UPDATE {s}.make SET make_name = make_name || E'\\t' "
                   "WHERE make_id = (SELECT min(make_id) FROM {s}.make)",
                   "UPDATE {s}.pattern SET attribute_id = attribute_id || E'\\n' "
                   "WHERE pattern_id IN (SELECT pattern_id FROM {s}.pattern ORDER BY pattern_id LIMIT 5)"])
    with gate.connect() as conn:
        results = _by_name(checks.sql_checks(conn, s))
    assert not results["no_stray_whitespace_make_name"].passed and results["no_stray_whitespace_make_name"].blocking
    attr = results["no_stray_whitespace_pattern_attribute_id"]
    assert not attr.passed and not attr.blocking and attr.verdict == "warn"

    _run(gate, s, ["UPDATE {s}.pattern SET attribute_id = attribute_id || E'\\n' "
                   "WHERE pattern_id IN (SELECT pattern_id FROM {s}.pattern ORDER BY pattern_id LIMIT 1500)"])
    with gate.connect() as conn:
        attr = _by_name(checks.sql_checks(conn, s))["no_stray_whitespace_pattern_attribute_id"]
    assert attr.blocking and not attr.passed  # beyond the tolerated floor: a regression blocks


def test_model_year_out_of_range_blocks(gate: Gate, staged: Callable[[str], str]) -> None:
    s = staged("years")
    _run(gate, s, ["UPDATE {s}.model_year SET model_year = 1975 WHERE ctid = (SELECT min(ctid) FROM {s}.model_year)"])
    with gate.connect() as conn:
        assert "model_year_range" in _blocking(checks.sql_checks(conn, s))


# -- gate 2: drift against live -------------------------------------------------------------------
def test_table_cut_by_ten_percent_fails_drift(gate: Gate, staged: Callable[[str], str]) -> None:
    s = staged("cut")
    _run(gate, s, ["DELETE FROM {s}.pattern WHERE pattern_id % 10 = 0"])
    with gate.connect() as conn:
        results = drift.drift_checks(conn, s, LIVE_SCHEMA)
        overridden = drift.drift_checks(conn, s, LIVE_SCHEMA, allow_drift=True)
    assert _blocking(results) == {"drift_shrink_pattern"}
    assert "10." in str(_by_name(results)["drift_shrink_pattern"].observed)
    # the override keeps the evidence but stops blocking
    cut = _by_name(overridden)["drift_shrink_pattern"]
    assert not cut.passed and not cut.blocking
    quality_results.enforce(overridden, "validation")  # does not raise


def test_make_with_models_disappearing_fails_drift(gate: Gate, staged: Callable[[str], str]) -> None:
    s = staged("gone")
    with gate.connect() as conn:
        make_id, make_name = conn.execute(
            "SELECT m.make_id, m.make_name FROM vehicles.make m WHERE EXISTS "
            "(SELECT 1 FROM vehicles.make_model mm WHERE mm.make_id = m.make_id) ORDER BY 1 LIMIT 1").fetchone()
    _run(gate, s, [f"DELETE FROM {{s}}.make_model WHERE make_id = {make_id}"])
    with gate.connect() as conn:
        results = _by_name(drift.drift_checks(conn, s, LIVE_SCHEMA, max_shrink=0.9))
    gone = results["drift_makes_with_models_removed"]
    assert not gone.passed and gone.blocking and gone.observed == 1
    assert make_name in gone.detail


def test_drift_is_skipped_without_live(gate: Gate) -> None:
    with gate.connect() as conn:
        results = drift.drift_checks(conn, LIVE_SCHEMA, "no_such_schema")
    assert [(r.name, r.passed) for r in results] == [("drift_vs_live", True)]


def test_older_release_is_a_backfill_only_when_named(gate: Gate, staged: Callable[[str], str]) -> None:
    """Staged 2025_07 against a live 2026_02 (a copy with fewer patterns): no shrinkage verdict
    against the newer live; unnamed, it blocks as release_order; named, it is a backfill."""
    newer, older = staged("live2602"), staged("st2507")
    _run(gate, older, ["DELETE FROM {s}.pattern WHERE pattern_id % 10 = 0"])
    _run(gate, newer, ["DELETE FROM {s}.catalog_info", "INSERT INTO {s}.catalog_info (release, source, run_id) "
                       "VALUES ('2026_02', 'x', 'r')"])
    with gate.connect() as conn:
        unnamed = _by_name(drift.drift_checks(conn, older, newer, release="2025_07"))
        named = _by_name(drift.drift_checks(conn, older, newer, release="2025_07", requested_release="2025_07"))
        forward = _by_name(drift.drift_checks(conn, older, newer, release="2026_03"))
    order = unnamed["release_order"]
    assert not order.passed and order.blocking and "--release 2025_07" in order.detail
    assert not named["release_order"].blocking and named["release_order"].observed == \
        "backfill: 2025_07 replaces live 2026_02"
    # no run of a release <= 2025_07 is recorded here: sizes are not compared, and that is a warning
    assert not named["drift_baseline"].passed and not named["drift_baseline"].blocking
    assert "drift_shrink_pattern" not in named
    # a newer release is compared with live as before
    assert forward["drift_baseline"].observed == "live (2026_02)" and forward["drift_shrink_pattern"].blocking
    assert not forward["drift_shrink_pattern"].passed


def test_backfill_baseline_is_the_newest_recorded_run_not_newer(gate: Gate) -> None:
    with gate.connect() as conn, conn.transaction():
        history.start_run(conn, "bf_2025_05", "2025_05", "x", "cli")
        history.start_run(conn, "bf_2025_08", "2025_08", "x", "cli")
        history.start_run(conn, "bf_2025_07_failed", "2025_07", "x", "cli")
        for run, status in (("bf_2025_05", "success"), ("bf_2025_08", "success"), ("bf_2025_07_failed", "failed")):
            history.update_run(conn, run, status=status, counts={"make": 1})
    with gate.connect() as conn:
        assert drift.baseline_run(conn, "2025_07")["run_id"] == "bf_2025_05"  # type: ignore[index]
        assert drift.baseline_run(conn, "2025_08")["run_id"] == "bf_2025_08"  # type: ignore[index]
        assert drift.baseline_run(conn, "2025_01") is None
        with conn.transaction():
            conn.execute("DELETE FROM etl.run_history WHERE run_id LIKE 'bf_%'")


def test_element_missing_from_the_new_release_blocks_unless_overridden(
    gate: Gate, staged: Callable[[str], str]
) -> None:
    s = staged("element")
    with gate.connect() as conn:
        element_id, name = conn.execute(
            "SELECT p.element_id, e.code FROM vehicles.pattern p JOIN vehicles.element e USING (element_id) "
            "GROUP BY 1, 2 ORDER BY count(*) LIMIT 1").fetchone()
    _run(gate, s, [f"UPDATE {{s}}.pattern SET element_id = -1 WHERE element_id = {element_id}"])
    with gate.connect() as conn:
        results = _by_name(drift.element_presence_checks(conn, s, LIVE_SCHEMA))
        overridden = _by_name(drift.element_presence_checks(conn, s, LIVE_SCHEMA, allow_element_change=True))
        reverse = _by_name(drift.element_presence_checks(conn, LIVE_SCHEMA, s))
    removed = results["element_removed"]
    assert not removed.passed and removed.blocking and removed.observed == 1
    assert f"{name} ({element_id}," in removed.detail
    assert not results["element_added"].passed and not results["element_added"].blocking  # element -1: new
    assert not overridden["element_removed"].blocking
    with pytest.raises(QualityGateError, match="allow_element_change"):
        quality_results.enforce(list(results.values()), "validation")
    quality_results.enforce(list(overridden.values()), "validation")  # does not raise
    # the reverse direction: live lacks an element the release has -> a warning only
    assert reverse["element_added"].observed == 1 and not reverse["element_added"].blocking


# -- gate 2: the golden-VIN hook -------------------------------------------------------------------
def test_golden_hook(gate: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def good(conn: psycopg.Connection, schema: str) -> tuple[float, float]:
        seen.append(schema)
        return conn.execute("SELECT 0.97").fetchone()[0], 0.95  # type: ignore[index]

    def broken(conn: psycopg.Connection, schema: str) -> tuple[float, float]:
        raise RuntimeError("decoder exploded")

    with gate.connect() as conn:
        ok = quality_golden.golden_check(conn, LIVE_SCHEMA, good)
        bad = quality_golden.golden_check(conn, LIVE_SCHEMA, lambda c, s: (0.5, 0.95))
        err = quality_golden.golden_check(conn, LIVE_SCHEMA, broken)
        skipped = quality_golden.golden_check(conn, LIVE_SCHEMA, None)
    assert seen == [LIVE_SCHEMA] and ok.passed
    assert not bad.passed and bad.blocking and bad.observed == 0.5
    assert not err.passed and err.blocking and "decoder exploded" in err.detail
    assert skipped.passed and "skipped" in skipped.detail


def test_default_golden_resolves_the_decoder_lazily(
    gate: Gate, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[tuple[list[str], str]] = []
    fake = types.ModuleType("vehicle_etl.serving.decode")

    def golden_accuracy(conn: Any, rows: list[dict[str, str]], schema: str) -> Any:
        calls.append(([r["vin"] for r in rows], schema))
        return SimpleNamespace(min_rate=0.9, summary=lambda: "fake", disagreements={})

    fake.golden_accuracy = golden_accuracy  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vehicle_etl.serving.decode", fake)
    monkeypatch.delenv("VEHICLE_ETL_GOLDEN_CSV", raising=False)
    assert quality_golden.default_golden() is not None  # the shipped regression set is the default
    monkeypatch.setenv("VEHICLE_ETL_GOLDEN_CSV", str(tmp_path / "missing.csv"))
    assert quality_golden.default_golden() is None  # a configured set that is not there: skipped

    with gate.connect() as conn:  # a WMI of the live sample with a link open to the newest years
        wmi, year_from = conn.execute(  # year_from: the first year any of its links covers
            "SELECT w.wmi, min(l.year_from) FROM vehicles.wmi w JOIN vehicles.wmi_vin_schema l USING (wmi_id) "
            "WHERE length(w.wmi) = 3 GROUP BY w.wmi HAVING bool_or(l.year_to IS NULL AND l.year_from <= 2024) "
            "ORDER BY w.wmi LIMIT 1").fetchone()
    linked, before, newer = (f"{wmi}AAAAAA0RA{i:05d}" for i in range(3))
    unknown = "ZZZAAAAAA0RA00009"  # a WMI no release has
    golden = tmp_path / "golden.csv"
    golden.write_text("vin,make,model,model_year\n"
                      f"{linked},X,Y,2024\n{before},X,Y,{year_from - 1}\n"
                      f"{unknown},X,Y,2024\n{newer},X,Y,2026\n")
    monkeypatch.setenv("VEHICLE_ETL_GOLDEN_CSV", str(golden))
    monkeypatch.setenv("VEHICLE_ETL_GOLDEN_MIN_ACCURACY", "0.95")
    with gate.connect() as conn:
        hook = quality_golden.default_golden()
        assert hook is not None
        observed, threshold, detail = hook(conn, LIVE_SCHEMA)
        # a release of 2025_07 cannot be held to a model year 2026 VIN
        older = quality_golden.default_golden("2025_07")(conn, LIVE_SCHEMA)  # type: ignore[misc]
    assert (observed, threshold) == (0.9, 0.95) and detail.startswith("2 of 4 golden VINs counted")
    # only VINs whose WMI the release links for their model year are decoded
    assert calls[0] == ([linked, newer], LIVE_SCHEMA)
    assert calls[1] == ([linked], LIVE_SCHEMA) and older[2].startswith("1 of 4 golden VINs counted")

    fake.golden_gate = lambda conn, schema: (1.0, 0.99)  # type: ignore[attr-defined]
    assert quality_golden.default_golden() is fake.golden_gate  # an explicit gate hook wins


# -- gate 2: the Great Expectations suite ----------------------------------------------------------
def test_gx_suite_names_the_broken_rule(gate: Gate, staged: Callable[[str], str]) -> None:
    s = staged("gx")
    _run(gate, s, [
        "UPDATE {s}.wmi_vin_schema SET year_from = 1890 WHERE ctid = (SELECT min(ctid) FROM {s}.wmi_vin_schema)",
        "UPDATE {s}.pattern SET keys = 'ab c' WHERE ctid = (SELECT min(ctid) FROM {s}.pattern)",
        "INSERT INTO {s}.element SELECT element_id + 100000, element_name, code, lookup_table, data_type, decode, "
        "is_private, weight FROM {s}.element ORDER BY element_id LIMIT 1",
        "UPDATE {s}.wmi SET public_availability_date = NULL",
    ])
    with gate.connect() as conn:
        results = _by_name(gx_suite.run_suite(conn, s))
    assert set(results) == {r.name for r in gx_suite.rules()}
    assert _blocking(list(results.values())) == {
        "gx_wmi_vin_schema_year_from_range", "gx_pattern_keys_charset", "gx_element_code_unique"}
    assert results["gx_wmi_vin_schema_year_from_range"].observed == 1
    assert "1890" in results["gx_wmi_vin_schema_year_from_range"].detail
    public = results["gx_wmi_public_date_present"]  # handled in the transform: warns, never blocks
    assert not public.passed and not public.blocking


def test_importing_quality_does_not_import_great_expectations() -> None:
    code = ("import sys, vehicle_etl.quality.gate, vehicle_etl.quality.gx_suite, vehicle_etl.release.diff; "
            "sys.exit(1 if 'great_expectations' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_format_table_and_first_failure() -> None:
    check = quality_results.CheckResult
    results = [check("a_ok", True, 0, 0), check("b_warn", False, 3, 0, blocking=False), check("c_fail", False, 1, 0)]
    table = quality_results.format_table(results)
    assert [line.split()[1] for line in table.splitlines()[1:]] == ["ok", "warn", "FAIL"]
    assert quality_results.first_failure(results) == "c_fail"
    assert quality_results.first_failure([r.as_dict() for r in results[:2]]) == "b_warn"
    assert quality_results.first_failure(results[:1]) is None
    many = [quality_results.CheckResult(f"f{i}", False, 1, 0) for i in range(7)]
    with pytest.raises(QualityGateError, match=r"f0 .*f4 \(observed 1, threshold 0\) and 2 more") as err:
        quality_results.enforce(many, "validation")
    assert "f5" not in str(err.value)


# -- end to end: a faulty sample fails the run at the gate -----------------------------------------
@dataclass
class Inbox:
    messages: list[email.message.EmailMessage] = field(default_factory=list)


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    from aiosmtpd.controller import Controller

    box = Inbox()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            box.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 0, "timeout": 5}}))
    monkeypatch.setenv("ALERT_EMAIL_TO", "oncall@example.test")
    monkeypatch.setenv("ALERT_EMAIL_FROM", "vehicle-etl@example.test")
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)
    try:
        yield box
    finally:
        controller.stop()


def _live_checksum(conn: psycopg.Connection) -> dict[str, str]:
    """md5 of every live table's rows in a stable order: 'byte for byte unchanged' made testable."""
    out = {}
    for t in schema_tables(conn, LIVE_SCHEMA):
        out[t] = conn.execute(sql.SQL(
            "SELECT md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM {}.{} x"
        ).format(sql.Identifier(LIVE_SCHEMA), sql.Identifier(t))).fetchone()[0]  # type: ignore[index]
    return out


FAULTS: dict[str, tuple[list[str], str]] = {
    # fault: (SQL run on a copy of the sample, the check that must be named)
    "duplicate_make_id": (["INSERT INTO Make SELECT * FROM Make ORDER BY Id LIMIT 1"], "unique_make_id"),
    "orphan_pattern": (["INSERT INTO Pattern (Id, VinSchemaId, Keys, ElementId, AttributeId, CreatedOn, UpdatedOn) "
                        "SELECT max(Id) + 1, 999999999, '*****|*', 28, '1', NULL, NULL FROM Pattern"],
                       "fk_pattern_schema"),
    "table_cut_10_percent": (["DELETE FROM Pattern WHERE Id % 10 = 0"], "drift_shrink_pattern"),
    # the sample's Model table declares Name NOT NULL: rebuild it without, as other vPIC copies are
    "null_model_name": (["CREATE TABLE Model_copy AS SELECT * FROM Model", "DROP TABLE Model",
                         "ALTER TABLE Model_copy RENAME TO Model",
                         "UPDATE Model SET Name = NULL WHERE Id = (SELECT min(ModelId) FROM Make_Model)"],
                        "not_empty_model_name"),
    "whitespace_only_model_name": (["UPDATE Model SET Name = '   ' WHERE Id = (SELECT min(ModelId) FROM Make_Model)"],
                                   "not_empty_model_name"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_faulty_sample_fails_at_the_gate_and_leaves_live_unchanged(
    fault: str, gate: Gate, inbox: Inbox, tmp_path: Path
) -> None:
    from vehicle_etl import pipeline

    statements, check = FAULTS[fault]
    source = tmp_path / "vpic_faulty.db"
    shutil.copyfile(gate.sample, source)
    with sqlite3.connect(source) as lite:
        for stmt in statements:
            lite.execute(stmt)
    with gate.connect() as conn:
        before = _live_checksum(conn)

    run_id = f"fault_{fault}"
    with pytest.raises(EtlError) as failure:
        pipeline.build_catalog(gate.settings, source=f"sqlite:///{source}", run_id=run_id)
    assert check in str(failure.value)

    with gate.connect() as conn:
        assert _live_checksum(conn) == before
        run = history.get_run(conn, run_id)
    assert run is not None and run["status"] == "failed"
    assert check in (run["error"] or "")
    stored = {c["name"]: c for c in run["checks"]}
    assert stored[check]["passed"] is False and stored[check]["blocking"] is True

    # the DAG's on_failure_callback, with the context Airflow would pass
    ti = SimpleNamespace(task_id="validate", dag_id="vpic_vehicle_etl", try_number=1, run_id=run_id,
                         log_url=f"http://airflow.example.test/log/{run_id}")
    alerts.on_task_failure({"ti": ti, "run_id": run_id, "exception": failure.value, "params": {}})
    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert f"check {check} failed" in mail["Subject"] and "vpic_vehicle_etl.validate" in mail["Subject"]
    assert f"http://airflow.example.test/log/{run_id}" in mail.get_body(("html",)).get_content()
