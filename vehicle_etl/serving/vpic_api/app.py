"""The FastAPI application: NHTSA's vPIC paths, the app's dropdown and health paths.

NHTSA's paths, parameter names and output are reproduced as vpic.nhtsa.dot.gov serves them (path
names and parameter names case-insensitive, `format=json|csv|xml`, XML when no format is given);
what the catalog does not hold is printed as null or answered as NHTSA answers "no results"
(docs/API.md, "HTTP API", lists each case). Nothing here writes: the SQL runs as the read-only role
in a read-only transaction (catalog.py).

The parts: answers.py (limits, format, ETag and headers, parameter types, the catalog state),
guard.py (the ASGI request guard before FastAPI), nhtsa_routes.py (NHTSA's paths), app_routes.py
(the dropdown and health paths); here the application is put together.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from vehicle_etl.config import Settings
from vehicle_etl.serving.vpic_api import formats as f
from vehicle_etl.serving.vpic_api.answer_cache import AnswerCache
from vehicle_etl.serving.vpic_api.answers import PREFIX, BadRequest, Catalogs, etag_of, format_of, headers_for
from vehicle_etl.serving.vpic_api.app_routes import add_app_routes
from vehicle_etl.serving.vpic_api.catalog import Catalog, CatalogUnavailable
from vehicle_etl.serving.vpic_api.guard import NhtsaRequests, VpicApp
from vehicle_etl.serving.vpic_api.nhtsa_routes import add_nhtsa_routes
from vehicle_etl.serving.vpic_api.release_watch import ReleaseWatch

log = logging.getLogger(__name__)


def create_app(conninfo: str | Callable[[], str], *, pool_size: int | None = None, cache_mb: float | None = None,
               cache_entries: int | None = None, recheck_seconds: float | None = None) -> VpicApp:
    """The application over the catalog at `conninfo` (a string, or a callable resolved at startup).

    The answer cache (answer_cache.py) holds up to `cache_mb` MiB and `cache_entries` answers of the
    live release (VPIC_API_CACHE_MB, default 64, 0 turns it off; VPIC_API_CACHE_ENTRIES, default
    50,000); the release watcher re-reads the live release every `recheck_seconds` without a swap
    notification (VPIC_API_RECHECK_SECONDS, default 5)."""
    api = Settings().api
    size = pool_size or api.pool_size
    mb = cache_mb if cache_mb is not None else api.cache_mb
    entries = cache_entries or api.cache_entries
    recheck = recheck_seconds or api.recheck_seconds
    state = Catalogs()
    state.cache = AnswerCache(int(mb * 1024 * 1024), entries)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        info = conninfo() if callable(conninfo) else conninfo
        state.catalog = Catalog(info, max_size=size)
        await state.catalog.open()
        if state.cache.enabled:
            state.watch = ReleaseWatch(info, state.cache, recheck=recheck)
            state.watch.start()
        try:
            yield
        finally:
            if state.watch is not None:
                await state.watch.stop()
            await state.catalog.close()

    app = VpicApp(
        title="MVP Platform vehicle catalog (NHTSA vPIC API, local)",
        version="1",
        description="NHTSA's vPIC REST API served from the platform database's live catalog, and the "
                    "app's dropdown and health paths. Read-only; no authentication. See docs/API.md.",
        lifespan=lifespan, redirect_slashes=False)

    async def vpic(request: Request, fmt_value: str | None, name: str, params: dict[str, Any],
                   build: Callable[[list[dict[str, Any]]], dict[str, Any]], item: str,
                   cacheable: bool = True) -> Response:
        fmt = format_of(fmt_value)
        if cacheable and (unchanged := await state.not_modified(request, fmt)) is not None:
            return unchanged
        version, text = await state.catalog.read(name, params)
        data, media = f.render(build(json.loads(text)), fmt, item)
        if not cacheable:
            return Response(data, media_type=media, headers=headers_for(version, None))
        response = Response(data, media_type=media, headers=headers_for(version, etag_of(version, request, fmt)))
        return state.keep(request, version, response)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> Response:
        return JSONResponse(f.envelope([], str(exc), None, 0), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
                             for e in exc.errors())
        return JSONResponse(f.envelope([], f"invalid request: {problems}", None, 0), status_code=400)

    @app.exception_handler(CatalogUnavailable)
    async def unavailable(request: Request, exc: CatalogUnavailable) -> Response:
        log.warning("catalog unavailable: %s", exc)
        state.unavailable(exc)
        return JSONResponse(f.envelope([], f"the vehicle catalog is unavailable: {exc}", None, 0),
                            status_code=503, headers={"Retry-After": "5"})

    add_nhtsa_routes(app, vpic)
    add_app_routes(app, state)
    names = {r.path.split("/")[3].lower(): r.path.split("/")[3]  # type: ignore[attr-defined]
             for r in app.routes if getattr(r, "path", "").startswith(PREFIX + "/")}
    app.add_middleware(NhtsaRequests, names=names, cache=state.cache)
    app.answers = state.cache
    return app

