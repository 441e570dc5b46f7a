"""Connections to the analytics PostgreSQL (``analytics_db``) with psycopg 3.

Resolution order for a DSN, so plain functions, CLIs and Airflow tasks all use one path:
1. an explicit DSN argument;
2. ``AIRFLOW_CONN_ANALYTICS_DB`` (URI or JSON form) parsed here without importing Airflow;
3. the Airflow connection ``analytics_db`` through ``BaseHook`` (UI, secrets backends).

The CLIs (``add_database_arguments`` / ``cli_dsn``) take ``--conn-id`` (another connection id,
same lookup), the ``ANALYTICS_DSN`` environment variable, or ``--dsn`` — the last one is visible
to every user of the machine in ``ps``, so prefer the other two for DSNs holding a password.
Errors never show the password, not even the fragments a DSN that is not URL-encoded leaks into
libpq's messages (``failed to resolve host 'ss@db'``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

ANALYTICS_CONN_ID = "analytics_db"
DSN_ENV = "ANALYTICS_DSN"


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
    return redact(" ".join(f"{k}={v}" for k, v in sorted(info.items())), dsn)


def _secrets(dsn: str) -> list[str]:
    """What of ``dsn`` may be secret: its password, and for a URI everything typed between
    ``://`` and the last ``@`` (a password with an unencoded ``/``, ``@`` or ``'`` is cut there),
    in pieces as libpq may quote them."""
    found: list[str] = []
    try:
        password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        password = None
    if password:
        found.append(str(password))
    if "://" in dsn and "@" in dsn:
        userinfo = dsn.split("://", 1)[1].rsplit("@", 1)[0]
        found.append(userinfo)
        found.extend(p for p in re.split(r"[:/@?#'\s]+", userinfo)[1:] if len(p) >= 2)
    else:
        match = re.search(r"password\s*=\s*(\S+(?:\s+\S+)*)", dsn)
        if match:
            found.extend(p for p in re.split(r"[\s'=]+", match.group(1)) if len(p) >= 2)
    return sorted(set(found), key=len, reverse=True)


def redact(message: str, dsn: str) -> str:
    """``message`` with every secret part of ``dsn`` replaced by ``***``."""
    for secret in _secrets(dsn):
        message = message.replace(secret, "***")
    return message


def connect(
    dsn: str | None = None,
    *,
    conn_id: str = ANALYTICS_CONN_ID,
    autocommit: bool = False,
    **kwargs: Any,
) -> psycopg.Connection:
    """Open a psycopg 3 connection to the analytics database. A failure raises the same psycopg
    error class with the DSN's secrets removed from its message."""
    resolved = resolve_dsn(dsn, conn_id)
    try:
        return psycopg.connect(
            resolved, autocommit=autocommit, application_name="analytics-ops", **kwargs
        )
    except psycopg.Error as exc:
        raise type(exc)(redact(str(exc), resolved)) from None


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    """The database options every CLI takes (see the module docstring)."""
    parser.add_argument(
        "--conn-id",
        default=ANALYTICS_CONN_ID,
        metavar="ID",
        help="Airflow connection of the analytics database (AIRFLOW_CONN_<ID>, the UI or a"
        f" secrets backend; default {ANALYTICS_CONN_ID}); ${DSN_ENV} overrides it",
    )
    parser.add_argument(
        "--dsn",
        help=f"libpq DSN; visible to other users in `ps`: prefer ${DSN_ENV} or --conn-id",
    )


def cli_dsn(args: argparse.Namespace) -> str:
    """``--dsn``, else ``$ANALYTICS_DSN``, else the connection ``--conn-id``."""
    return (
        getattr(args, "dsn", None)
        or os.environ.get(DSN_ENV)
        or resolve_dsn(None, getattr(args, "conn_id", ANALYTICS_CONN_ID))
    )
