"""``check_project_health``: healthy / warning / critical for every active project, with reasons.

Source of truth is the nightly health scorer's ``analytics.project_health`` (latest row dated on
or before the report date, at most ``MAX_SCORE_AGE_DAYS`` old). A project without such a row gets
a simple status computed here from ``analytics.issues`` (open = opened before the report date and
not closed by then, so a backfilled week sees the issues as they were):

- critical: revenue at risk > $10k/day, an unassigned open critical bug, or an open critical bug
  older than ``CRITICAL_SLA_DAYS``;
- warning: any open critical bug, ≥ ``HIGH_BUGS_WARNING`` open high-severity bugs, or revenue at
  risk > $1k/day;
- healthy otherwise.

A bug is an open non-PR issue with ``is_bug`` or a severity. Warning/critical projects raise the
alert ``project_health:<repo>`` through ``alerts.raise_alert``; healthy (or deactivated) projects
resolve it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from include.analytics_ops.dates import pt_day_bounds
from include.analytics_ops.store import dict_rows

MAX_SCORE_AGE_DAYS = 7
CRITICAL_SLA_DAYS = 7
HIGH_BUGS_WARNING = 5
RISK_CRITICAL = Decimal("10000")
RISK_WARNING = Decimal("1000")
ALERT_SOURCE = "project_health"


def alert_key(repo: str) -> str:
    return f"project_health:{repo}"


@dataclass
class ProjectStatus:
    project_id: int
    repo: str
    name: str
    status: str
    score: int
    health_date: date | None
    source: str  # 'project_health' | 'computed'
    reasons: list[str] = field(default_factory=list)
    open_issues: int = 0
    open_bugs: int = 0
    open_critical_bugs: int = 0
    unassigned_critical_bugs: int = 0
    revenue_at_risk_per_day: Decimal = Decimal("0")

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["reasons"] = "; ".join(self.reasons)
        return row


_ISSUE_FIGURES = """
    WITH open_issues AS (
        SELECT i.* FROM analytics.issues i
         WHERE i.opened_at < %(cutoff)s
           AND (i.closed_at IS NULL OR i.closed_at >= %(cutoff)s)
           AND NOT (i.state = 'closed' AND i.closed_at IS NULL)
    ), bugs AS (
        SELECT * FROM open_issues WHERE NOT is_pull_request AND (is_bug OR severity IS NOT NULL)
    )
    SELECT p.project_id, p.repo, p.name,
           (SELECT count(*) FROM open_issues o WHERE o.project_id = p.project_id
                                                 AND NOT o.is_pull_request) AS n_open,
           (SELECT count(*) FROM bugs b WHERE b.project_id = p.project_id) AS n_bugs,
           (SELECT count(*) FROM bugs b WHERE b.project_id = p.project_id
                                          AND b.severity = 'critical') AS n_crit,
           (SELECT count(*) FROM bugs b WHERE b.project_id = p.project_id
                                          AND b.severity = 'critical'
                                          AND coalesce(b.assignee, '') = '') AS n_unassigned,
           (SELECT count(*) FROM bugs b WHERE b.project_id = p.project_id
                                          AND b.severity = 'critical'
                                          AND b.opened_at < %(sla_cutoff)s) AS n_overdue,
           (SELECT count(*) FROM bugs b WHERE b.project_id = p.project_id
                                          AND b.severity = 'high') AS n_high,
           (SELECT coalesce(sum(b.revenue_impact_per_day), 0) FROM bugs b
             WHERE b.project_id = p.project_id) AS risk,
           h.health_date, h.score, h.status, h.reasons
      FROM analytics.projects p
      LEFT JOIN LATERAL (
            SELECT health_date, score, status, reasons FROM analytics.project_health ph
             WHERE ph.project_id = p.project_id
               AND ph.health_date BETWEEN %(oldest)s AND %(as_of)s
             ORDER BY ph.health_date DESC LIMIT 1) h ON true
     WHERE p.active
     ORDER BY p.name, p.repo
"""


def _reason_text(reason: Any) -> str:
    if isinstance(reason, str):
        return reason
    if isinstance(reason, dict):
        for key in ("message", "reason", "text", "detail"):
            if reason.get(key):
                return str(reason[key])
    return str(reason)


def computed_status(
    open_critical: int,
    unassigned_critical: int,
    overdue_critical: int,
    open_high: int,
    risk: Decimal,
) -> tuple[str, int, list[str]]:
    """(status, score, reasons) from open-bug figures (see module docstring)."""
    critical: list[str] = []
    warning: list[str] = []
    if risk > RISK_CRITICAL:
        critical.append(f"revenue at risk ${risk:,.0f}/day (> ${RISK_CRITICAL:,.0f})")
    elif risk > RISK_WARNING:
        warning.append(f"revenue at risk ${risk:,.0f}/day (> ${RISK_WARNING:,.0f})")
    if unassigned_critical:
        critical.append(f"{unassigned_critical} unassigned critical bug(s)")
    if overdue_critical:
        critical.append(f"{overdue_critical} critical bug(s) open > {CRITICAL_SLA_DAYS} days")
    if open_critical and not critical:
        warning.append(f"{open_critical} open critical bug(s)")
    if open_high >= HIGH_BUGS_WARNING:
        warning.append(f"{open_high} open high-severity bugs")
    score = 100 - 20 * open_critical - 5 * open_high - min(30, int(risk / 500))
    score = max(0, min(100, score))
    if critical:
        return "critical", min(score, 49), critical + warning
    if warning:
        return "warning", min(score, 79), warning
    return "healthy", max(score, 80), ["no open critical bugs, revenue at risk within limits"]


def project_statuses(conn: psycopg.Connection, as_of: date) -> list[ProjectStatus]:
    """Status of every active project as of the end of PT day ``as_of``."""
    cutoff = pt_day_bounds(as_of)[1]
    out: list[ProjectStatus] = []
    for r in dict_rows(
        conn,
        _ISSUE_FIGURES,
        {
            "cutoff": cutoff,
            "sla_cutoff": cutoff - timedelta(days=CRITICAL_SLA_DAYS),
            "as_of": as_of + timedelta(days=1),  # the nightly scorer of the report date counts
            "oldest": as_of - timedelta(days=MAX_SCORE_AGE_DAYS),
        },
    ):
        risk = Decimal(r["risk"])
        status = ProjectStatus(
            project_id=r["project_id"],
            repo=r["repo"],
            name=r["name"],
            status="healthy",
            score=100,
            health_date=None,
            source="computed",
            open_issues=r["n_open"],
            open_bugs=r["n_bugs"],
            open_critical_bugs=r["n_crit"],
            unassigned_critical_bugs=r["n_unassigned"],
            revenue_at_risk_per_day=risk,
        )
        if r["status"] is not None:
            status.status, status.score = r["status"], int(r["score"])
            status.health_date, status.source = r["health_date"], "project_health"
            status.reasons = [_reason_text(x) for x in (r["reasons"] or [])] or [
                f"health score {r['score']}"
            ]
        else:
            status.status, status.score, status.reasons = computed_status(
                r["n_crit"], r["n_unassigned"], r["n_overdue"], r["n_high"], risk
            )
        out.append(status)
    return out


@dataclass(frozen=True)
class HealthCheckResult:
    statuses: list[ProjectStatus]
    alerts_raised: list[str]
    alerts_resolved: list[str]

    def counts(self) -> dict[str, int]:
        out = {"healthy": 0, "warning": 0, "critical": 0}
        for s in self.statuses:
            out[s.status] = out.get(s.status, 0) + 1
        return out


def check_project_health(
    conn: psycopg.Connection,
    as_of: date,
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    url: str | None = None,
) -> HealthCheckResult:
    """Alert on every warning/critical project; resolve the alerts of healthy/inactive ones."""
    from include.analytics_ops.alerts import raise_alert, resolve_alert

    statuses = project_statuses(conn, as_of)
    raised: list[str] = []
    resolved: list[str] = []
    unhealthy_keys = set()
    for s in statuses:
        key = alert_key(s.repo)
        if s.status in ("warning", "critical"):
            unhealthy_keys.add(key)
            raise_alert(
                conn,
                key,
                s.status,
                ALERT_SOURCE,
                f"Project {s.name} ({s.repo}) is {s.status} (score {s.score})",
                "; ".join(s.reasons),
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
                url=url,
                details={
                    "project_id": s.project_id,
                    "as_of": as_of.isoformat(),
                    "source": s.source,
                    "score": s.score,
                    "open_critical_bugs": s.open_critical_bugs,
                    "revenue_at_risk_per_day": float(s.revenue_at_risk_per_day),
                },
            )
            raised.append(key)
    open_keys = [
        r[0]
        for r in conn.execute(
            "SELECT dedup_key FROM ops.alerts WHERE source = %s AND state = 'open'",
            (ALERT_SOURCE,),
        ).fetchall()
    ]
    for key in sorted(set(open_keys) - unhealthy_keys):
        if resolve_alert(conn, key, f"healthy as of {as_of}") is not None:
            resolved.append(key)
    return HealthCheckResult(statuses, raised, resolved)
