"""Hourly bug-risk monitor: revenue at risk, engineering velocity, SLA breaches and alerts.

``compute_bug_risk`` looks at the bugs of all active projects as of the run's hour (the hourly
DAG's window end) and stores one row in ``analytics.bug_risk_snapshots`` keyed by that hour
(re-running the hour replaces it):

- ``revenue_at_risk``: sum of ``revenue_impact_per_day`` over open bugs ($/day);
- ``velocity_7d``: bugs resolved in the 7 days before the hour (engineering velocity, bugs/week);
- ``sla_breaches`` by severity: open bugs older than their SLA (defaults critical 24 h, high 72 h,
  medium 7 d, low 30 d; setting ``BUG_SLA_HOURS="critical=24,high=72,medium=168,low=720"``);
- ``unassigned_critical`` / ``critical_in_breach``: the bugs behind the two per-bug alerts.

``apply_bug_risk_alerts`` turns the stored snapshot into alerts through the one alert path
(``alerts.raise_alert`` / ``alerts.resolve_alert``):

- an open critical bug without assignee: key ``bug_risk:unassigned_critical:<repo>#<n>``;
- an open critical bug past its SLA: key ``bug_risk:critical_sla_breach:<repo>#<n>``;
- revenue at risk above ``BUG_RISK_REVENUE_THRESHOLD`` (default $10,000/day): key
  ``bug_risk:revenue_at_risk``.

All three are ``critical``. A condition still true on the next hourly run raises the same key
again, which the alert path records as ``repeated`` (counted, not re-sent); an open key whose
condition no longer holds is resolved. Only the newest snapshot raises or resolves alerts:
re-running an older hour (a clear or a backfill) must not flip today's alerts back to an old
picture. Optionally
``BUG_RISK_ALERT_MAX_LAG_HOURS`` (default 0 = off) also skips alerting for hours older than that
(keeps a long catch-up from paging on history).

The issues come from the nightly GitHub sync, so the monitor is as fresh as that sync.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from include.analytics_ops import alerts, store
from include.analytics_ops.config import FromSettings, from_setting
from include.analytics_ops.github import DEFAULT_SLA_HOURS, parse_sla_hours
from include.analytics_ops.github.metrics import Item, bug_snapshot, load_items

SOURCE = "bug_risk"
KEY_UNASSIGNED = "bug_risk:unassigned_critical:"
KEY_BREACH = "bug_risk:critical_sla_breach:"
KEY_REVENUE = "bug_risk:revenue_at_risk"
DEFAULT_REVENUE_THRESHOLD = Decimal(10_000)


@dataclass(frozen=True)
class RiskConfig(FromSettings):
    sla_hours: Mapping[str, float] = from_setting(
        "BUG_SLA_HOURS", parse=parse_sla_hours, default_factory=lambda: dict(DEFAULT_SLA_HOURS)
    )
    revenue_threshold: Decimal = from_setting(
        "BUG_RISK_REVENUE_THRESHOLD", DEFAULT_REVENUE_THRESHOLD, Decimal
    )
    alert_max_lag_hours: float = from_setting("BUG_RISK_ALERT_MAX_LAG_HOURS", 0.0)

    def __post_init__(self) -> None:
        if self.revenue_threshold < 0:
            raise ValueError("BUG_RISK_REVENUE_THRESHOLD must be >= 0")


def _bug_ref(b: Item, as_of: datetime) -> dict[str, Any]:
    return {
        "repo": b.repo,
        "number": b.number,
        "title": b.title,
        "assignee": b.assignee,
        "age_hours": round(b.age_hours(as_of), 1),
        "revenue_impact_per_day": str(b.revenue),
    }


def assess(items: list[Item], as_of: datetime, config: RiskConfig) -> dict[str, Any]:
    """The risk picture at ``as_of`` from issues (pure; see module docstring)."""
    bugs = [i for i in items if i.is_bug and not i.is_pull_request]
    total = bug_snapshot(bugs, as_of, config.sla_hours)
    open_critical = [b for b in bugs if b.severity == "critical" and b.open_at(as_of)]
    unassigned = [b for b in open_critical if not b.assignee]
    in_breach = [b for b in open_critical if b.breaches_sla(as_of, config.sla_hours)]
    per_project = []
    for project_id in sorted({b.project_id for b in items}):
        mine = [b for b in bugs if b.project_id == project_id]
        snap = bug_snapshot(mine, as_of, config.sla_hours)
        per_project.append(
            {
                "project_id": project_id,
                "repo": next((i.repo for i in items if i.project_id == project_id), ""),
                "open_bugs": snap["open_bugs"],
                "revenue_at_risk": str(snap["revenue_at_risk"]),
                "velocity_7d": snap["velocity_7d"],
                "sla_breaches": snap["sla_breaches"],
                "unassigned_critical": sum(1 for b in unassigned if b.project_id == project_id),
            }
        )
    return {
        "as_of": as_of,
        "revenue_at_risk": total["revenue_at_risk"],
        "open_bugs": total["open_bugs"],
        "open_by_severity": total["open_by_severity"],
        "velocity_7d": total["velocity_7d"],
        "sla_breaches": total["sla_breaches"],
        "sla_breaches_by_severity": total["sla_breaches_by_severity"],
        "unassigned_critical": [_bug_ref(b, as_of) for b in unassigned],
        "critical_in_breach": [_bug_ref(b, as_of) for b in in_breach],
        "per_project": per_project,
    }


def compute_bug_risk(
    conn: psycopg.Connection,
    snapshot_hour: datetime,
    *,
    config: RiskConfig | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Assess active projects' bugs at ``snapshot_hour`` and upsert the snapshot row."""
    config = config or RiskConfig()
    if snapshot_hour.tzinfo is None:
        raise ValueError("snapshot_hour must be timezone-aware")
    project_ids = [
        r[0]
        for r in conn.execute("SELECT project_id FROM analytics.projects WHERE active").fetchall()
    ]
    items = load_items(conn, project_ids) if project_ids else []
    risk = assess(items, snapshot_hour, config)
    conn.execute(
        """
        INSERT INTO analytics.bug_risk_snapshots AS s (snapshot_hour, revenue_at_risk, open_bugs,
            open_by_severity, velocity_7d, sla_breaches, sla_breaches_by_severity,
            unassigned_critical, critical_in_breach, per_project, details, config, run_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (snapshot_hour) DO UPDATE SET
            revenue_at_risk = EXCLUDED.revenue_at_risk, open_bugs = EXCLUDED.open_bugs,
            open_by_severity = EXCLUDED.open_by_severity, velocity_7d = EXCLUDED.velocity_7d,
            sla_breaches = EXCLUDED.sla_breaches,
            sla_breaches_by_severity = EXCLUDED.sla_breaches_by_severity,
            unassigned_critical = EXCLUDED.unassigned_critical,
            critical_in_breach = EXCLUDED.critical_in_breach, per_project = EXCLUDED.per_project,
            details = EXCLUDED.details, config = EXCLUDED.config, run_id = EXCLUDED.run_id,
            alerts = '[]'::jsonb, computed_at = now()
        """,
        (
            snapshot_hour,
            risk["revenue_at_risk"],
            risk["open_bugs"],
            store.jsonb(risk["open_by_severity"]),
            risk["velocity_7d"],
            risk["sla_breaches"],
            store.jsonb(risk["sla_breaches_by_severity"]),
            len(risk["unassigned_critical"]),
            len(risk["critical_in_breach"]),
            store.jsonb(risk["per_project"]),
            store.jsonb(
                {
                    "unassigned_critical": risk["unassigned_critical"],
                    "critical_in_breach": risk["critical_in_breach"],
                }
            ),
            store.jsonb(config.as_dict()),
            run_id,
        ),
    )
    return risk


def _open_keys(conn: psycopg.Connection, prefix: str) -> set[str]:
    rows = conn.execute(
        "SELECT dedup_key FROM ops.alerts WHERE state = 'open' AND dedup_key LIKE %s",
        (prefix.replace("_", r"\_") + "%",),
    ).fetchall()
    return {r[0] for r in rows}


def apply_bug_risk_alerts(
    conn: psycopg.Connection,
    snapshot_hour: datetime,
    *,
    config: RiskConfig | None = None,
    now: datetime | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    url: str | None = None,
) -> dict[str, Any]:
    """Raise/resolve the bug-risk alerts for the stored snapshot of ``snapshot_hour``.

    Returns ``{"skipped": reason | None, "transitions": [{dedup_key, transition}, ...]}``.
    """
    config = config or RiskConfig()
    row = conn.execute(
        "SELECT revenue_at_risk, details, (SELECT max(snapshot_hour)"
        " FROM analytics.bug_risk_snapshots) FROM analytics.bug_risk_snapshots"
        " WHERE snapshot_hour = %s",
        (snapshot_hour,),
    ).fetchone()
    if row is None:
        raise LookupError(f"no bug-risk snapshot for {snapshot_hour.isoformat()}")
    revenue, details, newest = Decimal(row[0]), row[1], row[2]
    skipped = None
    if newest > snapshot_hour:
        skipped = f"a newer snapshot exists ({newest.isoformat()}): alerts follow the newest hour"
    elif (
        config.alert_max_lag_hours
        and now is not None
        and now - snapshot_hour > timedelta(hours=config.alert_max_lag_hours)
    ):
        skipped = f"hour older than BUG_RISK_ALERT_MAX_LAG_HOURS={config.alert_max_lag_hours}"
    if skipped:
        result = {"skipped": skipped, "transitions": []}
        _store_transitions(conn, snapshot_hour, result)
        return result

    common = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "url": url}
    transitions: list[dict[str, Any]] = []
    hour = snapshot_hour.isoformat()

    def fire(key: str, title: str, body: str, extra: Mapping[str, Any]) -> None:
        outcome = alerts.raise_alert(
            conn, key, "critical", SOURCE, title, body, details=dict(extra), **common
        )
        transitions.append({"dedup_key": key, "transition": outcome.transition})

    def clear(prefix: str, still_true: set[str]) -> None:
        for key in sorted(_open_keys(conn, prefix) - still_true):
            if alerts.resolve_alert(conn, key, f"condition cleared as of {hour}"):
                transitions.append({"dedup_key": key, "transition": "resolved"})

    with conn.transaction():
        current: set[str] = set()
        for b in details.get("unassigned_critical", []):
            key = f"{KEY_UNASSIGNED}{b['repo']}#{b['number']}"
            current.add(key)
            fire(
                key,
                f"Unassigned critical bug {b['repo']}#{b['number']}: {b['title']}",
                f"open {b['age_hours']:.0f} h, no assignee,"
                f" ${Decimal(b['revenue_impact_per_day']):,.0f}/day at risk",
                b,
            )
        clear(KEY_UNASSIGNED, current)

        current = set()
        sla = config.sla_hours.get("critical", DEFAULT_SLA_HOURS["critical"])
        for b in details.get("critical_in_breach", []):
            key = f"{KEY_BREACH}{b['repo']}#{b['number']}"
            current.add(key)
            fire(
                key,
                f"Critical bug past SLA {b['repo']}#{b['number']}: {b['title']}",
                f"open {b['age_hours']:.0f} h (SLA {sla:.0f} h), assignee"
                f" {b['assignee'] or 'nobody'}",
                b,
            )
        clear(KEY_BREACH, current)

        if revenue > config.revenue_threshold:
            fire(
                KEY_REVENUE,
                f"Revenue at risk ${revenue:,.0f}/day (> ${config.revenue_threshold:,.0f})",
                "sum of the daily revenue impact of all open bugs",
                {"revenue_at_risk": str(revenue), "threshold": str(config.revenue_threshold)},
            )
        else:
            clear(KEY_REVENUE, set())
        result = {"skipped": None, "transitions": transitions}
        _store_transitions(conn, snapshot_hour, result)
    return result


def _store_transitions(
    conn: psycopg.Connection, snapshot_hour: datetime, result: Mapping[str, Any]
) -> None:
    stored = result["transitions"] or (
        [{"skipped": result["skipped"]}] if result["skipped"] else []
    )
    conn.execute(
        "UPDATE analytics.bug_risk_snapshots SET alerts = %s WHERE snapshot_hour = %s",
        (store.jsonb(stored), snapshot_hour),
    )
