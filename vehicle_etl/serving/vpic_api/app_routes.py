"""The app's own paths: the dropdowns (vehicles.dropdown_*) and health."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from vehicle_etl.serving.vpic_api import formats as f
from vehicle_etl.serving.vpic_api.answers import PREFIX, Catalogs, IdQ, OptYear, ReqYear, etag_of, headers_for
from vehicle_etl.serving.vpic_api.catalog import CatalogUnavailable

log = logging.getLogger(__name__)



def add_app_routes(app: FastAPI, state: Catalogs) -> None:
    tags = ["MVP Platform app"]

    async def rows(request: Request, name: str, params: dict[str, Any]) -> Response:
        if (unchanged := await state.not_modified(request, "json")) is not None:
            return unchanged
        version, text = await state.catalog.read(name, params)
        return state.keep(request, version, Response(text.encode(), media_type=f.MEDIA_TYPES["json"],
                                                     headers=headers_for(version, etag_of(version, request, "json"))))

    @app.get(PREFIX + "/dropdown/makes", tags=tags, summary="vehicles.dropdown_makes")
    async def makes(request: Request, model_year: OptYear = None, all_types: bool = False) -> Response:
        return await rows(request, "dropdown_makes", {"model_year": model_year, "all_types": all_types})

    @app.get(PREFIX + "/dropdown/models", tags=tags, summary="vehicles.dropdown_models")
    async def models(request: Request, make_id: IdQ, model_year: OptYear = None) -> Response:
        return await rows(request, "dropdown_models", {"make_id": make_id, "model_year": model_year})

    for option in ("trims", "engines", "transmissions"):
        def handler(name: str) -> Callable[..., Awaitable[Response]]:
            async def options(request: Request, make_id: IdQ, model_id: IdQ, model_year: ReqYear) -> Response:
                return await rows(request, f"dropdown_{name}",
                                  {"make_id": make_id, "model_id": model_id, "model_year": model_year})
            return options
        app.get(PREFIX + f"/dropdown/{option}", tags=tags, summary=f"vehicles.dropdown_{option}")(handler(option))

    @app.get(PREFIX + "/health", tags=tags, summary="Live release and database reachability (503 when not)")
    async def health() -> Response:
        try:
            version = await state.catalog.version()
        except CatalogUnavailable as exc:
            state.unavailable(exc)
            return JSONResponse({"status": "unavailable", "database": "unreachable", "release": None,
                                 "run_id": None, "built_at": None, "error": str(exc)}, status_code=503)
        body = {"status": "ok" if version.release else "no live catalog", "database": "reachable",
                "release": version.release, "run_id": version.run_id,
                "built_at": version.built_at.isoformat() if version.built_at else None}
        return JSONResponse(body, status_code=200 if version.release else 503,
                            headers={"X-Vpic-Data-Version": version.header, "Cache-Control": "no-store"})
