"""The operator's page (vehicle_etl/serving/catalog_page.py) against a real platform database built by the
pipeline's own path: what it shows, that it only reads, and that it escapes what the data says.

The page inside a real Airflow api-server, in a real browser: tests/integration/test_catalog_page_browser.py.
"""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import create_database, drop_database, settings_for
from fastapi.testclient import TestClient

from vehicle_etl import pipeline
from vehicle_etl.config import SAMPLE_DB, Settings
from vehicle_etl.platform_db import connect
from vehicle_etl.serving import catalog_page
from vehicle_etl.serving.catalog_page import PageError, clean_vin, create_app, gate_table, read_only

GOLDEN_VIN = "19XCY1F20RA000001"  # HONDA Accord 2024 (tests/golden_sample.csv), in the sample
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def build_two_releases(settings: Settings, tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two real runs: the sample as 2026_02, then a copy with one VIN schema renamed to markup."""
    first = pipeline.build_catalog(settings, release="2026_02")
    changed = tmp / "sample_changed.db"
    shutil.copy(SAMPLE_DB, changed)
    with sqlite3.connect(changed) as raw:
        raw.execute("UPDATE VinSchema SET Name = Name || ? WHERE Id = (SELECT min(Id) FROM VinSchema)", (HOSTILE,))
    second = pipeline.build_catalog(settings, source=f"sqlite:///{changed}", release="2026_03")
    assert first["status"] == second["status"] == "success"
    return first, second


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, dict[str, Any]]]:
    name = create_database("vetl_page")
    tmp = tmp_path_factory.mktemp("page")
    try:
        with pytest.MonkeyPatch.context() as mp:
            settings = settings_for(name, tmp, mp)
            _, second = build_two_releases(settings, tmp)
            yield settings, second
    finally:
        drop_database(name)


@pytest.fixture(scope="module")
def client(catalog: tuple[Settings, dict[str, Any]]) -> TestClient:
    settings, _ = catalog
    return TestClient(create_app(settings=lambda: settings))


def test_page_shows_live_release_runs_gate_and_diff(client: TestClient, catalog: tuple[Settings, dict]) -> None:
    _, second = catalog
    r = client.get("/")
    assert r.status_code == 200
    html = r.text
    assert "2026_03" in html and second["run_id"] in html
    assert html.count('class="pill s-success"') >= 3  # two runs listed + the selected run
    # The gate of the latest run, failures first: the sample's tolerated faults lead the table.
    gate = html[html.index('data-testid="gate"'):html.index('data-testid="gate-passed"')]
    assert "pill v-warn" in gate and "pill v-ok" not in gate
    assert "no_stray_whitespace_pattern_attribute_id" in gate
    # The diff: one schema changed, shown with its old and new name, escaped.
    diff = html[html.index('id="diff"'):]
    assert "2026_02" in diff  # the release that was live then
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in diff
    assert "<script" not in html and "<img src=x" not in html
    assert "script-src" not in r.headers["content-security-policy"]  # default-src 'none': no scripts at all
    assert "default-src 'none'" in r.headers["content-security-policy"]


def test_gate_table_orders_blocking_failures_then_warnings_then_passes() -> None:
    checks = [{"name": "a", "passed": True}, {"name": "b", "passed": False, "blocking": False},
              {"name": "c", "passed": False, "blocking": True}, {"name": "d", "passed": True},
              {"name": "e", "passed": False, "blocking": False}]
    assert [(c["name"], c["verdict"]) for c in gate_table(checks)] == [
        ("c", "FAIL"), ("b", "warn"), ("e", "warn"), ("a", "ok"), ("d", "ok")]


def test_an_older_run_is_selected_by_id_and_an_unknown_id_says_so(client: TestClient, catalog: tuple) -> None:
    settings, _ = catalog
    with connect(settings) as conn:
        first_id = conn.execute("SELECT run_id FROM etl.run_history WHERE release = '2026_02'").fetchone()[0]
    html = client.get("/", params={"run": first_id}).text
    run_section = html[html.index('id="run"'):]
    assert first_id in run_section and "No live catalog then: everything was new" in run_section
    html = client.get("/", params={"run": "no-such-run<b>"}).text
    assert "No run no-such-run&lt;b&gt; in etl.run_history" in html


def test_decode_box_answers_from_the_live_catalog(client: TestClient) -> None:
    html = client.get("/", params={"vin": f" {GOLDEN_VIN.lower()} "}).text
    result = html[html.index('data-testid="decode-result"'):]
    assert "<dt>Make</dt><dd>HONDA</dd>" in result and "<dt>Model</dt><dd>Accord</dd>" in result
    assert "<dt>ModelYear</dt><dd>2024</dd>" in result
    assert "release 2026_03" in html


@pytest.mark.parametrize("bad", ["<b>x</b>", "1HGCM82633A00435299", "VIN WITH SPACES AND ?"])
def test_a_bad_vin_is_refused_with_a_reason_and_the_rest_of_the_page_renders(client: TestClient, bad: str) -> None:
    html = client.get("/", params={"vin": bad}).text
    assert 'data-testid="decode-error"' in html and "1 to 17 letters and digits" in html
    assert 'data-testid="runs"' in html and "<b>x</b>" not in html


def test_clean_vin_normalises() -> None:
    assert clean_vin(" 19xcy1f20-ra000001 ") == GOLDEN_VIN
    with pytest.raises(PageError):
        clean_vin("")


def test_reads_are_read_only_and_the_catalog_is_read_as_the_reader_role(catalog: tuple) -> None:
    settings, _ = catalog
    with connect(settings) as conn:
        with read_only(conn, as_reader=True):
            assert conn.execute("SELECT current_user").fetchone()[0] == "mvp_platform_reader"
            assert conn.execute("SHOW transaction_read_only").fetchone()[0] == "on"
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT count(*) FROM etl.run_history")
        assert conn.execute("SELECT current_user").fetchone()[0] != "mvp_platform_reader"  # SET LOCAL ended
        with read_only(conn), pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM etl.run_history")
        assert conn.execute("SELECT count(*) FROM etl.run_history").fetchone()[0] == 2


def test_a_platform_user_outside_the_reader_role_gets_the_grant_to_run(catalog: tuple) -> None:
    settings, _ = catalog
    role = f"vetl_page_{uuid.uuid4().hex[:8]}"
    with connect(settings) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'GRANT USAGE ON SCHEMA etl TO "{role}"')
        admin.execute(f'GRANT SELECT ON etl.run_history TO "{role}"')
        db = admin.info.dbname
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MVP_PLATFORM_DB_USER", role)
            mp.setenv("MVP_PLATFORM_DB_NAME", db)
            page = catalog_page.gather(Settings(), vin=GOLDEN_VIN)
        assert page.live_error is not None and f'GRANT mvp_platform_reader TO "{role}"' in page.live_error
        assert page.decode_error == page.live_error
        assert len(page.runs) == 2  # run history still readable: it does not need the role
    finally:
        with connect(settings) as admin:
            admin.execute(f'REVOKE ALL ON etl.run_history FROM "{role}"')
            admin.execute(f'REVOKE ALL ON SCHEMA etl FROM "{role}"')
            admin.execute(f'DROP ROLE "{role}"')


def test_an_unreachable_database_is_reported_on_the_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(f"vetl_missing_{uuid.uuid4().hex[:8]}", tmp_path, monkeypatch)
    r = TestClient(create_app(settings=lambda: settings)).get("/")
    assert r.status_code == 200
    assert "cannot connect to the platform database" in r.text and "does not exist" in r.text


def test_an_empty_database_says_no_release_and_no_runs(platform_db: Settings) -> None:
    html = TestClient(create_app(settings=lambda: platform_db)).get("/", params={"vin": GOLDEN_VIN}).text
    assert "No runs recorded" in html
    # The reader role is cluster-wide: made by any earlier run on this server, or not yet.
    assert "No live catalog yet" in html or "does not exist yet: it is created by the first ETL run" in html


def test_guard_dependencies_protect_the_page_and_browsers_are_sent_to_login(catalog: tuple) -> None:
    from fastapi import HTTPException

    settings, _ = catalog

    def deny() -> None:
        raise HTTPException(401, "Not authenticated")

    app = create_app(dependencies=[deny], login_url=lambda req: "/auth/login?next=x", settings=lambda: settings)
    c = TestClient(app)
    assert c.get("/").status_code == 401
    r = c.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/auth/login?next=x"
    assert c.get("/icon.svg").status_code == 200  # the nav icon carries no data
