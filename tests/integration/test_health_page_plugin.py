"""The plugin module stays cheap to import, and the app serves the same data as collect_health.

(Authentication is covered end to end against a real API server in tests/e2e/test_health_page.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from include.analytics_ops.health_page.app import create_app, to_json
from include.analytics_ops.health_page.queries import collect_health, registry_dag_ids
from include.sandbox.samples.health import insert_sample_history

REPO_ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 20, 18, 37, 12, tzinfo=UTC)

PROBE = """
import json, sys
import airflow.plugins_manager  # loaded in every Airflow process anyway
before = set(sys.modules)
sys.path.insert(0, "plugins")
import analytics_health
plugin = analytics_health.AnalyticsHealthPlugin
print(json.dumps({
    "new": sorted(set(sys.modules) - before),
    "fastapi_apps": [{k: (v if k != "app" else repr(v)) for k, v in d.items()}
                     for d in plugin.fastapi_apps],
    "external_views": plugin.external_views,
}))
"""


def test_plugin_import_is_cheap_and_declares_the_page(devenv):
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=devenv.env(),
        cwd=str(REPO_ROOT),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    heavy = [
        m
        for m in info["new"]
        if m.split(".")[0] in ("psycopg", "pandas", "numpy", "httpx")
        or m.startswith("airflow.api_fastapi")
        or m == "include.analytics_ops.health_page.app"
    ]
    assert heavy == [], heavy
    assert info["fastapi_apps"] == [
        {
            "app": "<DeferredApp analytics-health (not built yet)>",
            "url_prefix": "/analytics-health",
            "name": "Analytics health",
        }
    ]
    (view,) = info["external_views"]
    assert view["href"] == "/analytics-health/"
    assert view["url_route"] == "analytics-health"
    assert view["destination"] == "nav"


def test_json_endpoint_serves_collect_health(db, pg_dsn):
    insert_sample_history(db, NOW)
    client = TestClient(create_app(pg_dsn, auth_dependency=None))
    resp = client.get("/api/health.json", params={"at": NOW.isoformat()})
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "no-store"
    expected = collect_health(db, now=NOW, expected_dags=registry_dag_ids())
    assert resp.json() == json.loads(to_json(expected))

    page = client.get("/", params={"at": "2026-11-20T18:37:12Z"})
    assert page.status_code == 200
    assert 'data-job="dag:analytics_nightly" data-state="late"' in page.text

    bad = client.get("/api/health.json", params={"at": "not-a-date"})
    assert bad.status_code == 400


def test_database_down_is_a_503_not_a_hang(pg_dsn):
    client = TestClient(create_app("postgresql://nobody@127.0.0.1:1/nowhere", auth_dependency=None))
    resp = client.get("/api/health.json")
    assert resp.status_code == 503
    assert "analytics_db unavailable" in resp.json()["detail"]
