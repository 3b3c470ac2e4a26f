"""Release diff on real PostgreSQL: small hand-made live and staged catalogs with known changes."""

from __future__ import annotations

import json

import psycopg
import pytest

from vehicle_etl.config import Settings
from vehicle_etl.platform_db import connect, run_in_schema, sql_file
from vehicle_etl.release import diff, history

LIVE_ROWS = """
INSERT INTO make (make_id, make_name) VALUES (1, 'HONDA'), (2, 'TESLA'), (3, 'OLDMAKE');
INSERT INTO model (model_id, model_name) VALUES (10, 'Accord'), (11, 'Civic'), (20, 'Model S'), (30, 'Gone');
INSERT INTO wmi (wmi_id, wmi, make_id) VALUES (100, '1HG', 1), (200, '5YJ', 2);
INSERT INTO vin_schema (vin_schema_id, schema_name) VALUES (1000, 'Honda 2024'), (2000, 'Tesla 2024');
INSERT INTO pattern (pattern_id, vin_schema_id, keys, element_id, attribute_id)
VALUES (1, 1000, 'CY1F2', 28, '10'), (2, 1000, 'FE1F2', 28, '11'), (3, 2000, 'SA1E2', 28, '20');
"""
STAGED_ROWS = """
INSERT INTO make (make_id, make_name) VALUES (1, 'HONDA'), (2, 'Tesla'), (4, 'NEWMAKE|X');
INSERT INTO model (model_id, model_name) VALUES (10, 'Accord'), (11, 'Civic'), (20, 'Model S'), (21, 'Model 3');
INSERT INTO wmi (wmi_id, wmi, make_id) VALUES (100, '1HG', 1), (200, '5YJ', 2), (300, 'LRW', 2);
INSERT INTO vin_schema (vin_schema_id, schema_name) VALUES (1000, 'Honda 2024'), (2000, 'Tesla 2024');
INSERT INTO pattern (pattern_id, vin_schema_id, keys, element_id, attribute_id)
VALUES (1, 1000, 'CY1F2', 28, '10'), (2, 1000, 'FE1F2', 28, '10'), (4, 2000, '3E1E2', 28, '21');
"""


def _schema(conn: psycopg.Connection, schema: str, rows: str) -> None:
    with conn.transaction():
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}"'.encode())
        run_in_schema(conn, schema, sql_file("schema/tables.sql"))
        run_in_schema(conn, schema, rows)


@pytest.fixture
def catalogs(platform_db: Settings) -> Settings:
    with connect(platform_db) as conn:
        _schema(conn, "vehicles", LIVE_ROWS)
        conn.execute("INSERT INTO vehicles.catalog_info (release, source, run_id) VALUES ('2026_01', 'x', 'r0')")
        conn.commit()
        _schema(conn, "vehicles_staging", STAGED_ROWS)
    return platform_db


def test_diff_counts_and_examples(catalogs: Settings) -> None:
    with connect(catalogs) as conn:
        report = diff.diff_report(conn, limit=10)
    e = report["entities"]
    assert report["live_exists"] and report["live_release"] == "2026_01"
    assert {k: e["makes"][k] for k in ("live", "staged", "added", "removed", "changed")} == {
        "live": 3, "staged": 3, "added": 1, "removed": 1, "changed": 1}
    assert e["makes"]["examples"]["added"] == [{"id": 4, "name": "NEWMAKE|X"}]
    assert e["makes"]["examples"]["removed"] == [{"id": 3, "name": "OLDMAKE"}]
    assert e["makes"]["examples"]["changed"] == [{"id": 2, "before": "TESLA", "after": "Tesla",
                                                  "changes": [{"field": "make_name", "old": "TESLA", "new": "Tesla"}]}]
    assert (e["models"]["added"], e["models"]["removed"], e["models"]["changed"]) == (1, 1, 0)
    assert (e["wmis"]["added"], e["wmis"]["removed"]) == (1, 0)
    assert (e["schemas"]["added"], e["schemas"]["removed"], e["schemas"]["changed"]) == (0, 0, 0)
    # pattern 2 now names model 10 instead of 11: a content change, not add/remove
    assert (e["patterns"]["added"], e["patterns"]["removed"], e["patterns"]["changed"]) == (1, 1, 1)
    assert e["patterns"]["examples"]["changed"][0]["before"].endswith("= 11")
    # only the field that changed is named, old -> new
    assert e["patterns"]["examples"]["changed"][0]["changes"] == [{"field": "attribute_id", "old": "11", "new": "10"}]
    json.dumps(report)  # stored in run history as jsonb


def test_diff_limit_caps_examples_not_counts(catalogs: Settings) -> None:
    with connect(catalogs) as conn:
        report = diff.diff_report(conn, limit=0)
    assert report["entities"]["makes"]["added"] == 1
    assert report["entities"]["makes"]["examples"]["added"] == []


def test_diff_without_live_counts_everything_as_added(platform_db: Settings) -> None:
    with connect(platform_db) as conn:
        _schema(conn, "vehicles_staging", STAGED_ROWS)
        report = diff.diff_report(conn, limit=2)
    assert not report["live_exists"]
    makes = report["entities"]["makes"]
    assert (makes["added"], makes["removed"], makes["live"]) == (3, 0, 0)
    assert [x["id"] for x in makes["examples"]["added"]] == [1, 2]
    assert "No live catalog yet" in diff.to_markdown(report)


def test_markdown_is_readable(catalogs: Settings) -> None:
    with connect(catalogs) as conn:
        md = diff.to_markdown(diff.diff_report(conn))
    assert "| makes | 3 | 3 | 1 | 1 | 1 |" in md
    assert "- 2 Tesla: make_name TESLA → Tesla" in md
    assert "- 2 1000:28:FE1F2 = 10: attribute_id 11 → 10" in md
    assert "NEWMAKE\\|X" in md  # a pipe in data must not break the Markdown
    assert "release 2026_01" in md


def test_cli_diff_reads_run_history(catalogs: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    with connect(catalogs) as conn:
        history.ensure_schema(conn)
        history.start_run(conn, "r1", "2026_02", "sqlite:///x", "cli")
        report = diff.diff_report(conn)
        with conn.transaction():
            history.update_run(conn, "r1", diff=report)
        history.start_run(conn, "r2", "2026_03", "sqlite:///x", "cli")  # a later run without a diff

    assert diff.cli_diff(catalogs, None) == 0  # latest run that has one
    out = capsys.readouterr().out
    assert "Run: r1" in out and "# Release diff: 2026_02" in out and "TESLA → Tesla" in out

    assert diff.cli_diff(catalogs, "r1", as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["entities"]["makes"]["added"] == 1

    assert diff.cli_diff(catalogs, "r2") == 1
    assert "no release diff recorded for run r2" in capsys.readouterr().err


def test_cli_diff_falls_back_to_staging_without_history(catalogs: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert diff.cli_diff(catalogs, None) == 0
    assert "staging schema" in capsys.readouterr().out


def test_breaking_for_the_app(catalogs: Settings) -> None:
    """Ids live has and staging lacks, renames beyond letter case; no model_year table here, so
    model-year shrinkage is not compared (left out, not reported as zero)."""
    with connect(catalogs) as conn:
        with conn.transaction():
            conn.execute("UPDATE vehicles_staging.model SET model_name = 'Civic Type R' WHERE model_id = 11")
        report = diff.diff_report(conn, golden=False)
    b = report["breaking"]
    assert b["makes_removed"] == {"count": 1, "examples": [{"id": 3, "name": "OLDMAKE"}]}
    assert b["models_removed"]["count"] == 1 and b["models_removed"]["examples"][0]["id"] == 30
    assert b["makes_renamed"]["count"] == 0  # TESLA -> Tesla is letter case only
    assert b["models_renamed"] == {"count": 1, "examples": [{"id": 11, "old": "Civic", "new": "Civic Type R"}]}
    assert "model_years_shrunk" not in b and b["total"] == 3
    assert "decode_drift" not in report
    md = diff.to_markdown(report)
    assert "## Breaking for the app: 3" in md and "- 11: Civic → Civic Type R" in md
    from vehicle_etl.quality import gate

    check = gate.breaking_check(b)
    assert (check.name, check.passed, check.blocking, check.observed) == ("breaking_changes", False, False, 3)


def test_model_years_shrunk(catalogs: Settings) -> None:
    with connect(catalogs) as conn, conn.transaction():
        for schema, years in (("vehicles", (2020, 2021, 2022)), ("vehicles_staging", (2021,))):
            conn.execute(f"CREATE TABLE {schema}.model_year (make_id int, model_id int, model_year int)")
            for y in years:
                conn.execute(f"INSERT INTO {schema}.model_year VALUES (1, 10, %s), (1, 11, %s)", (y, y))
    with connect(catalogs) as conn:
        b = diff.diff_report(conn, golden=False)["breaking"]
    assert b["model_years_shrunk"]["count"] == 2
    assert b["model_years_shrunk"]["examples"][0] == {"id": 10, "name": "Accord", "years_lost": [2020, 2022]}


def test_decode_drift_skipped_without_decoder(catalogs: Settings) -> None:
    with connect(catalogs) as conn:
        report = diff.diff_report(conn)
    assert report["decode_drift"] == {"skipped": "live or staging has no decode_vins function"}
    assert "Not compared: live or staging has no decode_vins function" in diff.to_markdown(report)
