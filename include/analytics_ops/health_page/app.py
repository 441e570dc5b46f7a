"""The health page's FastAPI app, mounted by plugins/analytics_health.py at ``/analytics-health``.

Routes (all behind Airflow's auth: ``requires_access_view(AccessView.PLUGINS)``, so 401 without
a token, 200 with the UI session cookie or ``Authorization: Bearer <token>``):

* ``GET /``                     server-rendered HTML (inline CSS/SVG; shown in the UI's iframe)
* ``GET /api/health.json``      the same data as JSON
* ``GET /api/health.json?at=<ISO 8601>`` evaluates the windows at another instant (demo data)

Each request opens one short read-only connection to ``analytics_db`` with a statement timeout.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from include.analytics_ops.db import ConfigError, conninfo_from_parts, resolve_dsn

log = logging.getLogger(__name__)

URL_PREFIX = "/analytics-health"
STATEMENT_TIMEOUT_MS = 10_000


def analytics_dsn() -> str:
    """DSN of ``analytics_db`` inside the API server.

    ``AIRFLOW_CONN_ANALYTICS_DB`` first (no Airflow lookup); otherwise the connection from the
    secrets backends / metadata DB, which the API server (unlike a task) may read directly.
    """
    if os.environ.get("AIRFLOW_CONN_ANALYTICS_DB"):
        return resolve_dsn()
    try:
        from airflow.models.connection import Connection

        conn = Connection.get_connection_from_secrets("analytics_db")
    except Exception as exc:
        raise ConfigError(f"Airflow connection 'analytics_db' is not defined: {exc}") from exc
    return conninfo_from_parts(
        conn.host, conn.port, conn.login, conn.password, conn.schema, conn.extra_dejson
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, UUID | set | frozenset):
        return str(value) if isinstance(value, UUID) else sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, default=_json_default, separators=(",", ":"))


def load_health(dsn: str, now: datetime | None = None) -> dict[str, Any]:
    """Open a read-only connection and collect the page data (what both routes serve)."""
    import psycopg

    from include.analytics_ops.health_page.queries import collect_health

    with psycopg.connect(
        dsn,
        autocommit=False,
        application_name="analytics-health-page",
        connect_timeout=5,
        options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
    ) as conn:
        conn.read_only = True
        try:
            return collect_health(conn, now=now)
        finally:
            conn.rollback()


def _parse_at(at: str | None) -> datetime | None:
    if not at:
        return None
    try:
        value = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError as exc:
        raise HTTPException(
            status_code=400, detail=f"'at' must be an ISO 8601 timestamp, got {at!r}"
        ) from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _ui_base(request: Request) -> str:
    """Path of the Airflow UI root as seen by the browser (links to /dags/<id>)."""
    root = request.scope.get("root_path", "") or ""
    return root.removesuffix(URL_PREFIX).rstrip("/")


def create_app(
    dsn: str | None = None,
    *,
    auth_dependency: Any | None = "airflow",
) -> FastAPI:
    """Build the app. ``auth_dependency="airflow"`` (default) protects every route with Airflow's
    ``requires_access_view(AccessView.PLUGINS)``; pass ``None`` only in benchmarks/tests that
    exercise the app without an API server."""
    dependencies = []
    if auth_dependency == "airflow":
        from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
        from airflow.api_fastapi.core_api.security import requires_access_view

        dependencies.append(Depends(requires_access_view(AccessView.PLUGINS)))
    elif auth_dependency is not None:
        dependencies.append(Depends(auth_dependency))

    app = FastAPI(
        title="Analytics health",
        description="Is everything OK, and if not, what and since when.",
        dependencies=dependencies,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def current_dsn() -> str:
        return dsn or analytics_dsn()

    def fetch(at: str | None) -> dict[str, Any]:
        when = _parse_at(at)
        try:
            return load_health(current_dsn(), now=when)
        except ConfigError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        except Exception as exc:  # the DB is down or a query failed: say so, don't hang
            log.exception("health page query failed")
            raise HTTPException(
                status_code=503, detail=f"analytics_db unavailable: {type(exc).__name__}"
            ) from exc

    @app.get("/api/health.json")
    def health_json(at: str | None = Query(default=None)) -> Response:
        return Response(
            content=to_json(fetch(at)),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/", response_class=HTMLResponse)
    def health_page(request: Request, at: str | None = Query(default=None)) -> HTMLResponse:
        from include.analytics_ops.health_page.render import render_page

        data = fetch(at)
        html = render_page(data, ui_base=_ui_base(request), at=at)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    return app
