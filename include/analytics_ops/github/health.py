"""Project health score (0-100) and status from one day's project metrics.

Formula (every term is capped so one kind of problem cannot hide the others)::

    score = 100
          - 15 per open critical bug                       (at most 45)
          -  5 per open high bug                           (at most 25)
          -  1 per open medium bug                         (at most 10)
          -  5 per open bug past its SLA                   (at most 20)
          -  1 per full $500/day of revenue at risk        (at most 20)
          - 10 when bugs are open but none was resolved in the last 7 days (stalled)
    clamped to 0..100

    status = healthy   when score >= 80   (HEALTH_HEALTHY_MIN)
             warning   when score >= 50   (HEALTH_WARNING_MIN)
             critical  otherwise

Low-severity and unclassified bugs do not lower the score (they still count in the metrics).
Worked example: 2 open critical, 1 high, 3 medium, 1 bug past SLA, $2,700/day at risk, 4 bugs
resolved this week → 100 - 30 - 5 - 3 - 5 - 5 - 0 = 52 → warning.

``reasons`` lists every deduction; a project whose last GitHub sync failed gets the reason
"last GitHub sync failed" (no deduction: the score is computed from the data we have, and the
sync failure is reported by the sync task itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg

from include.analytics_ops import store
from include.analytics_ops.config import FromSettings, from_setting


@dataclass(frozen=True)
class HealthThresholds(FromSettings):
    healthy_min: int = from_setting("HEALTH_HEALTHY_MIN", 80)
    warning_min: int = from_setting("HEALTH_WARNING_MIN", 50)

    def __post_init__(self) -> None:
        if not 0 <= self.warning_min <= self.healthy_min <= 100:
            raise ValueError(
                f"need 0 <= HEALTH_WARNING_MIN ({self.warning_min}) <= HEALTH_HEALTHY_MIN"
                f" ({self.healthy_min}) <= 100"
            )

    def status(self, score: int) -> str:
        if score >= self.healthy_min:
            return "healthy"
        return "warning" if score >= self.warning_min else "critical"


@dataclass(frozen=True)
class Health:
    score: int
    status: str
    reasons: list[str]
    deductions: dict[str, int]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def health_score(metrics: Mapping[str, Any], thresholds: HealthThresholds | None = None) -> Health:
    """Score one project's day (keys as in ``metrics.day_metrics``)."""
    thresholds = thresholds or HealthThresholds()
    critical = int(metrics.get("open_critical") or 0)
    high = int(metrics.get("open_high") or 0)
    medium = int(metrics.get("open_medium") or 0)
    breaches = int(metrics.get("sla_breaches") or 0)
    revenue = Decimal(str(metrics.get("revenue_at_risk") or 0))
    open_bugs = int(metrics.get("open_bugs") or 0)
    velocity = int(metrics.get("velocity_7d") or 0)

    deductions = {
        "open_critical": min(45, 15 * critical),
        "open_high": min(25, 5 * high),
        "open_medium": min(10, medium),
        "sla_breaches": min(20, 5 * breaches),
        "revenue_at_risk": min(20, int(revenue // 500)),
        "stalled": 10 if open_bugs > 0 and velocity == 0 else 0,
    }
    labels = {
        "open_critical": _plural(critical, "open critical bug"),
        "open_high": _plural(high, "open high bug"),
        "open_medium": _plural(medium, "open medium bug"),
        "sla_breaches": _plural(breaches, "bug") + " past SLA",
        "revenue_at_risk": f"${revenue:,.0f}/day revenue at risk",
        "stalled": f"{_plural(open_bugs, 'open bug')}, none resolved in 7 days",
    }
    reasons = [f"{labels[k]} (-{v})" for k, v in deductions.items() if v]
    if metrics.get("sync_status") == "failed":
        reasons.append("last GitHub sync failed: data may be stale")
    score = max(0, min(100, 100 - sum(deductions.values())))
    return Health(score, thresholds.status(score), reasons, deductions)


def score_project_health(
    conn: psycopg.Connection,
    day: date,
    *,
    thresholds: HealthThresholds | None = None,
) -> dict[int, Health]:
    """Score every project that has metrics for ``day`` into ``analytics.project_health``
    (the day's rows replaced in one transaction). Zero active projects is a normal state (a team
    that only wants the analytics guard): nothing is scored and ``{}`` is returned. Raises
    LookupError when active projects exist but none has metrics for ``day``."""
    rows = conn.execute(
        """
        SELECT m.project_id, to_jsonb(m) FROM analytics.project_daily_metrics m
          JOIN analytics.projects p USING (project_id)
         WHERE m.metric_date = %s AND p.active ORDER BY m.project_id
        """,
        (day,),
    ).fetchall()
    if not rows:
        (active,) = conn.execute("SELECT count(*) FROM analytics.projects WHERE active").fetchone()
        if not active:
            with conn.transaction():
                conn.execute("DELETE FROM analytics.project_health WHERE health_date = %s", (day,))
            return {}
        raise LookupError(f"no project metrics for {day}: run compute_project_metrics first")
    out: dict[int, Health] = {}
    with conn.transaction():
        conn.execute("DELETE FROM analytics.project_health WHERE health_date = %s", (day,))
        for project_id, metrics in rows:
            h = health_score(metrics, thresholds)
            out[int(project_id)] = h
            conn.execute(
                """
                INSERT INTO analytics.project_health (project_id, health_date, score, status,
                                                      reasons, metrics)
                VALUES (%s, %s, %s, %s, %s, %s)
                """,
                (
                    project_id,
                    day,
                    h.score,
                    h.status,
                    store.jsonb(h.reasons),
                    store.jsonb({**metrics, "deductions": h.deductions}),
                ),
            )
    return out
