"""Faults against real PostgreSQL: killed connections, a SIGKILLed process, two runs at once, bad
sources, an unwritable marker folder. Every test compares the live schema by checksum before and after.

Faults are injected from outside the pipeline (pg_terminate_backend from an admin connection, signals
to a `vehicle-etl` subprocess, broken files), never by patching the code under test.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import TEST_PG, create_database, drop_database, settings_for
from psycopg import sql
from test_pipeline import live_checksum

from vehicle_etl import pipeline
from vehicle_etl.config import SAMPLE_DB, Settings, platform_conninfo
from vehicle_etl.errors import EtlError, QualityGateError, RestoreError, SourceError
from vehicle_etl.platform_db import connect
from vehicle_etl.release import history

CLI = Path(sys.executable).parent / "vehicle-etl"
LEFTOVER_SCHEMAS = ("vehicles_staging", "vehicles_legacy", "vehicles_previous_legacy")


# -- helpers -----------------------------------------------------------------------------------
def dbname(settings: Settings) -> str:
    return psycopg.conninfo.conninfo_to_dict(platform_conninfo(settings))["dbname"]  # type: ignore[return-value]


# What a consistent database holds: the views, the store, and the schemas of the registered
# versions (live, previous, and any old one whose drop is due at a later run).
CONSISTENT = {"vehicles", "vehicles_previous", "vehicles_store"}


def schemas(settings: Settings) -> set[str]:
    """The vehicles* schemas, the registered version schemas (vehicles_v<N>) left out."""
    with connect(settings) as conn:
        return {r[0] for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'vehicles%' AND oid NOT IN "
            "(SELECT schema_oid FROM vehicles_store.version WHERE nspname ~ '^vehicles_v[0-9]+$')")}


def live_run_id(settings: Settings) -> str | None:
    with connect(settings) as conn:
        row = conn.execute("SELECT run_id FROM vehicles.catalog_info").fetchone()
    return row[0] if row else None


def runs(settings: Settings) -> list[dict]:
    with connect(settings) as conn:
        return history.recent_runs(conn, 50)


class Killer(threading.Thread):
    """Terminates the first backend of `db` whose running statement matches `pattern` (bounded wait)."""

    def __init__(self, db: str, pattern: str, *, waiting_on_lock: bool = False, timeout: float = 120) -> None:
        super().__init__(daemon=True)
        self.db, self.pattern, self.waiting, self.timeout = db, pattern, waiting_on_lock, timeout
        self.killed: str | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        with psycopg.connect(TEST_PG, autocommit=True) as admin:
            while not self.stop.is_set() and time.monotonic() < deadline:
                row = admin.execute(
                    "SELECT pid, left(query, 120) FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
                    "AND pid <> pg_backend_pid() AND query ~* %s AND (NOT %s OR wait_event_type = 'Lock') "
                    "LIMIT 1", (self.db, self.pattern, self.waiting)).fetchone()
                if row and admin.execute("SELECT pg_terminate_backend(%s)", (row[0],)).fetchone()[0]:  # type: ignore[index]
                    self.killed = row[1]
                    return
                time.sleep(0.002)

    def __enter__(self) -> Killer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(10)


@pytest.fixture(scope="module")
def built_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real build of the sample per module, kept as a template database (copied per test:
    a build takes ~30 s on the shared 2-core machine, a template copy well under a second)."""
    name = create_database("vetl_reltpl")
    saved = dict(os.environ)
    try:
        settings = settings_for(name, tmp_path_factory.mktemp("tpl"))
        assert pipeline.build_catalog(settings, release="2026_02")["status"] == "success"
        yield name
    finally:
        os.environ.clear()
        os.environ.update(saved)
        drop_database(name)


@pytest.fixture
def platform_db(built_template: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A platform database holding one successful build of the sample (a copy of the template)."""
    name = f"vetl_rel_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(TEST_PG, autocommit=True) as admin:
        # Great Expectations' engine leaves one idle connection behind after the build (reported).
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                      (built_template,))
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(built_template)))
    try:
        yield settings_for(name, tmp_path, monkeypatch)
    finally:
        drop_database(name)


@pytest.fixture
def live(platform_db: Settings) -> dict[str, str]:
    """The live checksum of the first build (which is `success` in run history)."""
    assert [r["status"] for r in runs(platform_db)] == ["success"]
    return live_checksum(platform_db)


def assert_rerun_recovers(settings: Settings, before_run: str | None) -> None:
    """A plain rerun succeeds, swaps, and leaves no leftovers and no run stuck in 'running'."""
    result = pipeline.build_catalog(settings, release="2026_02")
    assert result["status"] == "success"
    assert live_run_id(settings) == result["run_id"] != before_run
    assert schemas(settings) == CONSISTENT
    assert not [r for r in runs(settings) if r["status"] == "running"]


# -- connection killed during load, index build and swap ------------------------------------------
@pytest.mark.parametrize(("step", "pattern"), [
    ("extract_load", r"^\s*COPY "),
    ("build_keys", r"CREATE UNIQUE INDEX IF NOT EXISTS"),  # an index build on a side connection
])
def test_connection_killed_mid_step_leaves_live_unchanged(
        platform_db: Settings, live: dict[str, str], step: str, pattern: str) -> None:
    before_run = live_run_id(platform_db)
    with Killer(dbname(platform_db), pattern) as killer, pytest.raises(psycopg.OperationalError):
        pipeline.build_catalog(platform_db, release="2026_02")
    assert killer.killed, f"the fault was not injected: no statement matching {pattern!r} was seen"
    assert live_checksum(platform_db) == live
    assert live_run_id(platform_db) == before_run
    last = runs(platform_db)[0]
    assert last["status"] in ("failed", "running")  # 'running' when the killed connection was the step's own
    if last["status"] == "failed":
        assert last["error"].startswith(step)
    assert_rerun_recovers(platform_db, before_run)
    if last["status"] == "running":  # the rerun marked the abandoned row failed
        assert history.ABANDONED in next(r for r in runs(platform_db) if r["run_id"] == last["run_id"])["error"]


def test_connection_killed_during_swap_is_all_or_nothing(platform_db: Settings, live: dict[str, str]) -> None:
    """Another session holds the control row (as a second ETL session mid-flip would), so the
    flip transaction waits for that row (its first statement, before the UPDATE and the rename of
    staging in the same transaction); its backend is terminated there. The transaction rolls back: live is
    byte-for-byte the old version (never a mix); staging is intact; the rerun swaps."""
    before_run = live_run_id(platform_db)
    holder = psycopg.connect(platform_conninfo(platform_db))
    holder.execute("SELECT * FROM vehicles_store.control FOR UPDATE")  # a row lock until rollback
    try:
        with Killer(dbname(platform_db), r"FROM vehicles_store\.control FOR UPDATE", waiting_on_lock=True) as killer, \
                pytest.raises(psycopg.OperationalError):
            pipeline.build_catalog(platform_db, release="2026_02")
    finally:
        holder.rollback()
        holder.close()
    assert killer.killed and "vehicles_store.control FOR UPDATE" in killer.killed
    assert live_checksum(platform_db) == live
    assert live_run_id(platform_db) == before_run
    assert "vehicles_staging" in schemas(platform_db)  # the promoted-to-be version is still intact
    assert_rerun_recovers(platform_db, before_run)


# -- the process running build-catalog killed with SIGKILL mid-load --------------------------------
def cli_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}  # MVP_PLATFORM_DB_* set by the platform_db fixture


def test_sigkill_mid_load_then_next_run_recovers(platform_db: Settings, live: dict[str, str]) -> None:
    """SIGKILL of the process running build-catalog (as the OOM killer would do it): no process of
    it may keep writing, and the next run recovers with no manual step."""
    before_run = live_run_id(platform_db)
    db = dbname(platform_db)
    proc = subprocess.Popen([str(CLI), "build-catalog", "--release", "2026_02"], env=cli_env(platform_db),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    copying = False
    try:
        with psycopg.connect(TEST_PG, autocommit=True) as admin:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                copying = admin.execute(
                    "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
                    "AND query ~* '^\\s*COPY '", (db,)).fetchone()[0]  # type: ignore[index]
                if copying:
                    break
                time.sleep(0.005)
        assert copying, "the run never reached COPY"
        os.kill(proc.pid, signal.SIGKILL)  # the task's process only, not its process group
        assert proc.wait(30) == -signal.SIGKILL
        # Its extraction workers stop with it: an orphan would COPY its queued jobs into the next run's staging.
        with psycopg.connect(TEST_PG, autocommit=True) as admin:
            deadline = time.monotonic() + 15
            while (left := admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                         (db,)).fetchone()[0]) and time.monotonic() < deadline:  # type: ignore[index]
                time.sleep(0.1)
        assert not left, f"{left} session(s) of the killed run still connected"
        assert live_checksum(platform_db) == live
        killed = runs(platform_db)[0]
        assert killed["status"] == "running" and killed["run_id"] != before_run  # it could not record anything

        assert_rerun_recovers(platform_db, before_run)  # no manual step: no cleanup, no lock to release
        marked = next(r for r in runs(platform_db) if r["run_id"] == killed["run_id"])
        assert marked["status"] == "failed" and history.ABANDONED in marked["error"]
    finally:
        with contextlib.suppress(ProcessLookupError):  # the orphaned workers, if any: ours to end
            os.killpg(proc.pid, signal.SIGKILL)


# -- two build-catalog at once ---------------------------------------------------------------------
def test_two_cli_runs_at_once_exactly_one_proceeds(platform_db: Settings, live: dict[str, str]) -> None:
    env = cli_env(platform_db)
    procs = [subprocess.Popen([str(CLI), "build-catalog", "--release", "2026_02"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    started = time.monotonic()
    ended: dict[int, float] = {}
    while len(ended) < 2 and time.monotonic() - started < 300:
        for i, p in enumerate(procs):
            if i not in ended and p.poll() is not None:
                ended[i] = time.monotonic() - started
        time.sleep(0.05)
    outs = [p.communicate(timeout=30) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outs
    loser = next(i for i, p in enumerate(procs) if p.returncode == 1)
    winner = 1 - loser
    assert "another vehicle ETL run is in progress on this platform database (held by pid" in outs[loser][1]
    assert "Traceback" not in outs[loser][1]
    assert ended[loser] < ended[winner] and ended[loser] < 20  # fails fast, while the other still works
    statuses = [r["status"] for r in runs(platform_db)]
    assert statuses == ["success", "success"]  # the template's and the winner's; the loser started none
    assert live_checksum(platform_db, "vehicles_previous") == live


# -- source trouble: one clear error each, nothing live touched ---------------------------------
def broken_copy(tmp: Path, *statements: str) -> str:
    db = tmp / "broken.db"
    shutil.copy(SAMPLE_DB, db)
    with sqlite3.connect(db) as raw:
        for s in statements:
            raw.execute(s)
    return f"sqlite:///{db}"


@pytest.mark.parametrize(("fault", "statements", "error", "message"), [
    ("missing table", ["DROP TABLE Wmi_VinSchema"], SourceError, r"missing table Wmi_VinSchema"),
    ("renamed column", ["ALTER TABLE Make RENAME COLUMN Name TO MakeName"], SourceError,
     r"table Make lacks column\(s\) Name"),
    ("empty table", ["DELETE FROM Pattern"], QualityGateError, r"quality gate failed .*pattern"),
])
def test_source_trouble_gives_one_clear_error(platform_db: Settings, live: dict[str, str], tmp_path: Path,
                                              fault: str, statements: list[str], error: type, message: str) -> None:
    url = broken_copy(tmp_path, *statements)
    with pytest.raises(error, match=message) as info:
        pipeline.build_catalog(platform_db, source=url, release="2026_03")
    assert len(str(info.value)) < 2000 and "Traceback" not in str(info.value)
    assert live_checksum(platform_db) == live
    last = runs(platform_db)[0]
    assert last["status"] == "failed" and re.search(message, last["error"])


@pytest.mark.parametrize(("name", "content", "message"), [
    ("vPICList_lite_2099_01.db", SAMPLE_DB.read_bytes()[:8192], r"2099_01|malformed|not a database|no such table"),
    ("vPICList_lite_2099_01.bak", b"<html>404 Not Found</html>", r"is not a SQL Server backup"),
    ("vPICList_lite_2099_01.plain.zip", b"PK\x03\x04 truncated", r"is not a readable zip"),
    ("vPICList_lite_2099_01.db", b"", r"is empty"),
])
def test_bad_backup_file_gives_one_clear_error(platform_db: Settings, live: dict[str, str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, name: str, content: bytes,
                                               message: str) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / name).write_bytes(content)
    monkeypatch.setenv("VPIC_BACKUPS_DIR", str(backups))
    monkeypatch.delenv("VPIC_DOWNLOAD_BASE_URL", raising=False)
    with pytest.raises((SourceError, RestoreError), match=message) as info:
        pipeline.build_catalog(Settings())
    assert "Traceback" not in str(info.value)
    assert live_checksum(platform_db) == live


def test_unreachable_source_server(platform_db: Settings, live: dict[str, str]) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"cannot connect to source postgresql\+psycopg://vpic@127\.0\.0\.1:9/vpic"):
        pipeline.build_catalog(platform_db, source="postgresql+psycopg://vpic@127.0.0.1:9/vpic", release="2026_03")
    assert time.monotonic() - started < 30
    assert live_checksum(platform_db) == live
    assert runs(platform_db)[0]["status"] == "failed"


# -- the marker folder not writable / the disk full -------------------------------------------------
def test_marker_folder_is_a_file(platform_db: Settings, live: dict[str, str], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "markers-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("VEHICLE_ETL_MARKER_DIR", str(blocker / "sub"))
    with pytest.raises(EtlError, match=r"the catalog is live but the completion marker could not be written") as info:
        pipeline.build_catalog(Settings(), release="2026_02")
    assert "the database is consistent" in str(info.value)
    # Consistent: the swap committed with its history row; exactly one version went live.
    last = runs(platform_db)[0]
    assert last["status"] == "success" and live_run_id(platform_db) == last["run_id"]
    assert live_checksum(platform_db, "vehicles_previous") == live
    assert schemas(platform_db) == CONSISTENT
    assert blocker.read_text() == "not a folder"


def test_disk_full_during_a_run(platform_db: Settings, live: dict[str, str]) -> None:
    """RLIMIT_FSIZE makes every file write of the CLI process fail with EFBIG, as a full disk would
    (ENOSPC). Whichever step first writes a file (today: the golden-VIN check of the gate; else the
    marker) reports it, and the database is consistent: run history and the live catalog agree."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    proc = subprocess.run([str(CLI), "build-catalog", "--release", "2026_02"], env=cli_env(platform_db),
                          capture_output=True, text=True, preexec_fn=limit, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    final = proc.stderr.strip().splitlines()[-1]  # the CLI's one-line verdict (a check may log a traceback)
    assert " ERROR " in final and ("quality gate failed" in final or "completion marker" in final), final
    last = runs(platform_db)[0]
    if last["status"] == "failed":  # stopped before the swap: live untouched
        assert "File too large" in json.dumps(last["checks"]) + (last["error"] or "")
        assert live_checksum(platform_db) == live and live_run_id(platform_db) != last["run_id"]
    else:  # swapped, then the marker could not be written
        assert "the completion marker could not be written" in proc.stderr and "File too large" in proc.stderr
        assert last["status"] == "success" and live_run_id(platform_db) == last["run_id"]
        assert live_checksum(platform_db, "vehicles_previous") == live
    markers = Path(os.environ["VEHICLE_ETL_MARKER_DIR"])
    assert not [p for p in markers.glob(".marker-*")]  # no half-written temp file
    assert not [r for r in runs(platform_db) if r["status"] == "running"]
