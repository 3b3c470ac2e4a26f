"""Data-quality checks on the staging schema, run inside PostgreSQL; structured results.

Two gates. `key_checks` runs before keys are declared, so a duplicate id or an orphan is reported
as a named check instead of a constraint error. `validate` runs after (the full gate): cheap SQL
checks (include/sql/checks), drift against the live version, the functional golden-VIN hook and
the Great Expectations suite (vehicle_etl/quality/gx_suite.py, imported only inside `validate`).

Every check yields a CheckResult. Known, tolerated faults of real vPIC data are "tiered": a few
bad rows fail the check as a warning (blocking=False), more than the tolerated share blocks. A
blocking failure raises QualityGateError in `enforce` and the swap never happens.
docs/DATA_QUALITY.md lists every check and why it blocks or warns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from vehicle_etl.config import LIVE_SCHEMA, STAGING_SCHEMA, Settings
from vehicle_etl.platform_db import sibling
from vehicle_etl.quality.checks import sql_checks
from vehicle_etl.quality.drift import DEFAULT_MAX_SHRINK, drift_checks, element_presence_checks
from vehicle_etl.quality.golden import GoldenHook, default_golden, golden_check
from vehicle_etl.quality.results import CheckResult

log = logging.getLogger(__name__)


def validate(
    conn: psycopg.Connection,
    settings: Settings | None = None,
    *,
    schema: str = STAGING_SCHEMA,
    live: str = LIVE_SCHEMA,
    allow_drift: bool = False,
    max_shrink: float = DEFAULT_MAX_SHRINK,
    golden: GoldenHook | None = None,
    use_gx: bool = True,
    release: str | None = None,
    requested_release: str | None = None,
    allow_element_change: bool = False,
) -> list[CheckResult]:
    """The full gate on `schema` (after build_keys): SQL checks, drift, golden VINs, GX suite.

    The four parts are independent reads: the SQL checks run on `conn`, the others each on a
    connection of their own at the same time (PostgreSQL runs a statement on one core; the GX
    import is seconds of Python CPU). Results come back in that order whatever finishes first.
    `golden=None` uses `default_golden(release)` (the decoder's hook, when installed). `release`
    is the staged release (YYYY_MM, or None when unknown): the golden VINs it is held to and the
    drift baseline depend on it; `requested_release` is the one the run named (a backfill's
    confirmation). `settings` is
    accepted for the pipeline's call shape; GX connects with `conn`'s own parameters so it reads
    the very database `conn` does.
    """
    del settings
    started = time.monotonic()
    timings: dict[str, float] = {}

    def timed(name: str, part: Callable[[psycopg.Connection], list[CheckResult]]) -> Callable[[], list[CheckResult]]:
        def run() -> list[CheckResult]:
            t = time.monotonic()
            with sibling(conn) as c:
                out = part(c)
            timings[name] = round(time.monotonic() - t, 2)
            return out
        return run

    parts = {
        "drift": timed("drift", lambda c: drift_checks(
            c, schema, live, allow_drift=allow_drift, max_shrink=max_shrink, release=release,
            requested_release=requested_release) + element_presence_checks(
            c, schema, live, allow_element_change=allow_element_change)),
        "golden": timed("golden", lambda c: [golden_check(c, schema, golden if golden is not None
                                                          else default_golden(release))]),
    }
    if use_gx:
        parts["gx"] = timed("gx", lambda c: _gx_checks(c, schema))
    with ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="gate") as pool:
        futures = [pool.submit(run) for run in parts.values()]
        t = time.monotonic()
        results = sql_checks(conn, schema)
        timings["sql"] = round(time.monotonic() - t, 2)
        for future in futures:
            results += future.result()
    log.info("validation of %s: %d checks in %.2fs (side by side: %s)", schema, len(results),
             time.monotonic() - started, ", ".join(f"{k} {v}s" for k, v in timings.items()))
    return results


def breaking_check(breaking: dict[str, Any] | None) -> CheckResult:
    """The release diff's breaking-for-the-app count as a check (a warning, never a block): run
    history, the alerts and the success summary then show it beside the gate's warnings. Not a
    block: NHTSA does retire and rename ids, and the id-history lookups keep them resolvable."""
    if not breaking:
        return CheckResult("breaking_changes", True, 0, 0, False, "no live catalog to compare with")
    parts = {k: v["count"] for k, v in breaking.items() if isinstance(v, dict) and v.get("count")}
    total = int(breaking.get("total") or 0)
    return CheckResult("breaking_changes", total == 0, total, 0, False,
                       ", ".join(f"{k} {n}" for k, n in parts.items())
                       + ("; stored ids resolve through vehicles.make_by_id / model_by_id" if total else ""))


def preload_gx() -> None:
    """Start importing great_expectations in a daemon thread (validate's import then finds it done
    or waits for it): a caller about to run single-connection SQL lends GX the idle core."""
    def load() -> None:
        try:
            from vehicle_etl.quality import gx_suite

            gx_suite.import_gx()
        except Exception:  # noqa: BLE001 - _gx_checks imports again and reports the error
            pass

    threading.Thread(target=load, name="gx-import", daemon=True).start()


def _gx_checks(conn: psycopg.Connection, schema: str) -> list[CheckResult]:
    """The Great Expectations suite; GX is imported here (seconds, once per process)."""
    try:
        from vehicle_etl.quality import gx_suite

        return gx_suite.run_suite(conn, schema)
    except Exception as exc:  # GX itself broke: the rules were not evaluated, so do not promote
        log.exception("Great Expectations suite could not run")
        return [CheckResult("gx_suite", False, "error", "-", True, f"{type(exc).__name__}: {exc}"[:500])]
