"""The SQL checks of the full gate (include/sql/checks): names, coverage of unkeyed links; a known,
tolerated fault of real vPIC data is "tiered" (a warning up to its tolerance, a block above)."""

from __future__ import annotations

import logging
import math
from typing import Any

import psycopg
from psycopg import sql

from vehicle_etl.config import STAGING_SCHEMA
from vehicle_etl.platform_db import render, sql_file
from vehicle_etl.quality.results import CheckResult

log = logging.getLogger(__name__)


# Tolerance per SQL check: None = any bad row blocks; (rows, share) = a warning while the bad rows
# stay within max(rows, share of the table), a block above. The absolute floor keeps small
# releases (the shipped sample) from blocking on one known-bad row; the share lets a real
# regression block. Floors sit a little above the faults of the Feb 2026 snapshot
# (docs/DATA_QUALITY.md, "per-fault decisions").
Tolerance = tuple[int, float] | None
NAME_TOLERANCE: dict[str, Tolerance] = {
    "make_name": None, "model_name": None, "manufacturer_name": None, "element_name": None,
    "engine_model_name": None, "lookup_name": None, "wmi_code": None,
    "vin_schema_name": (50, 0.005),        # 20 schema names start with a tab: never shown to users
    "pattern_attribute_id": (1000, 0.005),  # 557 free-text attributes end in a tab/newline
}
# Empty names always block: an empty dropdown entry or a pattern that decodes to nothing.
COVERAGE_TOLERANCE: dict[str, Tolerance] = {
    "wmi_without_make": (25, 0.01),       # 14 in the snapshot: those WMIs decode without a make
    "wmi_without_schema": (50, 0.01),     # 33: those WMIs decode the make only
    "vin_schema_unlinked": (20, 0.01),    # 6: dead schemas, never reached by a decode
    "model_without_make": (0, 0.001),     # 0: a model without a make is unreachable
    "pattern_lookup_orphans": (10, 0.0005),  # 1 (Model 28450): decodes the id instead of a name
    "model_year_range": None,
}


def _tiered(name: str, bad: int, total: int, tolerance: Tolerance, detail: str) -> CheckResult:
    if tolerance is None:
        return CheckResult(name, bad == 0, bad, 0, True, detail)
    allowed = max(tolerance[0], math.floor(tolerance[1] * total))
    return CheckResult(
        name, bad == 0, bad, f"0 (block > {allowed})", blocking=bad > allowed,
        detail=detail + (f"; {bad} of {total} rows, tolerated up to {allowed}" if bad else ""),
    )



def scalar(conn: psycopg.Connection, query: sql.Composable) -> Any:
    return conn.execute(query).fetchone()[0]  # type: ignore[index]


def file_rows(conn: psycopg.Connection, relative: str, **schemas: str) -> list[tuple[Any, ...]]:
    """The rows of the SQL file `relative` (include/sql/...), its {{schema}}/{{live}} rendered."""
    return conn.execute(render(sql_file(relative), **schemas).encode()).fetchall()


def sql_checks(conn: psycopg.Connection, schema: str = STAGING_SCHEMA) -> list[CheckResult]:
    """Names (non-empty, no stray whitespace), coverage of unkeyed links, model-year range."""
    results: list[CheckResult] = []
    with conn.transaction():
        for subject, total, empty, stray, empty_ex, stray_ex in file_rows(conn, "checks/10_names.sql", schema=schema):
            results.append(CheckResult(
                f"not_empty_{subject}", empty == 0, empty, 0,
                detail=f"NULL, empty or whitespace-only; first id {empty_ex}" if empty else ""))
            results.append(_tiered(
                f"no_stray_whitespace_{subject}", stray, total, NAME_TOLERANCE.get(subject),
                f"leading/trailing whitespace; first id {stray_ex}" if stray else ""))
        for subject, total, bad, example in file_rows(conn, "checks/20_coverage.sql", schema=schema):
            results.append(_tiered(subject, bad, total, COVERAGE_TOLERANCE.get(subject),
                                   f"e.g. {example}" if bad else ""))
    return results
