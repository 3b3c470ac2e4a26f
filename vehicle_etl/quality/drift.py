"""Drift against the live version (or the release's own baseline for a backfill or a rebuild):
tables that shrink, and whole elements that lose their patterns."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql

from vehicle_etl.config import LIVE_SCHEMA, STAGING_SCHEMA
from vehicle_etl.platform_db import schema_exists, schema_tables
from vehicle_etl.quality.checks import file_rows, scalar
from vehicle_etl.quality.results import CheckResult
from vehicle_etl.releases import is_release
from vehicle_etl.spec import LOOKUP_TARGET, TABLES

log = logging.getLogger(__name__)


DEFAULT_MAX_SHRINK = 0.02


def _count(conn: psycopg.Connection, schema: str, table: str) -> int:
    return scalar(conn, sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))


def live_release(conn: psycopg.Connection, live: str = LIVE_SCHEMA) -> str | None:
    """The release recorded in the live catalog_info (None without a live catalog)."""
    if "catalog_info" not in schema_tables(conn, live):
        return None
    row = conn.execute(sql.SQL("SELECT release FROM {}.catalog_info LIMIT 1").format(sql.Identifier(live))).fetchone()
    return row[0] if row else None


def is_backfill(staged_release: str | None, live: str | None) -> bool:
    """An older release replacing a newer live one (YYYY_MM names order as text)."""
    return is_release(staged_release) and is_release(live) and str(staged_release) < str(live)


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
        total, bad, example = file_rows(conn, "checks/30_drift_makes.sql", schema=schema, live=live)[0]
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
        rows = file_rows(conn, "checks/40_element_presence.sql", schema=schema, live=live)
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
