"""Project metrics, health scores, bug-risk snapshots and alerts on real Postgres, checked against
hand-computed fixtures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from include.analytics_ops.github.health import score_project_health
from include.analytics_ops.github.metrics import compute_project_metrics
from include.analytics_ops.github.risk import (
    KEY_BREACH,
    KEY_REVENUE,
    KEY_UNASSIGNED,
    RiskConfig,
    apply_bug_risk_alerts,
    compute_bug_risk,
)

DAY = date(2026, 11, 20)
END = datetime(2026, 11, 21, 8, tzinfo=UTC)  # end of PT day 2026-11-20 (PST)
HOUR = datetime(2026, 11, 21, 12, tzinfo=UTC)


def ago(hours: float, base: datetime = END) -> datetime:
    return base - timedelta(hours=hours)


def add_issue(conn, project_id, number, *, opened, closed=None, sev=None, bug=True, pr=False,
              revenue=0, assignee="dev", merged=None, title=None):  # fmt: skip
    conn.execute(
        """INSERT INTO analytics.issues (project_id, number, is_pull_request, state, title,
               severity, is_bug, revenue_impact_per_day, assignee, opened_at, closed_at, merged_at,
               updated_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (project_id, number) DO UPDATE SET state = EXCLUDED.state,
               closed_at = EXCLUDED.closed_at, assignee = EXCLUDED.assignee,
               revenue_impact_per_day = EXCLUDED.revenue_impact_per_day""",
        (project_id, number, pr, "closed" if closed else "open", title or f"issue {number}",
         sev, bug and not pr, revenue, assignee, opened, closed, merged, closed or opened),
    )  # fmt: skip


@pytest.fixture
def fixture_db(db):
    """Project 1 'acme/alpha' (troubled), 2 'acme/beta' (clean), 3 'acme/old' (inactive)."""
    for repo, active in (("acme/alpha", True), ("acme/beta", True), ("acme/old", False)):
        db.execute(
            "INSERT INTO analytics.projects (repo, name, active) VALUES (%s, %s, %s)",
            (repo, repo, active),
        )
    # alpha: open critical unassigned 30 h ($6000), open critical assigned 10 h ($1000),
    # open high 80 h, open medium x3, open low, bug closed today, PR merged today
    add_issue(db, 1, 1, opened=ago(30), sev="critical", revenue=6000, assignee=None)
    add_issue(db, 1, 2, opened=ago(10), sev="critical", revenue=1000)
    add_issue(db, 1, 3, opened=ago(80), sev="high")
    for n in (4, 5, 6):
        add_issue(db, 1, n, opened=ago(24 * 3), sev="medium")
    add_issue(db, 1, 7, opened=ago(24 * 3), sev="low")
    add_issue(db, 1, 8, opened=ago(50), closed=ago(5), sev="high")
    add_issue(db, 1, 9, opened=ago(20), closed=ago(2), merged=ago(2), pr=True, bug=False)
    # beta: one bug closed 3 days ago, nothing open
    add_issue(db, 2, 1, opened=ago(24 * 5), closed=ago(24 * 3), sev="low")
    # inactive project: would add a lot of risk if it were counted
    add_issue(db, 3, 1, opened=ago(24 * 100), sev="critical", revenue=50000, assignee=None)
    return db


def test_metrics_and_health_scores_against_hand_computed_values(fixture_db):
    out = compute_project_metrics(fixture_db, DAY, run_id="r1")
    assert sorted(out) == [1, 2]  # the inactive project is not scored
    a = out[1]
    assert (a["open_critical"], a["open_high"], a["open_medium"], a["open_low"]) == (2, 1, 3, 1)
    assert (a["bugs_opened"], a["bugs_closed"], a["prs_opened"], a["prs_merged"]) == (1, 1, 1, 1)
    assert a["velocity_7d"] == 1 and a["revenue_at_risk"] == 7000
    assert a["sla_breaches_by_severity"] == {"critical": 1, "high": 1, "medium": 0, "low": 0}
    health = score_project_health(fixture_db, DAY)
    # alpha: 100 - 30 (2 critical) - 5 (1 high) - 3 (3 medium) - 10 (2 SLA) - 14 ($7000) = 38
    assert (health[1].score, health[1].status) == (38, "critical")
    # beta: nothing open -> 100
    assert (health[2].score, health[2].status) == (100, "healthy")
    rows = fixture_db.execute(
        "SELECT project_id, score, status, (metrics->>'revenue_at_risk')::numeric"
        " FROM analytics.project_health WHERE health_date = %s ORDER BY project_id",
        (DAY,),
    ).fetchall()
    assert rows == [(1, 38, "critical", 7000), (2, 100, "healthy", 0)]
    # idempotent: a re-run leaves the same rows
    compute_project_metrics(fixture_db, DAY, run_id="r2")
    score_project_health(fixture_db, DAY)
    assert fixture_db.execute(
        "SELECT count(*) FROM analytics.project_health WHERE health_date = %s", (DAY,)
    ).fetchone() == (2,)
    assert fixture_db.execute(
        "SELECT count(*), min(run_id) FROM analytics.project_daily_metrics"
    ).fetchone() == (2, "r2")


def test_health_needs_metrics_first(fixture_db):
    with pytest.raises(LookupError, match="compute_project_metrics"):
        score_project_health(fixture_db, DAY)


def open_alerts(conn) -> dict[str, int]:
    rows = conn.execute(
        "SELECT dedup_key, count FROM ops.alerts WHERE state = 'open' AND source = 'bug_risk'"
    ).fetchall()
    return dict(rows)


def transitions(result) -> dict[str, str]:
    return {t["dedup_key"]: t["transition"] for t in result["transitions"]}


def test_risk_snapshot_against_hand_computed_values(fixture_db):
    risk = compute_bug_risk(fixture_db, HOUR, run_id="h1")
    # at END + 4 h: alpha's open bugs; beta none; inactive project excluded
    assert risk["revenue_at_risk"] == 7000
    assert risk["open_bugs"] == 7
    assert risk["velocity_7d"] == 2  # alpha #8 (9 h before HOUR) + beta #1 (76 h before)
    # critical #1 is 34 h old (> 24 h); high #3 84 h (> 72 h); #2 14 h; mediums 76 h (< 168)
    assert risk["sla_breaches_by_severity"] == {"critical": 1, "high": 1, "medium": 0, "low": 0}
    row = fixture_db.execute(
        "SELECT revenue_at_risk, unassigned_critical, critical_in_breach, sla_breaches,"
        " velocity_7d FROM analytics.bug_risk_snapshots WHERE snapshot_hour = %s",
        (HOUR,),
    ).fetchone()
    assert row == (7000, 1, 1, 2, 2)
    compute_bug_risk(fixture_db, HOUR, run_id="h1-again")
    assert fixture_db.execute("SELECT count(*) FROM analytics.bug_risk_snapshots").fetchone() == (
        1,
    )


def test_alerts_fire_once_repeat_silently_and_resolve(fixture_db):
    config = RiskConfig()  # threshold $10k/day
    # make revenue at risk exceed $10k: alpha #2 now carries $5000/day (6000 + 5000)
    add_issue(fixture_db, 1, 2, opened=ago(10), sev="critical", revenue=5000)
    compute_bug_risk(fixture_db, HOUR, config=config)
    first = apply_bug_risk_alerts(fixture_db, HOUR, config=config, dag_id="d", run_id="r")
    unassigned = f"{KEY_UNASSIGNED}acme/alpha#1"
    breach = f"{KEY_BREACH}acme/alpha#1"
    assert transitions(first) == {unassigned: "opened", breach: "opened", KEY_REVENUE: "opened"}

    # next hour, nothing changed: the same three keys come back as 'repeated' (not re-sent)
    nxt = HOUR + timedelta(hours=1)
    compute_bug_risk(fixture_db, nxt, config=config)
    second = apply_bug_risk_alerts(fixture_db, nxt, config=config)
    assert transitions(second) == {
        unassigned: "repeated",
        breach: "repeated",
        KEY_REVENUE: "repeated",
    }
    assert open_alerts(fixture_db) == {unassigned: 2, breach: 2, KEY_REVENUE: 2}
    assert fixture_db.execute(
        "SELECT count(*) FROM ops.alert_events WHERE kind = 'opened'"
    ).fetchone() == (3,)

    # the bug gets an assignee and the $5000 bug is closed: unassigned + revenue clear
    add_issue(fixture_db, 1, 1, opened=ago(30), sev="critical", revenue=6000, assignee="erin")
    add_issue(fixture_db, 1, 2, opened=ago(10), closed=nxt, sev="critical", revenue=5000)
    third_hour = nxt + timedelta(hours=1)
    compute_bug_risk(fixture_db, third_hour, config=config)
    third = apply_bug_risk_alerts(fixture_db, third_hour, config=config)
    assert transitions(third) == {
        unassigned: "resolved",
        breach: "repeated",
        KEY_REVENUE: "resolved",
    }
    assert open_alerts(fixture_db) == {breach: 3}

    # the critical bug is closed: the SLA alert resolves too
    add_issue(fixture_db, 1, 1, opened=ago(30), closed=third_hour, sev="critical", revenue=6000)
    fourth_hour = third_hour + timedelta(hours=1)
    compute_bug_risk(fixture_db, fourth_hour, config=config)
    fourth = apply_bug_risk_alerts(fixture_db, fourth_hour, config=config)
    assert transitions(fourth) == {breach: "resolved"}
    assert open_alerts(fixture_db) == {}
    stored = fixture_db.execute(
        "SELECT alerts FROM analytics.bug_risk_snapshots WHERE snapshot_hour = %s",
        (fourth_hour,),
    ).fetchone()[0]
    assert stored == [{"dedup_key": breach, "transition": "resolved"}]


def test_rerunning_an_older_hour_does_not_flip_alerts(fixture_db):
    compute_bug_risk(fixture_db, HOUR)
    apply_bug_risk_alerts(fixture_db, HOUR)
    later = HOUR + timedelta(hours=1)
    # the unassigned critical bug was closed half an hour after HOUR
    closed = HOUR + timedelta(minutes=30)
    add_issue(fixture_db, 1, 1, opened=ago(30), closed=closed, sev="critical", assignee=None)
    compute_bug_risk(fixture_db, later)
    apply_bug_risk_alerts(fixture_db, later)
    assert f"{KEY_UNASSIGNED}acme/alpha#1" not in open_alerts(fixture_db)
    # a clear/backfill of the older hour recomputes its snapshot (the bug was open then) but
    # must not re-open alerts
    assert compute_bug_risk(fixture_db, HOUR)["unassigned_critical"]
    result = apply_bug_risk_alerts(fixture_db, HOUR)
    assert result["skipped"] and "newer snapshot" in result["skipped"]
    assert f"{KEY_UNASSIGNED}acme/alpha#1" not in open_alerts(fixture_db)
    # the optional lag guard
    lagged = apply_bug_risk_alerts(
        fixture_db,
        later,
        config=RiskConfig(alert_max_lag_hours=6),
        now=later + timedelta(hours=7),
    )
    assert lagged["skipped"] and lagged["transitions"] == []
