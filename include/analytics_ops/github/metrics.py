"""Daily metrics per project, computed from ``analytics.issues`` for one PT business date.

All numbers are *as of the end of the PT day* (``as_of`` = next midnight PT), derived from the
stored opened/closed/merged times rather than from the current ``state``, so re-running an old
date gives the same answer (as long as the issues themselves did not change):

- a bug is an issue (not a PR) with ``is_bug``; it is **open at t** when ``opened_at < t`` and it
  was not closed before ``t`` (``closed_at`` NULL or ``>= t``);
- ``open_<severity>`` / ``open_unclassified`` (no severity label) / ``open_bugs``: bugs open at
  ``as_of``;
- ``bugs_opened`` / ``bugs_closed`` (+ ``closed_by_severity``): opened / closed during the day;
- ``prs_opened``, ``prs_merged``, ``prs_closed_unmerged``: pull requests during the day (PR
  throughput);
- ``velocity_7d``: bugs resolved per week = bugs closed in ``[as_of - 7 days, as_of)``;
- ``revenue_at_risk``: sum of ``revenue_impact_per_day`` over bugs open at ``as_of``;
- ``sla_breaches`` (+ by severity): bugs open at ``as_of`` for longer than their severity's SLA
  (defaults critical 24 h, high 72 h, medium 7 d, low 30 d; setting ``BUG_SLA_HOURS``);
  unclassified bugs have no SLA.

Results go to ``analytics.project_daily_metrics`` (one row per project and date, replaced on
re-run).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from include.analytics_ops import store
from include.analytics_ops.dates import pt_day_bounds
from include.analytics_ops.github import DEFAULT_SLA_HOURS, SEVERITIES

WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Item:
    """An issue or PR as the metrics see it."""

    project_id: int
    number: int
    is_pull_request: bool
    is_bug: bool
    severity: str | None
    revenue: Decimal
    assignee: str | None
    opened_at: datetime
    closed_at: datetime | None
    merged_at: datetime | None = None
    title: str = ""
    repo: str = ""

    def open_at(self, t: datetime) -> bool:
        return self.opened_at < t and (self.closed_at is None or self.closed_at >= t)

    def age_hours(self, t: datetime) -> float:
        return (t - self.opened_at).total_seconds() / 3600

    def breaches_sla(self, t: datetime, sla_hours: Mapping[str, float]) -> bool:
        if self.severity is None or self.severity not in sla_hours or not self.open_at(t):
            return False
        return self.age_hours(t) > sla_hours[self.severity]


def load_items(conn: psycopg.Connection, project_ids: Sequence[int] | None = None) -> list[Item]:
    rows = conn.execute(
        """
        SELECT i.project_id, i.number, i.is_pull_request, i.is_bug, i.severity,
               i.revenue_impact_per_day, i.assignee, i.opened_at,
               -- a closed item without closed_at (should not happen) counts as closed when seen
               CASE WHEN i.state = 'closed' THEN COALESCE(i.closed_at, i.updated_at, i.opened_at)
                    ELSE NULL END,
               i.merged_at, i.title, p.repo
          FROM analytics.issues i JOIN analytics.projects p USING (project_id)
         WHERE (%s::bigint[] IS NULL OR i.project_id = ANY(%s::bigint[]))
        """,
        (list(project_ids) if project_ids else None, list(project_ids) if project_ids else None),
    ).fetchall()
    return [
        Item(
            int(r[0]),
            int(r[1]),
            bool(r[2]),
            bool(r[3]),
            r[4],
            Decimal(r[5] or 0),
            r[6],
            r[7],
            r[8],
            r[9],
            r[10] or "",
            r[11] or "",
        )
        for r in rows
    ]


def bug_snapshot(
    bugs: Iterable[Item], as_of: datetime, sla_hours: Mapping[str, float]
) -> dict[str, Any]:
    """Open bugs by severity, revenue at risk, 7-day velocity and SLA breaches at ``as_of``."""
    open_by = dict.fromkeys((*SEVERITIES, "unclassified"), 0)
    breaches = dict.fromkeys(SEVERITIES, 0)
    revenue = Decimal(0)
    velocity = 0
    for b in bugs:
        if b.closed_at is not None and as_of - WEEK <= b.closed_at < as_of:
            velocity += 1
        if not b.open_at(as_of):
            continue
        open_by[b.severity or "unclassified"] += 1
        revenue += b.revenue
        if b.breaches_sla(as_of, sla_hours):
            breaches[b.severity] += 1
    return {
        "open_by_severity": open_by,
        "open_bugs": sum(open_by.values()),
        "revenue_at_risk": revenue,
        "velocity_7d": velocity,
        "sla_breaches_by_severity": breaches,
        "sla_breaches": sum(breaches.values()),
    }


def day_metrics(
    items: Iterable[Item],
    day: date,
    sla_hours: Mapping[str, float] = DEFAULT_SLA_HOURS,
) -> dict[str, Any]:
    """The metrics of one project for PT day ``day`` (see module docstring)."""
    start, end = pt_day_bounds(day)
    items = list(items)
    bugs = [i for i in items if i.is_bug and not i.is_pull_request]
    prs = [i for i in items if i.is_pull_request]

    def during(t: datetime | None) -> bool:
        return t is not None and start <= t < end

    closed_by = dict.fromkeys((*SEVERITIES, "unclassified"), 0)
    for b in bugs:
        if during(b.closed_at):
            closed_by[b.severity or "unclassified"] += 1
    snap = bug_snapshot(bugs, end, sla_hours)
    return {
        "open_bugs": snap["open_bugs"],
        **{f"open_{k}": v for k, v in snap["open_by_severity"].items()},
        "bugs_opened": sum(during(b.opened_at) for b in bugs),
        "bugs_closed": sum(closed_by.values()),
        "closed_by_severity": closed_by,
        "prs_opened": sum(during(p.opened_at) for p in prs),
        "prs_merged": sum(during(p.merged_at) for p in prs),
        "prs_closed_unmerged": sum(during(p.closed_at) and p.merged_at is None for p in prs),
        "velocity_7d": snap["velocity_7d"],
        "revenue_at_risk": snap["revenue_at_risk"],
        "sla_breaches": snap["sla_breaches"],
        "sla_breaches_by_severity": snap["sla_breaches_by_severity"],
    }


_COLUMNS = (
    "open_bugs",
    "open_critical",
    "open_high",
    "open_medium",
    "open_low",
    "open_unclassified",
    "bugs_opened",
    "bugs_closed",
    "closed_by_severity",
    "prs_opened",
    "prs_merged",
    "prs_closed_unmerged",
    "velocity_7d",
    "revenue_at_risk",
    "sla_breaches",
    "sla_breaches_by_severity",
)


def compute_project_metrics(
    conn: psycopg.Connection,
    day: date,
    *,
    sla_hours: Mapping[str, float] = DEFAULT_SLA_HOURS,
    run_id: str | None = None,
) -> dict[int, dict[str, Any]]:
    """Compute and store the metrics of every active project for ``day``; returns them by
    project id. One transaction: the day's rows are replaced as a whole."""
    projects = conn.execute(
        """
        SELECT p.project_id, s.last_status, s.last_synced_at
          FROM analytics.projects p
          LEFT JOIN analytics.project_sync_state s USING (project_id)
         WHERE p.active ORDER BY p.project_id
        """
    ).fetchall()
    by_project: dict[int, list[Item]] = {int(p[0]): [] for p in projects}
    # load_items reads every project when given none: with zero active projects read nothing.
    for item in load_items(conn, list(by_project)) if by_project else []:
        by_project[item.project_id].append(item)
    out: dict[int, dict[str, Any]] = {}
    with conn.transaction():
        conn.execute("DELETE FROM analytics.project_daily_metrics WHERE metric_date = %s", (day,))
        for project_id, sync_status, last_synced_at in projects:
            m = day_metrics(by_project[int(project_id)], day, sla_hours)
            m["sync_status"] = sync_status
            m["last_synced_at"] = last_synced_at
            out[int(project_id)] = m
            values = [store.jsonb(m[c]) if isinstance(m[c], dict) else m[c] for c in _COLUMNS]
            conn.execute(
                f"""
                INSERT INTO analytics.project_daily_metrics (project_id, metric_date,
                    {", ".join(_COLUMNS)}, sync_status, last_synced_at, run_id)
                VALUES (%s, %s, {", ".join(["%s"] * len(_COLUMNS))}, %s, %s, %s)
                """,
                (project_id, day, *values, sync_status, last_synced_at, run_id),
            )
    return out
