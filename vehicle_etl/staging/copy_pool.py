"""Run COPY jobs in worker processes: fresh interpreters of `vehicle_etl.staging.copy_worker`.

Not multiprocessing: its children re-import the parent's `__main__`, which inside a supervised
Airflow task is Airflow's own entry point, in an environment the supervisor has rewritten on
purpose (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN), so every worker died there. A worker here is
`sys.executable -P -m vehicle_etl.staging.copy_worker`: the same code path under the CLI, `airflow dags
test`, any executor and the tests. Jobs are handed out one at a time (the big Pattern shards
first), results and the workers' log records come back as JSON lines on stdout (protocol in
copy_worker's docstring), and a worker exits as soon as this process is gone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg

from vehicle_etl import errors

log = logging.getLogger(__name__)

# The folder holding the vehicle_etl package: on the worker's PYTHONPATH, so `-m` finds it whether
# the package is installed (editable or not) or only importable from the parent's sys.path.
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])  # the folder holding vehicle_etl/
STOP_TIMEOUT_S = 30


class CopyWorkerError(RuntimeError):
    """A COPY worker crashed or failed with an error that is not ours or the database's (retryable)."""


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[str]
    job: Any = None  # the CopyJob it is running
    stopping: bool = False
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.index + 1} (pid {self.proc.pid})"

    def send(self, message: dict[str, Any]) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # it died: its stdout's end reports it


def worker_command() -> list[str]:
    if not sys.executable:
        raise CopyWorkerError("cannot start COPY workers: this Python does not know its interpreter "
                              "(sys.executable is empty); set VEHICLE_ETL_WORKERS=1")
    # -P: nothing from the current directory shadows the package.
    return [sys.executable, "-P", "-m", "vehicle_etl.staging.copy_worker"]


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    return env


def _read_stdout(worker: _Worker, stream: IO[str], events: queue.Queue[tuple[int, dict[str, Any] | None]]) -> None:
    for line in stream:
        try:
            message = json.loads(line)
        except ValueError:
            message = {"type": "log", "level": logging.WARNING, "logger": __name__, "message": line.rstrip()}
        events.put((worker.index, message))
    events.put((worker.index, None))  # end of stream: the worker has exited (or is about to)


def _read_stderr(worker: _Worker, stream: IO[str]) -> None:
    for line in stream:
        if line.strip():
            log.warning("[copy worker %s] %s", worker.name, line.rstrip())


def _start(index: int, config: dict[str, Any], events: queue.Queue[tuple[int, dict[str, Any] | None]]) -> _Worker:
    proc = subprocess.Popen(worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, encoding="utf-8", env=_worker_env(),
                            close_fds=True)  # no inherited sockets: a killed parent frees its lock
    worker = _Worker(index, proc)
    worker.threads = [
        threading.Thread(target=_read_stdout, args=(worker, proc.stdout, events), daemon=True,
                         name=f"copy-worker-{index + 1}-out"),
        threading.Thread(target=_read_stderr, args=(worker, proc.stderr), daemon=True,
                         name=f"copy-worker-{index + 1}-err"),
    ]
    for t in worker.threads:
        t.start()
    worker.send(config)
    return worker


def _exit_text(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _rebuild(worker: _Worker, event: dict[str, Any]) -> BaseException:
    """The worker's error as the same class here where it is ours or psycopg's (so Airflow's retry
    rules see what happened: a dropped connection is retried, a bad source is not), naming the table."""
    label = event.get("label")
    where = f"COPY {label}" if label else "starting a COPY worker"
    text = f"{where} failed (worker {worker.name}): {event.get('message') or event.get('error_type')}"
    module, name, sqlstate = event.get("error_module") or "", event.get("error_type") or "", event.get("sqlstate")
    cls: type[BaseException] | None = None
    if module == errors.__name__:
        cls = getattr(errors, name, None)
    elif module.startswith("psycopg"):
        with contextlib.suppress(KeyError):
            cls = psycopg.errors.lookup(sqlstate) if sqlstate else None
        cls = cls or getattr(psycopg.errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.EtlError | psycopg.Error):
        return cls(text)
    return CopyWorkerError(f"{text} [{module}.{name}]")


def run_parallel(source_url: str, source_schema: str | None, conninfo: str, schema: str, jobs: list[Any],
                 batch_rows: int, workers: int) -> list[tuple[str, int, float]]:
    """Run `jobs` (load.CopyJob) on `workers` worker processes; returns (target, rows, seconds) per job.

    The first failure stops every worker (killed: the server aborts their open COPY) and is raised.
    """
    config = {"source_url": source_url, "source_schema": source_schema, "conninfo": conninfo, "schema": schema,
              "batch_rows": batch_rows, "log_level": logging.getLogger("vehicle_etl").getEffectiveLevel(),
              "parent_pid": os.getpid()}
    events: queue.Queue[tuple[int, dict[str, Any] | None]] = queue.Queue()
    pending = deque(jobs)
    pool: list[_Worker] = []
    results: list[tuple[str, int, float]] = []
    ok = False
    try:
        for index in range(max(1, min(workers, len(jobs)))):
            pool.append(_start(index, config, events))
        log.info("started %d COPY worker processes (pids %s) for %d jobs", len(pool),
                 ", ".join(str(w.proc.pid) for w in pool), len(jobs))
        while pending or any(w.job is not None for w in pool):
            index, event = events.get()
            worker = pool[index]
            if event is None:
                code = worker.proc.wait()
                if worker.stopping:
                    continue
                doing = f"while copying {worker.job.label}" if worker.job is not None else "before taking a job"
                raise CopyWorkerError(f"COPY worker {worker.name} {_exit_text(code)} {doing}; "
                                      "its last log lines are above")
            kind = event.get("type")
            if kind == "log":
                _forward(worker, event)
                continue
            if kind == "error":
                raise _rebuild(worker, event)
            if kind == "done":
                results.append((event["target"], int(event["rows"]), float(event["seconds"])))
                worker.job = None
            if kind in ("ready", "done"):
                if pending:
                    worker.job = pending.popleft()
                    worker.send({"type": "job", "job": asdict(worker.job)})
                else:
                    worker.stopping = True
                    worker.send({"type": "stop"})
        ok = True
        return results
    finally:
        _stop(pool, graceful=ok)
        while not events.empty():  # log records that arrived after the last result
            index, event = events.get_nowait()
            if event and event.get("type") == "log":
                _forward(pool[index], event)


def _forward(worker: _Worker, event: dict[str, Any]) -> None:
    logging.getLogger(event.get("logger") or __name__).log(
        int(event.get("level", logging.INFO)), "[copy worker %s] %s", worker.index + 1, event.get("message"))


def _stop(pool: list[_Worker], *, graceful: bool) -> None:
    """Every worker started is ended and reaped: asked to stop after success, killed after a failure."""
    for worker in pool:
        if graceful:
            worker.stopping = True
            worker.send({"type": "stop"})
        elif worker.proc.poll() is None:
            worker.proc.kill()
        with contextlib.suppress(OSError, ValueError):
            worker.proc.stdin.close()  # type: ignore[union-attr]
    for worker in pool:
        try:
            worker.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("COPY worker %s did not stop within %ss; killing it", worker.name, STOP_TIMEOUT_S)
            worker.proc.kill()
            worker.proc.wait()
        for t in worker.threads:
            t.join(5)
