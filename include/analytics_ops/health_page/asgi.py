"""A deferred ASGI app for the plugin: ``health_app`` builds ``app.create_app()`` on first use.

Airflow imports every plugin module in every process (scheduler, dag-processor, triggerer, task
runners), but only the API server serves HTTP. Building the FastAPI app needs Airflow's API
security stack (``requires_access_view``) and psycopg; deferring it to the first request keeps
the plugin import cheap everywhere else. The built app is cached for the process lifetime.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class DeferredApp:
    """ASGI callable that builds the wrapped app with ``factory()`` the first time it is called."""

    def __init__(self, factory: Callable[[], Any], name: str) -> None:
        self._factory = factory
        self._name = name
        self._app: Any = None
        self._lock = threading.Lock()

    @property
    def app(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = self._factory()
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def __repr__(self) -> str:
        state = "built" if self._app is not None else "not built yet"
        return f"<DeferredApp {self._name} ({state})>"


def _build() -> Any:
    from include.analytics_ops.health_page.app import create_app

    return create_app()


health_app = DeferredApp(_build, name="analytics-health")
