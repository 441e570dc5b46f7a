"""The health page's FastAPI app, mounted by plugins/analytics_health.py at ``/analytics-health``.

Routes (all behind Airflow's auth: the user must be allowed to read every monitored DAG, see
:func:`requires_read_of_monitored_dags`; 401 without a token, 403 without that right, 200 with
the UI session cookie or ``Authorization: Bearer <token>``):

* ``GET /``                     server-rendered HTML (inline CSS/SVG; shown in the UI's iframe)
* ``GET /api/health.json``      the same data as JSON
* ``GET /api/health.json?at=<ISO 8601>`` evaluates the windows at another instant (demo data);
  a bad value is a 400 with the reason (:func:`parse_at`), never a 5xx

Each request opens one short read-only connection to ``analytics_db`` with a statement timeout.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from include.analytics_ops.db import ConfigError

log = logging.getLogger(__name__)

URL_PREFIX = "/analytics-health"
STATEMENT_TIMEOUT_MS = 10_000


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


def airflow_dag_states(dag_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Paused flag and import error of each DAG from Airflow's metadata DB (inside the API
    server, which may read it). An import error is matched by file name too (``dags/<dag_id>.py``,
    the repo's convention), because a DAG that never parsed has no ``dag`` row at all.
    Best effort: any failure is logged and returns ``{}`` (the page then shows run history only).
    """
    try:
        from airflow.models.dag import DagModel
        from airflow.models.errors import ParseImportError
        from airflow.utils.session import create_session

        out: dict[str, dict[str, Any]] = {}
        with create_session() as session:
            for dag_id, paused in session.query(DagModel.dag_id, DagModel.is_paused).filter(
                DagModel.dag_id.in_(list(dag_ids))
            ):
                out[dag_id] = {"paused": bool(paused), "import_error": None}
            for filename, stacktrace, when in session.query(
                ParseImportError.filename, ParseImportError.stacktrace, ParseImportError.timestamp
            ):
                stem = os.path.splitext(os.path.basename(filename or ""))[0]
                if stem in dag_ids:
                    entry = out.setdefault(stem, {"paused": False})
                    entry.update(import_error=stacktrace or "import error", import_error_at=when)
        return out
    except Exception:  # the page must render without Airflow's view of the DAGs
        log.exception("could not read DAG states from Airflow's metadata DB")
        return {}


def load_health(
    dsn: str | None,
    now: datetime | None = None,
    *,
    expected_dags: Sequence[str] | None = None,
    airflow_dags: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Open a read-only connection (``dsn``, else the ``analytics_db`` connection — in the API
    server the lookup may read the metadata DB) and collect the page data (what both routes
    serve). Every DAG of the monitoring registry is listed (``expected_dags``, default: the
    registry)."""
    from include.analytics_ops import db
    from include.analytics_ops.health_page.queries import collect_health, registry_dag_ids

    expected = registry_dag_ids() if expected_dags is None else list(expected_dags)
    with db.connect(
        dsn,
        autocommit=False,
        application_name="analytics-health-page",
        connect_timeout=5,
        options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
    ) as conn:
        conn.read_only = True
        try:
            return collect_health(conn, now=now, expected_dags=expected, airflow_dags=airflow_dags)
        finally:
            conn.rollback()


#: ``?at=`` must leave room for the page's windows (7 days back, 48 hours of bars) inside
#: Python's and PostgreSQL's calendars: anything outside is a 400, not an overflow.
AT_MIN = datetime(1970, 1, 8, tzinfo=UTC)
AT_MAX = datetime(9999, 12, 30, tzinfo=UTC)
AT_MAX_LENGTH = 64


def parse_at(at: str | None) -> datetime | None:
    """The ``?at=`` value as an aware instant (naive = UTC), or None for "now".

    Raises HTTPException(400) with the reason for anything else: not ISO 8601, too long, control
    characters, or outside [1970-01-08, 9999-12-30] (the windows would overflow)."""
    if at is None or at == "":
        return None
    if len(at) > AT_MAX_LENGTH or not at.isprintable():
        raise HTTPException(
            status_code=400,
            detail=f"'at' must be an ISO 8601 timestamp of at most {AT_MAX_LENGTH} printable"
            " characters",
        )
    try:
        value = datetime.fromisoformat(at.replace("Z", "+00:00"))
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        in_range = AT_MIN <= value <= AT_MAX
    except (ValueError, OverflowError) as exc:
        raise HTTPException(
            status_code=400, detail=f"'at' must be an ISO 8601 timestamp, got {at!r}"
        ) from exc
    if not in_range:
        raise HTTPException(
            status_code=400,
            detail=f"'at' must lie between {AT_MIN:%Y-%m-%d} and {AT_MAX:%Y-%m-%d}, got {at!r}",
        )
    return value


def _ui_base(request: Request) -> str:
    """Path of the Airflow UI root as seen by the browser (links to /dags/<id>)."""
    root = request.scope.get("root_path", "") or ""
    return root.removesuffix(URL_PREFIX).rstrip("/")


def requires_read_of_monitored_dags(
    dag_ids: Callable[[], Sequence[str]] | None = None,
) -> Callable[..., None]:
    """FastAPI dependency: the user must be allowed to read every DAG the page reports on.

    Who sees the page: anyone who may read the monitored DAGs — under the FAB auth manager the
    Viewer, User, Op and Admin roles (and a custom role with ``can read`` on each of those DAGs);
    under SimpleAuthManager every role from viewer up. ``AccessView.PLUGINS`` (Op/Admin only
    under FAB) was too narrow, and Airflow's ``requires_access_dag("GET")`` without a DAG id is
    too wide: it only asks "may list DAGs" (one readable DAG is enough) and honours a
    ``?dag_id=`` from the query string. This checks each DAG id of the registry explicitly.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.api_fastapi.core_api.security import get_user

    from include.analytics_ops.health_page.queries import registry_dag_ids

    ids = dag_ids or registry_dag_ids

    current_user = Depends(get_user)

    # Depends() as a default, not the GetUserDep annotation: annotations are strings here
    # (``from __future__ import annotations``) and a local import would not resolve.
    def inner(user: Any = current_user) -> None:
        manager = get_auth_manager()
        denied = [
            d
            for d in ids()
            if not manager.is_authorized_dag(method="GET", details=DagDetails(id=d), user=user)
        ]
        if denied:
            raise HTTPException(
                status_code=403,
                detail="Forbidden: the health page needs read access to the DAGs "
                + ", ".join(denied),
            )

    return inner


def create_app(
    dsn: str | None = None,
    *,
    auth_dependency: Any | None = "airflow",
    dag_states: Callable[[Sequence[str]], Mapping[str, Mapping[str, Any]]] | None = None,
) -> FastAPI:
    """Build the app. ``auth_dependency="airflow"`` (default) protects every route with
    :func:`requires_read_of_monitored_dags` and reads paused flags / import errors from Airflow's
    metadata (:func:`airflow_dag_states`; ``dag_states`` overrides); pass ``None`` only in
    benchmarks/tests that exercise the app without an API server (no Airflow lookups then)."""
    dependencies = []
    if auth_dependency == "airflow":
        dependencies.append(Depends(requires_read_of_monitored_dags()))
        dag_states = dag_states or airflow_dag_states
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

    def fetch(at: str | None) -> dict[str, Any]:
        when = parse_at(at)
        from include.analytics_ops.health_page.queries import registry_dag_ids

        expected = registry_dag_ids()
        states = dag_states(expected) if dag_states is not None else None
        try:
            return load_health(dsn, now=when, expected_dags=expected, airflow_dags=states)
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
