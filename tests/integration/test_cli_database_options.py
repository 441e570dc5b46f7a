"""The CLIs' database options (issue 15): the DSN can come from ``$ANALYTICS_DSN`` or a
connection id instead of ``--dsn`` (which every user sees in ``ps``), and no error ever shows the
password — not even the fragments a password with ``@``, ``/`` or a blank leaks into libpq's
messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest

from tests.conftest import REPO_ROOT

UNREACHABLE = "postgresql://nobody:unused@127.0.0.1:1/nowhere?connect_timeout=2"


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=120, env=env,
    )  # fmt: skip


@pytest.fixture
def env() -> dict[str, str]:
    out = dict(os.environ)
    out["AIRFLOW_CONN_ANALYTICS_DB"] = UNREACHABLE  # proves the other source was used
    return out


def test_the_dsn_can_come_from_the_environment(pg_dsn, env):
    result = run("include.analytics_ops.migrate", "--status", env={**env, "ANALYTICS_DSN": pg_dsn})
    assert result.returncode == 0, result.stderr
    assert "V012 ledger_message_hash_key" in result.stdout and "pending" not in result.stdout


def test_the_dsn_can_come_from_another_connection_id(pg_dsn, env, db):
    info = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    conn = {"conn_type": "postgres", "host": info.get("host"), "port": info.get("port"),
            "login": info.get("user"), "password": info.get("password"),
            "schema": info.get("dbname")}  # fmt: skip
    env = {**env, "AIRFLOW_CONN_REPORTING_DB": json.dumps(conn)}
    clis = [
        ["include.analytics_ops.migrate", "--status"],
        ["include.analytics_ops.ledger", "stats"],
        ["include.analytics_ops.silences", "list"],
        ["include.analytics_ops.dead_letters", "list"],
        ["include.analytics_ops.monitoring", "status"],
    ]
    for module, *rest in clis:
        cli = [module, "--conn-id", "reporting_db", *rest]
        result = run(*cli, env=env)
        assert result.returncode == 0, (cli, result.stderr[-2000:])


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://analytics:pa@ss-w0rd@127.0.0.1:1/db?connect_timeout=2",
        "postgresql://analytics:pa/ss-w0rd@127.0.0.1:1/db?connect_timeout=2",
        "host=127.0.0.1 port=1 user=analytics password=pa ss-w0rd dbname=db",
    ],
    ids=["unencoded-at", "unencoded-slash", "unquoted-blank"],
)
def test_a_badly_written_dsn_never_shows_its_password(dsn, env):
    for where in ({"ANALYTICS_DSN": dsn}, {}):
        args = ["include.analytics_ops.migrate"] + ([] if where else ["--dsn", dsn])
        result = run(*args, env={**env, **where})
        assert result.returncode == 2
        assert "ss-w0rd" not in result.stdout + result.stderr, result.stderr
        assert result.stderr.startswith("migrate: cannot apply migrations to")
