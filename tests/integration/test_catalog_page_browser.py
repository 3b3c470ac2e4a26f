"""The operator's page as an operator reaches it: a real Airflow api-server with the repo's plugin,
Debian's Chromium driven headless by Selenium through /usr/bin/chromedriver (no browser download),
the real login form of Airflow's simple auth manager, the page in Airflow's navigation.

The platform database is built by the pipeline's plain Python path (two releases, the second with
a VIN schema renamed to markup). `make test` installs Chromium first (scripts/ensure_chromium.sh);
without it this test fails and says so. CATALOG_PAGE_SCREENSHOTS=<dir> keeps the screenshots
(docs/img/ holds the ones in the docs).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import create_database, drop_database, settings_for
from test_catalog_page import GOLDEN_VIN, HOSTILE, build_two_releases
from ui_stack import AIRFLOW, ApiServer, api_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, dict[str, Any]]]:
    name = create_database("vetl_page_ui")
    tmp = tmp_path_factory.mktemp("page_ui")
    try:
        with pytest.MonkeyPatch.context() as mp:
            settings = settings_for(name, tmp, mp)
            _, latest = build_two_releases(settings, tmp)
            platform_env = {k: v for k, v in os.environ.items()
                            if k.startswith(("MVP_PLATFORM_DB_", "VEHICLE_ETL_"))}
            with api_server(tmp / "airflow", platform_env) as server:
                yield server, latest
    finally:
        drop_database(name)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    assert not missing, f"{', '.join(missing)} missing: run scripts/ensure_chromium.sh (make test does)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1440,1000", f"--user-data-dir={profile}", "--no-first-run"):
        options.add_argument(arg)
    # chromedriver and the browser it starts in one process group of their own, stopped by its id.
    service = Service(str(CHROMEDRIVER), popen_kw={"start_new_session": True})
    driver = webdriver.Chrome(service=service, options=options)
    pgid = service.process.pid
    try:
        yield driver
    finally:
        with contextlib.suppress(Exception):
            driver.quit()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def http(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, dict, bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    req = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def screenshot(driver: Any, name: str, tmp: Path) -> Path:
    """A full-page PNG (the window grown to the page's height) in CATALOG_PAGE_SCREENSHOTS or tmp."""
    target = Path(os.environ.get("CATALOG_PAGE_SCREENSHOTS") or tmp) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1440, max(900, min(int(height) + 160, 4000)))
    driver.save_screenshot(str(target))
    driver.set_window_size(1440, 1000)
    return target


def test_the_page_is_behind_airflow_auth(stack: tuple[ApiServer, dict]) -> None:
    server, latest = stack
    page = f"{server.url}/vehicle-catalog/"
    assert http(page)[0] == 401
    status, headers, _ = http(page, {"Accept": "text/html"})
    assert status == 303 and headers["location"].startswith("/auth/login?next=")
    assert http(page, {"Authorization": "Bearer not-a-token"})[0] in (401, 403)
    status, _, body = http(f"{server.url}/auth/token", {"Content-Type": "application/json"},
                           json.dumps({"username": server.user, "password": server.password}).encode())
    assert status == 201, body
    token = json.loads(body)["access_token"]
    status, _, body = http(page, {"Authorization": f"Bearer {token}"})
    assert status == 200 and latest["run_id"].encode() in body


def test_operator_logs_in_sees_the_latest_run_and_decodes_a_vin(
        stack: tuple[ApiServer, dict], browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    server, latest = stack
    wait = WebDriverWait(browser, 60)
    browser.get(f"{server.url}/vehicle-catalog/")
    # Not logged in: Airflow's own login form, then back to the page.
    wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(server.user)
    browser.find_element(By.NAME, "password").send_keys(server.password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=live-release]")))
    assert browser.current_url == f"{server.url}/vehicle-catalog/"

    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=live-release]").text == "2026_03"
    runs = browser.find_elements(By.CSS_SELECTOR, "[data-testid=runs] tbody tr")
    assert len(runs) == 2 and latest["run_id"] in runs[0].text and "success" in runs[0].text
    assert "extract_load" in runs[0].text and "pattern" in runs[0].text  # step durations, row counts
    # The latest run's gate, failures first.
    first_check = browser.find_element(By.CSS_SELECTOR, "[data-testid=gate] tbody tr")
    assert first_check.find_element(By.CSS_SELECTOR, ".pill").text == "warn"
    summary = browser.find_element(By.CSS_SELECTOR, "[data-testid=gate-summary]").text
    warnings = len(browser.find_elements(By.CSS_SELECTOR, "[data-testid=gate] .v-warn"))
    assert warnings > 0 and f"0 blocking failures, {warnings} tolerated" in summary
    # Its release diff: the renamed schema, the markup shown as text and never run.
    diff_rows = {r.find_elements(By.TAG_NAME, "td")[0].text: r.text
                 for r in browser.find_elements(By.CSS_SELECTOR, "[data-testid=diff] tbody tr")}
    assert diff_rows["schemas"].split()[-3:] == ["0", "0", "1"]
    changed = browser.find_element(By.CSS_SELECTOR, "[data-testid=diff-schemas-changed]").text
    assert HOSTILE in changed
    assert browser.execute_script("return window.__pwned === undefined")
    screenshot(browser, "catalog_page.png", tmp_path)

    # The decode box answers from the live catalog.
    box = browser.find_element(By.NAME, "vin")
    box.clear()
    box.send_keys(GOLDEN_VIN)
    box.submit()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=decode-result]")))
    result = browser.find_element(By.CSS_SELECTOR, "[data-testid=decode-result]").text
    assert "HONDA" in result and "Accord" in result and "2024" in result
    screenshot(browser, "catalog_page_decode.png", tmp_path)


def test_the_page_is_in_airflows_navigation(stack: tuple[ApiServer, dict], browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    server, _ = stack
    wait = WebDriverWait(browser, 60)
    browser.get(f"{server.url}/")  # logged in by the previous test (same browser session)
    if browser.find_elements(By.NAME, "username"):
        browser.find_element(By.NAME, "username").send_keys(server.user)
        browser.find_element(By.NAME, "password").send_keys(server.password)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    link = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "a[href$='plugin/vehicle-catalog']")))
    assert "Vehicle catalog" in (link.text + " " + (link.get_attribute("title") or "")
                                 + " " + (link.get_attribute("aria-label") or "") + link.get_attribute("innerHTML"))
    link.click()
    frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Vehicle catalog']")))
    browser.switch_to.frame(frame)
    try:
        release = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=live-release]")))
        assert release.text == "2026_03"
    finally:
        browser.switch_to.default_content()
    browser.set_window_size(1440, 900)
    target = Path(os.environ.get("CATALOG_PAGE_SCREENSHOTS") or tmp_path) / "catalog_page_in_airflow.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(target))


def test_each_dag_run_has_a_tab_with_its_gate(stack: tuple[ApiServer, dict], browser: Any, tmp_path: Path) -> None:
    """The dag_run view: a DAG run of vpic_vehicle_etl whose id is a run in etl.run_history (the
    latest one) shows the page opened on that run inside the run's own page."""
    import subprocess

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    server, latest = stack
    subprocess.run([str(AIRFLOW), "dags", "reserialize"],
                   env=server.env, check=True, capture_output=True, timeout=300)
    status, _, body = http(f"{server.url}/auth/token", {"Content-Type": "application/json"},
                           json.dumps({"username": server.user, "password": server.password}).encode())
    token = json.loads(body)["access_token"]
    # The DAG is paused (nothing runs here: no scheduler); the queued run exists, which is all the tab needs.
    status, _, body = http(f"{server.url}/api/v2/dags/vpic_vehicle_etl/dagRuns",
                           {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
                           json.dumps({"dag_run_id": latest["run_id"], "logical_date": None}).encode())
    assert status == 200, body
    browser.get(f"{server.url}/dags/vpic_vehicle_etl/runs/{latest['run_id']}/plugin/vehicle-catalog-run")
    wait = WebDriverWait(browser, 60)
    frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Vehicle catalog']")))
    assert "run=" + latest["run_id"] in (frame.get_attribute("src") or "")
    browser.switch_to.frame(frame)
    try:
        heading = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#run h2")))
        assert latest["run_id"] in heading.text
        assert re.match(r"\d+ checks: 0 blocking failures",
                        browser.find_element(By.CSS_SELECTOR, "[data-testid=gate-summary]").text)
    finally:
        browser.switch_to.default_content()
    target = Path(os.environ.get("CATALOG_PAGE_SCREENSHOTS") or tmp_path) / "catalog_page_dag_run_tab.png"
    browser.save_screenshot(str(target))
