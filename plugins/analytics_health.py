"""Airflow UI plugin: the "Analytics health" page (nav: Browse → Analytics health).

Only the ``AirflowPlugin`` object lives here; the app, queries and HTML are in
``include/analytics_ops/health_page/``. The mounted app is deferred (built on its first request
in the API server), so importing this module in the scheduler or a task stays cheap. Every
route requires Airflow auth (``requires_access_view(AccessView.PLUGINS)``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.analytics_ops.health_page.asgi import health_app


class AnalyticsHealthPlugin(AirflowPlugin):
    name = "analytics_health"
    fastapi_apps = [  # noqa: RUF012 - AirflowPlugin declares these as class attributes
        {"app": health_app, "url_prefix": "/analytics-health", "name": "Analytics health"}
    ]
    external_views = [  # noqa: RUF012
        {
            "name": "Analytics health",
            "href": "/analytics-health/",
            "url_route": "analytics-health",
            "destination": "nav",
            "category": "browse",
        }
    ]
