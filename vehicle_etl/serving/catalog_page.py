"""The operator's page "Vehicle catalog": queries and server-rendered HTML, as a FastAPI app.

plugins/vehicle_catalog.py mounts `create_app()` in Airflow's api-server (behind Airflow's own
auth) and shows it in the UI's navigation; this module knows nothing of Airflow, so it runs and is
tested without it. Everything it does is a read:
- the live catalog (catalog_info, VIN decodes) is read as the app's role `mvp_platform_reader`
  (SET LOCAL ROLE) in a READ ONLY transaction, so the page sees exactly what the app sees and
  cannot write even if a query were wrong;
- run history (`etl.run_history`, never granted to that role) is read in a READ ONLY transaction
  as the platform user.
Every value reaches the HTML through Jinja2 autoescaping; the response forbids scripts (CSP).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from jinja2 import Environment, FileSystemLoader
from psycopg import sql

from vehicle_etl.config import LIVE_SCHEMA, READER_ROLE, Settings
from vehicle_etl.platform_db import connect
from vehicle_etl.release import history
from vehicle_etl.serving import decode

TITLE = "Vehicle catalog"
RUNS_SHOWN = 15
STATEMENT_TIMEOUT_MS = 5000  # an operator's page never holds the platform database for long
# The pipeline's steps in run order (jsonb does not keep the order they were recorded in).
STEP_ORDER = ("restore", "extract_load", "key_checks", "transform", "build_keys", "validate", "swap", "publish")
# The tables a person looks at first; every count is in the run's details.
MAIN_TABLES = ("make", "model", "wmi", "vin_schema", "pattern")
# NHTSA decodes partial VINs too ('*' for an unknown position); 17 characters at most.
VIN_RE = re.compile(r"^[A-Z0-9*]{1,17}$")
VERDICT_ORDER = {"FAIL": 0, "warn": 1, "ok": 2}

TEMPLATES = Path(__file__).resolve().parent / "templates"
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'self'; base-uri 'none'")


# A white car on a blue tile: an <img> cannot take the nav's text colour, and the tile stays
# visible on the nav's light background and on its dark "selected" one.
ICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><rect width="24" height="24" rx="5" '
    'fill="#017cee"/><g fill="none" stroke="#fff" stroke-width="1.8" stroke-linecap="round" '
    'stroke-linejoin="round"><path d="M6 16H4.5v-3.5L6.5 8h11l2 4.5V16H18"/><path d="M4.5 12.5h15"/>'
    '<circle cx="8" cy="16" r="1.6"/><circle cx="16" cy="16" r="1.6"/><path d="M9.6 16h4.8"/></g></svg>')


class PageError(Exception):
    """A problem the page shows in place of a section (with what to do about it)."""


@contextlib.contextmanager
def read_only(conn: psycopg.Connection, *, as_reader: bool = False) -> Iterator[psycopg.Connection]:
    """A READ ONLY transaction; with `as_reader`, also as the app's role for its whole length."""
    with conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(STATEMENT_TIMEOUT_MS)))
        if as_reader:
            try:
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(READER_ROLE)))
            except psycopg.errors.InsufficientPrivilege as exc:
                raise PageError(
                    f"the platform database user {conn.info.user!r} cannot act as {READER_ROLE}, the "
                    f"read-only role this page reads the catalog through: run "
                    f"GRANT {READER_ROLE} TO \"{conn.info.user}\"; in the platform database") from exc
            except psycopg.errors.UndefinedObject as exc:
                raise PageError(f"role {READER_ROLE} does not exist yet: it is created by the first ETL run") from exc
        yield conn


# -- queries -----------------------------------------------------------------------------------
def live_release(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The live catalog's catalog_info row (release, source, run_id, built_at), None before the first swap."""
    with read_only(conn, as_reader=True):
        if conn.execute("SELECT to_regclass(%s)", (f"{LIVE_SCHEMA}.catalog_info",)).fetchone()[0] is None:  # type: ignore[index]
            return None
        row = conn.execute(sql.SQL("SELECT release, source, run_id, built_at FROM {}.catalog_info LIMIT 1")
                           .format(sql.Identifier(LIVE_SCHEMA))).fetchone()
    if row is None:
        return None
    return dict(zip(("release", "source", "run_id", "built_at"), row, strict=True))


def runs(conn: psycopg.Connection, limit: int = RUNS_SHOWN) -> list[dict[str, Any]]:
    """The newest rows of etl.run_history (none before the first run)."""
    with read_only(conn):
        if conn.execute("SELECT to_regclass('etl.run_history')").fetchone()[0] is None:  # type: ignore[index]
            return []
        return history.recent_runs(conn, limit)


def run(conn: psycopg.Connection, run_id: str) -> dict[str, Any] | None:
    with read_only(conn):
        if conn.execute("SELECT to_regclass('etl.run_history')").fetchone()[0] is None:  # type: ignore[index]
            return None
        return history.get_run(conn, run_id)


def clean_vin(raw: str) -> str:
    """The VIN as the decoder wants it, or PageError saying what is wrong with the input."""
    vin = re.sub(r"[\s-]+", "", raw).upper()
    if not VIN_RE.match(vin):
        raise PageError("a VIN is 1 to 17 letters and digits (use * for an unknown position); "
                        f"got {len(raw)} characters")
    return vin


@dataclass
class Decoded:
    vin: str
    result: dict[str, str]
    ms: float
    release: str | None

    @property
    def summary(self) -> list[tuple[str, str]]:
        return [(k, self.result[k]) for k in decode.SUMMARY_KEYS if self.result.get(k)]

    @property
    def other_fields(self) -> list[tuple[str, str]]:
        shown = set(decode.SUMMARY_KEYS)
        return sorted((k, str(v)) for k, v in self.result.items() if v not in (None, "") and k not in shown)

    @property
    def clean(self) -> bool:
        return "0" in (self.result.get("ErrorCode") or "").split(",")


def decode_vin(conn: psycopg.Connection, vin: str) -> Decoded:
    """Decode one VIN with the live catalog, as the app's reader role."""
    with read_only(conn, as_reader=True):
        fn = f"{LIVE_SCHEMA}.decode_vin(text,integer)"
        if conn.execute("SELECT to_regprocedure(%s)", (fn,)).fetchone()[0] is None:  # type: ignore[index]
            raise PageError("no live catalog to decode with yet: run the ETL first")
        started = time.perf_counter()
        result = decode.decode(conn, [vin])[0]
        ms = (time.perf_counter() - started) * 1000
        release = conn.execute(sql.SQL("SELECT release FROM {}.catalog_info LIMIT 1")
                               .format(sql.Identifier(LIVE_SCHEMA))).fetchone()
    return Decoded(vin, result, ms, release[0] if release else None)


# -- shaping for the template --------------------------------------------------------------------
def verdict(check: dict[str, Any]) -> str:
    if check.get("passed"):
        return "ok"
    return "FAIL" if check.get("blocking", True) else "warn"


def gate_table(checks: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The quality-gate results, failures first (blocking, then tolerated), each group in gate order."""
    rows = [{**c, "verdict": verdict(c)} for c in checks or []]
    return sorted(rows, key=lambda c: VERDICT_ORDER[c["verdict"]])


def ordered_durations(durations: dict[str, Any] | None) -> list[tuple[str, float]]:
    items = dict(durations or {})
    known = [(s, float(items.pop(s))) for s in STEP_ORDER if s in items]
    return known + sorted((k, float(v)) for k, v in items.items())


@dataclass
class Page:
    live: dict[str, Any] | None = None
    live_error: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    runs_error: str | None = None
    selected: dict[str, Any] | None = None
    selected_missing: str | None = None
    vin: str = ""
    decoded: Decoded | None = None
    decode_error: str | None = None


def _problem(exc: Exception) -> str:
    """An error as one line for the page; psycopg's messages name host, database and user, never a password."""
    if isinstance(exc, PageError):
        return str(exc)
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


def _fill(page: Page, conn: psycopg.Connection, run_id: str | None) -> None:
    try:
        page.live = live_release(conn)
    except Exception as exc:
        page.live_error = _problem(exc)
    try:
        page.runs = runs(conn)
        if run_id:
            page.selected = run(conn, run_id)
            if page.selected is None:
                page.selected_missing = run_id
        elif page.runs:
            page.selected = page.runs[0]
    except Exception as exc:
        page.runs_error = _problem(exc)
    if page.vin:
        try:
            page.decoded = decode_vin(conn, clean_vin(page.vin))
        except Exception as exc:
            page.decode_error = _problem(exc)


def gather(settings: Settings, run_id: str | None = None, vin: str | None = None) -> Page:
    """Everything the page shows; a failing section carries its error and the others still render."""
    page = Page(vin=(vin or "").strip()[:40])
    try:
        with connect(settings) as conn:
            conn.execute("SET application_name = 'vehicle-catalog-page'")  # tells it apart in pg_stat_activity
            _fill(page, conn, run_id)
    except psycopg.OperationalError as exc:  # down or misconfigured: every section says so
        page.live_error = page.runs_error = f"cannot connect to the platform database: {_problem(exc)}"
        if page.vin:
            page.decode_error = page.live_error
    return page


# -- rendering ---------------------------------------------------------------------------------
def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return "" if value is None else str(value)


def _seconds(value: Any) -> str:
    if value is None:
        return ""
    s = float(value)
    if s < 60:
        return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"
    return f"{int(s // 60)} min {int(s % 60):02d} s"


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _elapsed(r: dict[str, Any]) -> float | None:
    if r.get("started_at") and r.get("finished_at"):
        return (r["finished_at"] - r["started_at"]).total_seconds()
    return None


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=_when, seconds=_seconds, number=_number)
    env.globals.update(ordered_durations=ordered_durations, gate_table=gate_table, elapsed=_elapsed,
                       main_tables=MAIN_TABLES, title=TITLE)
    return env


_ENV = environment()


def render(page: Page) -> str:
    return _ENV.get_template("catalog_page.html.j2").render(page=page)


# -- the FastAPI app -----------------------------------------------------------------------------
def create_app(
    *,
    dependencies: Sequence[Any] = (),
    login_url: Callable[[Any], str] | None = None,
    settings: Callable[[], Settings] = Settings,
) -> Any:
    """The page as a FastAPI app. `dependencies` guard every route (the plugin passes Airflow's
    auth check); `login_url(request)` is where a browser without a session is sent on 401."""
    from fastapi import Depends, FastAPI, Query, Request
    from fastapi.exceptions import HTTPException
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

    app = FastAPI(title=TITLE, docs_url=None, redoc_url=None, openapi_url=None)
    guard = [Depends(d) for d in dependencies]

    @app.exception_handler(HTTPException)
    async def _auth_errors(request: Request, exc: HTTPException) -> Response:
        wants_html = "text/html" in request.headers.get("accept", "")
        if exc.status_code == 401 and wants_html and login_url is not None:
            return RedirectResponse(login_url(request), status_code=303)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/", response_class=HTMLResponse, dependencies=guard)
    def index(run: str | None = Query(None, max_length=250),
              vin: str | None = Query(None, max_length=40)) -> HTMLResponse:
        # A plain `def`: FastAPI runs it in its thread pool, so the blocking reads never stall the
        # api-server's event loop.
        body = render(gather(settings(), run_id=run or None, vin=vin))
        return HTMLResponse(body, headers={"Cache-Control": "no-store", "Content-Security-Policy": CSP,
                                           "X-Content-Type-Options": "nosniff"})

    @app.get("/icon.svg", include_in_schema=False)
    def icon() -> Response:
        # The nav icon: static, no data, so no auth (the UI loads it before any page is open).
        return Response(ICON_SVG, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    return app
