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

import csv
import importlib
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import sql

from vehicle_etl.config import LIVE_SCHEMA, STAGING_SCHEMA, Settings
from vehicle_etl.errors import QualityGateError
from vehicle_etl.platform_db import schema_exists, schema_tables, sibling, sql_file
from vehicle_etl.spec import LOOKUP_TARGET, TABLES

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

    @property
    def verdict(self) -> str:
        """ok | FAIL (blocks the swap) | warn (failed, tolerated)."""
        return "ok" if self.passed else ("FAIL" if self.blocking else "warn")


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


def _scalar(conn: psycopg.Connection, query: sql.Composable) -> Any:
    return conn.execute(query).fetchone()[0]  # type: ignore[index]


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
            n = _scalar(conn, sql.SQL("SELECT count(*) FROM {}.{}").format(s, sql.Identifier(table)))
            results.append(CheckResult(f"min_rows_{table}", n >= floor, n, floor))
        for name, table, cols in UNIQUE_KEYS:
            if not wanted(table):
                continue
            c = sql.SQL(", ").join(map(sql.Identifier, cols))
            dup = _scalar(conn, sql.SQL(
                "SELECT count(*) FROM (SELECT {c} FROM {s}.{t} GROUP BY {c} HAVING count(*) > 1) d"
            ).format(c=c, s=s, t=sql.Identifier(table)))
            results.append(CheckResult(name, dup == 0, dup, 0, detail=f"duplicated keys in {table}({', '.join(cols)})"))
        for name, child, ccol, parent, pcol in FOREIGN_KEYS:
            if not wanted(child):
                continue
            orphans = _scalar(conn, sql.SQL(
                "SELECT count(*) FROM {s}.{c} x WHERE NOT EXISTS (SELECT 1 FROM {s}.{p} y WHERE y.{pc} = x.{cc})"
            ).format(s=s, c=sql.Identifier(child), p=sql.Identifier(parent),
                     pc=sql.Identifier(pcol), cc=sql.Identifier(ccol)))
            results.append(CheckResult(name, orphans == 0, orphans, 0,
                                       detail=f"{child}.{ccol} values missing from {parent}.{pcol}"))
    return results


# -- the full gate -----------------------------------------------------------------------------
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
DEFAULT_MAX_SHRINK = 0.02
RELEASE_ORDER = re.compile(r"^\d{4}_\d{2}$")  # YYYY_MM: orders as text

# hook(conn, schema) -> (observed, threshold) or (observed, threshold, detail)
GoldenHook = Callable[[psycopg.Connection, str], tuple[Any, ...]]


def _tiered(name: str, bad: int, total: int, tolerance: Tolerance, detail: str) -> CheckResult:
    if tolerance is None:
        return CheckResult(name, bad == 0, bad, 0, True, detail)
    allowed = max(tolerance[0], math.floor(tolerance[1] * total))
    return CheckResult(
        name, bad == 0, bad, f"0 (block > {allowed})", blocking=bad > allowed,
        detail=detail + (f"; {bad} of {total} rows, tolerated up to {allowed}" if bad else ""),
    )


def _render(text: str, **schemas: str) -> str:
    for key, value in schemas.items():
        text = text.replace("{{" + key + "}}", sql.Identifier(value).as_string(None))
    return text


def _rows(conn: psycopg.Connection, relative: str, **schemas: str) -> list[tuple[Any, ...]]:
    return conn.execute(_render(sql_file(relative), **schemas).encode()).fetchall()


def sql_checks(conn: psycopg.Connection, schema: str = STAGING_SCHEMA) -> list[CheckResult]:
    """Names (non-empty, no stray whitespace), coverage of unkeyed links, model-year range."""
    results: list[CheckResult] = []
    with conn.transaction():
        for subject, total, empty, stray, empty_ex, stray_ex in _rows(conn, "checks/10_names.sql", schema=schema):
            results.append(CheckResult(
                f"not_empty_{subject}", empty == 0, empty, 0,
                detail=f"NULL, empty or whitespace-only; first id {empty_ex}" if empty else ""))
            results.append(_tiered(
                f"no_stray_whitespace_{subject}", stray, total, NAME_TOLERANCE.get(subject),
                f"leading/trailing whitespace; first id {stray_ex}" if stray else ""))
        for subject, total, bad, example in _rows(conn, "checks/20_coverage.sql", schema=schema):
            results.append(_tiered(subject, bad, total, COVERAGE_TOLERANCE.get(subject),
                                   f"e.g. {example}" if bad else ""))
    return results


def _count(conn: psycopg.Connection, schema: str, table: str) -> int:
    return _scalar(conn, sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))


def live_release(conn: psycopg.Connection, live: str = LIVE_SCHEMA) -> str | None:
    """The release recorded in the live catalog_info (None without a live catalog)."""
    if "catalog_info" not in schema_tables(conn, live):
        return None
    row = conn.execute(sql.SQL("SELECT release FROM {}.catalog_info LIMIT 1").format(sql.Identifier(live))).fetchone()
    return row[0] if row else None


def _comparable(release: str | None) -> bool:
    return bool(release) and RELEASE_ORDER.fullmatch(str(release)) is not None


def is_backfill(staged_release: str | None, live: str | None) -> bool:
    """An older release replacing a newer live one (YYYY_MM names order as text)."""
    return _comparable(staged_release) and _comparable(live) and str(staged_release) < str(live)


def baseline_run(conn: psycopg.Connection, release: str) -> dict[str, Any] | None:
    """The newest successful run whose release is not newer than `release`: a backfill's drift
    baseline (its recorded table counts), since live is a newer release and is expected to be bigger."""
    if conn.execute("SELECT to_regclass('etl.run_history')").fetchone()[0] is None:  # type: ignore[index]
        return None
    row = conn.execute(
        "SELECT run_id, release, counts FROM etl.run_history WHERE status = 'success' "
        "AND release ~ '^[0-9]{4}_[0-9]{2}$' AND release <= %s "
        "ORDER BY release DESC, finished_at DESC LIMIT 1", (release,)).fetchone()
    return {"run_id": row[0], "release": row[1], "counts": row[2] or {}} if row else None


def _shrink_result(table: str, before: int, after: int, max_shrink: float, blocking: bool, note: str) -> CheckResult:
    shrink = (before - after) / before if before else 0.0
    shrunk = shrink > max_shrink
    return CheckResult(
        f"drift_shrink_{table}", not shrunk, f"{shrink:.2%} ({before} -> {after})", f"<= {max_shrink:.0%}",
        blocking, f"{table} shrank by {before - after} rows{note}" if shrunk else "")


def _drift_order(tables: list[str]) -> list[str]:
    # Loaded tables first, in spec order, then derived ones: the first failure named in the
    # alert is then the cause (pattern shrank), not a consequence (decode tables shrank).
    loaded = [t.target for t in TABLES] + [LOOKUP_TARGET]
    return sorted(tables, key=lambda t: (loaded.index(t) if t in loaded else len(loaded), t))


def drift_checks(
    conn: psycopg.Connection,
    schema: str = STAGING_SCHEMA,
    live: str = LIVE_SCHEMA,
    *,
    allow_drift: bool = False,
    max_shrink: float = DEFAULT_MAX_SHRINK,
    release: str | None = None,
    requested_release: str | None = None,
) -> list[CheckResult]:
    """No table shrinks by more than `max_shrink` against the right baseline; no make with models vanishes.

    The baseline is live for a release at least as new as live's (or unnamed). For a **backfill**
    (the staged `release` is older than live's) it is the recorded counts of the newest successful
    run whose release is not newer than the staged one: live is a newer release and bigger by
    nature. A backfill must be confirmed by naming the release (`requested_release`, the run's
    release Param / --release); an older release nobody asked for blocks as `release_order`.
    With no live version there is nothing to compare: one passed result says so. `allow_drift`
    (the DAG's override Param) keeps the results but makes them warnings.
    """
    with conn.transaction():
        if not schema_exists(conn, live) or "make_model" not in schema_tables(conn, live):
            return [CheckResult("drift_vs_live", True, "no live version", "-", False,
                                f"schema {live} has no catalog yet: drift checks skipped")]
        blocking = not allow_drift
        note = "; overridden by allow_drift" if allow_drift else ""
        results: list[CheckResult] = []
        current = live_release(conn, live)
        if is_backfill(release, current):
            named = requested_release == release
            results.append(CheckResult(
                "release_order", False, f"backfill: {release} replaces live {current}",
                "named release", blocking=not named,
                detail=(f"an older release replaces a newer one; confirmed by naming release {release}"
                        if named else
                        f"staged release {release} is older than live {current} and was not asked for: "
                        f"to backfill it, run again naming it (release Param / --release {release})")))
            base = baseline_run(conn, str(release))
            if base is None:
                results.append(CheckResult(
                    "drift_baseline", False, "none recorded", f"a run of a release <= {release}", False,
                    f"no successful run of a release not newer than {release} is recorded: table sizes "
                    "are not compared (live is newer); the other checks still judge the release"))
                return results
            results.append(CheckResult(
                "drift_baseline", True, f"run {base['run_id']} ({base['release']})", "-", False,
                f"backfill: sizes compared with the recorded run of release {base['release']}, not with live"))
            staged_tables = set(schema_tables(conn, schema))
            for table in _drift_order([t for t in base["counts"] if t in staged_tables]):
                results.append(_shrink_result(table, int(base["counts"][table]), _count(conn, schema, table),
                                              max_shrink, blocking, note))
            # What live loses (makes, models, years) is the release diff's "breaking" section.
            results.append(CheckResult("drift_makes_with_models_removed", True, "skipped", 0, blocking,
                                       "backfill: live is newer; see the release diff's breaking section"))
            return results
        results.append(CheckResult("drift_baseline", True, f"live ({current or 'release unknown'})", "-", False))
        live_tables = set(schema_tables(conn, live))
        for table in _drift_order(schema_tables(conn, schema)):
            if table not in live_tables or table == "catalog_info":
                continue
            results.append(_shrink_result(table, _count(conn, live, table), _count(conn, schema, table),
                                          max_shrink, blocking, note))
        total, bad, example = _rows(conn, "checks/30_drift_makes.sql", schema=schema, live=live)[0]
        results.append(CheckResult(
            "drift_makes_with_models_removed", bad == 0, bad, 0, blocking,
            f"{bad} of {total} live makes with models have none in the new release, e.g. {example}{note}"
            if bad else ""))
    return results


def element_presence_checks(
    conn: psycopg.Connection, schema: str = STAGING_SCHEMA, live: str = LIVE_SCHEMA,
    *, allow_element_change: bool = False,
) -> list[CheckResult]:
    """Elements with patterns in live and none staged (blocks: every VIN would stop decoding that
    field) and the reverse (a warning: a new decoded field). `allow_element_change` (DAG Param,
    --allow-element-change) turns the block into a warning; the evidence stays in run history."""
    with conn.transaction():
        if not schema_exists(conn, live) or "pattern" not in schema_tables(conn, live):
            return [CheckResult("element_presence", True, "no live version", "-", False,
                                f"schema {live} has no catalog yet: element presence not compared")]
        rows = _rows(conn, "checks/40_element_presence.sql", schema=schema, live=live)
    removed = [r for r in rows if r[3] == 0]
    added = [r for r in rows if r[2] == 0]

    def names(found: list[tuple[Any, ...]], side: int) -> str:
        return ", ".join(f"{r[1]} ({r[0]}, {r[side]} patterns)" for r in found)

    note = "; overridden by allow_element_change" if allow_element_change else ""
    return [
        CheckResult("element_removed", not removed, len(removed), 0, blocking=not allow_element_change,
                    detail=(f"elements with patterns in live and none in the new release: {names(removed, 2)}; "
                            f"decodes would lose these fields{note}") if removed else ""),
        CheckResult("element_added", not added, len(added), 0, blocking=False,
                    detail=(f"elements with patterns in the new release and none in live: {names(added, 3)}"
                            if added else "")),
    ]




def default_golden(release: str | None = None) -> GoldenHook | None:
    """The golden-VIN hook, resolved lazily so quality.py never imports decode at import time.

    1. `vehicle_etl.serving.decode.golden_gate(conn, schema) -> (observed, threshold)` when it exists;
    2. else `decode.golden_accuracy` over VEHICLE_ETL_GOLDEN_CSV (default data/golden/golden_vins.csv,
       scripts/build_golden.py), restricted to the VINs the staged release could answer (`answerable`:
       it links a schema to the VIN's WMI for its model year; the shipped sample covers a few makes,
       an older release lacks newer WMIs and years, and a release losing WMIs is the drift checks'
       business), the lowest agreement of Make, Model and ModelYear against
       VEHICLE_ETL_GOLDEN_MIN_ACCURACY (default 0.999);
    3. else None: the check is reported as skipped.
    """
    try:
        decode = importlib.import_module("vehicle_etl.serving.decode")
    except ImportError:
        return None
    hook = getattr(decode, "golden_gate", None)
    if callable(hook):
        return hook
    accuracy = getattr(decode, "golden_accuracy", None)
    csv_path = Settings().golden_csv
    if not callable(accuracy) or not csv_path.is_file():
        return None
    threshold = Settings().golden_min_accuracy

    def from_csv(conn: psycopg.Connection, schema: str) -> tuple[float, float, str]:
        with csv_path.open(newline="") as fh:
            every = list(csv.DictReader(fh))
        rows = answerable(conn, schema, every, release)
        detail = (f"{len(rows)} of {len(every)} golden VINs counted; {len(every) - len(rows)} have a model year after "
                  f"release {release or '(unnamed)'} or one it does not link for their WMI (it cannot know them)")
        if not rows:
            log.warning("golden VINs: none of %s can be answered by %s; nothing to compare", csv_path, schema)
            return 1.0, threshold, detail
        report = accuracy(conn, rows, schema=schema)
        log.info("golden VINs on %s: %s (%s)", schema, report.summary(), detail)
        worst = [f"{n}: {d['vin']} expected {d['expected']!r}, got {d['got']!r}"
                 for n, ds in report.disagreements.items() for d in ds[:2]]
        return report.min_rate, threshold, detail + ("; e.g. " + "; ".join(worst[:4]) if worst else "")

    return from_csv


def answerable(
    conn: psycopg.Connection, schema: str, rows: list[dict[str, str]], release: str | None = None
) -> list[dict[str, str]]:
    """The golden rows the release in `schema` could answer (checks/50_golden_answerable.sql): the
    VIN's model year is not after the year of `release` (YYYY_MM), and the release links a VIN
    schema to the VIN's WMI for that model year. A row without a model year counts when the
    release has its WMI at all."""
    wmis = [_wmi_of(r["vin"]) for r in rows]
    years = [int(r["model_year"]) if (r.get("model_year") or "").strip().isdigit() else None for r in rows]
    keep = {i for (i,) in conn.execute(_render(sql_file("checks/50_golden_answerable.sql"), schema=schema).encode(),
                                       {"wmis": wmis, "years": [y or 0 for y in years],
                                        "max_year": int(release[:4]) if _comparable(release) else None})}
    if any(y is None for y in years):
        known = {w for (w,) in conn.execute(sql.SQL("SELECT wmi FROM {}.wmi").format(sql.Identifier(schema)))}
        keep |= {i + 1 for i, (w, y) in enumerate(zip(wmis, years, strict=True)) if y is None and w in known}
    return [r for i, r in enumerate(rows, start=1) if i in keep]


def _wmi_of(vin: str) -> str:
    vin = vin.strip().upper()
    return vin[:3] + vin[11:14] if len(vin) >= 14 and vin[2] == "9" else vin[:3]


def golden_check(conn: psycopg.Connection, schema: str, golden: GoldenHook | None) -> CheckResult:
    """Decode the golden VIN set with the staged data; the accuracy must reach the threshold."""
    if golden is None:
        return CheckResult("golden_vin_accuracy", True, "no hook", "-", False,
                           "skipped: no golden-VIN hook (decode.golden_gate, or VEHICLE_ETL_GOLDEN_CSV)")
    try:
        with conn.transaction():
            observed, threshold, *extra = golden(conn, schema)
    except Exception as exc:  # a decoder that cannot run on this data must not go live
        log.exception("golden-VIN check raised")
        return CheckResult("golden_vin_accuracy", False, "error", "-", True, f"{type(exc).__name__}: {exc}"[:500])
    detail = str(extra[0]) if extra else ""
    if observed < threshold:
        detail = "golden VINs decode worse than required" + (f"; {detail}" if detail else "")
    return CheckResult("golden_vin_accuracy", observed >= threshold, round(observed, 4), threshold, True, detail)


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


# -- reporting ---------------------------------------------------------------------------------
def first_failure(results: list[CheckResult] | list[dict[str, Any]]) -> str | None:
    """Name of the first blocking failure (else the first warning), for alert subjects."""
    rows = [r.as_dict() if isinstance(r, CheckResult) else r for r in results]
    for want_blocking in (True, False):
        for r in rows:
            if not r.get("passed") and bool(r.get("blocking", True)) == want_blocking:
                return str(r.get("name"))
    return None


def format_table(results: list[CheckResult]) -> str:
    """A compact fixed-width table for task logs."""
    width = max((len(r.name) for r in results), default=10)
    lines = [f"{'check':<{width}}  result  observed      threshold"]
    for r in results:
        lines.append(f"{r.name:<{width}}  {r.verdict:<6}  {r.observed!s:<12}  {r.threshold!s}")
    return "\n".join(lines)


def enforce(results: list[CheckResult], stage: str) -> None:
    """Log the table; raise QualityGateError naming the failing blocking checks."""
    log.info("quality gate (%s):\n%s", stage, format_table(results))
    warned = [r for r in results if not r.blocking and not r.passed]
    for r in warned:
        log.warning("quality warning %s: observed %s (threshold %s) %s", r.name, r.observed, r.threshold, r.detail)
    failed = [r for r in results if r.blocking and not r.passed]
    if failed:
        # The first few by name keep the error (and the alert built from it) short; the run
        # history and the log table have every check.
        names = ", ".join(f"{r.name} (observed {r.observed}, threshold {r.threshold})" for r in failed[:5])
        if len(failed) > 5:
            names += f" and {len(failed) - 5} more"
        hint = (" If the release is meant to be smaller, run again with the allow_drift Param "
                "(CLI: --allow-drift)." if any(r.name.startswith("drift_") for r in failed) else "")
        if any(r.name == "element_removed" for r in failed):
            hint += (" If the release is meant to lose those elements, run again with the "
                     "allow_element_change Param (CLI: --allow-element-change).")
        raise QualityGateError(f"quality gate failed at {stage}: {names}. Live was not changed; "
                               f"staging is kept for inspection.{hint}")
