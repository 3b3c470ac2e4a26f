"""The Great Expectations 1.x part of the quality gate: richer rules, run inside PostgreSQL.

GX is imported only inside these functions (importing it costs seconds and logs at import time,
and the DAG file must parse without it). An ephemeral context with a SQL datasource reads the
staging tables where they are: every expectation compiles to SQL, no table is copied to pandas.

Each rule carries its own policy: `mostly` is the share of rows that must pass for the
expectation to succeed (GX's own semantics). A failed expectation blocks the swap; an
expectation that succeeds with some unexpected rows (real vPIC faults within `mostly`) is
reported as a warning, so tolerated faults stay visible in the run history.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg

from vehicle_etl.quality.results import CheckResult

log = logging.getLogger(__name__)

# VIN characters (ISO 3779: no I, O, Q). WMIs are 3 characters, or 6 for small manufacturers
# (3 + the '9' filler + 3 at positions 12-14, stored as 6).
WMI_REGEX = r"^[A-HJ-NPR-Z0-9]{3}([A-HJ-NPR-Z0-9]{3})?$"
# Pattern keys: VIN characters (I/O/Q appear in real keys), '*' any, '[..]' classes with '-'
# ranges, '|' alternation, '#' digit, '_' (a handful of real keys).
PATTERN_KEYS_REGEX = r"^[A-Z0-9*|#_\[\]-]+$"
ELEMENT_DATA_TYPES = ["lookup", "string", "int", "decimal"]


@dataclass(frozen=True)
class Rule:
    name: str
    table: str
    kind: str  # the GX expectation class name
    kwargs: dict[str, Any] = field(default_factory=dict)
    why: str = ""
    blocking: bool = True  # False: a failed expectation only warns (the fault is handled downstream)


def rules(current_year: int | None = None) -> list[Rule]:
    """The suite. Model years beyond current year + 2 are not plausible (NHTSA publishes one
    model year ahead); `mostly` only where the Feb 2026 snapshot has known faults."""
    top = (current_year or date.today().year) + 2
    return [
        Rule("gx_wmi_code_format", "wmi", "ExpectColumnValuesToMatchRegex",
             {"column": "wmi", "regex": WMI_REGEX, "mostly": 0.999},
             "2 WMIs (1OY, 4OG) contain the letter O; they still decode literally"),
        Rule("gx_wmi_public_date_present", "wmi", "ExpectColumnValuesToNotBeNull",
             {"column": "public_availability_date", "mostly": 0.99},
             "3 WMIs have none; the transform leaves them out of model years, as NHTSA's public decoder does",
             blocking=False),
        Rule("gx_wmi_vin_schema_year_from_range", "wmi_vin_schema", "ExpectColumnValuesToBeBetween",
             {"column": "year_from", "min_value": 1980, "max_value": top},
             "a schema link starting outside 1980..current+2 is a broken row"),
        Rule("gx_wmi_vin_schema_year_to_range", "wmi_vin_schema", "ExpectColumnValuesToBeBetween",
             {"column": "year_to", "min_value": 1980, "max_value": top, "mostly": 0.999},
             "5 links end in 2039 (typos); model years are clamped to current+2 anyway"),
        Rule("gx_wmi_vin_schema_year_order", "wmi_vin_schema", "ExpectColumnPairValuesAToBeGreaterThanB",
             {"column_A": "year_to", "column_B": "year_from", "or_equal": True,
              "ignore_row_if": "either_value_is_missing"},
             "a link ending before it starts yields no model years"),
        Rule("gx_pattern_keys_charset", "pattern", "ExpectColumnValuesToMatchRegex",
             {"column": "keys", "regex": PATTERN_KEYS_REGEX},
             "a key with other characters can never match a VIN"),
        Rule("gx_element_code_unique", "element", "ExpectColumnValuesToBeUnique", {"column": "code"},
             "the decoder addresses elements by code"),
        Rule("gx_element_data_type", "element", "ExpectColumnValuesToBeInSet",
             {"column": "data_type", "value_set": ELEMENT_DATA_TYPES},
             "the decoder knows how to render these types only"),
        Rule("gx_make_name_unique", "make", "ExpectColumnValuesToBeUnique",
             {"column": "make_name", "mostly": 0.999},
             "two makes with one name are indistinguishable in the dropdown"),
        Rule("gx_model_year_range", "model_year", "ExpectColumnValuesToBeBetween",
             {"column": "model_year", "min_value": 1980, "max_value": top},
             "dropdown years are 1980..current+2"),
        Rule("gx_lookup_name_length", "lookup", "ExpectColumnValueLengthsToBeBetween",
             {"column": "lookup_name", "min_value": 1, "max_value": 200},
             "decoded values are shown as they are"),
    ]


def import_gx() -> Any:
    """Import great_expectations quietly: no analytics, no import-time chatter."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx

    # Some GX modules pin their own logger to INFO at import; quiet them too.
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if (name.startswith("great_expectations") and isinstance(logger, logging.Logger)
                and logger.level and logger.level < logging.WARNING):
            logger.setLevel(logging.WARNING)
    return gx


def _sqlalchemy_url(conn: psycopg.Connection) -> tuple[str, dict[str, Any]]:
    """A SQLAlchemy URL for the database `conn` is connected to; the password goes in connect_args
    so it never appears in GX's datasource config or its error messages."""
    params = conn.info.get_parameters()
    connect_args: dict[str, Any] = {k: v for k, v in params.items() if k not in ("dbname", "user")}
    if conn.info.password:
        connect_args["password"] = conn.info.password
    connect_args["application_name"] = "vehicle-etl-gx"
    user = params.get("user", "")
    return f"postgresql+psycopg://{user}@/{params.get('dbname', '')}", connect_args


def run_suite(
    conn: psycopg.Connection,
    schema: str,
    *,
    current_year: int | None = None,
    only: list[str] | None = None,
) -> list[CheckResult]:
    """Run the suite on `schema` and return one CheckResult per rule."""
    started = time.monotonic()
    gx = import_gx()
    import great_expectations.expectations as gxe

    imported = time.monotonic()
    import sqlalchemy.pool
    from great_expectations.data_context.types.base import ProgressBarsConfig

    url, connect_args = _sqlalchemy_url(conn)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm bars in task logs
    with warnings.catch_warnings():
        # The generic SQL datasource is deliberate (it takes the password in connect_args): GX's
        # advice to use the Postgres one would only be noise in the task log.
        warnings.simplefilter("ignore")
        # NullPool: GX's engines (the datasource's and its execution engine's) keep no idle
        # connection open after the suite.
        source = context.data_sources.add_sql(
            name="platform", connection_string=url,
            kwargs={"connect_args": connect_args, "poolclass": sqlalchemy.pool.NullPool},
        )
    selected = [r for r in rules(current_year) if only is None or r.name in only]
    by_table: dict[str, list[Rule]] = {}
    for rule in selected:
        by_table.setdefault(rule.table, []).append(rule)

    results: list[CheckResult] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for table, table_rules in by_table.items():
                results += _validate_table(gx, gxe, source, schema, table, table_rules)
    finally:
        # GX keeps a SQLAlchemy engine (a pool of open connections) per datasource.
        engine = getattr(source, "_engine", None)
        if engine is not None:
            engine.dispose()
    log.info("Great Expectations: %d rules in %.2fs (import %.2fs)",
             len(results), time.monotonic() - started, imported - started)
    return results


def _validate_table(
    gx: Any, gxe: Any, source: Any, schema: str, table: str, table_rules: list[Rule]
) -> list[CheckResult]:
    """One batch (the whole table, read in place) validated against the table's rules."""
    asset = source.add_table_asset(name=table, table_name=table, schema_name=schema)
    batch = asset.add_batch_definition_whole_table(f"{table}_all").get_batch()
    suite = gx.ExpectationSuite(name=f"vehicles_{table}")
    for rule in table_rules:
        suite.add_expectation(getattr(gxe, rule.kind)(**rule.kwargs, meta={"check": rule.name}))
    outcome = batch.validate(suite, result_format="BASIC")
    by_name = {r.name: r for r in table_rules}
    return [_to_check(by_name[res.expectation_config.meta["check"]], res) for res in outcome.results]


def _to_check(rule: Rule, res: Any) -> CheckResult:
    r = res.result or {}
    if res.exception_info and res.exception_info.get("raised_exception"):
        message = str(res.exception_info.get("exception_message"))[:300]
        return CheckResult(rule.name, False, "error", "-", True, f"GX could not evaluate: {message}")
    unexpected = r.get("unexpected_count")
    mostly = rule.kwargs.get("mostly", 1.0)
    threshold = f"mostly {mostly}" if mostly < 1 else "all rows"
    if unexpected is None:  # aggregate expectations report an observed value instead
        observed = r.get("observed_value")
        return CheckResult(rule.name, bool(res.success), observed, threshold, rule.blocking,
                           "" if res.success else rule.why)
    examples = ", ".join(str(v) for v in (r.get("partial_unexpected_list") or [])[:5] if v is not None)
    detail = f"{unexpected} of {r.get('element_count')} rows" + (f", e.g. {examples}" if examples else "")
    detail = f"{detail}; {rule.why}" if unexpected else ""
    # Success with unexpected rows = a tolerated fault: a warning, not a pass.
    return CheckResult(rule.name, bool(res.success) and not unexpected, unexpected, threshold,
               blocking=rule.blocking and not res.success, detail=detail)
