"""`scripts/airflow` (= `make airflow ARGS=…`) and `make airflow-ui` (scripts/airflow-ui), run for real.

The UI test starts the whole of `airflow standalone` (api-server, scheduler, dag-processor,
triggerer) with a temporary AIRFLOW_HOME on a free loopback port, and stops it by PID.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from vehicle_etl.config import PROJECT_ROOT

WRAPPER = PROJECT_ROOT / "scripts" / "airflow"
UI = PROJECT_ROOT / "scripts" / "airflow-ui"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a new shell: none of the AIRFLOW* settings the Makefile or conftest export."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k not in ("PYTHONPATH",)}
    return {**env, **extra}


def airflow_value(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


def test_wrapper_and_make_target_give_airflow_this_project(tmp_path: Path) -> None:
    """From another directory and a bare environment, both ways reach this project's dags/."""
    by_script = airflow_value([str(WRAPPER), "config", "get-value", "core", "dags_folder"], tmp_path, clean_env())
    by_make = airflow_value(["make", "-s", "-C", str(PROJECT_ROOT), "airflow",
                             "ARGS=config get-value core dags_folder"], tmp_path, clean_env())
    assert by_script == by_make == str(PROJECT_ROOT / "dags")


def test_api_binds_loopback_and_base_url_follows_the_port(tmp_path: Path) -> None:
    env = clean_env(AIRFLOW__API__PORT="8123")
    assert airflow_value([str(WRAPPER), "config", "get-value", "api", "host"], tmp_path, env) == "127.0.0.1"
    assert airflow_value([str(WRAPPER), "config", "get-value", "api", "base_url"], tmp_path, env) == \
        "http://127.0.0.1:8123"


def test_ui_refuses_a_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([str(UI)], env=clean_env(AIRFLOW__API__PORT=str(port), MAKELEVEL="1"),
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in proc.stderr and "AIRFLOW__API__PORT=" in proc.stderr


def test_make_airflow_ui_starts_prints_login_and_stops_by_pid(tmp_path: Path) -> None:
    port = free_port()
    home = tmp_path / "airflow"
    env = clean_env(AIRFLOW_HOME=str(home), AIRFLOW__API__PORT=str(port),
                    # Airflow's log servers have fixed default ports: other Airflows on this machine use them.
                    AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
                    AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()))
    log = (tmp_path / "ui.log").open("w+")
    proc = subprocess.Popen([str(UI)], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, status = time.monotonic() + 240, None
        while time.monotonic() < deadline and proc.poll() is None and status != 200:
            with contextlib.suppress(OSError), \
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/version", timeout=5) as r:
                status = r.status
            time.sleep(1)
        log.seek(0)
        out = log.read()
        assert status == 200, out[-4000:]
        assert f"Airflow UI       http://127.0.0.1:{port}" in out
        passwords = home / "simple_auth_manager_passwords.json.generated"
        assert f"password in {passwords}" in out and passwords.is_file()
        assert re.search(rf"Stop .*kill {proc.pid}\b", out)  # the PID printed is the one to stop
        listeners = {c.laddr.ip for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(True)]
                     for c in _listening(p) if c.laddr.port == port}
        assert listeners == {"127.0.0.1"}
        parts = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        assert len(parts) >= 4

        proc.send_signal(signal.SIGTERM)  # `kill <pid>` as the banner says
        assert proc.wait(90) == 0
        _, alive = psutil.wait_procs([psutil.Process(p) for p in parts if psutil.pid_exists(p)], timeout=30)
        assert not alive, f"parts still running after the stop: {[p.cmdline()[:3] for p in alive]}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of what this test started
        proc.wait(30)
        log.close()


def _listening(p: psutil.Process) -> list:
    with contextlib.suppress(psutil.Error):
        return [c for c in p.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    return []


@pytest.fixture(autouse=True, scope="module")
def _built() -> None:
    assert WRAPPER.is_file() and os.access(WRAPPER, os.X_OK) and os.access(UI, os.X_OK)


def test_metadata_connect_args_wait_for_sqlite_only() -> None:
    from vehicle_etl.airflow_adapter import metadata_connect_args

    assert metadata_connect_args("sqlite:////tmp/x/airflow.db") == {"timeout": 60}
    assert metadata_connect_args("postgresql+psycopg2://airflow@db/airflow") == {}


def test_metadata_connect_args_reach_airflow(tmp_path: Path) -> None:
    """What Airflow itself loads through scripts/airflow: the import path resolves to the SQLite args."""
    code = ("from airflow.configuration import conf; "
            "print(conf.getimport('database', 'sql_alchemy_connect_args'))")
    out = subprocess.run(["bash", "-c", f'. "{WRAPPER.parent}/airflow-env.sh"; exec python -c "{code}"'],
                         cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "{'timeout': 60}"
