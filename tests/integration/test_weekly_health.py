"""Project health check: statuses with reasons from project_health or computed from issues;
warning/critical raise alerts, healthy resolves them."""

from __future__ import annotations

from datetime import date

from include.analytics_ops.reports import health
from include.sandbox.samples import weekly as sample

AS_OF = date(2026, 11, 22)


def _open_alerts(db):
    return dict(
        db.execute(
            "SELECT dedup_key, severity FROM ops.alerts"
            " WHERE source = 'project_health' AND state = 'open'"
        ).fetchall()
    )


def test_statuses_alerts_and_recovery(db):
    sample.load_weekly_sample(db, AS_OF, job_runs=False)
    result = health.check_project_health(db, AS_OF, dag_id="analytics_weekly")
    by_repo = {s.repo: s for s in result.statuses}
    assert "acme/legacy-admin" not in by_repo  # inactive
    # from the nightly scorer's rows
    assert (by_repo["acme/data-pipeline"].status, by_repo["acme/data-pipeline"].source) == (
        "healthy",
        "project_health",
    )
    assert by_repo["acme/mobile-app"].status == "warning"
    assert by_repo["acme/mobile-app"].reasons == ["1 high-severity crash open 5 days"]
    # computed from open issues (no project_health row)
    checkout = by_repo["acme/checkout"]
    assert checkout.source == "computed" and checkout.status == "critical"
    assert "1 unassigned critical bug(s)" in checkout.reasons
    assert any("critical bug(s) open > 7 days" in r for r in by_repo["acme/storefront"].reasons)
    assert _open_alerts(db) == {
        "project_health:acme/checkout": "critical",
        "project_health:acme/storefront": "critical",
        "project_health:acme/mobile-app": "warning",
    }

    # checkout's critical bug is assigned and fixed → healthy next week → its alert resolves
    db.execute(
        "UPDATE analytics.issues SET state = 'closed', closed_at = '2026-11-20T00:00:00Z'"
        " WHERE number IN (101, 102)"
    )
    again = health.check_project_health(db, AS_OF)
    assert {s.repo: s.status for s in again.statuses}["acme/checkout"] == "healthy"
    assert again.alerts_resolved == ["project_health:acme/checkout"]
    assert "project_health:acme/checkout" not in _open_alerts(db)
    assert (
        db.execute(
            "SELECT count(*) FROM ops.alerts WHERE dedup_key = 'project_health:acme/storefront'"
        ).fetchone()[0]
        == 1
    )  # repeated, not duplicated


def test_no_issues_and_no_scores_means_healthy(db):
    db.execute("INSERT INTO analytics.projects (repo, name) VALUES ('acme/quiet', 'Quiet')")
    (status,) = health.project_statuses(db, AS_OF)
    assert (status.status, status.source, status.score) == ("healthy", "computed", 100)
