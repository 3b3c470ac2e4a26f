"""Release diff: what changes for the app if the staged release goes live.

For makes, models, WMIs, VIN schemas and patterns: rows added, removed and changed (same id,
different name or content; each changed example names its fields, old -> new), with counts and
the first N examples of each, as a JSON-able dict (stored in etl.run_history.diff) and as
Markdown (success summary, `vehicle-etl diff`). Computed inside PostgreSQL with one full outer
join per entity; nothing big leaves the server.

Two sections say what the app notices: "breaking" (include/sql/diff: Make_ID/Model_ID removed,
renamed beyond letter case, model years lost) and "decode_drift" (golden VINs decoded with live
and with staged, field by field; vehicle_etl/release/decode_drift.py).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql

from vehicle_etl.config import LIVE_SCHEMA, STAGING_SCHEMA, Settings
from vehicle_etl.platform_db import render, schema_exists, schema_tables, sql_file


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
       (SELECT coalesce(json_agg(json_build_object('id', x.id, 'before', x.before, 'after', {label},
                                                   'old', x.old, 'new', json_build_object({pairs}))
                                 ORDER BY x.id), '[]')
        FROM (SELECT j.id, (SELECT {label} FROM {live}.{table} t WHERE t.{key} = j.id) AS before,
                     (SELECT json_build_object({pairs}) FROM {live}.{table} t WHERE t.{key} = j.id) AS old
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
    conn: psycopg.Connection, staging: str = STAGING_SCHEMA, live: str = LIVE_SCHEMA, limit: int = 10,
    golden: Path | Literal[False] | None = None,
) -> dict[str, Any]:
    """Staging vs live per entity: counts and the first `limit` examples (by id) of each change,
    the breaking-for-the-app section and the decode drift of the golden VINs (`golden`: a CSV,
    None = the gate's golden file, False = leave decode drift out).

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
                pairs=sql.SQL(", ").join(sql.SQL("{}, t.{}").format(sql.Literal(c), sql.Identifier(c))
                                         for c in e.compare),
            )
            n_live, staged, added, removed, changed, added_ex, removed_ex, changed_ex = conn.execute(query).fetchone()  # type: ignore[misc]
            changed_ex = [_field_changes(x, e.compare) for x in changed_ex]
            report["entities"][e.name] = {
                "live": n_live, "staged": staged, "added": added, "removed": removed, "changed": changed,
                "examples": {"added": added_ex, "removed": removed_ex, "changed": changed_ex},
            }
        report["breaking"] = breaking_changes(conn, staging, live, limit) if has_live else None
    if golden is not False and has_live:
        from vehicle_etl.release import decode_drift

        report["decode_drift"] = decode_drift.golden_decode_drift(conn, staging, live, golden, limit=limit)
    return report


def _field_changes(example: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    """A changed example as {id, before, after, changes: [{field, old, new}]}: the fields that differ."""
    old, new = example.pop("old", None) or {}, example.pop("new", None) or {}
    example["changes"] = [{"field": c, "old": old.get(c), "new": new.get(c)}
                          for c in columns if old.get(c) != new.get(c)]
    return example


# (file, tables both sides need): each file yields (kind, count, examples) rows.
BREAKING_SQL = (
    ("diff/10_ids_removed.sql", ("make", "model", "make_model")),
    ("diff/20_renamed.sql", ("make", "model")),
    ("diff/30_model_years_shrunk.sql", ("model", "model_year")),
)
BREAKING_KINDS = ("makes_removed", "models_removed", "makes_renamed", "models_renamed", "model_years_shrunk")


def breaking_changes(conn: psycopg.Connection, staging: str, live: str, limit: int) -> dict[str, Any]:
    """What may break the app: Make_ID/Model_ID it may have stored that the new release removes or
    renames (letter case apart), and kept models whose model years shrink. {total, <kind>: {count,
    examples}}; a kind whose tables are missing on either side is left out ("not compared")."""
    tables = set(schema_tables(conn, staging)) & set(schema_tables(conn, live))
    out: dict[str, Any] = {}
    for path, needs in BREAKING_SQL:
        if not set(needs) <= tables:
            continue
        text = render(sql_file(path), staging, live=live)
        for kind, count, examples in conn.execute(text.encode(), {"limit": limit}).fetchall():
            out[kind] = {"count": count, "examples": examples}
    return {"total": sum(v["count"] for v in out.values()), **out}


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
    lines += _breaking_markdown(report.get("breaking"))
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
                    lines.append(f"- {r['id']} {_md(r.get('after'))}: " + _changes_md(r))
                else:
                    lines.append(f"- {r['id']}: {_md(r.get('name'))}")
    lines += _drift_markdown(report.get("decode_drift"))
    return "\n".join(lines) + "\n"


def _changes_md(row: dict[str, Any]) -> str:
    changes = row.get("changes")
    if not changes:  # a diff stored before field-level changes were recorded
        return f"{_md(row.get('before'))} → {_md(row.get('after'))}"
    return "; ".join(f"{c['field']} {_md(c['old'])} → {_md(c['new'])}" for c in changes)


BREAKING_TITLES = {
    "makes_removed": "Make_ID removed", "models_removed": "Model_ID removed",
    "makes_renamed": "make renamed (same Make_ID)", "models_renamed": "model renamed (same Model_ID)",
    "model_years_shrunk": "model kept, model years lost",
}


def _breaking_markdown(breaking: dict[str, Any] | None) -> list[str]:
    if not breaking:
        return []
    lines = ["", f"## Breaking for the app: {breaking.get('total', 0)}", "",
             "Ids the app may have stored that the new release removes or renames (letter case apart), and "
             "models whose years shrink. Retired ids stay resolvable: `vehicles.make_by_id` / "
             "`vehicles.model_by_id` (docs/API.md).", "", "| change | count |", "|---|---:|"]
    for kind in BREAKING_KINDS:
        if kind in breaking:
            lines.append(f"| {BREAKING_TITLES[kind]} | {breaking[kind]['count']} |")
    for kind in BREAKING_KINDS:
        ex = (breaking.get(kind) or {}).get("examples") or []
        if not ex:
            continue
        lines.append(f"\n**{BREAKING_TITLES[kind]}** ({breaking[kind]['count']}, first {len(ex)}):")
        for r in ex:
            if "old" in r:
                lines.append(f"- {r['id']}: {_md(r['old'])} → {_md(r['new'])}")
            elif "years_lost" in r:
                lines.append(f"- {r['id']} {_md(r.get('name'))}: loses {', '.join(map(str, r['years_lost']))}")
            else:
                lines.append(f"- {r['id']}: {_md(r.get('name'))}" + (f" ({_md(r['make'])})" if r.get("make") else ""))
    return lines


def _drift_markdown(drift: dict[str, Any] | None) -> list[str]:
    if not drift:
        return []
    if drift.get("skipped"):
        return ["", "## Decode drift (golden VINs)", "", f"Not compared: {_md(drift['skipped'])}."]
    lines = ["", f"## Decode drift (golden VINs): {drift['changed_vins']} of {drift['vins']} VINs decode differently",
             ""]
    if drift.get("fields"):
        lines += ["| field | VINs changed |", "|---|---:|"]
        lines += [f"| {f} | {n} |" for f, n in sorted(drift["fields"].items(), key=lambda kv: -kv[1])]
    for r in drift.get("examples") or []:
        lines.append(f"- {r['vin']} {r['field']}: {_md(r['old']) or '(empty)'} → {_md(r['new']) or '(empty)'}")
    return lines


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
