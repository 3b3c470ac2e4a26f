"""vPIC → MVP Platform: the weekly vehicle catalog ETL (wiring only; logic in vehicle_etl.pipeline)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, get_current_context, task

from vehicle_etl.airflow_adapter import backfill_month, etl_task, on_task_failure, run_info
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
`vehicles_previous`) → completion marker and run history (`etl.run_history`).

**Params**: `release` (YYYY_MM, default: newest available), `source` (a source URL without a
password, or `conn:<connection id>`; default: configuration), `force` (rebuild a release that is
already live), `allow_drift` (accept a release that shrinks more than the drift threshold).

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
    },
)
def vpic_vehicle_etl() -> None:
    @task(doc_md="Open run history, find the source (restoring a backup when a backups folder is configured) "
                 "and decide the release: a missing source or a release it cannot be fails here, for good.")
    @etl_task
    def restore() -> dict:
        from vehicle_etl import pipeline
        from vehicle_etl.config import Settings

        ctx = get_current_context()
        params = ctx["params"]
        run_id, trigger = run_info(ctx)
        ref = pipeline.resolve_step(Settings(), run_id, trigger, params.get("source"), params.get("release"),
                                    not_after=None if params.get("release") else backfill_month(ctx))
        return ref.as_dict()

    @task.short_circuit(doc_md="Skip the rest when this release is already live and verified (unless force).")
    @etl_task
    def check_release(ref: dict) -> bool:
        from vehicle_etl import pipeline
        from vehicle_etl.config import Settings

        ctx = get_current_context()
        settings = Settings()
        if pipeline.is_noop(settings, pipeline.SourceRef(**ref), bool(ctx["params"].get("force"))):
            pipeline.mark_noop(settings, run_info(ctx)[0])
            return False
        return True

    @task(doc_md="Stream every vPIC table into `vehicles_staging` with COPY; returns the table names.")
    @etl_task
    def extract_load(ref: dict) -> list[str]:
        from vehicle_etl import pipeline
        from vehicle_etl.config import Settings

        counts = pipeline.extract_load_step(Settings(), run_info(get_current_context())[0], pipeline.SourceRef(**ref))
        return sorted(counts)

    @task(doc_md="Derive the dropdown and decoder tables inside PostgreSQL; check their keys.")
    @etl_task
    def transform(tables: list[str]) -> list[str]:
        from vehicle_etl import pipeline
        from vehicle_etl.config import Settings

        return tables + sorted(pipeline.transform_step(Settings(), run_info(get_current_context())[0]))

    @task(doc_md="Gate 1: row counts, key uniqueness, foreign-key coverage of the loaded tables.")
    @etl_task
    def key_checks(tables: list[str]) -> list[str]:
        from vehicle_etl import pipeline
        from vehicle_etl.config import Settings

        pipeline.key_gate_step(Settings(), run_info(get_current_context())[0])
        return tables

    @task(doc_md="Declare keys, build indexes, install the SQL functions in staging, analyze.")
    @etl_task
    def build_keys(tables: list[str]) -> list[str]:
        from vehicle_etl import pipeline
        from vehicle_etl.config import Settings

        pipeline.build_keys_step(Settings(), run_info(get_current_context())[0])
        return tables

    @task(retries=0, doc_md="Gate 2: the full data-quality gate; a failure stops the run before the swap.")
    @etl_task
    def validate(tables: list[str]) -> list[str]:
        from vehicle_etl import pipeline
        from vehicle_etl.config import Settings

        ctx = get_current_context()
        pipeline.validate_step(Settings(), run_info(ctx)[0], allow_drift=bool(ctx["params"].get("allow_drift")))
        return tables

    @task(outlets=[LIVE_CATALOG], doc_md="Atomic swap: staging becomes `vehicles`, live becomes `vehicles_previous`.")
    @etl_task
    def swap(ref: dict, tables: list[str]) -> None:
        from vehicle_etl import pipeline
        from vehicle_etl.config import Settings

        pipeline.swap_step(Settings(), run_info(get_current_context())[0], pipeline.SourceRef(**ref))

    @task(doc_md="Write the completion marker and invalidate the app's caches.")
    @etl_task
    def publish() -> str:
        from vehicle_etl import pipeline
        from vehicle_etl.config import Settings

        return str(pipeline.publish_step(Settings(), run_info(get_current_context())[0]))

    ref = restore()
    gate = check_release(ref)
    loaded = extract_load(ref)
    gate >> loaded
    swapped = swap(ref, validate(build_keys(transform(key_checks(loaded)))))
    swapped >> publish()


vpic_vehicle_etl()
