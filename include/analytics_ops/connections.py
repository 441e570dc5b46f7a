"""Airflow connections, looked up one way everywhere: ``airflow.sdk`` ``BaseHook.get_connection``.

In Task SDK 1.3.2 that lookup asks a configured custom secrets backend first, then the
``AIRFLOW_CONN_<ID>`` environment variable (JSON or URI, parsed by Airflow: percent-decoded
parts, ``__extra__``, a host that keeps its scheme), then — only where the process may — the API
server (tasks) or the metadata DB (API server, scheduler, triggerer). A CLI or a test outside a
task sees the environment (and a custom backend). Also the rule for turning an HTTP connection's
fields into a base URL, shared by every HTTP client."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


class ConfigError(RuntimeError):
    """A configuration problem that retrying will not fix."""


def airflow_connection(conn_id: str) -> Any:
    """The Airflow connection ``conn_id``; ConfigError when it is not defined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as exc:
        raise ConfigError(f"Airflow connection {conn_id!r} is not defined: {exc}") from exc


def connection_fields(conn_id: str) -> dict[str, Any] | None:
    """The connection's fields (``extra`` as a dict), or None when it is not defined or cannot
    be read (logged: the alert path must go on with the channels it has)."""
    try:
        conn = airflow_connection(conn_id)
    except ConfigError:
        return None
    except Exception:
        log.warning("cannot read Airflow connection %r", conn_id, exc_info=True)
        return None
    fields = ("conn_type", "host", "port", "login", "password", "schema")
    return {**{name: getattr(conn, name) for name in fields}, "extra": conn.extra_dejson}


def http_base_url(
    conn_id: str,
    host: str | None,
    port: int | None = None,
    schema: str | None = None,
    *,
    example: str = "https://api.example.com",
) -> str:
    """Base URL from connection fields. ``host`` may carry scheme, port and path
    (``http://127.0.0.1:8811``); a bare host name takes ``schema`` (Airflow's HTTP-connection
    scheme field, default https) and ``port``."""
    if not host:
        raise ConfigError(f"connection {conn_id!r} has no host (e.g. {example})")
    host = host.strip()
    if "://" in host:
        parts = urlsplit(host)
        netloc = parts.netloc
        if port and parts.port is None:
            netloc = f"{netloc}:{port}"
        return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"
    scheme = schema if schema in ("http", "https") else "https"
    return f"{scheme}://{host.rstrip('/')}" + (f":{port}" if port else "")
