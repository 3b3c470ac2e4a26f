"""Airflow plugin: the operator's page "Vehicle catalog" in the Airflow UI (wiring only).

The page itself is vehicle_etl/serving/catalog_page.py. Here it is mounted in the api-server at
/vehicle-catalog behind Airflow's own auth (the JWT of the UI's session cookie or a Bearer token;
read access to the runs of the DAG vpic_vehicle_etl is required), and shown in the UI's navigation
and as a tab of every run of the DAG.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from vehicle_etl.serving.catalog_page import TITLE

DAG_ID = "vpic_vehicle_etl"
URL_PREFIX = "/vehicle-catalog"


def _login_url(request: Any) -> str:
    """Airflow's login, coming back to the page asked for."""
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=str(request.url))


class _PageApp:
    """The page's ASGI app, built on its first request. Every Airflow process loads plugins (each
    task process too, for macros); only the api-server serves requests, so only it pays for
    importing the api-server's security module and building the FastAPI app."""

    def __init__(self) -> None:
        self._app: Any = None

    def _build(self) -> Any:
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
        from airflow.api_fastapi.core_api.security import requires_access_dag

        from vehicle_etl.serving.catalog_page import create_app

        return create_app(dependencies=[requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=DAG_ID)],
                          login_url=_login_url)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = self._build()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:  # what Airflow's /api/v2/plugins lists as the app
        return f"vehicle_etl.serving.catalog_page app at {URL_PREFIX}"


class VehicleCatalogPlugin(AirflowPlugin):
    name = "vehicle_catalog"
    fastapi_apps = [{"app": _PageApp(), "url_prefix": URL_PREFIX, "name": TITLE}]
    # href without a leading slash: the UI resolves it against its base URL (a sub-path works too).
    external_views = [
        {"name": TITLE, "href": "vehicle-catalog/", "destination": "nav", "url_route": "vehicle-catalog",
         "icon": "vehicle-catalog/icon.svg"},
        {"name": TITLE, "href": "vehicle-catalog/?run={RUN_ID}#run", "destination": "dag_run",
         "url_route": "vehicle-catalog-run", "icon": "vehicle-catalog/icon.svg"},
    ]
