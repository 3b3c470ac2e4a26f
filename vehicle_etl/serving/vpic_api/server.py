"""`vehicle-etl serve`: run the API with uvicorn (loopback unless told otherwise).

uvicorn runs on uvloop with the httptools parser (both in the lock; uvicorn's "auto" picks them).
VPIC_API_WORKERS (default 1) starts that many server processes on the one port, each with its own
pool, answer cache and release watcher (docs/BENCHMARKS.md has what a second process does on two
cores).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from vehicle_etl.config import Settings, platform_conninfo

log = logging.getLogger(__name__)


def app_from_env() -> FastAPI:
    """The application as each worker process builds it (settings from MVP_PLATFORM_DB_*)."""
    from vehicle_etl.serving.vpic_api.app import create_app

    settings = Settings()
    # Resolved at startup: on the embedded defaults this starts (or reuses) the embedded server.
    return create_app(lambda: platform_conninfo(settings))


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8090) -> int:
    import uvicorn

    from vehicle_etl.serving.vpic_api.app import create_app

    workers = settings.api.workers
    log.info("serving the vPIC API on http://%s:%d/api/vehicles/ (OpenAPI: /openapi.json), %d process(es)",
             host, port, workers)
    options = {"host": host, "port": port, "log_level": "info", "access_log": False, "server_header": False,
               "loop": "uvloop", "http": "httptools"}
    if workers > 1:
        uvicorn.run("vehicle_etl.serving.vpic_api.server:app_from_env", factory=True, workers=workers, **options)
    else:
        # Resolved at startup: on the embedded defaults this starts (or reuses) the embedded server.
        uvicorn.run(create_app(lambda: platform_conninfo(settings)), **options)
    return 0
