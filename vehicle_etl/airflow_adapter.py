"""The only module that speaks Airflow: task bodies and callbacks over the plain pipeline.

Imported by the DAG at parse time, so it imports nothing heavy at module level.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from vehicle_etl.errors import EtlError, TransientError

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def fail_fast(fn: F) -> F:
    """Bad input and failed quality gates are not retried: retrying cannot fix them.

    Transient errors (a concurrent run, an unreachable or timed-out server) and anything unexpected
    (a dropped connection, a full disk) take the task's normal retries.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException

        try:
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


def on_task_failure(context: dict[str, Any]) -> None:
    """on_failure_callback for every task: alerts (e-mail, webhook); never raises."""
    try:
        from vehicle_etl import alerts
    except ImportError:
        log.error("task failed and vehicle_etl.alerts is unavailable; no alert sent")
        return
    try:
        alerts.on_task_failure(context)
    except Exception:
        log.exception("sending the failure alert failed")
