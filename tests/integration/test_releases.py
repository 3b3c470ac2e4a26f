"""Which release a run builds: the rules of vehicle_etl.releases, each against real PostgreSQL
through the pipeline's first step (resolve_step), and through the DAG (dag.test) for a missing
source, with the alert caught by a real SMTP server and a real webhook receiver on loopback."""

from __future__ import annotations

import re
import shutil
import sqlite3
import uuid
from pathlib import Path

import pytest
from test_alerts import Inbox, Receiver, smtp_server, webhook  # noqa: F401 (fixtures)

from vehicle_etl import pipeline, releases
from vehicle_etl.config import SAMPLE_DB, Settings
from vehicle_etl.errors import ReleaseError, RestoreError, SourceError
from vehicle_etl.platform_db import connect, schema_exists
from vehicle_etl.release import history
from vehicle_etl.source import reference
from vehicle_etl.spec import TABLES


# -- the first step of a run, against real PostgreSQL -------------------------------------------------
def run_row(settings: Settings, run_id: str) -> dict:
    with connect(settings) as conn:
        row = history.get_run(conn, run_id)
    assert row is not None
    return row


def nothing_extracted(settings: Settings) -> bool:
    with connect(settings) as conn:
        return not schema_exists(conn, "vehicles_staging") and not schema_exists(conn, "vehicles")


def sample_copy(tmp_path: Path, name: str, *statements: str) -> Path:
    path = tmp_path / name
    shutil.copy(SAMPLE_DB, path)
    with sqlite3.connect(path) as raw:
        for s in statements:
            raw.execute(s)
    return path


def new_run() -> str:
    return f"manual__test_{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(("source_name", "release", "error"), [
    (None, "2031_01", r"release 2031_01 is in the future"),
    (None, "2025_07", r"cannot be release 2025_07: it holds changes stamped 2026-03-12"),
    ("vPICList_lite_2026_02.db", "2026_01", r"release 2026_01 disagrees with the source file name"),
])
def test_a_release_the_source_cannot_be_is_rejected_before_extraction(
        platform_db: Settings, tmp_path: Path, source_name: str | None, release: str, error: str) -> None:
    source = f"sqlite:///{sample_copy(tmp_path, source_name)}" if source_name else None
    run_id = new_run()
    with pytest.raises(ReleaseError, match=error):
        pipeline.resolve_step(platform_db, run_id, "manual", source, release)
    row = run_row(platform_db, run_id)
    assert row["status"] == "failed" and row["release"] == release
    assert row["error"].startswith("restore: ") and re.search(error, row["error"])
    assert "extract_load" not in (row["durations"] or {})
    assert nothing_extracted(platform_db)


def test_a_release_not_in_the_backups_folder_is_rejected(platform_db: Settings, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    sample_copy(backups, "vPICList_lite_2026_02.db")
    monkeypatch.setenv("VPIC_BACKUPS_DIR", str(backups))
    monkeypatch.delenv("VPIC_DOWNLOAD_BASE_URL", raising=False)
    with pytest.raises(ReleaseError, match="release 2031_01 is in the future"):  # said first, not "no backup"
        pipeline.resolve_step(Settings(), new_run(), "manual", None, "2031_01")
    run_id = new_run()
    with pytest.raises(RestoreError, match=r"no backup for release 2025_10 in .*releases present: 2026_02"):
        pipeline.resolve_step(Settings(), run_id, "manual", None, "2025_10")
    assert run_row(platform_db, run_id)["release"] == "2025_10"
    assert nothing_extracted(platform_db)
    ok = pipeline.resolve_step(Settings(), new_run(), "manual")  # the newest backup, release from its name
    assert ok.release == "2026_02" and ok.url.endswith("vPICList_lite_2026_02.db")


@pytest.mark.parametrize(("name", "statements", "expected"), [
    ("vPICList_lite_2026_02.db", [], "2026_02"),  # the file name
    ("copy.db", [], "2026_03"),  # the newest change: the sample's own rows of 2026-03-12
    ("copy.db", ["DELETE FROM Pattern WHERE CreatedOn >= '2026-03' OR UpdatedOn >= '2026-03'",
                 "DELETE FROM VinSchema WHERE CreatedOn >= '2026-03' OR UpdatedOn >= '2026-03'",
                 "DELETE FROM Wmi WHERE CreatedOn >= '2026-03' OR UpdatedOn >= '2026-03'"], "2026_02"),
])
def test_release_inferred_without_a_request(platform_db: Settings, tmp_path: Path, name: str,
                                            statements: list[str], expected: str) -> None:
    source = f"sqlite:///{sample_copy(tmp_path, name, *statements)}"
    run_id = new_run()
    assert pipeline.resolve_step(platform_db, run_id, "manual", source).release == expected
    assert run_row(platform_db, run_id)["release"] == expected
    assert pipeline.resolve_step(platform_db, new_run(), "manual").release == reference.SAMPLE_RELEASE


def test_a_backfill_run_takes_the_newest_release_of_its_month(platform_db: Settings, tmp_path: Path) -> None:
    assert pipeline.resolve_step(platform_db, new_run(), "backfill", not_after="2026_05").release == "2026_02"
    run_id = new_run()
    with pytest.raises(ReleaseError, match=r"this backfill run is for 2025_12, but the source holds release 2026_02"):
        pipeline.resolve_step(platform_db, run_id, "backfill", not_after="2025_12")
    assert run_row(platform_db, run_id)["status"] == "failed"


def test_unknown_release_is_recorded_and_never_a_noop(platform_db: Settings, tmp_path: Path) -> None:
    """No release in the name and no change stamps: the run builds, records 'unknown', and a second
    run of the same source is not skipped as 'already live'."""
    unstamp = [f'UPDATE "{t.source}" SET "{c.source}" = NULL' for t in TABLES for c in t.columns
               if c.source in releases.CHANGE_COLUMNS]
    source = f"sqlite:///{sample_copy(tmp_path, 'nostamps.db', *unstamp)}"
    first = pipeline.build_catalog(platform_db, source=source)
    assert first["status"] == "success" and first["release"] == releases.UNKNOWN
    with connect(platform_db) as conn:
        live = conn.execute("SELECT c.release FROM vehicles.catalog_info c JOIN etl.run_history h "
                            "ON h.run_id = c.run_id AND h.status = 'success'").fetchone()
    assert live == (releases.UNKNOWN,)  # a naive "release = live release" check would match this
    ref = pipeline.resolve_step(platform_db, new_run(), "scheduled", source)
    assert ref.release == releases.UNKNOWN
    assert pipeline.is_noop(platform_db, ref, force=False) is False
    assert pipeline.is_noop(platform_db, reference.SourceRef(source, None), force=False) is False


def test_a_known_live_release_is_a_noop(platform_db: Settings) -> None:
    """The control of the test above: the same check does skip a determined release that is live."""
    assert pipeline.build_catalog(platform_db)["release"] == "2026_02"
    ref = pipeline.resolve_step(platform_db, new_run(), "scheduled")
    assert pipeline.is_noop(platform_db, ref, force=False) is True


def test_missing_source_file_fails_in_the_first_step_naming_it(platform_db: Settings, tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "vPICList_lite_2026_02.db"
    run_id = new_run()
    with pytest.raises(SourceError, match=rf"vPIC SQLite file not found: {re.escape(str(missing))}"):
        pipeline.resolve_step(platform_db, run_id, "manual", f"sqlite:///{missing}")
    row = run_row(platform_db, run_id)
    assert row["status"] == "failed" and row["release"] == "2026_02" and str(missing) in row["error"]
    assert nothing_extracted(platform_db)


# -- through Airflow: dag.test() with a missing source ---------------------------------------------------
def test_dag_missing_source_fails_first_task_once_and_alerts_with_release(
        platform_db: Settings, tmp_path: Path, smtp_server: Inbox, webhook: Receiver) -> None:  # noqa: F811
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState, TaskInstanceState

    from vehicle_etl.config import PROJECT_ROOT

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags["vpic_vehicle_etl"]
    missing = tmp_path / "vPICList_lite_2026_02.db"
    run = dag.test(run_conf={"source": f"sqlite:///{missing}"})
    assert run.state == DagRunState.FAILED
    states = {ti.task_id: ti for ti in run.get_task_instances()}
    assert states["restore"].state == TaskInstanceState.FAILED and states["restore"].try_number == 1
    assert {states[t].state for t in states if t != "restore"} == {TaskInstanceState.UPSTREAM_FAILED}
    row = run_row(platform_db, run.run_id)
    assert row["status"] == "failed" and row["release"] == "2026_02" and str(missing) in row["error"]
    assert nothing_extracted(platform_db)
    assert len(smtp_server.messages) == 1
    subject = smtp_server.messages[0]["Subject"]
    assert subject.startswith("[vehicle-etl] FAILED vpic_vehicle_etl.restore release 2026_02")
    assert len(webhook.posts) == 1 and str(missing) in webhook.posts[0]["json"]["text"]

