"""The DAG under a real Airflow deployment, the way operators run it (marker `airflow_real`).

One deployment per executor (tests/airflow_stack.py): PostgreSQL metadata database, api-server,
scheduler and dag-processor from this repo's .venv, each task in its own process; the
CeleryExecutor deployment adds two `airflow celery worker` processes on Redis. Runs are started
through the REST API v2 (token from the simple auth manager) and the CLI, with the defaults
(VEHICLE_ETL_WORKERS unset = 2 COPY worker processes). Assertions are on task states and on the
platform database (etl.run_history, vehicles.catalog_info), plus a real SMTP server and a real
HTTP receiver for the alerts. The tests of one deployment run in file order and share it.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from airflow_stack import AirflowStack, create_database, drop_database, free_port, pg_dsn, pg_params
from psycopg.rows import dict_row

from vehicle_etl.config import SAMPLE_DB

pytestmark = pytest.mark.airflow_real

DAG = "vpic_vehicle_etl"
TASKS = {"restore", "check_release", "extract_load", "transform", "key_checks", "build_keys", "validate", "swap",
         "marker", "publish"}
SAMPLE_URL = f"sqlite:///{SAMPLE_DB}"
RUN_TIMEOUT = 300  # one sample run takes well under a minute on a quiet machine


# -- loopback receivers for the alerts ---------------------------------------------------------
@dataclass
class Inbox:
    port: int
    messages: list[email.message.EmailMessage] = field(default_factory=list)


@dataclass
class Hooks:
    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    from aiosmtpd.controller import Controller

    box = Inbox(free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
            box.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def hooks() -> Iterator[Hooks]:
    got = Hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.posts.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    got.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/vehicle-etl"
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()


# -- deployments ---------------------------------------------------------------------------------
def platform_env(dbname: str, root: Path) -> dict[str, str]:
    p = pg_params()
    return {
        "MVP_PLATFORM_DB_HOST": p["host"], "MVP_PLATFORM_DB_PORT": p["port"], "MVP_PLATFORM_DB_NAME": dbname,
        "MVP_PLATFORM_DB_USER": p["user"], "MVP_PLATFORM_DB_PASSWORD": p["password"],
        "VEHICLE_ETL_HOME": str(root / "vehicle-etl"), "VEHICLE_ETL_MARKER_DIR": str(root / "markers"),
    }


@dataclass
class Deployment:
    stack: AirflowStack
    platform_db: str
    root: Path

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        with psycopg.connect(pg_dsn(self.platform_db), row_factory=dict_row) as conn:
            return conn.execute(sql, args).fetchall()

    def history(self, run_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM etl.run_history WHERE run_id = %s", run_id)
        return rows[0] if rows else None

    def live(self) -> dict[str, Any] | None:
        if not self.query("SELECT to_regclass('vehicles.catalog_info') AS t")[0]["t"]:
            return None
        rows = self.query("SELECT * FROM vehicles.catalog_info")
        assert len(rows) <= 1, rows
        return rows[0] if rows else None


@contextlib.contextmanager
def deployment(tmp: Path, extra_env: dict[str, str], **stack_args: Any) -> Iterator[Deployment]:
    dbname = create_database("vetl_airflow_platform")
    stack = AirflowStack(tmp, env={**platform_env(dbname, tmp), **extra_env}, **stack_args)
    try:
        stack.start()
        stack.wait_dag(DAG)
        yield Deployment(stack, dbname, tmp)
    finally:
        survivors = stack.stop()
        drop_database(dbname)
        assert not survivors, f"processes left after stop: {survivors}"


def alert_env(inbox: Inbox, hooks: Hooks) -> dict[str, str]:
    smtp = {"conn_type": "smtp", "host": "127.0.0.1", "port": inbox.port,
            "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 0, "timeout": 10,
                      "from_email": "vehicle-etl@example.test"}}
    return {"AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(smtp), "ALERT_EMAIL_TO": "oncall@example.test",
            "ALERT_WEBHOOK_URL": hooks.url}


@pytest.fixture(scope="class")
def local(tmp_path_factory: pytest.TempPathFactory, inbox: Inbox, hooks: Hooks) -> Iterator[Deployment]:
    with deployment(tmp_path_factory.mktemp("airflow-local"), alert_env(inbox, hooks)) as dep:
        yield dep


@pytest.fixture(scope="class")
def celery(tmp_path_factory: pytest.TempPathFactory, inbox: Inbox, hooks: Hooks) -> Iterator[Deployment]:
    """CeleryExecutor: Redis 127.0.0.1:6379 (DB 7, a queue of this deployment's own) as the broker, the
    PostgreSQL metadata database as the result backend, two `airflow celery worker` processes."""
    with deployment(tmp_path_factory.mktemp("airflow-celery"), alert_env(inbox, hooks), executor="CeleryExecutor",
                    celery_workers=2, redis_db=7) as dep:
        yield dep


# -- helpers -------------------------------------------------------------------------------------
def run_and_wait(dep: Deployment, conf: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    run = dep.stack.trigger(DAG, conf=conf)
    done = dep.stack.wait_run(DAG, run["dag_run_id"], RUN_TIMEOUT)
    return done, dep.stack.task_instances(DAG, run["dag_run_id"])


def assert_succeeded(dep: Deployment, run: dict[str, Any], tis: dict[str, dict[str, Any]]) -> None:
    states = {t: ti["state"] for t, ti in tis.items()}
    assert run["state"] == "success" and set(states.values()) == {"success"}, (
        f"{states}\n{dep.stack.diagnostics()}")
    assert set(tis) == TASKS
    assert all(ti["try_number"] == 1 for ti in tis.values()), {t: ti["try_number"] for t, ti in tis.items()}


def assert_own_processes(tis: dict[str, dict[str, Any]]) -> None:
    """Each task ran in a process of its own (the supervisor's child), none in the test's process."""
    pids = {t: ti["pid"] for t, ti in tis.items()}
    assert all(isinstance(p, int) and p > 0 for p in pids.values()), pids
    assert len(set(pids.values())) == len(pids), f"tasks shared a process: {pids}"
    assert os.getpid() not in pids.values()


def assert_live_matches(dep: Deployment, run_id: str) -> dict[str, Any]:
    """The live catalog is this run's build, and its run-history row says so, with true counts."""
    row = dep.history(run_id)
    live = dep.live()
    assert row is not None and row["status"] == "success", row
    assert live is not None and live["run_id"] == run_id, live
    assert live["release"] == (row["release"] or "unknown") and live["source"] == row["source"]
    assert row["finished_at"] is not None and set(row["durations"]) >= {"extract_load", "transform", "validate",
                                                                         "swap"}
    for table in ("make", "model", "pattern", "wmi", "model_year", "dropdown_make"):
        actual = dep.query(f"SELECT count(*) AS n FROM vehicles.{table}")[0]["n"]
        assert actual > 0 and row["counts"][table] == actual, (table, row["counts"].get(table), actual)
    return row


def wait_until(what: str, predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def scheduled_run(dep: Deployment) -> dict[str, dict[str, Any]]:
    """Unpause: the scheduler creates the latest interval's run, which builds the sample (2026_02)."""
    stack = dep.stack
    assert stack.api("GET", f"/api/v2/dags/{DAG}")["is_paused"] is True  # paused at creation
    stack.unpause(DAG)
    scheduled = stack.wait_for("the scheduled run", lambda: stack.runs(DAG, run_type="scheduled"), 90)
    assert len(scheduled) == 1  # catchup=False: only the latest interval
    run = stack.wait_run(DAG, scheduled[0]["dag_run_id"], RUN_TIMEOUT)
    tis = stack.task_instances(DAG, run["dag_run_id"])
    assert_succeeded(dep, run, tis)
    assert_own_processes(tis)
    row = assert_live_matches(dep, run["dag_run_id"])
    assert row["trigger"] == "scheduled" and row["release"] == "2026_02"
    return tis


def manual_run(dep: Deployment) -> dict[str, dict[str, Any]]:
    """A REST trigger with Params: source = the shipped sample, force (2026_02 is already live)."""
    run, tis = run_and_wait(dep, {"source": SAMPLE_URL, "force": True})
    assert_succeeded(dep, run, tis)
    assert_own_processes(tis)
    assert run["conf"] == {"source": SAMPLE_URL, "force": True}
    row = assert_live_matches(dep, run["dag_run_id"])
    assert row["trigger"] == "manual" and row["source"] == SAMPLE_URL
    previous = dep.query("SELECT run_id FROM vehicles_previous.catalog_info")
    assert previous and previous[0]["run_id"] != run["dag_run_id"]  # the earlier build kept as previous
    return tis


# -- LocalExecutor -------------------------------------------------------------------------------
class TestLocalExecutor:
    """LocalExecutor (the default deployment); the tests share one deployment, in file order."""

    def test_unpause_runs_the_scheduled_run_each_task_in_its_own_process(self, local: Deployment) -> None:
        scheduled_run(local)

    def test_manual_run_with_params_matches_live_catalog_and_history(self, local: Deployment) -> None:
        manual_run(local)

    def test_backfill_builds_the_release_named_in_the_conf(self, local: Deployment) -> None:
        """`airflow backfill create` over two weekly dates: one run per logical date, each builds 2026_02."""
        stack = local.stack
        conf = {"release": "2026_02", "force": True}
        # As docs/RUNBOOK.md says: --max-active-runs 1. A backfill does not obey the DAG's
        # max_active_runs (Airflow's backfill default is 10 at once), and two runs of this DAG at a
        # time collide on the pipeline lock and on the one staging schema.
        stack.cli("backfill", "create", "--dag-id", DAG, "--from-date", "2026-01-04", "--to-date", "2026-01-11",
                  "--dag-run-conf", json.dumps(conf), "--max-active-runs", "1", timeout=120)

        def all_finished() -> list[dict[str, Any]] | None:
            runs = stack.runs(DAG, run_type="backfill")
            for r in runs:  # a retry is minutes away: fail now, with the diagnostics
                retrying = [t for t, ti in stack.task_instances(DAG, r["dag_run_id"]).items()
                            if ti["state"] == "up_for_retry"]
                assert not retrying, f"{r['dag_run_id']}: {retrying} wait for a retry\n{stack.diagnostics()}"
            return runs if len(runs) >= 2 and all(r["state"] in ("success", "failed") for r in runs) else None

        runs = stack.wait_for("the backfill's runs", all_finished, 2 * RUN_TIMEOUT, every=3)
        assert sorted(r["logical_date"][:10] for r in runs) == ["2026-01-04", "2026-01-11"]
        for r in runs:
            assert_succeeded(local, r, stack.task_instances(DAG, r["dag_run_id"]))
            assert r["conf"] == conf
            row = local.history(r["dag_run_id"])
            assert row is not None and (row["status"], row["release"], row["trigger"]) == ("success", "2026_02",
                                                                                           "backfill")
        live = local.live()
        assert live is not None and live["release"] == "2026_02" and live["run_id"] in {r["dag_run_id"] for r in runs}


    def test_missing_source_fails_in_the_first_task_once_and_alerts(self, local: Deployment, inbox: Inbox,
                                                                    hooks: Hooks) -> None:
        before = local.live()
        missing = local.root / "absent" / "vPICList_lite_2026_01.db"
        mails, posts = len(inbox.messages), len(hooks.posts)
        run, tis = run_and_wait(local, {"source": f"sqlite:///{missing}"})
        assert run["state"] == "failed"
        assert (tis["restore"]["state"], tis["restore"]["try_number"]) == ("failed", 1), tis["restore"]
        assert {tis[t]["state"] for t in TASKS - {"restore"}} <= {"upstream_failed", None}
        assert local.live() == before  # nothing changed live
        mail = wait_until("the alert e-mail", lambda: inbox.messages[mails:], 60)[0]
        assert "FAILED vpic_vehicle_etl.restore" in mail["Subject"]
        assert str(missing) in mail.get_body(("html", "plain")).get_content()
        post = wait_until("the alert webhook", lambda: hooks.posts[posts:], 60)[0]
        assert "vpic_vehicle_etl.restore" in post["text"] and str(missing) in post["text"]


    def test_release_no_source_can_provide_is_rejected_before_extraction(self, local: Deployment) -> None:
        before = local.live()
        run, tis = run_and_wait(local, {"source": SAMPLE_URL, "release": "2031_01"})
        assert run["state"] == "failed"
        assert (tis["restore"]["state"], tis["restore"]["try_number"]) == ("failed", 1), tis["restore"]
        assert tis["extract_load"]["state"] == "upstream_failed"
        assert local.live() == before
        assert not local.query("SELECT run_id FROM etl.run_history WHERE release = '2031_01' AND status = 'success'")


    def test_unknown_release_is_recorded_as_unknown_and_never_treated_as_live(self, local: Deployment) -> None:
        # Nothing tells the release: no YYYY_MM in the file name, not the shipped sample's path,
        # no change stamps (CreatedOn/UpdatedOn) to date it by.
        nameless = local.root / "copy-without-release-name.db"
        shutil.copyfile(SAMPLE_DB, nameless)
        with contextlib.closing(sqlite3.connect(nameless)) as db, db:
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                columns = {row[1] for row in db.execute(f'PRAGMA table_info("{table}")')}
                for column in columns & {"CreatedOn", "UpdatedOn"}:
                    db.execute(f'UPDATE "{table}" SET "{column}" = NULL')
        conf = {"source": f"sqlite:///{nameless}"}
        first, tis = run_and_wait(local, conf)
        assert_succeeded(local, first, tis)
        row = assert_live_matches(local, first["dag_run_id"])
        assert row["release"] == "unknown"
        # The same source again, without force: an unknown release is never "already live", so
        # check_release lets the run go on and extract_load runs (it is not skipped). The rest of
        # that run is the same build again: the deployment is stopped once extract_load is done.
        second = local.stack.trigger(DAG, conf=conf)["dag_run_id"]

        def extracted() -> dict[str, dict[str, Any]] | None:
            tis = local.stack.task_instances(DAG, second)
            assert tis["check_release"]["state"] not in ("skipped", "failed"), tis["check_release"]
            assert tis["extract_load"]["state"] not in ("skipped", "failed", "upstream_failed"), tis["extract_load"]
            return tis if tis["extract_load"]["state"] == "success" else None

        tis = local.stack.wait_for("the second run's extract_load", extracted, RUN_TIMEOUT, every=2)
        assert tis["check_release"]["state"] == "success"
        row = local.history(second)
        assert row is not None and row["release"] == "unknown" and row["status"] != "noop", row


class TestCeleryExecutor:
    """The same scheduled and manual runs through Redis and two Celery workers."""

    @staticmethod
    def celery_results(dep: Deployment) -> int:
        """Tasks the Celery result backend (the metadata database) recorded as SUCCESS."""
        with psycopg.connect(pg_dsn(dep.stack.metadata_db)) as conn:
            if conn.execute("SELECT to_regclass('celery_taskmeta')").fetchone()[0] is None:  # type: ignore[index]
                return 0
            return int(conn.execute("SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")
                       .fetchone()[0])  # type: ignore[index]

    def assert_all_through_celery(self, dep: Deployment, tis: dict[str, dict[str, Any]]) -> None:
        assert {ti["queue"] for ti in tis.values()} == {dep.stack.queue}  # only the two workers consume it
        # Every task of every successful run came back through Celery's result backend (written just
        # after the task reports its state to Airflow, so it can trail the run's end by a moment).
        runs = [r for r in dep.stack.runs(DAG) if r["state"] == "success"]
        wait_until("the Celery results", lambda: self.celery_results(dep) >= len(TASKS) * len(runs), 60)

    def test_scheduled_run_on_celery_workers(self, celery: Deployment) -> None:
        self.assert_all_through_celery(celery, scheduled_run(celery))

    def test_manual_run_on_celery_workers(self, celery: Deployment) -> None:
        self.assert_all_through_celery(celery, manual_run(celery))
