"""Release diff: what changes for the app if the staged release goes live.

For makes, models, WMIs, VIN schemas and patterns: rows added, removed and changed (same id,
different name or content), with counts and the first N examples of each, as a JSON-able dict
(stored in etl.run_history.diff) and as Markdown (success summary, `vehicle-etl diff`).
Computed inside PostgreSQL with one full outer join per entity; nothing big leaves the server.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from vehicle_etl.config import LIVE_SCHEMA, STAGING_SCHEMA, Settings
from vehicle_etl.platform_db import schema_exists, schema_tables


@dataclass(frozen=True)
class Entity:
    name: str
    table: str
    key: str
    label: str  # SQL expression over the row alias `t`: what a person recognises the row by
    compare: tuple[str, ...]  # a change in any of these columns counts as "changed"


ENTITIES = (
    Entity("makes", "make", "make_id", "t.make_name", ("make_name",)),
    Entity("models", "model", "model_id", "t.model_name", ("model_name",)),
    Entity("wmis", "wmi", "wmi_id", "t.wmi", ("wmi", "manufacturer_id", "make_id", "vehicle_type_id", "country_id")),
    Entity("schemas", "vin_schema", "vin_schema_id", "t.schema_name", ("schema_name", "tobe_qced")),
    Entity("patterns", "pattern", "pattern_id",
           "t.vin_schema_id || ':' || t.element_id || ':' || t.keys || ' = ' || t.attribute_id",
           ("vin_schema_id", "keys", "element_id", "attribute_id")),
)

# One full outer join on the key compares whole rows (ROW(...) IS DISTINCT FROM); labels are built
# only for the few example rows, by key lookups, not for every row of an 800k-row table.
_DIFF_SQL = """
WITH j AS MATERIALIZED (
    SELECT coalesce(s.id, l.id) AS id, s.id IS NOT NULL AS in_s, l.id IS NOT NULL AS in_l,
           s.id IS NOT NULL AND l.id IS NOT NULL AND s.body IS DISTINCT FROM l.body AS changed
    FROM (SELECT t.{key} AS id, ROW({scols}) AS body FROM {staging}.{table} t) s
    FULL JOIN (SELECT t.{key} AS id, ROW({scols}) AS body FROM {live}.{table} t) l ON s.id = l.id),
counts AS (
    SELECT count(*) FILTER (WHERE in_l) AS live, count(*) FILTER (WHERE in_s) AS staged,
           count(*) FILTER (WHERE in_s AND NOT in_l) AS added, count(*) FILTER (WHERE in_l AND NOT in_s) AS removed,
           count(*) FILTER (WHERE changed) AS changed
    FROM j)
SELECT c.live, c.staged, c.added, c.removed, c.changed,
       (SELECT coalesce(json_agg(json_build_object('id', x.id, 'name', {label}) ORDER BY x.id), '[]')
        FROM (SELECT id FROM j WHERE in_s AND NOT in_l ORDER BY id LIMIT {limit}) x
        JOIN {staging}.{table} t ON t.{key} = x.id),
       (SELECT coalesce(json_agg(json_build_object('id', x.id, 'name', {label}) ORDER BY x.id), '[]')
        FROM (SELECT id FROM j WHERE in_l AND NOT in_s ORDER BY id LIMIT {limit}) x
        JOIN {live}.{table} t ON t.{key} = x.id),
       (SELECT coalesce(json_agg(json_build_object('id', x.id, 'before', x.before, 'after', {label})
                                 ORDER BY x.id), '[]')
        FROM (SELECT j.id, (SELECT {label} FROM {live}.{table} t WHERE t.{key} = j.id) AS before
              FROM j WHERE changed ORDER BY j.id LIMIT {limit}) x
        JOIN {staging}.{table} t ON t.{key} = x.id)
FROM counts c
"""

_ADDED_ONLY_SQL = """
SELECT 0, count(*), count(*), 0, 0,
       (SELECT coalesce(json_agg(json_build_object('id', id, 'name', label)), '[]') FROM
           (SELECT t.{key} AS id, {label} AS label FROM {staging}.{table} t ORDER BY 1 LIMIT {limit}) x),
       '[]'::json, '[]'::json
FROM {staging}.{table}
"""


def _live_release(conn: psycopg.Connection, live: str) -> str | None:
    if "catalog_info" not in schema_tables(conn, live):
        return None
    row = conn.execute(sql.SQL("SELECT release FROM {}.catalog_info LIMIT 1").format(sql.Identifier(live))).fetchone()
    return row[0] if row else None


def diff_report(
    conn: psycopg.Connection, staging: str = STAGING_SCHEMA, live: str = LIVE_SCHEMA, limit: int = 10
) -> dict[str, Any]:
    """Staging vs live per entity: counts and the first `limit` examples (by id) of each change.

    With no live catalog (the first run) everything staged counts as added.
    """
    limit = max(0, int(limit))
    with conn.transaction():
        has_live = schema_exists(conn, live) and bool(schema_tables(conn, live))
        report: dict[str, Any] = {
            "staging": staging, "live": live, "live_exists": has_live,
            "live_release": _live_release(conn, live) if has_live else None,
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "limit": limit, "entities": {},
        }
        live_tables = set(schema_tables(conn, live)) if has_live else set()
        for e in ENTITIES:
            template = _DIFF_SQL if e.table in live_tables else _ADDED_ONLY_SQL
            query = sql.SQL(template).format(
                key=sql.Identifier(e.key), label=sql.SQL(e.label), table=sql.Identifier(e.table),
                staging=sql.Identifier(staging), live=sql.Identifier(live), limit=sql.Literal(limit),
                scols=sql.SQL(", ").join(sql.SQL("t.") + sql.Identifier(c) for c in e.compare),
            )
            n_live, staged, added, removed, changed, added_ex, removed_ex, changed_ex = conn.execute(query).fetchone()  # type: ignore[misc]
            report["entities"][e.name] = {
                "live": n_live, "staged": staged, "added": added, "removed": removed, "changed": changed,
                "examples": {"added": added_ex, "removed": removed_ex, "changed": changed_ex},
            }
    return report


def _md(value: Any) -> str:
    """A value safe inside a Markdown table cell or list item."""
    return str(value).replace("|", "\\|").replace("\n", " ").replace("\t", " ").strip()


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: a summary table, then the examples of each entity."""
    entities: dict[str, Any] = report.get("entities") or {}
    title = "# Release diff"
    if report.get("release"):
        title += f": {report['release']}"
    lines = [title, ""]
    if report.get("live_exists"):
        lines.append(f"Staged `{report.get('staging')}` against live `{report.get('live')}`"
                     + (f" (release {report['live_release']})" if report.get("live_release") else "")
                     + f", {report.get('generated_at', '')}.")
    else:
        lines.append("No live catalog yet: everything staged is new.")
    lines += ["", "| entity | live | new release | added | removed | changed |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, e in entities.items():
        lines.append(f"| {name} | {e['live']} | {e['staged']} | {e['added']} | {e['removed']} | {e['changed']} |")
    for name, e in entities.items():
        ex = e.get("examples") or {}
        if not any(ex.get(k) for k in ("added", "removed", "changed")):
            continue
        lines += ["", f"## {name}"]
        for kind in ("added", "removed", "changed"):
            rows = ex.get(kind) or []
            if not rows:
                continue
            more = e[kind] - len(rows)
            lines.append(f"**{kind}** ({e[kind]}{f', first {len(rows)}' if more > 0 else ''}):")
            for r in rows:
                if kind == "changed":
                    lines.append(f"- {r['id']}: {_md(r.get('before'))} → {_md(r.get('after'))}")
                else:
                    lines.append(f"- {r['id']}: {_md(r.get('name'))}")
    return "\n".join(lines) + "\n"


def stored_diff(conn: psycopg.Connection, run_id: str | None) -> tuple[str | None, dict[str, Any] | None]:
    """(run id, diff) of `run_id`, or of the latest run that has one."""
    if conn.execute("SELECT to_regclass('etl.run_history')").fetchone()[0] is None:  # type: ignore[index]
        return run_id, None
    if run_id:
        row = conn.execute("SELECT run_id, diff, release FROM etl.run_history WHERE run_id = %s", (run_id,)).fetchone()
    else:
        row = conn.execute("SELECT run_id, diff, release FROM etl.run_history WHERE diff IS NOT NULL "
                           "ORDER BY started_at DESC LIMIT 1").fetchone()
    if row is None or row[1] is None:
        return (row[0] if row else run_id), None
    report = dict(row[1])
    report.setdefault("release", row[2])
    return row[0], report


def cli_diff(settings: Settings, run_id: str | None, *, as_json: bool = False) -> int:
    """`vehicle-etl diff [--run ID]`: print a stored diff (exit 0), or say why there is none (exit 1).

    Without --run and with no stored diff, a staging schema left by a failed run is compared
    with live on the spot, so an operator can see what the rejected release would have changed.
    """
    from vehicle_etl.platform_db import connect

    with connect(settings) as conn:
        found_run, report = stored_diff(conn, run_id)
        if report is None and run_id is None and schema_exists(conn, STAGING_SCHEMA):
            report = diff_report(conn)
            found_run = f"(live vs the staging schema {STAGING_SCHEMA} now)"
    if report is None:
        what = f"run {run_id}" if run_id else "any run"
        print(f"no release diff recorded for {what}; diffs are stored when a release passes the quality gate",
              file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps({"run_id": found_run, **report}, indent=2, default=str))
    else:
        print(f"Run: {found_run}\n")
        print(to_markdown(report))
    return 0
