"""Airflow's API as a source of run history when it answers badly (issue 15): a non-JSON 200,
a token answer without ``access_token`` or runs of the wrong shape fall back to ``ops.job_runs``
exactly like an unreachable API; and the API URL takes its scheme from the connection."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from include.analytics_ops.monitoring.evaluate import evaluate_all
from include.analytics_ops.monitoring.sources import AirflowApiSource
from include.analytics_ops.monitoring.store import job_states
from tests.integration.test_alerts_job_health import HOURLY, NOW, record_run

TOKEN_OK = (200, "application/json", json.dumps({"access_token": "t"}))
ANSWERS = {
    "html-login-page": {"/auth/token": (200, "text/html", "<html>Please log in</html>")},
    "no-access-token": {"/auth/token": (201, "application/json", '{"token_type": "bearer"}')},
    "token-is-a-list": {"/auth/token": (200, "application/json", '["t"]')},
    "runs-not-json": {"/auth/token": TOKEN_OK, "/api": (200, "text/plain", "dag_runs: ...")},
    "runs-wrong-shape": {
        "/auth/token": TOKEN_OK,
        "/api": (200, "application/json", '{"dag_runs": [{"run_after": "yesterday"}]}'),
    },
}


@pytest.fixture
def bad_api(request) -> Iterator[str]:
    answers = ANSWERS[request.param]

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            key = next(k for k in answers if self.path.startswith(k))
            status, kind, body = answers[key]
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.end_headers()
            self.wfile.write(body.encode())

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("bad_api", list(ANSWERS), indirect=True)
def test_a_bad_answer_from_airflows_api_falls_back_to_job_runs(db, bad_api):
    record_run(db, "analytics_hourly", "scheduled__2026-11-20T10:00:00+00:00", "completed",
               window_end=datetime(2026, 11, 20, 11, tzinfo=UTC))  # fmt: skip
    source = AirflowApiSource(bad_api, username="admin", password="pw", timeout=5)
    result = evaluate_all(db, NOW, source=source, dag_jobs=HOURLY,
                          check_artifacts=False, channels=[])  # fmt: skip
    assert result.fallback_reason and "Airflow API" in result.fallback_reason
    row = next(r for r in job_states(db) if r["job_key"] == "dag:analytics_hourly")
    assert row["state"] == "up" and row["source"].startswith("ops.job_runs (fallback:")


@pytest.mark.parametrize(
    ("conn", "base"),
    [
        ({"conn_type": "http", "host": "airflow.example.com", "schema": "https"},
         "https://airflow.example.com"),
        ({"conn_type": "http", "host": "https://airflow.example.com:8443/"},
         "https://airflow.example.com:8443"),
        ({"conn_type": "generic", "host": "airflow.example.com", "port": 8443},
         "https://airflow.example.com:8443"),
        ("https://admin:p%40ss@airflow.example.com:8443", "https://airflow.example.com:8443"),
        ({"conn_type": "http", "host": "127.0.0.1", "port": 8080}, "http://127.0.0.1:8080"),
    ],
    ids=["schema-field", "host-with-scheme", "no-scheme-said", "uri", "http-said"],
)  # fmt: skip
def test_the_api_url_takes_its_scheme_from_the_connection(monkeypatch, conn, base):
    value = conn if isinstance(conn, str) else json.dumps(conn)
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", value)
    source = AirflowApiSource.from_settings()
    assert source.base_url == base
    if isinstance(conn, str):
        assert (source.username, source.password) == ("admin", "p@ss")
