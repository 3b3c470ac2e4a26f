"""A real Airflow 3 deployment for tests: metadata DB on PostgreSQL, api-server, scheduler,
dag-processor and (optionally) Celery workers, started from this repo's .venv.

Reusable outside the integration suite (e.g. a browser test):

    with AirflowStack(tmp_path, env={"MVP_PLATFORM_DB_NAME": ...}) as stack:
        stack.wait_dag("vpic_vehicle_etl")
        run = stack.trigger("vpic_vehicle_etl", conf={"force": True})
        stack.wait_run("vpic_vehicle_etl", run["dag_run_id"])

Everything binds loopback on ports picked free at start; every process is started in its own
process group and killed by process group on stop(), which also runs at interpreter exit
(atexit) so that a failing or interrupted test leaves nothing behind. Each component's output
goes to <root>/logs/<component>.log; diagnostics() returns their tails and the failed tasks' logs.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
ADMIN_PG = os.environ.get("VEHICLE_ETL_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
FINISHED = {"success", "failed"}
_LIVE: set[AirflowStack] = set()  # stacks still running, stopped at exit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_database(prefix: str, template: str | None = None) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


_TEMPLATE: list[str] = []


def migrated_template(timeout: float = 300) -> str:
    """A metadata database migrated once per test process (`airflow db migrate`, tens of seconds);
    each stack gets a copy of it (CREATE DATABASE ... TEMPLATE, about a second). Dropped at exit."""
    if not _TEMPLATE:
        name = create_database("vetl_airflow_template")
        home = Path(tempfile.mkdtemp(prefix="vetl-airflow-migrate-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
        env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _sqlalchemy_url(name),
                    "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"})
        try:
            done = subprocess.run(["airflow", "db", "migrate"], env=env, capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL, start_new_session=True)
        except subprocess.TimeoutExpired as exc:
            drop_database(name)
            raise StackError(f"airflow db migrate timed out after {timeout:.0f}s") from exc
        finally:
            shutil.rmtree(home, ignore_errors=True)
        if done.returncode != 0:
            drop_database(name)
            raise StackError(f"airflow db migrate exited {done.returncode}\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        _TEMPLATE.append(name)
    return _TEMPLATE[0]


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_PG, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_params() -> dict[str, str]:
    info = psycopg.conninfo.conninfo_to_dict(ADMIN_PG)
    return {"host": str(info.get("host", "127.0.0.1")), "port": str(info.get("port", "5432")),
            "user": str(info.get("user", "postgres")), "password": str(info.get("password", ""))}


def pg_dsn(dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(ADMIN_PG)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)


def _sqlalchemy_url(dbname: str, driver: str = "postgresql+psycopg2") -> str:
    p = pg_params()
    auth = p["user"] + (f":{p['password']}" if p["password"] else "")
    return f"{driver}://{auth}@{p['host']}:{p['port']}/{dbname}"


def session_members(sid: int) -> dict[int, int]:
    """pid -> process group of every live (non-zombie) process in session `sid`, from /proc.

    A component is started as a session leader; Airflow's task supervisor puts each task process
    in a process group of its own, but all stay in the component's session.
    """
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            out[int(entry.name)] = int(fields[2])
    return out


@dataclass
class Component:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


class StackError(AssertionError):
    """A wait timed out or a component died; the message carries the diagnostics."""


class AirflowStack:
    """One Airflow deployment in a temporary folder. See the module docstring."""

    def __init__(
        self,
        root: Path,
        *,
        executor: str = "LocalExecutor",
        celery_workers: int = 0,
        redis_db: int = 7,
        env: dict[str, str] | None = None,
        user: str = "admin",
        dags_folder: Path = REPO / "dags",
    ) -> None:
        self.root = Path(root)
        self.home = self.root / "airflow_home"
        self.logs = self.root / "logs"
        self.executor = executor
        self.celery_workers = celery_workers
        self.user = user
        self.password = secrets.token_urlsafe(12)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.metadata_db = create_database("vetl_airflow_meta", template=migrated_template())
        self.components: list[Component] = []
        self._token: str | None = None
        self.queue = f"vetl_{uuid.uuid4().hex[:8]}"  # Celery: this stack's own queue on the shared broker
        self.env = self._environment(redis_db, dags_folder, env or {})

    # -- configuration --------------------------------------------------------------------------
    def _environment(self, redis_db: int, dags_folder: Path, extra: dict[str, str]) -> dict[str, str]:
        # Nothing of the caller's Airflow configuration leaks in (make test exports its own).
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AIRFLOW_", "AIRFLOW__", "MVP_PLATFORM_", "VPIC_", "VEHICLE_ETL_", "ALERT_"))
               and k not in ("PYTHONPATH",)}
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        passwords = self.root / "simple_auth_passwords.json"
        passwords.write_text(json.dumps({self.user: self.password}))
        meta = _sqlalchemy_url(self.metadata_db)
        env.update({
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",  # as an activated venv would
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta,
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__FERNET_KEY": "",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            # As scripts/airflow-env.sh sets for a local install: on a busy machine the task-start
            # call to the Execution API has taken 50 s, past the default timeout.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "90",
            # Parse the DAG file promptly after start; the default intervals are minutes.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        })
        if self.executor == "CeleryExecutor":
            redis_host = os.environ.get("VEHICLE_ETL_TEST_REDIS", "redis://127.0.0.1:6379").rstrip("/")
            env.update({
                "AIRFLOW__CELERY__BROKER_URL": f"{redis_host}/{redis_db}",
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + _sqlalchemy_url(self.metadata_db, "postgresql"),
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            })
        env.update(extra)
        return env

    # -- life cycle -----------------------------------------------------------------------------
    def __enter__(self) -> AirflowStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 240) -> None:
        _LIVE.add(self)
        _exit_on_sigterm()
        deadline = time.monotonic() + timeout
        # The metadata database is a copy of the template `airflow db migrate` made (migrated_template).
        self._spawn("api-server", ["airflow", "api-server", "--host", "127.0.0.1", "--port", str(self.port)])
        self._spawn("scheduler", ["airflow", "scheduler"])
        self._spawn("dag-processor", ["airflow", "dag-processor"])
        for i in range(1, self.celery_workers + 1):
            self._spawn(f"celery-worker-{i}",
                        ["airflow", "celery", "worker", "--queues", self.queue,
                         "--celery-hostname", f"{self.queue}_w{i}@%h", "--concurrency", "2"],
                        env={"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())})
        self.wait_for("the api-server and scheduler to be healthy", self._healthy,
                      max(10.0, deadline - time.monotonic()))
        for i in range(1, self.celery_workers + 1):
            log = self.logs / f"celery-worker-{i}.log"
            self.wait_for(f"celery worker {i} to be ready",
                          lambda log=log: " ready." in log.read_text(errors="replace"),
                          max(10.0, deadline - time.monotonic()))

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Component:
        log = self.logs / f"{name}.log"
        fh = log.open("ab")
        # start_new_session: its own process group (and session), so stop() can kill the whole
        # tree (LocalExecutor workers, task supervisors, task processes, COPY workers) at once.
        proc = subprocess.Popen(argv, cwd=self.root, env={**self.env, **(env or {})}, stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        fh.close()
        comp = Component(name, proc, log)
        self.components.append(comp)
        return comp

    def stop(self, grace: float = 15) -> list[int]:
        """SIGTERM every process group, SIGKILL what is left after `grace`; returns survivors (none)."""
        for comp in self.components:
            _signal_session(comp.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for comp in self.components:
            while session_members(comp.proc.pid) and time.monotonic() < deadline:
                comp.proc.poll()
                time.sleep(0.2)
            _signal_session(comp.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                comp.proc.wait(timeout=10)
        time.sleep(0.3)
        survivors = [pid for comp in self.components for pid in session_members(comp.proc.pid)]
        if self in _LIVE:
            _LIVE.discard(self)
            try:
                drop_database(self.metadata_db)
            except Exception as exc:  # the server may be what failed; nothing else to clean
                print(f"could not drop {self.metadata_db}: {exc}", file=sys.stderr)
        return survivors

    def dead_components(self) -> list[str]:
        return [c.name for c in self.components if c.proc.poll() is not None]

    # -- waiting --------------------------------------------------------------------------------
    def wait_for(self, what: str, predicate: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            dead = self.dead_components()
            if dead:
                raise StackError(f"{', '.join(dead)} exited while waiting for {what}\n{self.diagnostics()}")
            try:
                result = predicate()
                if result:
                    return result
            except (httpx.HTTPError, OSError, psycopg.Error) as exc:
                last_error = exc
            time.sleep(every)
        raise StackError(f"timed out after {timeout:.0f}s waiting for {what}"
                         f"{f' (last error: {last_error})' if last_error else ''}\n{self.diagnostics()}")

    def _healthy(self) -> bool:
        r = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        if r.status_code != 200:
            return False
        h = r.json()
        return (h.get("metadatabase", {}).get("status") == "healthy"
                and h.get("scheduler", {}).get("status") == "healthy"
                and (h.get("dag_processor") or {}).get("status") == "healthy")

    def wait_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        """Until the dag-processor has parsed `dag_id` (and there is no import error)."""

        def parsed() -> dict[str, Any] | None:
            errors = self.api("GET", "/api/v2/importErrors").get("import_errors", [])
            if errors:
                raise StackError(f"DAG import errors: {errors}")
            r = self.request("GET", f"/api/v2/dags/{dag_id}")
            return r.json() if r.status_code == 200 else None

        return self.wait_for(f"DAG {dag_id} to be parsed", parsed, timeout, every=2)

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300, fail_on_retry: bool = True) -> dict[str, Any]:
        """Until the run is success or failed; returns the DAG run (REST representation).

        fail_on_retry: a task waiting for a retry (minutes away) ends the wait at once, with diagnostics.
        """

        def finished() -> dict[str, Any] | None:
            run = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in FINISHED:
                return run
            if fail_on_retry:
                retrying = [t for t, ti in self.task_instances(dag_id, run_id).items() if ti["state"] == "up_for_retry"]
                if retrying:
                    raise StackError(f"run {run_id}: {', '.join(retrying)} failed and waits for a retry\n"
                                     f"{self.diagnostics()}")
            return None

        return self.wait_for(f"run {run_id} of {dag_id} to finish", finished, timeout, every=2)

    # -- REST API v2 ----------------------------------------------------------------------------
    def token(self) -> str:
        if self._token is None:
            r = httpx.post(f"{self.base_url}/auth/token", json={"username": self.user, "password": self.password},
                           timeout=30)
            r.raise_for_status()
            self._token = str(r.json()["access_token"])
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        r = httpx.request(method, f"{self.base_url}{path}", timeout=30,
                          headers={"Authorization": f"Bearer {self.token()}"}, **kwargs)
        if r.status_code == 401:  # the token expired on a long run: log in again once
            self._token = None
            r = httpx.request(method, f"{self.base_url}{path}", timeout=30,
                              headers={"Authorization": f"Bearer {self.token()}"}, **kwargs)
        return r

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        r = self.request(method, path, **kwargs)
        if r.status_code >= 400:
            raise StackError(f"{method} {path} -> HTTP {r.status_code}: {r.text[:2000]}")
        return r.json() if r.content else None

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": True})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return dict(self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body))

    def runs(self, dag_id: str, **params: Any) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns",
                             params={"limit": 100, **params})["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """task_id -> task instance (state, try_number, pid, hostname, start/end dates)."""
        tis = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                       params={"limit": 100})["task_instances"]
        return {ti["task_id"]: ti for ti in tis}

    # -- CLI ------------------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`airflow <args>` against this deployment (same environment as its components)."""
        try:
            done = subprocess.run(["airflow", *args], cwd=self.root, env=self.env, capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL, start_new_session=True)
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"airflow {' '.join(args)} timed out after {timeout:.0f}s\n{self.diagnostics()}") from exc
        if check and done.returncode != 0:
            raise StackError(f"airflow {' '.join(args)} exited {done.returncode}\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    # -- diagnostics ----------------------------------------------------------------------------
    def task_logs(self, patterns: Iterable[str] = ("*",)) -> dict[str, str]:
        base = self.home / "logs"
        found: dict[str, str] = {}
        for pattern in patterns:
            for path in sorted(base.rglob(f"{pattern}.log")) if base.is_dir() else []:
                found[str(path.relative_to(base))] = path.read_text(errors="replace")
        return found

    def diagnostics(self, lines: int = 60) -> str:
        out = [f"== Airflow stack in {self.root} (api {self.base_url}, metadata db {self.metadata_db})"]
        for comp in self.components:
            state = "running" if comp.proc.poll() is None else f"exited {comp.proc.returncode}"
            tail = comp.log.read_text(errors="replace").splitlines()[-lines:] if comp.log.exists() else []
            out.append(f"-- {comp.name} ({state}), last {len(tail)} lines of {comp.log}:")
            out.extend(tail)
        for name, text in self.task_logs().items():
            if '"level":"error"' in text or "Task failed" in text or "ERROR" in text:
                out.append(f"-- task log {name} (last {lines} lines):")
                out.extend(text.splitlines()[-lines:])
        return "\n".join(out)


def _signal_session(sid: int, sig: signal.Signals) -> None:
    """Signal the leader's process group and every other group of its session (task processes)."""
    for pgid in {sid, *session_members(sid).values()}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def _exit_on_sigterm() -> None:
    """A SIGTERM to the test process (CI's timeout, `kill PID`) must still stop the stacks: Python's
    default is to die without running atexit or fixture finalizers, so turn it into SystemExit."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


@atexit.register
def _stop_all() -> None:
    for stack in list(_LIVE):
        stack.stop(grace=5)
    for name in _TEMPLATE:
        with contextlib.suppress(Exception):
            drop_database(name)
