"""Data-quality checks on the staging schema, run inside PostgreSQL; structured results.

The key checks run before keys are declared (so a duplicate id is reported as a named check,
not as a constraint error); the full gate runs after. A blocking failure raises
QualityGateError and the swap never happens.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import sql

from vehicle_etl.config import STAGING_SCHEMA
from vehicle_etl.errors import QualityGateError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    observed: Any
    threshold: Any
    blocking: bool = True
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Minimum rows per table for a release to be plausible. The shipped sample is small, so these
# floors are low; the drift checks against the live version catch a release that shrank.
MIN_ROWS = {
    "make": 1, "model": 1, "make_model": 1, "wmi": 1, "wmi_make": 1, "vin_schema": 1,
    "wmi_vin_schema": 1, "pattern": 1, "element": 1, "model_year": 1,
}

# (check name, table, key columns)
UNIQUE_KEYS = [
    ("unique_make_id", "make", ["make_id"]),
    ("unique_model_id", "model", ["model_id"]),
    ("unique_make_model_model_id", "make_model", ["model_id"]),
    ("unique_manufacturer_id", "manufacturer", ["manufacturer_id"]),
    ("unique_wmi_id", "wmi", ["wmi_id"]),
    ("unique_wmi_code", "wmi", ["wmi"]),
    ("unique_vin_schema_id", "vin_schema", ["vin_schema_id"]),
    ("unique_wmi_vin_schema_id", "wmi_vin_schema", ["wmi_vin_schema_id"]),
    ("unique_element_id", "element", ["element_id"]),
    ("unique_pattern_id", "pattern", ["pattern_id"]),
    ("unique_engine_model_id", "engine_model", ["engine_model_id"]),
    ("unique_engine_model_pattern_id", "engine_model_pattern", ["engine_model_pattern_id"]),
    ("unique_lookup_id", "lookup", ["lookup_table", "lookup_id"]),
]

# (check name, child table, child column, parent table, parent column)
FOREIGN_KEYS = [
    ("fk_make_model_make", "make_model", "make_id", "make", "make_id"),
    ("fk_make_model_model", "make_model", "model_id", "model", "model_id"),
    ("fk_wmi_make_wmi", "wmi_make", "wmi_id", "wmi", "wmi_id"),
    ("fk_wmi_make_make", "wmi_make", "make_id", "make", "make_id"),
    ("fk_wmi_vin_schema_wmi", "wmi_vin_schema", "wmi_id", "wmi", "wmi_id"),
    ("fk_wmi_vin_schema_schema", "wmi_vin_schema", "vin_schema_id", "vin_schema", "vin_schema_id"),
    ("fk_pattern_schema", "pattern", "vin_schema_id", "vin_schema", "vin_schema_id"),
    ("fk_pattern_element", "pattern", "element_id", "element", "element_id"),
    ("fk_engine_model_pattern_engine", "engine_model_pattern", "engine_model_id", "engine_model", "engine_model_id"),
]


def _scalar(conn: psycopg.Connection, query: sql.Composable) -> Any:
    return conn.execute(query).fetchone()[0]  # type: ignore[index]


def key_checks(conn: psycopg.Connection, schema: str = STAGING_SCHEMA) -> list[CheckResult]:
    """Row counts, key uniqueness and foreign-key coverage of the staged tables."""
    s = sql.Identifier(schema)
    results: list[CheckResult] = []
    for table, floor in MIN_ROWS.items():
        n = _scalar(conn, sql.SQL("SELECT count(*) FROM {}.{}").format(s, sql.Identifier(table)))
        results.append(CheckResult(f"min_rows_{table}", n >= floor, n, floor))
    for name, table, cols in UNIQUE_KEYS:
        c = sql.SQL(", ").join(map(sql.Identifier, cols))
        dup = _scalar(conn, sql.SQL(
            "SELECT count(*) FROM (SELECT {c} FROM {s}.{t} GROUP BY {c} HAVING count(*) > 1) d"
        ).format(c=c, s=s, t=sql.Identifier(table)))
        results.append(CheckResult(name, dup == 0, dup, 0, detail=f"duplicated keys in {table}({', '.join(cols)})"))
    for name, child, ccol, parent, pcol in FOREIGN_KEYS:
        orphans = _scalar(conn, sql.SQL(
            "SELECT count(*) FROM {s}.{c} x WHERE NOT EXISTS (SELECT 1 FROM {s}.{p} y WHERE y.{pc} = x.{cc})"
        ).format(s=s, c=sql.Identifier(child), p=sql.Identifier(parent),
                 pc=sql.Identifier(pcol), cc=sql.Identifier(ccol)))
        results.append(CheckResult(name, orphans == 0, orphans, 0,
                                   detail=f"{child}.{ccol} values missing from {parent}.{pcol}"))
    return results


def format_table(results: list[CheckResult]) -> str:
    """A compact fixed-width table for task logs."""
    width = max((len(r.name) for r in results), default=10)
    lines = [f"{'check':<{width}}  result  observed      threshold"]
    for r in results:
        verdict = "ok" if r.passed else ("FAIL" if r.blocking else "warn")
        lines.append(f"{r.name:<{width}}  {verdict:<6}  {r.observed!s:<12}  {r.threshold!s}")
    return "\n".join(lines)


def enforce(results: list[CheckResult], stage: str) -> None:
    """Log the table; raise QualityGateError naming the failing blocking checks."""
    log.info("quality gate (%s):\n%s", stage, format_table(results))
    failed = [r for r in results if r.blocking and not r.passed]
    if failed:
        names = ", ".join(f"{r.name} (observed {r.observed}, threshold {r.threshold})" for r in failed)
        raise QualityGateError(f"quality gate failed at {stage}: {names}. Live was not changed; "
                               "staging is kept for inspection.")
