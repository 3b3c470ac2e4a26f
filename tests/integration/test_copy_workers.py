"""COPY worker processes (vehicle_etl.staging.copy_pool / copy_worker) against real PostgreSQL.

The load runs with workers=2 from a process set up the way Airflow's task supervisor sets up a
task: a `__main__` that must never be re-imported (Airflow's entry point) and a metadata database
URL that a child cannot use. Faults are injected from outside (signals, a broken source file).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest
from conftest import create_database, drop_database, dsn

from vehicle_etl.config import SAMPLE_DB
from vehicle_etl.source.connect import open_source
from vehicle_etl.staging import load
from vehicle_etl.staging.copy_pool import CopyWorkerError

# A process like a supervised Airflow task: its __main__ dies when re-imported (multiprocessing's
# spawn and forkserver children do that: they ran Airflow's entry point, which read the replaced
# AIRFLOW__DATABASE__SQL_ALCHEMY_CONN and died), and the metadata URL is unusable.
TASK_LIKE_MAIN = textwrap.dedent("""
    import json, os, sys
    if __name__ != "__main__":
        raise SystemExit("__main__ was re-imported in a child process")
    assert os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "airflow-db-not-for-children://"
    import logging
    import psycopg
    from vehicle_etl.staging import load
    from vehicle_etl.source.connect import open_source

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    conninfo, url, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with psycopg.connect(conninfo, autocommit=True) as conn:
        load.prepare_staging(conn)
    report = load.extract_load(open_source(url), conninfo, batch, workers=2)
    print(json.dumps(report.counts))
""")


@pytest.fixture
def empty_db() -> Iterator[str]:
    name = create_database("vetl_copyw")
    try:
        yield name
    finally:
        drop_database(name)


@pytest.fixture
def task_like(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """The command and environment of a task-like process (see TASK_LIKE_MAIN)."""
    script = tmp_path / "task_main.py"
    script.write_text(TASK_LIKE_MAIN)
    # An `airflow` package that cannot be imported: a worker that imported Airflow would die.
    fake = tmp_path / "no-airflow" / "airflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('a COPY worker must not import Airflow')\n")
    env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "airflow-db-not-for-children://",
           "PYTHONPATH": os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")])}
    return [sys.executable, str(script)], env


def source_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as c:
        return {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("Pattern", "Make", "Wmi")}


def staged_counts(db: str) -> dict[str, int]:
    with psycopg.connect(dsn(db)) as c:
        return {t: c.execute(f"SELECT count(*) FROM vehicles_staging.{t.lower()}").fetchone()[0]  # type: ignore[index]
                for t in ("Pattern", "Make", "Wmi")}


def copy_workers_of(pid: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    return [p for p in children if "vehicle_etl.staging.copy_worker" in " ".join(p.cmdline())]


def test_load_with_two_workers_inside_a_task_like_process(empty_db: str, task_like) -> None:
    cmd, env = task_like
    proc = subprocess.run([*cmd, dsn(empty_db), f"sqlite:///{SAMPLE_DB}", "20000"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = json.loads(proc.stdout)
    expected = source_counts(SAMPLE_DB)
    assert staged_counts(empty_db) == expected
    assert counts["pattern"] == expected["Pattern"] and counts["make"] == expected["Make"]
    # The workers' own log records reach the parent's logger (Airflow's task log), per worker.
    assert "[copy worker 1] extracted" in proc.stderr and "[copy worker 2] extracted" in proc.stderr
    assert "Pattern -> pattern [1/2]" in proc.stderr and "Pattern -> pattern [2/2]" in proc.stderr


def test_worker_error_names_the_table_and_keeps_its_class(empty_db: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(SAMPLE_DB.read_bytes())
    with sqlite3.connect(broken) as c:
        c.execute("UPDATE Pattern SET ElementId = 'not-a-number' WHERE Id = (SELECT max(Id) FROM Pattern)")
    with psycopg.connect(dsn(empty_db), autocommit=True) as conn:
        load.prepare_staging(conn)
    with pytest.raises(psycopg.errors.InvalidTextRepresentation,
                       match=r"COPY Pattern -> pattern \[[12]/2\] failed \(worker \d \(pid \d+\)\)"):
        load.extract_load(open_source(f"sqlite:///{broken}"), dsn(empty_db), 20000, workers=2)
    assert copy_workers_of(os.getpid()) == []  # the other worker was stopped, not left behind


def test_a_killed_worker_fails_the_load_naming_its_job(empty_db: str) -> None:
    with psycopg.connect(dsn(empty_db), autocommit=True) as conn:
        load.prepare_staging(conn)
    killed: list[int] = []

    def kill_one() -> None:
        """SIGKILL the worker whose platform connection is in a COPY (matched by its client port)."""
        deadline = time.monotonic() + 60
        with psycopg.connect(dsn(empty_db), autocommit=True) as admin:
            while time.monotonic() < deadline and not killed:
                ports = {r[0] for r in admin.execute(
                    "SELECT client_port FROM pg_stat_activity WHERE datname = %s AND query ~* '^\\s*COPY ' "
                    "AND state = 'active'", (empty_db,))}
                for worker in copy_workers_of(os.getpid()):
                    with contextlib.suppress(psutil.Error):
                        if ports & {c.laddr.port for c in worker.net_connections("tcp")}:
                            worker.send_signal(signal.SIGKILL)
                            killed.append(worker.pid)
                            break
                time.sleep(0.005)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    with pytest.raises(CopyWorkerError, match=r"COPY worker \d \(pid (\d+)\) was killed by SIGKILL while copying "):
        load.extract_load(open_source(f"sqlite:///{SAMPLE_DB}"), dsn(empty_db), 500, workers=2)
    killer.join(5)
    assert killed
    assert copy_workers_of(os.getpid()) == []


def test_workers_die_with_their_parent(empty_db: str, task_like) -> None:
    """SIGKILL of the process that started the workers (as the OOM killer or a supervisor would do)."""
    cmd, env = task_like
    proc = subprocess.Popen([*cmd, dsn(empty_db), f"sqlite:///{SAMPLE_DB}", "200"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    workers: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and len(workers) < 2:
            workers = copy_workers_of(proc.pid)
            time.sleep(0.02)
        assert len(workers) == 2, "the workers never started"
        with psycopg.connect(dsn(empty_db), autocommit=True) as admin:  # wait until they COPY
            while time.monotonic() < deadline and not admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query ~* '^\\s*COPY '",
                    (empty_db,)).fetchone()[0]:  # type: ignore[index]
                time.sleep(0.01)
        proc.kill()
        proc.wait(10)
        gone, alive = psutil.wait_procs(workers, timeout=5)
        assert not alive, f"workers outlived their parent: {[p.pid for p in alive]}"
        with psycopg.connect(dsn(empty_db), autocommit=True) as admin:
            deadline = time.monotonic() + 10
            while (left := admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                                         "AND pid <> pg_backend_pid()", (empty_db,)).fetchone()[0]) and \
                    time.monotonic() < deadline:  # type: ignore[index]
                time.sleep(0.1)
        assert not left, "sessions of the killed load are still open"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for p in workers:  # ours to end if the test failed
            if p.is_running():
                p.kill()
