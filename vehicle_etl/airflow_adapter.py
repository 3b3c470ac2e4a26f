"""Airflow's side of the DAG's tasks: what a task is handed (TaskRun), the lock and the error
mapping around it (etl_task), the failure callback. The pipeline itself knows nothing of Airflow.

Imported by the DAG at parse time, so it imports nothing heavy at module level: Airflow's SDK,
the pipeline (psycopg, SQLAlchemy: most of a second) and the alerts are imported when a task runs.
Other modules that import Airflow, each only inside the function that needs it: source.connect
(connections), source.mssql (MsSqlHook), notify.alerts (SmtpNotifier, the failed task's log).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from vehicle_etl.config import Settings
from vehicle_etl.errors import EtlError, TransientError
from vehicle_etl.releases import month_of

if TYPE_CHECKING:
    from vehicle_etl.source.reference import SourceRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskRun:
    """What a task of the DAG is handed: the settings, its DAG run's id, trigger and Params."""

    settings: Settings
    run_id: str
    trigger: str
    params: Mapping[str, Any]
    context: Mapping[str, Any]

    @property
    def pipeline(self) -> ModuleType:
        """vehicle_etl.pipeline, imported when the task runs (never while the DAG file parses)."""
        return importlib.import_module("vehicle_etl.pipeline")

    @property
    def ref(self) -> SourceRef:
        """The source reference the run's first task decided, as its run-history row records it."""
        return self.pipeline.run_ref(self.settings, self.run_id)

    @property
    def backfill_month(self) -> str | None:
        """The newest release a backfill may build when its conf names none (else None)."""
        return None if self.params.get("release") else backfill_month(self.context)


def etl_task(fn: Callable[[TaskRun], Any]) -> Callable[[], Any]:
    """Make a task body of `fn(run: TaskRun)`: hold the pipeline lock for the step, and do not
    retry what cannot change.

    The advisory lock (vehicle_etl.runs.run_lock) makes a CLI build or a second DAG run fail fast instead
    of interleaving with this run's steps. Bad input and failed quality gates fail the task for
    good (AirflowFailException); transient errors (a concurrent run, an unreachable or timed-out
    server) and anything unexpected (a dropped connection, a full disk) take the normal retries.
    The body takes no Airflow arguments (its signature is empty): the order of the tasks is the
    DAG's chain, not data passed between them.
    """

    def task_body() -> Any:
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowFailException

        from vehicle_etl.runs import run_lock

        context = get_current_context()
        run_id, trigger = run_info(context)
        run = TaskRun(Settings(), run_id, trigger, dict(context.get("params") or {}), context)
        try:
            with run_lock(run.settings, run_id):
                return fn(run)
        except TransientError:
            raise
        except EtlError as exc:
            raise AirflowFailException(str(exc)) from exc

    # Name and doc for Airflow (task id, docs), but not __wrapped__: Airflow must see no parameters.
    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(task_body, attr, getattr(fn, attr))
    return task_body


def run_info(context: dict[str, Any]) -> tuple[str, str]:
    """(run id, trigger) of the current DAG run."""
    dag_run = context["dag_run"]
    run_type = getattr(dag_run, "run_type", "manual")
    return dag_run.run_id, str(getattr(run_type, "value", run_type))


def backfill_month(context: dict[str, Any]) -> str | None:
    """YYYY_MM of a backfill run's logical date (None for other runs): the newest release it may build
    when its conf names none (vehicle_etl.releases; docs/RUNBOOK.md, "Backfills")."""
    _, trigger = run_info(context)
    logical_date = context.get("logical_date")
    if trigger != "backfill" or logical_date is None:
        return None
    return month_of(logical_date)


def __getattr__(name: str) -> Any:
    """METADATA_CONNECT_ARGS ([database] sql_alchemy_connect_args, set by scripts/airflow-env.sh):
    with the SQLite metadata database of a local install, wait up to 60 s for its write lock instead
    of pysqlite's 5 s, so a CLI command (backfill create, dags trigger) next to a busy scheduler does
    not fail with "database is locked". Nothing for any other database."""
    if name != "METADATA_CONNECT_ARGS":
        raise AttributeError(name)
    from airflow.configuration import conf

    return metadata_connect_args(conf.get("database", "sql_alchemy_conn"))


def metadata_connect_args(sql_alchemy_conn: str) -> dict[str, Any]:
    return {"timeout": 60} if sql_alchemy_conn.startswith("sqlite") else {}


def on_task_failure(context: dict[str, Any]) -> None:
    """on_failure_callback for every task: alerts (e-mail, webhook); never raises."""
    try:
        from vehicle_etl.notify import alerts
    except ImportError:
        log.error("task failed and vehicle_etl.notify.alerts is unavailable; no alert sent")
        return
    try:
        alerts.on_task_failure(context)
    except Exception:
        log.exception("sending the failure alert failed")
