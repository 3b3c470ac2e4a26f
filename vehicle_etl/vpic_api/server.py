"""`vehicle-etl serve`: run the API with uvicorn (loopback unless told otherwise)."""

from __future__ import annotations

import logging

from vehicle_etl.config import Settings, platform_conninfo

log = logging.getLogger(__name__)


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8090) -> int:
    import uvicorn

    from vehicle_etl.vpic_api.app import create_app

    # Resolved at startup: on the embedded defaults this starts (or reuses) the embedded server.
    app = create_app(lambda: platform_conninfo(settings))
    log.info("serving the vPIC API on http://%s:%d/api/vehicles/ (OpenAPI: /openapi.json)", host, port)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, server_header=False)
    return 0
