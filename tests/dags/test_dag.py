"""DAG integrity and policy, and one end-to-end dag.test() on the shipped sample."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vehicle_etl.config import PROJECT_ROOT, Settings
from vehicle_etl.platform_db import connect

DAG_FILE = PROJECT_ROOT / "dags" / "vpic_vehicle_etl.py"
PIPELINE_ORDER = ["restore", "check_release", "extract_load", "key_checks", "transform", "build_keys", "validate",
                  "swap", "marker", "publish"]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAG_FILE.parent))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert "vpic_vehicle_etl" in dagbag.dags


def test_parse_is_fast_and_does_not_import_great_expectations() -> None:
    code = (
        "import sys, time, importlib.util, airflow.sdk\n"
        f"spec = importlib.util.spec_from_file_location('d', {str(DAG_FILE)!r})\n"
        "m = importlib.util.module_from_spec(spec); t = time.perf_counter(); spec.loader.exec_module(m)\n"
        "print(time.perf_counter() - t, 'great_expectations' in sys.modules, 'pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    seconds, gx, pandas = float(out[-3]), out[-2], out[-1]
    assert gx == "False" and pandas == "False"
    assert seconds < 2.0, f"parsing the DAG file took {seconds:.2f}s"


def test_policy(dagbag) -> None:
    dag = dagbag.dags["vpic_vehicle_etl"]
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.tags and {"vpic", "etl"} <= set(dag.tags)
    assert dag.doc_md and "Backfills" in dag.doc_md
    assert dag.description and "vPIC" in dag.description
    assert set(dag.params.keys()) == {"release", "source", "force", "allow_drift", "allow_element_change"}
    for task in dag.tasks:
        assert task.owner == "vehicle-data-platform", task.task_id
        assert task.on_failure_callback, task.task_id
        assert task.doc_md, task.task_id
        if task.task_id != "validate":  # the gate's verdict is not retried
            assert task.retries >= 2, task.task_id
    assert dag.get_task("validate").retries == 0
    # The DAG is one chain, in the order of the design's stages; each task has exactly one successor.
    assert [t.task_id for t in dag.roots] == ["restore"]
    order, task = ["restore"], dag.get_task("restore")
    while task.downstream_task_ids:
        (next_id,) = task.downstream_task_ids
        order.append(next_id)
        task = dag.get_task(next_id)
    assert order == PIPELINE_ORDER
    assert {t.task_id for t in dag.tasks} == set(PIPELINE_ORDER)


def test_release_param_is_validated(dagbag) -> None:
    from airflow.sdk import Param

    release: Param = dagbag.dags["vpic_vehicle_etl"].params.get_param("release")
    release.resolve("2026_02")
    for bad in ("2026_02; DROP SCHEMA vehicles", "../../etc", "2026-02"):
        with pytest.raises(Exception, match="(?i)match|pattern|invalid"):
            release.resolve(bad)


def test_dag_test_end_to_end_on_sample(dagbag, platform_db: Settings) -> None:
    from airflow.utils.state import DagRunState

    dag = dagbag.dags["vpic_vehicle_etl"]
    started = time.monotonic()
    run = dag.test(run_conf={"release": "2026_02"})
    assert run.state == DagRunState.SUCCESS, f"dag run ended {run.state}"
    with connect(platform_db) as conn:
        makes = conn.execute("SELECT count(*) FROM vehicles.make").fetchone()[0]
        release, run_id = conn.execute("SELECT release, run_id FROM vehicles.catalog_info").fetchone()
        status = conn.execute("SELECT status FROM etl.run_history WHERE run_id = %s", (run_id,)).fetchone()[0]
    assert makes > 0 and release == "2026_02" and status == "success"
    assert run_id == run.run_id
    marker = json.loads((Path(platform_db.markers) / "latest.json").read_text())
    assert marker["run_id"] == run.run_id and marker["counts"]["make"] == makes
    assert time.monotonic() - started < 600

    # The same release again is a no-op unless forced.
    again = dag.test(run_conf={"release": "2026_02"})
    assert again.state == DagRunState.SUCCESS
    with connect(platform_db) as conn:
        statuses = [r[0] for r in conn.execute("SELECT status FROM etl.run_history ORDER BY started_at")]
        assert conn.execute("SELECT run_id FROM vehicles.catalog_info").fetchone()[0] == run.run_id
    assert statuses == ["success", "noop"]
