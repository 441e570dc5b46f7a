"""Connections to the analytics PostgreSQL (``analytics_db``) with psycopg 3.

Resolution order for a DSN, so plain functions, CLIs and Airflow tasks all use one path:
1. an explicit DSN argument;
2. ``AIRFLOW_CONN_ANALYTICS_DB`` (URI or JSON form) parsed here without importing Airflow;
3. the Airflow connection ``analytics_db`` through ``BaseHook`` (UI, secrets backends).
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

ANALYTICS_CONN_ID = "analytics_db"


class ConfigError(RuntimeError):
    """A configuration problem that retrying will not fix."""


def conninfo_from_parts(
    host: str | None = None,
    port: int | str | None = None,
    login: str | None = None,
    password: str | None = None,
    schema: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """libpq conninfo from Airflow connection fields (``schema`` is the database name)."""
    parts: dict[str, Any] = {}
    if host:
        parts["host"] = host
    if port:
        parts["port"] = str(port)
    if login:
        parts["user"] = login
    if password:
        parts["password"] = password
    parts["dbname"] = schema or "postgres"
    for key in ("sslmode", "sslrootcert", "connect_timeout", "options", "application_name"):
        if extra and extra.get(key) is not None:
            parts[key] = str(extra[key])
    return psycopg.conninfo.make_conninfo(**parts)


def conninfo_from_airflow_value(value: str) -> str:
    """Parse an ``AIRFLOW_CONN_*`` value (URI or JSON) into a libpq conninfo."""
    value = value.strip()
    if value.startswith("{"):
        data = json.loads(value)
        extra = data.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra) if extra else {}
        return conninfo_from_parts(
            data.get("host"),
            data.get("port"),
            data.get("login"),
            data.get("password"),
            data.get("schema"),
            extra,
        )
    parsed = urlsplit(value)
    scheme = parsed.scheme.split("+")[0]
    if scheme not in ("postgres", "postgresql"):
        raise ConfigError(
            f"analytics_db must be a postgres connection, got scheme {parsed.scheme!r}"
        )
    # Airflow-only query keys (``__extra__``) are not libpq parameters.
    query = [(k, v) for k, v in parse_qsl(parsed.query) if not k.startswith("__")]
    return urlunsplit(("postgresql", parsed.netloc, parsed.path, urlencode(query), ""))


def resolve_dsn(dsn: str | None = None, conn_id: str = ANALYTICS_CONN_ID) -> str:
    """Return a DSN for ``conn_id`` (see module docstring for the order)."""
    if dsn:
        return dsn
    env_value = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if env_value:
        return conninfo_from_airflow_value(env_value)
    try:
        from airflow.sdk import BaseHook
    except ImportError as exc:  # pragma: no cover - Airflow is always installed in this repo
        raise ConfigError(f"no DSN given and AIRFLOW_CONN_{conn_id.upper()} is not set") from exc
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:
        raise ConfigError(f"Airflow connection {conn_id!r} is not defined: {exc}") from exc
    return conninfo_from_parts(
        conn.host, conn.port, conn.login, conn.password, conn.schema, conn.extra_dejson
    )


def describe_dsn(dsn: str) -> str:
    """The DSN without its password, for logs and error messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    info.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in sorted(info.items()))


def connect(
    dsn: str | None = None, *, autocommit: bool = False, **kwargs: Any
) -> psycopg.Connection:
    """Open a psycopg 3 connection to the analytics database."""
    return psycopg.connect(
        resolve_dsn(dsn), autocommit=autocommit, application_name="analytics-ops", **kwargs
    )
