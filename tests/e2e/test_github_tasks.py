"""``airflow dags test`` of the GitHub branch + bug-risk group (through their factories, in the
probe DAG ``github_probe``) against the sandbox GitHub and real Postgres."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from include.sandbox.constants import SAMPLE_REPOS
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.e2e
PROBE_DIR = str(REPO_ROOT / "tests" / "e2e" / "probe_dags_github")
WHEN = "2026-11-21T10:00:00+00:00"  # 02:00 PST Nov 21 -> business date Nov 20
BUSINESS_DATE = date(2026, 11, 20)
HOUR = datetime(2026, 11, 21, 10, tzinfo=UTC)
TASKS = (
    "sync_github",
    "compute_project_metrics",
    "score_project_health",
    "cleanup_old_logs",
    "bug_risk.compute_bug_risk",
    "bug_risk.raise_bug_risk_alerts",
)


@pytest.fixture
def projects(db):
    for repo, name, active in SAMPLE_REPOS:
        db.execute(
            "INSERT INTO analytics.projects (repo, name, active) VALUES (%s, %s, %s)",
            (repo, name, active),
        )
    # an event older than the 30-day retention and a recent one
    db.execute(
        "INSERT INTO ops.job_events (event_type, message, occurred_at) VALUES"
        " ('old', 'old', '2026-09-01T00:00:00Z'), ('recent', 'recent', '2026-11-20T00:00:00Z')"
    )
    return db


def statuses(conn) -> dict[str, str]:
    rows = conn.execute(
        "SELECT DISTINCT ON (task_id) task_id, status FROM ops.job_runs"
        " WHERE dag_id = 'github_probe' ORDER BY task_id, try_number DESC"
    ).fetchall()
    return dict(rows)


def test_branch_and_bug_risk_group_run_green(projects, sandbox, dag_test):
    result = dag_test("github_probe", WHEN, env={"AIRFLOW__CORE__DAGS_FOLDER": PROBE_DIR})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert statuses(projects) == dict.fromkeys(TASKS, "completed")
    health = projects.execute(
        "SELECT p.repo, h.status FROM analytics.project_health h JOIN analytics.projects p"
        " USING (project_id) WHERE h.health_date = %s ORDER BY p.repo",
        (BUSINESS_DATE,),
    ).fetchall()
    assert [r[0] for r in health] == sorted(r for r, _, a in SAMPLE_REPOS if a)
    assert dict(health)["acme/storefront"] in ("warning", "critical")
    snap = projects.execute(
        "SELECT revenue_at_risk, unassigned_critical FROM analytics.bug_risk_snapshots"
        " WHERE snapshot_hour = %s",
        (HOUR,),
    ).fetchone()
    assert snap[0] > 10_000 and snap[1] == 2
    keys = {
        r[0]
        for r in projects.execute(
            "SELECT dedup_key FROM ops.alerts WHERE source = 'bug_risk' AND state = 'open'"
        ).fetchall()
    }
    assert "bug_risk:revenue_at_risk" in keys
    assert sum(k.startswith("bug_risk:unassigned_critical:") for k in keys) == 2
    remaining = [r[0] for r in projects.execute("SELECT event_type FROM ops.job_events")]
    assert "old" not in remaining and "recent" in remaining
    assert "ghp_sandbox_token" not in output


def test_a_failing_repo_makes_the_run_fail_after_the_others_synced(projects, sandbox, dag_test):
    projects.execute("INSERT INTO analytics.projects (repo, name) VALUES ('acme/ghost', 'Ghost')")
    result = dag_test("github_probe", WHEN, env={"AIRFLOW__CORE__DAGS_FOLDER": PROBE_DIR})
    assert result.returncode != 0
    got = statuses(projects)
    assert got["sync_github"] == "partial"
    assert got["compute_project_metrics"] == got["score_project_health"] == "completed"
    assert got["cleanup_old_logs"] == "failed"
    # One alert for one problem: the failing sync alerts; the branch check only turns the run red.
    failure_alerts = [
        r[0]
        for r in projects.execute(
            "SELECT dedup_key FROM ops.alerts WHERE source = 'task_failure' ORDER BY dedup_key"
        )
    ]
    assert failure_alerts == ["task_failed:github_probe:sync_github"]
    # 404 is permanent: one attempt only, no retries
    assert projects.execute(
        "SELECT count(*) FROM ops.job_runs WHERE task_id = 'sync_github'"
    ).fetchone() == (1,)
    rows = dict(
        projects.execute(
            "SELECT p.repo, h.reasons::text FROM analytics.project_health h"
            " JOIN analytics.projects p USING (project_id) WHERE h.health_date = %s",
            (BUSINESS_DATE,),
        ).fetchall()
    )
    assert len(rows) == 5 and "sync failed" in rows["acme/ghost"]
    assert projects.execute(
        "SELECT count(DISTINCT project_id) FROM analytics.issues"
    ).fetchone() == (4,)
