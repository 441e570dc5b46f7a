"""Pure logic of the GitHub sync, project metrics, health score and bug risk, checked against
hand-computed fixtures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from include.analytics_ops.github import DEFAULT_SLA_HOURS, parse_sla_hours
from include.analytics_ops.github.client import base_url_from_connection_fields, next_link
from include.analytics_ops.github.health import HealthThresholds, health_score
from include.analytics_ops.github.metrics import Item, day_metrics
from include.analytics_ops.github.risk import RiskConfig, assess
from include.analytics_ops.github.sync import LabelConvention, parse_dollars, parse_issue


# --------------------------------------------------------------------------- labels
def test_default_label_convention_reads_bug_severity_and_revenue():
    conv = LabelConvention()
    assert conv.classify(["bug", "severity:critical", "revenue:2500", "android"]) == (
        True,
        "critical",
        Decimal("2500.00"),
    )
    # most severe and largest revenue win; case is ignored; non-bug keeps its severity label
    assert conv.classify(["Severity:Low", "SEVERITY:high", "revenue:$1,200", "revenue:1.5k"]) == (
        False,
        "high",
        Decimal("1500.00"),
    )
    assert conv.classify(["bug", "severity:urgent", "revenue:lots"]) == (True, None, Decimal(0))


def test_label_convention_is_configuration(monkeypatch):
    monkeypatch.setenv("GITHUB_BUG_LABELS", "defect, regression")
    monkeypatch.setenv("GITHUB_SEVERITY_LABEL_PREFIX", "sev/")
    monkeypatch.setenv("GITHUB_REVENUE_LABEL_PREFIX", "impact/")
    monkeypatch.setenv("GITHUB_SEVERITY_ALIASES", "P0=critical,P2=medium")
    conv = LabelConvention.from_settings()
    assert conv.classify(["regression", "sev/high", "impact/700"]) == (
        True,
        "high",
        Decimal("700.00"),
    )
    assert conv.classify(["defect", "p0"]) == (True, "critical", Decimal(0))
    assert conv.classify(["bug", "severity:critical"]) == (False, None, Decimal(0))
    monkeypatch.setenv("GITHUB_SEVERITY_ALIASES", "P0=blocker")
    with pytest.raises(ValueError, match="blocker"):
        LabelConvention.from_settings()


def test_parse_dollars():
    assert parse_dollars("2500") == Decimal("2500.00")
    assert parse_dollars("$1,200.50") == Decimal("1200.50")
    assert parse_dollars("2k") == Decimal("2000.00")
    assert parse_dollars("-5") is None
    assert parse_dollars("") is None


def test_parse_issue_maps_github_fields_and_never_counts_prs_as_bugs():
    raw = {
        "number": 7,
        "title": "Checkout broken",
        "state": "closed",
        "labels": [{"name": "bug"}, {"name": "severity:high"}, {"name": "revenue:300"}],
        "assignee": {"login": "alice"},
        "created_at": "2026-11-01T10:00:00Z",
        "updated_at": "2026-11-03T10:00:00Z",
        "closed_at": "2026-11-03T10:00:00Z",
    }
    rec = parse_issue(raw, LabelConvention())
    assert (rec.is_bug, rec.severity, rec.revenue_impact_per_day, rec.assignee) == (
        True,
        "high",
        Decimal("300.00"),
        "alice",
    )
    assert rec.closed_at == datetime(2026, 11, 3, 10, tzinfo=UTC)
    assert rec.is_pull_request is False and rec.merged_at is None
    pr = parse_issue(
        {**raw, "pull_request": {"merged_at": "2026-11-03T09:00:00Z"}, "assignee": None},
        LabelConvention(),
    )
    assert pr.is_pull_request and not pr.is_bug and pr.revenue_impact_per_day == 0
    assert pr.merged_at == datetime(2026, 11, 3, 9, tzinfo=UTC) and pr.assignee is None


def test_sla_setting_parsing():
    assert (
        parse_sla_hours("")
        == DEFAULT_SLA_HOURS
        == {
            "critical": 24,
            "high": 72,
            "medium": 168,
            "low": 720,
        }
    )
    assert parse_sla_hours("critical=4, low=100")["critical"] == 4.0
    assert parse_sla_hours("critical=4, low=100")["high"] == 72
    for bad in ("critical", "blocker=3", "high=0"):
        with pytest.raises(ValueError):
            parse_sla_hours(bad)


def test_link_header_and_connection_host():
    link = (
        '<http://h:1/repositories/9/issues?page=1>; rel="prev", '
        '<http://h:1/repositories/9/issues?page=3>; rel="next", '
        '<http://h:1/repositories/9/issues?page=5>; rel="last"'
    )
    assert next_link(link) == "http://h:1/repositories/9/issues?page=3"
    assert next_link('<http://h/x?page=1>; rel="first"') is None
    assert next_link(None) is None
    assert base_url_from_connection_fields("http://127.0.0.1:8811/") == "http://127.0.0.1:8811"
    assert base_url_from_connection_fields("api.github.com") == "https://api.github.com"
    assert base_url_from_connection_fields("ghe.local", 8443, "http") == "http://ghe.local:8443"


# --------------------------------------------------------------------------- fixtures
# PT day 2026-11-20 = [2026-11-20T08:00Z, 2026-11-21T08:00Z) (PST, UTC-8).
DAY = date(2026, 11, 20)
END = datetime(2026, 11, 21, 8, tzinfo=UTC)


def t(days_before_end: float) -> datetime:
    return END - timedelta(days=days_before_end)


def bug(n, sev, opened, closed=None, revenue=0, assignee="dev", project=1):
    return Item(project, n, False, True, sev, Decimal(revenue), assignee, opened, closed)


def pr(n, opened, closed=None, merged=None, project=1):
    return Item(project, n, True, False, None, Decimal(0), None, opened, closed, merged)


ITEMS = [
    bug(1, "critical", t(2), revenue=2500, assignee=None),  # open 48 h > 24 h: breach
    bug(2, "critical", t(0.5), revenue=200),  # open 12 h: within SLA
    bug(3, "high", t(4), revenue=0),  # open 96 h > 72 h: breach
    bug(4, "medium", t(3)),  # 72 h < 168 h
    bug(5, "medium", t(10), closed=t(0.25)),  # closed during the day
    bug(6, "low", t(40), closed=t(6)),  # closed 6 days ago: in velocity, not today
    bug(7, "low", t(40), closed=t(8)),  # closed 8 days ago: outside velocity
    bug(8, None, t(1), revenue=0),  # unclassified, open
    bug(9, "high", t(-0.1)),  # opened after the day: not open at END
    bug(10, "low", t(0.9), closed=END),  # closed exactly at END: still open at END
    pr(11, t(0.5), closed=t(0.2), merged=t(0.2)),  # opened + merged today
    pr(12, t(3), closed=t(0.1)),  # closed unmerged today
    pr(13, t(0.3)),  # opened today, open
    Item(1, 14, False, False, None, Decimal(0), None, t(0.4), None),  # not a bug
]


def test_day_metrics_against_hand_computed_fixture():
    m = day_metrics(ITEMS, DAY)
    # open at END: 1,2,3,4,8,10 -> critical 2, high 1, medium 1, low 1 (#10), unclassified 1
    assert (m["open_critical"], m["open_high"], m["open_medium"], m["open_low"]) == (2, 1, 1, 1)
    assert m["open_unclassified"] == 1 and m["open_bugs"] == 6
    # opened during the day: #2 (12 h before END), #10 (0.9 d), #8 (exactly 1 d before END =
    # start of day) -> 3; #9 opened after END
    assert m["bugs_opened"] == 3
    assert m["bugs_closed"] == 1 and m["closed_by_severity"]["medium"] == 1
    assert (m["prs_opened"], m["prs_merged"], m["prs_closed_unmerged"]) == (2, 1, 1)
    # closed in [END-7d, END): #5 (0.25 d), #6 (6 d); #7 (8 d) and #10 (at END) are not
    assert m["velocity_7d"] == 2
    assert m["revenue_at_risk"] == Decimal(2700)
    assert m["sla_breaches"] == 2
    assert m["sla_breaches_by_severity"] == {"critical": 1, "high": 1, "medium": 0, "low": 0}


def test_health_score_against_hand_computed_values():
    m = day_metrics(ITEMS, DAY)
    h = health_score(m)
    # 100 - 2*15 (critical) - 1*5 (high) - 1 (medium) - 2*5 (SLA) - floor(2700/500)=5 - 0
    assert h.score == 100 - 30 - 5 - 1 - 10 - 5 == 49
    assert h.status == "critical"
    assert h.deductions == {
        "open_critical": 30,
        "open_high": 5,
        "open_medium": 1,
        "sla_breaches": 10,
        "revenue_at_risk": 5,
        "stalled": 0,
    }
    assert "2 open critical bugs (-30)" in h.reasons
    # the docstring's worked example
    ex = health_score(
        {
            "open_critical": 2,
            "open_high": 1,
            "open_medium": 3,
            "sla_breaches": 1,
            "revenue_at_risk": 2700,
            "open_bugs": 6,
            "velocity_7d": 4,
        }
    )
    assert (ex.score, ex.status) == (52, "warning")


def test_health_score_caps_floor_stall_and_thresholds():
    assert health_score({}).score == 100 and health_score({}).status == "healthy"
    worst = health_score(
        {
            "open_critical": 9,
            "open_high": 9,
            "open_medium": 99,
            "sla_breaches": 9,
            "revenue_at_risk": 99999,
            "open_bugs": 200,
            "velocity_7d": 0,
        }
    )
    assert worst.score == 0 and worst.status == "critical"
    assert worst.deductions["open_critical"] == 45 and worst.deductions["revenue_at_risk"] == 20
    stalled = health_score({"open_bugs": 3, "open_low": 3, "velocity_7d": 0})
    assert (stalled.score, stalled.status) == (90, "healthy")
    assert health_score({"open_high": 5}, HealthThresholds(90, 60)).status == "warning"
    assert "sync failed" in " ".join(health_score({"sync_status": "failed"}).reasons)
    with pytest.raises(ValueError):
        HealthThresholds(40, 60)


def test_bug_risk_assessment_against_hand_computed_values():
    items = [
        *ITEMS,
        Item(2, 1, False, True, "critical", Decimal(9000), None, t(0.2), None, repo="acme/b"),
        Item(2, 2, False, True, "high", Decimal(100), "x", t(5), t(1), repo="acme/b"),
    ]
    risk = assess(items, END, RiskConfig())
    assert risk["revenue_at_risk"] == Decimal(2700 + 9000)
    assert risk["open_bugs"] == 7
    assert risk["velocity_7d"] == 3  # #5, #6 of project 1 and #2 of project 2
    assert risk["sla_breaches_by_severity"] == {"critical": 1, "high": 1, "medium": 0, "low": 0}
    assert sorted(b["number"] for b in risk["unassigned_critical"]) == [1, 1]
    assert [(b["number"], b["age_hours"]) for b in risk["critical_in_breach"]] == [(1, 48.0)]
    per = {p["project_id"]: p for p in risk["per_project"]}
    assert per[2]["revenue_at_risk"] == "9000" and per[2]["unassigned_critical"] == 1
    # a tighter configured SLA turns bug #2 (12 h old) into a breach too
    tight = assess(items, END, RiskConfig(sla_hours={**DEFAULT_SLA_HOURS, "critical": 4}))
    assert len(tight["critical_in_breach"]) == 3
