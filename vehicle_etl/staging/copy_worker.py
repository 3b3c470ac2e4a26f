"""One COPY worker process: `python -P -m vehicle_etl.staging.copy_worker`, started by vehicle_etl.staging.copy_pool.

A fresh interpreter that runs only this module. It never re-imports the parent's `__main__` (inside
an Airflow task that is Airflow's entry point, and the task supervisor has replaced
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN there on purpose), and it imports no Airflow: so it behaves the
same under the CLI, `airflow dags test`, a supervised task of any executor, or a test.

Protocol, one JSON object per line (the secrets travel on stdin, never in argv or the environment):
  stdin   first  {"source_url", "source_schema", "conninfo", "schema", "batch_rows", "log_level", "parent_pid"}
          then   {"type": "job", "job": {CopyJob fields}} one at a time, finally {"type": "stop"}
  stdout  {"type": "ready"} once connected; {"type": "done", "target", "rows", "seconds"} per job;
          {"type": "log", "level", "logger", "message"} for each log record of ours;
          {"type": "error", "label", "error_type", "error_module", "sqlstate", "message", "traceback"}
Anything else written to stdout or stderr (a library's print, a crash) reaches the parent on
stderr, which it logs as warnings.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from typing import IO, Any

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Exit when the process that started this worker is gone (SIGKILL, OOM killer).

    An orphaned worker would otherwise finish its COPY and could be handed nothing more, but it
    would keep its transaction and its share of the platform server open. Linux: the kernel sends
    SIGKILL at once (PR_SET_PDEATHSIG); everywhere: a watch thread sees the parent pid change.
    """
    with contextlib.suppress(Exception):  # not Linux, or no libc: the watch thread alone
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # it died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.2)
        os._exit(1)  # mid-COPY: the server aborts this worker's transaction

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


class _Channel:
    """The protocol's stdout: whole lines, one writer at a time (log records come from any thread)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream, self.lock = stream, threading.Lock()

    def send(self, **message: Any) -> None:
        line = json.dumps(message, default=str) + "\n"
        with self.lock:
            self.stream.write(line)
            self.stream.flush()


class _Forward(logging.Handler):
    def __init__(self, channel: _Channel) -> None:
        super().__init__()
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info))
            self.channel.send(type="log", level=record.levelno, logger=record.name, message=message)
        except Exception:
            self.handleError(record)


def _error(channel: _Channel, label: str | None, exc: BaseException) -> None:
    channel.send(type="error", label=label, error_type=type(exc).__name__, error_module=type(exc).__module__,
                 sqlstate=getattr(exc, "sqlstate", None), message=str(exc).strip(),
                 traceback="".join(traceback.format_exception(exc)))


def main() -> int:
    # The protocol gets a private copy of stdout; fd 1 then points at stderr, so a stray print
    # can never corrupt a message.
    channel = _Channel(os.fdopen(os.dup(1), "w", encoding="utf-8"))
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    first = sys.stdin.readline()
    if not first:
        return 1  # the parent went away before sending anything
    config = json.loads(first)
    die_with_parent(int(config["parent_pid"]))

    root = logging.getLogger()
    root.handlers[:] = [_Forward(channel)]
    root.setLevel(logging.WARNING)  # libraries: warnings only (and never a URL at DEBUG)
    logging.getLogger("vehicle_etl").setLevel(int(config.get("log_level", logging.INFO)))

    import psycopg  # after the parent watch: these imports take a noticeable part of a second

    from vehicle_etl.source.connect import open_source
    from vehicle_etl.staging.load import CopyJob, copy_job

    source = None
    try:
        source = open_source(config["source_url"], config["source_schema"])
        with psycopg.connect(config["conninfo"], autocommit=True) as conn:
            channel.send(type="ready", pid=os.getpid())
            while line := sys.stdin.readline():
                message = json.loads(line)
                if message["type"] == "stop":
                    return 0
                job = CopyJob.from_dict(message["job"])
                try:
                    target, rows, seconds = copy_job(source, conn, config["schema"], job, int(config["batch_rows"]))
                except Exception as exc:
                    _error(channel, job.label, exc)
                    return 1
                channel.send(type="done", target=target, rows=rows, seconds=seconds)
        return 1  # stdin closed without "stop": the parent is gone
    except Exception as exc:  # could not open the source or the platform database
        _error(channel, None, exc)
        return 1
    finally:
        if source is not None:
            source.engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
