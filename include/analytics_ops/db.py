"""Connections to the analytics PostgreSQL (``analytics_db``) with psycopg 3: :func:`connect`.

Without a DSN it goes through the Postgres provider's ``PostgresHook`` (psycopg 3 with SQLAlchemy
2), so the connection is found the Airflow way (``connections.airflow_connection``) and every
extra the user sets (``sslmode``, ``options``, IAM, ...) reaches libpq as the provider passes it.

The CLIs (``add_database_arguments`` / ``cli_dsn`` / ``cli_connect``) take ``--conn-id`` (another
connection id, same path), the ``ANALYTICS_DSN`` environment variable, or ``--dsn`` — the last
one is visible to every user of the machine in ``ps``, so prefer the other two for DSNs holding a
password. Errors never show the password, not even the fragments a DSN that is not URL-encoded
leaks into libpq's messages (``failed to resolve host 'ss@db'``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import Any

import psycopg

from include.analytics_ops.connections import ConfigError as ConfigError  # callers import it here
from include.analytics_ops.connections import airflow_connection

ANALYTICS_CONN_ID = "analytics_db"
DSN_ENV = "ANALYTICS_DSN"
APPLICATION_NAME = "analytics-ops"


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
    **params: Any,
) -> psycopg.Connection:
    """Open a psycopg 3 connection to the analytics database: ``dsn`` when given, else the
    Airflow connection ``conn_id`` through ``PostgresHook``. ``params`` are libpq parameters
    (``connect_timeout``, ``options``, ...) that win over the connection's extra. A failure with a
    DSN raises the same psycopg error class with the DSN's secrets removed from its message."""
    default = {"application_name": APPLICATION_NAME}
    if not dsn:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        conn = airflow_connection(conn_id)
        conn.extra = json.dumps({**default, **conn.extra_dejson, **params})
        pg = PostgresHook(postgres_conn_id=conn_id, connection=conn).get_conn()
        pg.autocommit = autocommit
        return pg
    try:
        return psycopg.connect(dsn, autocommit=autocommit, **{**default, **params})
    except psycopg.Error as exc:
        raise type(exc)(redact(str(exc), dsn)) from None


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    """The database options every CLI takes (see the module docstring)."""
    parser.add_argument(
        "--conn-id",
        default=ANALYTICS_CONN_ID,
        metavar="ID",
        help="Airflow connection of the analytics database (AIRFLOW_CONN_<ID> or a secrets"
        f" backend: a CLI does not read the metadata DB; default {ANALYTICS_CONN_ID});"
        f" ${DSN_ENV} overrides it",
    )
    parser.add_argument(
        "--dsn",
        help=f"libpq DSN; visible to other users in `ps`: prefer ${DSN_ENV} or --conn-id",
    )


def cli_dsn(args: argparse.Namespace) -> str | None:
    """``--dsn``, else ``$ANALYTICS_DSN``, else None (the connection ``--conn-id``)."""
    return getattr(args, "dsn", None) or os.environ.get(DSN_ENV) or None


def cli_connect(args: argparse.Namespace, *, autocommit: bool = True) -> psycopg.Connection:
    """The connection a CLI asked for with ``add_database_arguments``' options."""
    conn_id = getattr(args, "conn_id", ANALYTICS_CONN_ID)
    return connect(cli_dsn(args), conn_id=conn_id, autocommit=autocommit)
