"""Gate 1, the key checks of the loaded tables: run before the keys are declared, so a duplicate id
or an orphan is reported as a named check instead of a constraint error in build_keys."""

from __future__ import annotations

import logging
from collections.abc import Collection

import psycopg
from psycopg import sql

from vehicle_etl.config import STAGING_SCHEMA
from vehicle_etl.quality.checks import scalar
from vehicle_etl.quality.results import CheckResult

log = logging.getLogger(__name__)


# Minimum rows per table for a release to be plausible. The shipped sample is small, so these
# floors are low; the drift checks against the live version catch a release that shrank.
MIN_ROWS = {
    "make": 1, "model": 1, "make_model": 1, "wmi": 1, "wmi_make": 1, "vin_schema": 1,
    "wmi_vin_schema": 1, "pattern": 1, "element": 1, "model_year": 1,
}

# (check name, table, key columns): every primary/unique key declared by schema/keys.sql, so
# build_keys cannot fail on data that passed this gate.
UNIQUE_KEYS = [
    ("unique_make_id", "make", ["make_id"]),
    ("unique_model_id", "model", ["model_id"]),
    ("unique_make_model_model_id", "make_model", ["model_id"]),
    ("unique_manufacturer_id", "manufacturer", ["manufacturer_id"]),
    ("unique_manufacturer_make", "manufacturer_make", ["manufacturer_id", "make_id"]),
    ("unique_wmi_id", "wmi", ["wmi_id"]),
    ("unique_wmi_code", "wmi", ["wmi"]),
    ("unique_wmi_make", "wmi_make", ["wmi_id", "make_id"]),
    ("unique_vin_schema_id", "vin_schema", ["vin_schema_id"]),
    ("unique_wmi_vin_schema_id", "wmi_vin_schema", ["wmi_vin_schema_id"]),
    ("unique_element_id", "element", ["element_id"]),
    ("unique_pattern_id", "pattern", ["pattern_id"]),
    ("unique_engine_model_id", "engine_model", ["engine_model_id"]),
    ("unique_engine_model_pattern_id", "engine_model_pattern", ["engine_model_pattern_id"]),
    ("unique_conversion_id", "conversion", ["conversion_id"]),
    ("unique_lookup_id", "lookup", ["lookup_table", "lookup_id"]),
    ("unique_model_year", "model_year", ["model_id", "model_year"]),
    # NHTSA's complete-release tables (empty when the source lacks them: nothing to duplicate)
    ("unique_vin_exception_id", "vin_exception", ["vin_exception_id"]),
    ("unique_wmi_year_valid_chars_id", "wmi_year_valid_chars", ["wmi_year_valid_chars_id"]),
    ("unique_wmi_year_valid_chars_exception_id", "wmi_year_valid_chars_exception", ["exception_id"]),
    ("unique_default_value_id", "default_value", ["default_value_id"]),
    ("unique_error_code_id", "error_code", ["error_code_id"]),
    ("unique_vin_descriptor_id", "vin_descriptor", ["vin_descriptor_id"]),
    ("unique_vin_descriptor", "vin_descriptor", ["descriptor"]),
    ("unique_vehicle_spec_schema_id", "vehicle_spec_schema", ["vehicle_spec_schema_id"]),
    ("unique_vehicle_spec_schema_model_id", "vehicle_spec_schema_model", ["vehicle_spec_schema_model_id"]),
    ("unique_vehicle_spec_schema_year_id", "vehicle_spec_schema_year", ["vehicle_spec_schema_year_id"]),
    ("unique_vspec_schema_pattern_id", "vspec_schema_pattern", ["vspec_schema_pattern_id"]),
    ("unique_vehicle_spec_pattern_id", "vehicle_spec_pattern", ["vehicle_spec_pattern_id"]),
]

# (check name, child table, child column, parent table, parent column): every foreign key of keys.sql.
FOREIGN_KEYS = [
    ("fk_make_model_make", "make_model", "make_id", "make", "make_id"),
    ("fk_make_model_model", "make_model", "model_id", "model", "model_id"),
    ("fk_manufacturer_make_manufacturer", "manufacturer_make", "manufacturer_id", "manufacturer", "manufacturer_id"),
    ("fk_manufacturer_make_make", "manufacturer_make", "make_id", "make", "make_id"),
    ("fk_wmi_make_wmi", "wmi_make", "wmi_id", "wmi", "wmi_id"),
    ("fk_wmi_make_make", "wmi_make", "make_id", "make", "make_id"),
    ("fk_wmi_vin_schema_wmi", "wmi_vin_schema", "wmi_id", "wmi", "wmi_id"),
    ("fk_wmi_vin_schema_schema", "wmi_vin_schema", "vin_schema_id", "vin_schema", "vin_schema_id"),
    ("fk_pattern_schema", "pattern", "vin_schema_id", "vin_schema", "vin_schema_id"),
    ("fk_pattern_element", "pattern", "element_id", "element", "element_id"),
    ("fk_engine_model_pattern_engine", "engine_model_pattern", "engine_model_id", "engine_model", "engine_model_id"),
    ("fk_model_year_model", "model_year", "model_id", "model", "model_id"),
    ("fk_model_year_make", "model_year", "make_id", "make", "make_id"),
    ("fk_default_value_element", "default_value", "element_id", "element", "element_id"),
    ("fk_vehicle_spec_schema_model_schema", "vehicle_spec_schema_model", "vehicle_spec_schema_id",
     "vehicle_spec_schema", "vehicle_spec_schema_id"),
    ("fk_vehicle_spec_schema_year_schema", "vehicle_spec_schema_year", "vehicle_spec_schema_id",
     "vehicle_spec_schema", "vehicle_spec_schema_id"),
    ("fk_vspec_schema_pattern_schema", "vspec_schema_pattern", "vehicle_spec_schema_id",
     "vehicle_spec_schema", "vehicle_spec_schema_id"),
    ("fk_vehicle_spec_pattern_vsp", "vehicle_spec_pattern", "vspec_schema_pattern_id",
     "vspec_schema_pattern", "vspec_schema_pattern_id"),
]


def key_checks(
    conn: psycopg.Connection, schema: str = STAGING_SCHEMA, tables: Collection[str] | None = None
) -> list[CheckResult]:
    """Row counts, key uniqueness and foreign-key coverage of the staged tables.

    `tables` limits the checks to those tables (a foreign key counts by its child): the pipeline
    checks the loaded tables before deriving anything from them, the derived ones after.
    """
    def wanted(table: str) -> bool:
        return tables is None or table in tables

    s = sql.Identifier(schema)
    results: list[CheckResult] = []
    # Own transaction: a read left open would turn the caller's `with conn.transaction()` history
    # write into a savepoint that is lost when the failed gate rolls the connection back.
    with conn.transaction():
        for table, floor in MIN_ROWS.items():
            if not wanted(table):
                continue
            n = scalar(conn, sql.SQL("SELECT count(*) FROM {}.{}").format(s, sql.Identifier(table)))
            results.append(CheckResult(f"min_rows_{table}", n >= floor, n, floor))
        for name, table, cols in UNIQUE_KEYS:
            if not wanted(table):
                continue
            c = sql.SQL(", ").join(map(sql.Identifier, cols))
            dup = scalar(conn, sql.SQL(
                "SELECT count(*) FROM (SELECT {c} FROM {s}.{t} GROUP BY {c} HAVING count(*) > 1) d"
            ).format(c=c, s=s, t=sql.Identifier(table)))
            results.append(CheckResult(name, dup == 0, dup, 0, detail=f"duplicated keys in {table}({', '.join(cols)})"))
        for name, child, ccol, parent, pcol in FOREIGN_KEYS:
            if not wanted(child):
                continue
            orphans = scalar(conn, sql.SQL(
                "SELECT count(*) FROM {s}.{c} x WHERE NOT EXISTS (SELECT 1 FROM {s}.{p} y WHERE y.{pc} = x.{cc})"
            ).format(s=s, c=sql.Identifier(child), p=sql.Identifier(parent),
                     pc=sql.Identifier(pcol), cc=sql.Identifier(ccol)))
            results.append(CheckResult(name, orphans == 0, orphans, 0,
                                       detail=f"{child}.{ccol} values missing from {parent}.{pcol}"))
    return results
