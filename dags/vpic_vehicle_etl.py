"""vPIC → MVP Platform: the weekly vehicle catalog ETL (wiring only; logic in vehicle_etl.pipeline)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, chain, dag, task

from vehicle_etl.airflow_adapter import TaskRun, etl_task, on_task_failure
from vehicle_etl.releases import RELEASE_PATTERN

LIVE_CATALOG = Asset(
    name="mvp_platform_vehicles_catalog",
    uri="postgres://mvp-platform-database:5432/mvp-platform-vehicles/vehicles/catalog_info",
)

DOC = """
### vPIC vehicle catalog ETL
Builds the MVP Platform catalog (schema `vehicles`) from NHTSA's vPIC release:
restore the backup → extract/load into `vehicles_staging` with COPY → key checks → derive the
dropdown and decoder tables → keys, indexes and functions → quality gate → atomic swap (previous version kept as
`vehicles_previous`) → completion marker → publish (id history, cache invalidation); run history (`etl.run_history`)
throughout. The tasks, in order: `restore` → `check_release` → `extract_load` → `key_checks` → `transform` →
`build_keys` → `validate` → `swap` → `marker` → `publish`.

**Params**: `release` (YYYY_MM, default: newest available), `source` (a source URL without a
password, or `conn:<connection id>`; default: configuration), `force` (rebuild a release that is
already live), `allow_drift` (accept a release that shrinks more than the drift threshold),
`allow_element_change` (accept a release that loses whole elements live has). Naming a release
older than the live one is a backfill (docs/RUNBOOK.md).

**Which release a run builds** (decided in `restore`, before anything is extracted): the `release`
Param, else the release in the source's file name (`vPICList_lite_2026_02.bak`), else the newest
release in the backups folder, else the month of the source's newest `CreatedOn`/`UpdatedOn`;
`unknown` when nothing tells (such a run is never skipped as "already live"). A release that is in
the future, disagrees with the file name, is older than the source's changes (more than one
month), or has no backup fails `restore` at once, without retries; so does a missing source file.

**Backfills** (`airflow backfill create … --dag-run-conf '{"release": "YYYY_MM"}'`): each run
builds the release of its conf; without one, the newest release published in or before the month
of its logical date (the newest such backup; another source only if it is not newer). A release
already live and verified makes the run a no-op unless `"force": true`. See docs/RUNBOOK.md.

A failed run never touches `vehicles`; its staging schema is kept for inspection
(`vehicle-etl cleanup` drops it). Roll back with `vehicle-etl rollback`.

**[Vehicle catalog](plugin/vehicle-catalog)** (navigation bar): live release, runs, gate, release diff, VIN decode.
"""

DEFAULT_ARGS = {
    "owner": "vehicle-data-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "on_failure_callback": on_task_failure,
}


@dag(
    dag_id="vpic_vehicle_etl",
    description="NHTSA vPIC release -> MVP Platform vehicle catalog (schema vehicles): restore, COPY, derive, "
                "quality gate, atomic swap; weekly",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["vpic", "vehicles", "etl", "mvp-platform"],
    doc_md=DOC,
    params={
        "release": Param(None, type=["null", "string"], pattern=RELEASE_PATTERN,
                         title="Release", description="vPIC release YYYY_MM; empty = newest available"),
        "source": Param(None, type=["null", "string"], maxLength=500, title="Source",
                        description="sqlite:///path, postgresql+psycopg://user@host/db or conn:<id>; "
                                    "empty = configured source or backups folder"),
        "force": Param(False, type="boolean", title="Force",
                       description="rebuild even if this release is already live and verified"),
        "allow_drift": Param(False, type="boolean", title="Allow drift",
                             description="accept a release whose tables shrink beyond the threshold"),
        "allow_element_change": Param(False, type="boolean", title="Allow element change",
                                      description="accept a release in which whole elements (decoded fields, "
                                                  "e.g. EngineCylinders) that live has have no patterns"),
    },
)
def vpic_vehicle_etl() -> None:
    # Each task is one pipeline step (vehicle_etl.pipeline, the same functions `vehicle-etl
    # build-catalog` calls); etl_task hands it a TaskRun (settings, run id, trigger, Params) and holds
    # the run lock around it. Only the run id travels between tasks: the source reference the first
    # task decides is in the run's history row. The order is the chain at the bottom.

    @task(doc_md="Open run history, find the source (restoring a backup when a backups folder is configured) "
                 "and decide the release: a missing source or a release it cannot be fails here, for good.")
    @etl_task
    def restore(run: TaskRun) -> dict:
        ref = run.pipeline.resolve_step(run.settings, run.run_id, run.trigger, run.params.get("source"),
                                        run.params.get("release"), not_after=run.backfill_month)
        return ref.as_dict()  # shown in the UI; later tasks read the run's row, not this

    @task.short_circuit(doc_md="Skip the rest when this release is already live and verified (unless force).")
    @etl_task
    def check_release(run: TaskRun) -> bool:
        return run.pipeline.go_on(run.settings, run.run_id, run.ref, force=bool(run.params.get("force")))

    @task(doc_md="Stream every vPIC table into `vehicles_staging` with COPY.")
    @etl_task
    def extract_load(run: TaskRun) -> None:
        run.pipeline.extract_load_step(run.settings, run.run_id, run.ref)

    @task(doc_md="Gate 1: row counts, key uniqueness, foreign-key coverage of the loaded tables.")
    @etl_task
    def key_checks(run: TaskRun) -> None:
        run.pipeline.key_checks_step(run.settings, run.run_id)

    @task(doc_md="Derive the dropdown and decoder tables inside PostgreSQL; check their keys.")
    @etl_task
    def transform(run: TaskRun) -> None:
        run.pipeline.transform_step(run.settings, run.run_id)

    @task(doc_md="Declare keys, build indexes, install the SQL functions in staging, analyze.")
    @etl_task
    def build_keys(run: TaskRun) -> None:
        run.pipeline.build_keys_step(run.settings, run.run_id)

    @task(retries=0, doc_md="Gate 2: the full data-quality gate; a failure stops the run before the swap.")
    @etl_task
    def validate(run: TaskRun) -> None:
        run.pipeline.validate_step(run.settings, run.run_id, allow_drift=bool(run.params.get("allow_drift")),
                                   allow_element_change=bool(run.params.get("allow_element_change")),
                                   requested_release=run.params.get("release"))

    @task(outlets=[LIVE_CATALOG], doc_md="Atomic swap: the staged version goes live, live becomes previous.")
    @etl_task
    def swap(run: TaskRun) -> None:
        run.pipeline.swap_step(run.settings, run.run_id, run.ref)

    @task(doc_md="Write the completion marker (JSON, `VEHICLE_ETL_MARKER_DIR`) of the promoted release.")
    @etl_task
    def marker(run: TaskRun) -> str:
        return str(run.pipeline.marker_step(run.settings, run.run_id))

    @task(doc_md="Record the id history, invalidate the app's caches, send the success summary (when enabled).")
    @etl_task
    def publish(run: TaskRun) -> None:
        run.pipeline.publish_step(run.settings, run.run_id)

    chain(restore(), check_release(), extract_load(), key_checks(), transform(), build_keys(), validate(), swap(),
          marker(), publish())


vpic_vehicle_etl()
