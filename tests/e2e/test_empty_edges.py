"""Empty is a normal state: zero projects, zero connected clients, an empty week, a quiet hour
and no ledger files are not failures. Each DAG run succeeds under the real ``airflow dags test``
and says what it did."""

from __future__ import annotations

from datetime import date

import pytest

from include.analytics_ops import store
from include.analytics_ops.dates import pt_day_bounds
from include.analytics_ops.operators.github import CLEANUP_TASK, HEALTH_TASK, METRICS_TASK
from include.sandbox.constants import DEMO_DAY
from include.sandbox.generator import load_sample_data

pytestmark = pytest.mark.e2e


def output(result) -> str:
    return result.stdout + result.stderr


def messages(db, dag_id: str) -> dict[str, tuple[str, str | None]]:
    rows = db.execute(
        "SELECT DISTINCT ON (task_id) task_id, status, status_message FROM ops.job_runs"
        " WHERE dag_id = %s ORDER BY task_id, try_number DESC, started_at DESC",
        (dag_id,),
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_nightly_with_zero_active_projects_succeeds_and_says_0_projects(
    db, pg_dsn, sandbox, dag_test, tmp_path
):
    load_sample_data(pg_dsn)
    # The sample's repositories stay, with an issue stored from earlier, but none is active.
    db.execute("UPDATE analytics.projects SET active = false")
    db.execute(
        "INSERT INTO analytics.issues (project_id, number, is_pull_request, state, title,"
        " is_bug, opened_at) SELECT min(project_id), 1, false, 'open', 'old bug', true,"
        " '2026-11-01T00:00:00Z' FROM analytics.projects"
    )
    store.advance_watermark(db, "posthog", pt_day_bounds(DEMO_DAY)[1])
    result = dag_test(
        "analytics_nightly",
        "2026-11-21T10:00:00+00:00",
        env={"ARTIFACTS_DIR": str(tmp_path / "artifacts")},
    )
    assert result.returncode == 0, output(result)[-4000:]
    tasks = messages(db, "analytics_nightly")
    assert {t: s for t, (s, _) in tasks.items()} == dict.fromkeys(tasks, "completed")
    assert tasks["sync_github"][1] == "0 synced, 0 not modified, 0 failed out of 0 projects"
    assert tasks[METRICS_TASK][1] == f"metrics for 0 projects on {DEMO_DAY}"
    assert tasks[HEALTH_TASK][1].startswith("0 projects")
    assert tasks[CLEANUP_TASK][0] == "completed"
    assert "0 projects" in output(result)
    assert db.execute("SELECT count(*) FROM analytics.project_health").fetchone()[0] == 0
    assert (
        db.execute("SELECT count(*) FROM ops.alerts WHERE severity = 'critical'").fetchone()[0] == 0
    )


def test_inventory_refresh_with_zero_connected_clients_succeeds(db, sandbox, dag_test):
    result = dag_test("inventory_refresh", "2026-11-20T10:00:00+00:00")
    assert result.returncode == 0, output(result)[-4000:]
    text = output(result)
    assert "No active clients found" in text
    assert "Results: 0 successful, 0 failed out of 0 total jobs" in text
    assert sandbox.calls("inventory") == []
    tasks = messages(db, "inventory_refresh")
    assert tasks["summarize_refresh"][0] == "completed"
    assert db.execute("SELECT count(*) FROM ops.alerts").fetchone()[0] == 0


def test_weekly_on_an_empty_week_succeeds_and_says_what_it_did(db, dag_test, tmp_path):
    artifacts = tmp_path / "artifacts"
    result = dag_test(
        "analytics_weekly",
        "2026-11-23T12:00:00+00:00",
        env={"ARTIFACTS_DIR": str(artifacts), "REPORT_EMAILS": ""},
    )
    assert result.returncode == 0, output(result)[-4000:]
    tasks = messages(db, "analytics_weekly")
    assert {t: s for t, (s, _) in tasks.items()} == dict.fromkeys(tasks, "completed"), tasks
    assert len(tasks) == 5
    csv_path = artifacts / "exports" / "metrics-weekly-20261123.csv"
    assert csv_path.is_file()
    _header, *days = csv_path.read_text().splitlines()
    assert len(days) == 7 and all(set(d.split(",", 1)[1]) <= {","} for d in days)  # no data
    assert "7 days, 0 with data" in tasks["export_metrics_csv"][1]
    assert "0 projects" in tasks["check_project_health"][1]
    assert date(2026, 11, 22).isoformat() in output(result)


def test_hourly_on_an_empty_window_succeeds_and_says_so(db, sandbox, dag_test):
    # Nothing is visible in PostHog yet for this hour: a quiet hour, not a failure.
    sandbox.set_faults(posthog_now="2026-11-01T00:00:00Z")
    try:
        result = dag_test("analytics_hourly", "2026-11-20T11:00:00+00:00")
    finally:
        sandbox.set_faults(posthog_now=None)
    assert result.returncode == 0, output(result)[-4000:]
    row = db.execute(
        "SELECT status, records_in, records_out, status_message FROM ops.job_runs"
        " WHERE dag_id = 'analytics_hourly' AND task_id = 'ingest_events'"
        " ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert row[:3] == ("completed", 0, 0), row
    assert row[3] == "0 fetched = 0 loaded (0 new) + 0 dead-lettered", row
    assert db.execute("SELECT count(*) FROM analytics.posthog_events").fetchone()[0] == 0
    tasks = messages(db, "analytics_hourly")
    assert tasks["update_rollups"][0] == "completed", tasks


def test_cron_ledger_with_no_ledger_files_succeeds_and_says_so(db, dag_test, tmp_path):
    env = {"LEDGER_PATHS": str(tmp_path / "*.jsonl"), "HEALTH_RUN_SOURCE": "job_runs"}
    result = dag_test("cron_ledger", env=env)
    assert result.returncode == 0, output(result)[-4000:]
    tasks = messages(db, "cron_ledger")
    assert tasks["collect_ledger"] == ("completed", "0 new entries from 0 files"), tasks
    assert tasks["evaluate_job_health"][0] == "completed"
    assert db.execute("SELECT count(*) FROM ops.ledger_entries").fetchone()[0] == 0
