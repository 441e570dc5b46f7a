"""Airflow connections for the HTTP upstreams (PostHog, inventory API, GitHub): one lookup and
one rule for turning connection fields into a base URL, shared by every client."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from include.analytics_ops.db import ConfigError


def airflow_connection(conn_id: str) -> Any:
    """The Airflow connection ``conn_id`` (UI, secrets backends, ``AIRFLOW_CONN_*``).

    Raises ConfigError — a problem retrying will not fix — when it is not defined."""
    try:
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(conn_id)
    except Exception as exc:
        raise ConfigError(f"Airflow connection {conn_id!r} is not defined: {exc}") from exc


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
