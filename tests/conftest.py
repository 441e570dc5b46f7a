"""Shared test harness.

One embedded PostgreSQL per session (or the server in ``PG_DSN``) with the analytics schema
migrated and Airflow's metadata DB migrated; Airflow's environment variables are set in
``pytest_configure``, before any test module imports Airflow. Tests get clean tables (``db``), the
sandbox upstreams (``sandbox``) and a runner for the real ``airflow dags test`` CLI (``dag_test``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
_DEVENV = None


def pytest_configure(config: pytest.Config) -> None:
    global _DEVENV
    if hasattr(config, "workerinput") or _DEVENV is not None:
        return
    from include.sandbox.devenv import DevEnv

    _DEVENV = DevEnv(name=f"test{os.getpid()}")
    _DEVENV.start_postgres()
    os.environ.update(_DEVENV.env())
    _DEVENV.migrate()


def pytest_unconfigure(config: pytest.Config) -> None:
    global _DEVENV
    if _DEVENV is not None:
        _DEVENV.stop()
        _DEVENV = None


@pytest.fixture(scope="session")
def devenv():
    assert _DEVENV is not None, "the test environment did not start"
    return _DEVENV


@pytest.fixture(scope="session")
def pg_dsn(devenv) -> str:
    return devenv.analytics_dsn


def _all_tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables"
        " WHERE table_schema IN ('ops', 'analytics') AND table_type = 'BASE TABLE'"
    ).fetchall()
    return [r[0] for r in rows]


def truncate_all(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = _all_tables(conn)
        if tables:
            conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


@pytest.fixture
def db(pg_dsn: str) -> Iterator[psycopg.Connection]:
    """A connection (autocommit) to the analytics database with every table emptied."""
    truncate_all(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def _sandbox_process(devenv):
    from include.sandbox.server import SandboxProcess

    proc = SandboxProcess(port=0)
    proc.start()
    devenv.sandbox_url = proc.url
    os.environ.update(devenv.env())
    yield proc
    proc.stop()


@pytest.fixture
def sandbox(_sandbox_process):
    """The running sandbox upstreams, reset to no faults and no recorded calls."""
    _sandbox_process.reset()
    yield _sandbox_process
    _sandbox_process.reset()


@pytest.fixture
def airflow_env(devenv, _sandbox_process) -> dict[str, str]:
    return devenv.env()


@pytest.fixture
def dag_test(devenv):
    """Run the real ``airflow dags test DAG [DATE] [-c CONF]``; returns the CompletedProcess.

    Request the ``sandbox`` fixture too when the DAG talks to upstreams: its connections are then
    part of the environment."""

    def run(
        dag_id: str,
        when: str | None = None,
        conf: dict | None = None,
        env: dict[str, str] | None = None,
        timeout: int = 600,
    ) -> subprocess.CompletedProcess:
        args = ["airflow", "dags", "test", dag_id]
        if when:
            args.append(when)
        if conf is not None:
            args += ["-c", json.dumps(conf)]
        full_env = devenv.env(**(env or {}))
        airflow_bin = str(Path(sys.executable).with_name("airflow"))
        return subprocess.run(
            [airflow_bin, *args[1:]],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(REPO_ROOT),
        )

    return run


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of headless Chromium. Installs Debian's ``chromium`` when missing (as root), the one
    thing the test setup may install from outside the venv; skips LOUDLY only where it truly
    cannot be installed."""
    import shutil
    import warnings

    from include.sandbox.screenshot import find_chromium

    found = find_chromium()
    problem = ""
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if result.returncode != 0:
                problem = f"{' '.join(cmd)} failed: {result.stderr[-1000:]}"
                break
        found = find_chromium()
    elif found is None:
        problem = "apt-get is unavailable or the tests do not run as root"
    if found is None:
        message = (
            "\n" + "!" * 78 + "\nBROWSER TESTS SKIPPED: Chromium is not installed and "
            f"could not be installed ({problem or 'unknown reason'}).\n"
            "Install it with `apt-get install -y chromium`.\n" + "!" * 78
        )
        warnings.warn(message, stacklevel=1)
        print(message)
        pytest.skip(message)
    return found
