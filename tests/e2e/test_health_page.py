"""The health page served by a real ``airflow api-server`` with this repo's plugin.

Starts the API server (SimpleAuthManager, user admin with a generated password) on a free port
against the session's migrated metadata DB, inserts a week of history into the analytics DB, and
checks: 401 without credentials, 200 with a bearer token from ``POST /auth/token`` and with the
UI's session cookie, the nav entry in ``/api/v2/plugins``, and the JSON numbers against SQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from include.sandbox.samples.health import insert_sample_history

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ApiServer:
    url: str
    username: str
    password: str
    log_path: Path

    def token(self) -> str:
        resp = httpx.post(
            f"{self.url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=30,
        )
        assert resp.status_code == 201, resp.text
        return resp.json()["access_token"]

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def airflow_api_server(
    devenv, workdir: Path, timeout: float = 180, auth_env: dict[str, str] | None = None
) -> Iterator[ApiServer]:
    """``airflow api-server`` in its own process group; killed (whole group) on exit.

    SimpleAuthManager (user admin, generated password) unless ``auth_env`` sets another auth
    manager's environment (the caller then knows the users and passwords)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    passwords = workdir / "simple_auth_manager_passwords.json"
    log_path = workdir / "api-server.log"
    simple = {
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
    }
    env = devenv.env(
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__BASE_URL=url,
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{url}/execution/",
        **(auth_env if auth_env is not None else simple),
    )
    airflow_bin = str(Path(sys.executable).with_name("airflow"))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [airflow_bin, "api-server", "--port", str(port), "--host", "127.0.0.1"],
            env=env,
            cwd=str(REPO_ROOT),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ApiServer(url=url, username="admin", password="", log_path=log_path)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"api-server exited with {proc.returncode}:\n{server.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"api-server not healthy after {timeout}s:\n{server.log_tail()}")
            try:
                if httpx.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        if auth_env is None:
            server.password = json.loads(passwords.read_text())["admin"]
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def api_server(devenv, tmp_path_factory) -> Iterator[ApiServer]:
    with airflow_api_server(devenv, tmp_path_factory.mktemp("api-server")) as server:
        yield server


def test_page_needs_auth_and_json_matches_the_database(api_server, db):
    now = datetime.now(UTC).replace(microsecond=0)
    insert_sample_history(db, now)
    at = now.isoformat()
    page = f"{api_server.url}/analytics-health/"
    api = f"{api_server.url}/analytics-health/api/health.json"

    # No credentials / a forged token: refused, and no data leaks.
    for target in (page, api):
        resp = httpx.get(target, timeout=30)
        assert resp.status_code == 401, (target, resp.status_code, resp.text[:300])
        assert "analytics_nightly" not in resp.text
    forged = httpx.get(api, headers={"Authorization": "Bearer not-a-jwt"}, timeout=30)
    assert forged.status_code in (401, 403)

    token = api_server.token()
    auth = {"Authorization": f"Bearer {token}"}

    # The plugin is registered with its nav entry (the UI renders it in an iframe).
    plugins = httpx.get(f"{api_server.url}/api/v2/plugins", headers=auth, timeout=30).json()
    ours = [p for p in plugins["plugins"] if p["name"] == "analytics_health"]
    assert ours, plugins
    views = ours[0]["external_views"]
    assert any(v["url_route"] == "analytics-health" and v["destination"] == "nav" for v in views)
    assert ours[0]["fastapi_apps"][0]["url_prefix"] == "/analytics-health"

    # HTML with a bearer token and with the UI's session cookie.
    html = httpx.get(page, headers=auth, params={"at": at}, timeout=60)
    assert html.status_code == 200, api_server.log_tail()
    assert "text/html" in html.headers["content-type"]
    assert 'data-job="dag:analytics_nightly" data-state="late"' in html.text
    cookie = httpx.get(page, cookies={"_token": token}, params={"at": at}, timeout=60)
    assert cookie.status_code == 200

    resp = httpx.get(api, headers=auth, params={"at": at}, timeout=60)
    assert resp.status_code == 200, api_server.log_tail()
    data = resp.json()
    assert datetime.fromisoformat(data["generated_at"]) == now
    jobs = {j["key"]: j for j in data["jobs"]}
    assert jobs["dag:analytics_nightly"]["state"] == "late"

    day_ago, week_ago = now - timedelta(days=1), now - timedelta(days=7)
    (events_24h,) = db.execute(
        "SELECT count(*) FROM analytics.posthog_events WHERE created_at >= %s AND created_at <= %s",
        (day_ago, now),
    ).fetchone()
    assert data["ingest"]["events_24h"] == events_24h
    (dead,) = db.execute(
        "SELECT count(*) FROM ops.dead_letters WHERE resolved_at IS NULL"
    ).fetchone()
    assert data["ingest"]["dead_letters_waiting"] == dead
    by_sev = dict(
        db.execute(
            "SELECT severity, count(*) FROM ops.alerts WHERE state = 'open' GROUP BY severity"
        ).fetchall()
    )
    assert data["alerts"]["open_by_severity"] == {
        s: by_sev.get(s, 0) for s in ("critical", "warning", "info")
    }
    # Success rates of analytics_hourly: the final attempt of each task decides a run's outcome;
    # a run counts in a window by the start of its first attempt, and runs still in progress
    # are not judged yet.
    for since, rate_key, runs_key in (
        (day_ago, "success_rate_24h", "runs_24h"),
        (week_ago, "success_rate_7d", "runs_7d"),
    ):
        runs, ok = db.execute(
            """
            WITH f AS (SELECT DISTINCT ON (run_id, task_id, map_index) run_id, status, started_at
                         FROM ops.job_runs WHERE dag_id = 'analytics_hourly'
                          AND started_at >= %(week_ago)s AND started_at <= %(now)s
                        ORDER BY run_id, task_id, map_index, try_number DESC),
                 r AS (SELECT run_id, min(started_at) AS started_at,
                              bool_and(status = 'completed') AS ok,
                              bool_or(status = 'running') AS running
                         FROM f GROUP BY run_id)
            SELECT count(*), count(*) FILTER (WHERE ok)
              FROM r WHERE NOT running AND started_at >= %(since)s
            """,
            {"week_ago": week_ago, "now": now, "since": since},
        ).fetchone()
        assert jobs["dag:analytics_hourly"][runs_key] == runs
        assert jobs["dag:analytics_hourly"][rate_key] == round(100.0 * ok / runs, 1)
    inv = db.execute(
        "SELECT count(*) FILTER (WHERE status = 'success'), count(*) FROM"
        " analytics.inventory_refresh_results WHERE run_id = (SELECT run_id FROM"
        " analytics.inventory_refresh_results ORDER BY refreshed_at DESC LIMIT 1)"
    ).fetchone()
    assert data["inventory"]["last_run"]["successful"] == inv[0]
    assert data["inventory"]["last_run"]["total"] == inv[1]

    # Without ?at= the page evaluates at the server's clock; a bad ?at= is a clear 400.
    live = httpx.get(api, headers=auth, timeout=60)
    assert live.status_code == 200
    assert datetime.fromisoformat(live.json()["generated_at"]) >= now
    bad = httpx.get(api, headers=auth, params={"at": "yesterday"}, timeout=30)
    assert bad.status_code == 400 and "ISO 8601" in bad.text
