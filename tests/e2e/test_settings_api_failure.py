"""A Variable the API server fails to answer is an error in the task, not an unset setting.

Under the real services (``airflow standalone``, LocalExecutor) the workers reach the execution
API through a loopback HTTP relay that forwards every request to the api-server except Variable
reads, which it answers ``503`` as a failing api-server would. ``Variable.get`` takes that for
"not set" (task-sdk 1.3.2's ``ExecutionAPISecretsBackend``) and the task would carry on with the
defaults; the settings mechanism fails the task naming the setting. Run alone with
``make test-scheduler`` (``-m scheduler``)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.e2e.airflow_services import Standalone, wait_for
from tests.e2e.test_settings_in_tasks import PROBE_DIR

pytestmark = [pytest.mark.e2e, pytest.mark.scheduler]


class Relay(ThreadingHTTPServer):
    """Forwards to ``target``; ``GET /execution/variables/...`` is answered 503."""

    def __init__(self, target: str) -> None:
        self.refused: list[str] = []
        self.client = httpx.Client(base_url=target, timeout=60)
        super().__init__(("127.0.0.1", 0), _Forward)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    server: Relay

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.command == "GET" and self.path.startswith("/execution/variables/"):
            self.server.refused.append(self.path)
            status, headers, content = 503, {"Content-Type": "application/json"}, b"{}"
        else:
            skip = {"host", "content-length", "connection"}
            sent = {k: v for k, v in self.headers.items() if k.lower() not in skip}
            resp = self.server.client.request(self.command, self.path, headers=sent, content=body)
            status, content = resp.status_code, resp.content
            drop = {"content-length", "transfer-encoding", "connection", "content-encoding"}
            headers = {k: v for k, v in resp.headers.items() if k.lower() not in drop}
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _relay

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def services(devenv, tmp_path):
    env = devenv.env(
        AIRFLOW_HOME=str(tmp_path / "home"),
        AIRFLOW__CORE__DAGS_FOLDER=PROBE_DIR,
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__WORKERS__EXECUTION_API_RETRIES="1",  # the first 503 is the answer
        SETTINGS_PROBE_OUT=str(tmp_path / "seen.json"),
    )
    standalone = Standalone(env, tmp_path / "standalone.log")
    relay = Relay(standalone.base_url)
    threading.Thread(target=relay.serve_forever, daemon=True).start()
    standalone.env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"{relay.url}/execution/"
    try:
        yield standalone.start(timeout=180), relay, tmp_path
    finally:
        standalone.stop()
        relay.shutdown()
        relay.server_close()


def test_a_failing_api_server_fails_the_task_naming_the_setting(services):
    standalone, relay, tmp_path = services
    standalone.wait_for_dag("settings_probe")
    # The session's metadata DB may already know the probe from test_settings_in_tasks (created
    # paused there): unpause it explicitly, whatever ran before.
    resp = standalone.api("PATCH", "/dags/settings_probe", json={"is_paused": False})
    assert resp.status_code == 200 and resp.json()["is_paused"] is False, resp.text
    resp = standalone.api("POST", "/dags/settings_probe/dagRuns", json={"logical_date": None})
    assert resp.status_code in (200, 201), resp.text
    run_id = resp.json()["dag_run_id"]
    path = f"/dags/settings_probe/dagRuns/{run_id}/taskInstances/read_settings"

    def finished() -> str | None:
        state = standalone.api("GET", path).json().get("state")
        return state if state in ("success", "failed") else None

    state = wait_for("read_settings to finish", finished, timeout=240, context=standalone.tail)
    logs = "\n".join(p.read_text(errors="replace") for p in Path(tmp_path, "home").rglob("*.log"))
    assert relay.refused, "no Variable was asked of the API server"
    assert state == "failed" and not (tmp_path / "seen.json").exists(), logs[-4000:]
    assert "setting POSTHOG_SETTLE_MINUTES: ExecutionAPISecretsBackend failed" in logs, logs[-4000:]
