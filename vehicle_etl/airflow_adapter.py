"""The only module that speaks Airflow: task bodies and callbacks over the plain pipeline.

Imported by the DAG at parse time, so it imports nothing heavy at module level.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from vehicle_etl.errors import EtlError, TransientError
from vehicle_etl.releases import month_of

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def etl_task(fn: F) -> F:
    """Wrap a task body: hold the pipeline lock for the step, and do not retry what cannot change.

    The advisory lock (pipeline.run_lock) makes a CLI build or a second DAG run fail fast instead
    of interleaving with this run's steps. Bad input and failed quality gates fail the task for
    good (AirflowFailException); transient errors (a concurrent run, an unreachable or timed-out
    server) and anything unexpected (a dropped connection, a full disk) take the normal retries.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowFailException

        from vehicle_etl.config import Settings
        from vehicle_etl.pipeline import run_lock

        try:
            with run_lock(Settings(), run_info(get_current_context())[0]):
                return fn(*args, **kwargs)
        except TransientError:
            raise
        except EtlError as exc:
            raise AirflowFailException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


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
