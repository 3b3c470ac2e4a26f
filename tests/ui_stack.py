"""A real Airflow api-server for the browser test of the operator's page, and its teardown.

Airflow from the repo's venv, a temporary AIRFLOW_HOME, a PostgreSQL metadata database of its own
(unique name), the simple auth manager with one known user, the repo's plugins/ and dags/, a free
loopback port. The server runs in its own process group and is stopped by that group's id, also
when the test fails. (A scheduler/dag-processor harness may supersede this; the page only needs
the api-server.)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from conftest import create_database, drop_database, dsn

from vehicle_etl.config import PROJECT_ROOT

AIRFLOW = Path(sys.executable).parent / "airflow"
USER = "operator"
PASSWORD = "catalog-page-test-password"  # only for the throwaway Airflow of one test session


@dataclass(frozen=True, repr=False)
class ApiServer:
    url: str  # http://127.0.0.1:<port>, no trailing slash
    pid: int
    home: Path
    env: dict[str, str]  # the server's environment: run `airflow ...` commands against the same Airflow
    user: str = USER
    password: str = PASSWORD

    def log(self) -> str:
        path = self.home / "api-server.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def airflow_env(home: Path, metadata_db: str, port: int, platform_env: dict[str, str]) -> dict[str, str]:
    meta = dsn(metadata_db)
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(meta)
    url = (f"postgresql+psycopg2://{info.get('user', 'postgres')}:{info.get('password', '')}@"
           f"{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{metadata_db}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update(platform_env)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(16).hex(),
        "AIRFLOW__CORE__FERNET_KEY": "",
        "PYTHONPATH": str(PROJECT_ROOT),
        "PATH": f"{AIRFLOW.parent}:{os.environ.get('PATH', '')}",
    })
    return env


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the api-server exited with code {proc.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the api-server at {url} was not healthy within {timeout:.0f} s")


def stop_group(proc: subprocess.Popen[bytes], grace: float = 15) -> None:
    """SIGTERM the process group, SIGKILL what is left after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def api_server(home: Path, platform_env: dict[str, str], timeout: float = 180) -> Iterator[ApiServer]:
    """Migrate a fresh metadata database and run `airflow api-server` on it until the block ends."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    metadata_db = create_database("vetl_airflow_ui")
    port = free_port()
    env = airflow_env(home, metadata_db, port, platform_env)
    try:
        subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
        with (home / "api-server.log").open("wb") as log:
            proc = subprocess.Popen([str(AIRFLOW), "api-server", "--host", "127.0.0.1", "--port", str(port)],
                                    env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        server = ApiServer(f"http://127.0.0.1:{port}", proc.pid, home, env)
        try:
            wait_healthy(server.url, proc, timeout)
            yield server
        finally:
            stop_group(proc)
            assert not group_alive(proc.pid), f"api-server process group {proc.pid} survived SIGKILL"
    finally:
        drop_database(metadata_db)
