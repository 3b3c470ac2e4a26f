"""A throwaway primary + hot standby pair made with the machine's PostgreSQL binaries.

Used by tests/test_swap_standby.py and bench/swap_under_load.py. Both servers listen on loopback
only, on free ports, in a temporary directory; the standby is a `pg_basebackup -R` copy of the
primary streaming from it, with PostgreSQL's default standby settings (max_standby_streaming_delay
30 s, hot_standby_feedback off). When this process runs as root, the servers run as user postgres
(`runuser -u postgres --`): PostgreSQL refuses to run as root. `stop()` stops both by PID (SIGINT =
fast shutdown, then SIGKILL if one is still there) and removes the directory; it is safe to call
on a half-started pair.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg


def bindir() -> Path:
    return Path(subprocess.run(["pg_config", "--bindir"], check=True, capture_output=True, text=True).stdout.strip())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StandbyPair:
    def __init__(self) -> None:
        self.bin = bindir()
        self.root = Path(tempfile.mkdtemp(prefix="vetl_standby_"))
        self.as_root = os.geteuid() == 0
        self.primary_port = free_port()
        self.standby_port = free_port()
        self.procs: dict[str, subprocess.Popen] = {}

    # -- running commands as the server's user ---------------------------------------------
    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self.as_root else list(args)

    def _run(self, *args: str) -> None:
        subprocess.run(self._cmd(*args), check=True, capture_output=True, timeout=120)

    def dsn(self, which: str = "primary", dbname: str = "postgres") -> str:
        port = self.primary_port if which == "primary" else self.standby_port
        return f"host=127.0.0.1 port={port} user=postgres dbname={dbname} connect_timeout=5"

    def _start(self, name: str, pgdata: Path, port: int) -> None:
        log = (self.root / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            self._cmd(str(self.bin / "postgres"), "-D", str(pgdata), "-p", str(port),
                      "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                      "-c", "fsync=off", "-c", "max_connections=120", "-c", "log_recovery_conflict_waits=on",
                      "-c", "log_lock_waits=on",
                      "-c", "shared_buffers=256MB"),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} server exited: {(self.root / f'{name}.log').read_text()[-2000:]}")
            with contextlib.suppress(psycopg.OperationalError):
                psycopg.connect(self.dsn(name), autocommit=True).close()
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} server did not accept connections within 60 s")
            time.sleep(0.2)

    def start(self) -> StandbyPair:
        if self.as_root:
            shutil.chown(self.root, "postgres")
        primary, standby = self.root / "primary", self.root / "standby"
        self._run(str(self.bin / "initdb"), "-D", str(primary), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8")
        with (primary / "postgresql.conf").open("a") as conf:
            conf.write("wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\n")
        with (primary / "pg_hba.conf").open("a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        self._start("primary", primary, self.primary_port)
        self._run(str(self.bin / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres",
                  "-D", str(standby), "-R", "-X", "stream", "-c", "fast")
        self._start("standby", standby, self.standby_port)
        return self

    def wait_replayed(self, timeout: float = 30) -> float:
        """Seconds until the standby has replayed everything the primary has written so far."""
        started = time.monotonic()
        with psycopg.connect(self.dsn("primary"), autocommit=True) as p:
            lsn = p.execute("SELECT pg_current_wal_lsn()").fetchone()[0]  # type: ignore[index]
        with psycopg.connect(self.dsn("standby"), autocommit=True) as s:
            while not s.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:  # type: ignore[index]
                if time.monotonic() - started > timeout:
                    raise TimeoutError(f"the standby did not replay {lsn} within {timeout} s")
                time.sleep(0.05)
        return time.monotonic() - started

    def _dump_relations(self, folder: Path) -> None:
        """The primary's relation OIDs by name, per database: the servers' logs name relations by
        OID only (e.g. a lock wait), and the servers are gone when the logs are read."""
        with psycopg.connect(self.dsn("primary"), autocommit=True) as c:
            dbs = [r[0] for r in c.execute("SELECT datname FROM pg_database WHERE NOT datistemplate")]
        with open(folder / "relations.txt", "w") as out:
            for db in dbs:
                with psycopg.connect(self.dsn("primary", db), autocommit=True) as c:
                    for oid, name in c.execute("SELECT c.oid, c.oid::regclass::text FROM pg_class c "
                                               "WHERE c.oid >= 16384 ORDER BY 1"):
                        out.write(f"{db}\t{oid}\t{name}\n")

    def stop(self) -> None:
        keep = os.environ.get("VEHICLE_ETL_KEEP_STANDBY_LOGS")  # a folder: the servers' logs are copied there
        if keep and self.procs.get("primary") is not None and self.procs["primary"].poll() is None:
            Path(keep).mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(psycopg.Error):
                self._dump_relations(Path(keep))
        for name in ("standby", "primary"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            # runuser forwards the signal to the server it started; the server's PID is the child
            for sig in (signal.SIGINT, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(20)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for log in self.root.glob("*.log"):
                shutil.copy(log, Path(keep) / log.name)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def standby_pair() -> Iterator[StandbyPair]:
    pair = StandbyPair()
    try:
        yield pair.start()
    finally:
        pair.stop()
