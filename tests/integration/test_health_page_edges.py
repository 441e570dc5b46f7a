"""Health page edges: every monitored DAG is listed from the first minute (never ran / paused /
import error), bad ``?at=`` values are a 400 with the reason, stored links are never
``javascript:``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from include.analytics_ops import alerts
from include.analytics_ops.health_page.app import create_app
from include.analytics_ops.health_page.queries import collect_health, registry_dag_ids
from include.analytics_ops.health_page.render import render_page
from include.analytics_ops.monitoring.jobs import DAG_JOBS

NOW = datetime(2026, 11, 20, 18, 37, 12, tzinfo=UTC)


def test_a_fresh_install_lists_every_registry_dag_as_never_ran(db, pg_dsn):
    client = TestClient(create_app(pg_dsn, auth_dependency=None))
    data = client.get("/api/health.json", params={"at": NOW.isoformat()}).json()
    jobs = {j["key"]: j for j in data["jobs"]}
    assert sorted(jobs) == sorted(f"dag:{j.name}" for j in DAG_JOBS)
    assert {j["state"] for j in jobs.values()} == {"never_ran"}
    assert data["overall"]["status"] == "warning"  # not green: nothing has run yet
    assert "analytics_weekly never ran" in [p["text"] for p in data["overall"]["problems"]]
    html = client.get("/", params={"at": NOW.isoformat()}).text
    assert 'data-job="dag:analytics_weekly" data-state="never_ran"' in html
    assert "never ran" in html


def test_paused_and_import_errors_from_airflow_are_shown(db, pg_dsn):
    states = {
        "analytics_weekly": {"paused": True, "import_error": None},
        "inventory_refresh": {
            "paused": False,
            "import_error": "Traceback ...\n  File dags/inventory_refresh.py\n"
            "ModuleNotFoundError: No module named '<b>nope</b>'",
        },
    }
    seen: list[list[str]] = []

    def dag_states(ids):
        seen.append(list(ids))
        return states

    client = TestClient(create_app(pg_dsn, auth_dependency=None, dag_states=dag_states))
    data = client.get("/api/health.json", params={"at": NOW.isoformat()}).json()
    assert seen == [registry_dag_ids()]
    jobs = {j["key"]: j for j in data["jobs"]}
    assert jobs["dag:analytics_weekly"]["state"] == "paused"
    broken = jobs["dag:inventory_refresh"]
    assert broken["state"] == "import_error"
    assert broken["state_reason"].endswith("No module named '<b>nope</b>'")
    assert data["jobs"][0]["key"] == "dag:inventory_refresh"  # worst first
    assert data["overall"]["status"] == "critical"
    html = client.get("/", params={"at": NOW.isoformat()}).text
    assert "<b>nope</b>" not in html and "&lt;b&gt;nope&lt;/b&gt;" in html


def test_collect_health_without_a_registry_still_lists_only_recorded_dags(db):
    assert collect_health(db, now=NOW)["jobs"] == []


@pytest.mark.parametrize(
    "at",
    [
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59-12:00",
        "0001-01-01T00:00:00+14:00",
        "1969-12-31T00:00:00Z",
        "not a date",
        "2026-11-20T18:37:12Z\x00",
        "2026-11-20T18:37:12Z" + "0" * 100,
        "2026-02-30T00:00:00",
    ],
)
def test_a_bad_at_is_a_400_with_the_reason(db, pg_dsn, at):
    client = TestClient(create_app(pg_dsn, auth_dependency=None), raise_server_exceptions=False)
    for path in ("/api/health.json", "/"):
        resp = client.get(path, params={"at": at})
        assert resp.status_code == 400, (path, at, resp.status_code, resp.text[:300])
        assert "'at' must" in resp.json()["detail"]


def test_a_stored_javascript_url_is_never_a_link(db):
    alerts.raise_alert(
        db, "x:1", "critical", "test", "click me", url="javascript:alert(document.cookie)",
        notify=False,
    )  # fmt: skip
    alerts.raise_alert(
        db, "x:2", "warning", "test", "fine link", url="https://airflow.example/dags/x",
        notify=False,
    )  # fmt: skip
    html = render_page(collect_health(db, now=datetime.now(UTC)))
    assert "javascript:" not in html
    assert 'href="https://airflow.example/dags/x"' in html
