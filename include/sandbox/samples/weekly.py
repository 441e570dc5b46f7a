"""Deterministic sample rows for the weekly report (tests, and the demo when the sandbox
generator has not loaded projects/issues/job runs). Idempotent: rerunning upserts the same rows.

``hostile=True`` adds upstream text meant to break things: a project named
``=HYPERLINK("http://x","y")``, an issue title with ``<script>``, snapshot text starting with
``-``/``@`` and a negative snapshot number — all must come out inert in the CSV and the HTML.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from include.analytics_ops.store import jsonb

HOSTILE_PROJECT = '=HYPERLINK("http://x","y")'
HOSTILE_TITLE = "<script>alert('xss')</script> Checkout & payment <b>down</b>"
HOSTILE_SNAPSHOT_TEXT = "-2+3+cmd|' /C calc'!A0"

PROJECTS = (
    ("acme/storefront", "Storefront", True),
    ("acme/checkout", "Checkout", True),
    ("acme/mobile-app", "Mobile app", True),
    ("acme/data-pipeline", "Data pipeline", True),
    ("acme/legacy-admin", "Legacy admin", False),
)


def daily_values(day: date, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(f"{seed}:{day.isoformat()}")
    weekday = (1.0, 1.04, 1.03, 1.01, 0.96, 0.84, 0.88)[day.weekday()]
    sessions = int(2200 * weekday * rng.uniform(0.94, 1.06))
    conversions = int(sessions * 0.022 * rng.uniform(0.9, 1.1))
    orders = conversions + rng.randint(0, 4)
    revenue = Decimal(orders * rng.uniform(78, 94)).quantize(Decimal("0.01"))
    return {"sessions": sessions, "conversions": conversions, "orders": orders, "revenue": revenue}


def load_weekly_sample(
    conn: psycopg.Connection,
    end_day: date,
    *,
    weeks: int = 9,
    seed: int = 7,
    hostile: bool = False,
    job_runs: bool = True,
) -> dict[str, int]:
    """Rows for the ``weeks`` weeks ending ``end_day`` (PT); returns counts per table."""
    counts: dict[str, int] = {}
    first = end_day - timedelta(days=7 * weeks - 1)
    ideas_total = 400
    days = [first + timedelta(days=i) for i in range(7 * weeks)]
    for day in days:
        v = daily_values(day, seed)
        added = random.Random(f"ideas:{seed}:{day}").randint(0, 6)
        ideas_total += added
        conn.execute(
            """
            INSERT INTO analytics.daily_metrics (metric_date, revenue, orders, sessions,
                                                 conversions, ideas_total, ideas_added)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (metric_date) DO UPDATE SET revenue = EXCLUDED.revenue,
                orders = EXCLUDED.orders, sessions = EXCLUDED.sessions,
                conversions = EXCLUDED.conversions, ideas_total = EXCLUDED.ideas_total,
                ideas_added = EXCLUDED.ideas_added
            """,
            (day, v["revenue"], v["orders"], v["sessions"], v["conversions"], ideas_total, added),
        )
    counts["daily_metrics"] = len(days)

    week = days[-7:]
    for i, day in enumerate(week):
        status = "warning" if i == 3 else "passed"
        anomalies = (
            [{"check": "Sessions Trend", "message": "sessions 18% below the 28-day trend"}]
            if status == "warning"
            else []
        )
        if hostile and i == 4:
            status = "warning"
            anomalies = [{"check": "Revenue Range", "message": "<img src=x onerror=alert(1)>"}]
        conn.execute(
            """
            INSERT INTO analytics.sampling_proofs (target_date, status, checks, anomalies)
            VALUES (%s, %s, '[]', %s)
            ON CONFLICT (target_date) DO UPDATE SET status = EXCLUDED.status,
                anomalies = EXCLUDED.anomalies
            """,
            (day, status, jsonb(anomalies)),
        )
        v = daily_values(day, seed)
        metrics: dict[str, Any] = {
            "revenue": {"total": float(v["revenue"]), "orders": v["orders"]},
            "conversion": {"rate": round(v["conversions"] / v["sessions"], 6)},
            "traffic": {"sessions": v["sessions"]},
            "idea_pool": {"added": 3},
        }
        if hostile:
            metrics["revenue"]["change_vs_prior_day"] = -12.5
            metrics["traffic"]["note"] = HOSTILE_SNAPSHOT_TEXT
            metrics["idea_pool"]["top_idea"] = "@SUM(1+1)*cmd"
        conn.execute(
            """
            INSERT INTO analytics.dashboard_snapshots (snapshot_date, status, metrics, summary)
            VALUES (%s, 'complete', %s, '{}')
            ON CONFLICT (snapshot_date) DO UPDATE SET metrics = EXCLUDED.metrics
            """,
            (day, jsonb(metrics)),
        )
    counts["sampling_proofs"] = counts["dashboard_snapshots"] = len(week)

    projects = list(PROJECTS)
    if hostile:
        projects.append(("evil/hyperlink", HOSTILE_PROJECT, True))
    ids: dict[str, int] = {}
    for repo, name, active in projects:
        ids[repo] = conn.execute(
            """
            INSERT INTO analytics.projects (repo, name, active) VALUES (%s, %s, %s)
            ON CONFLICT (repo) DO UPDATE SET name = EXCLUDED.name, active = EXCLUDED.active
            RETURNING project_id
            """,
            (repo, name, active),
        ).fetchone()[0]
    counts["projects"] = len(projects)

    report_start = datetime.combine(end_day + timedelta(days=1), time(8), tzinfo=UTC)
    issues = [
        # repo, number, title, severity, assignee, age days, impact/day, closed
        (
            "acme/checkout",
            101,
            "Payment retries double-charge some cards",
            "critical",
            None,
            3,
            "4200.00",
            False,
        ),
        (
            "acme/checkout",
            102,
            "Coupon field ignores uppercase codes",
            "high",
            "dana",
            12,
            "350.00",
            False,
        ),
        (
            "acme/storefront",
            201,
            "Search returns stale prices",
            "critical",
            "lee",
            10,
            "2500.00",
            False,
        ),
        ("acme/storefront", 202, "Footer link broken", "low", "lee", 30, "0", False),
        (
            "acme/mobile-app",
            301,
            "Crash on Android 15 when opening cart",
            "high",
            "kim",
            5,
            "800.00",
            False,
        ),
        ("acme/mobile-app", 302, "Dark mode contrast", "medium", None, 40, "0", True),
        ("acme/data-pipeline", 401, "Nightly export slow", "medium", "sam", 8, "0", False),
    ]
    if hostile:
        issues.append(("evil/hyperlink", 1, HOSTILE_TITLE, "critical", None, 2, "12000.00", False))
        issues.append(
            (
                "acme/storefront",
                203,
                '=HYPERLINK("http://x","y")',
                "critical",
                "lee",
                1,
                "10.00",
                False,
            )
        )
    for repo, number, title, severity, assignee, age, impact, closed in issues:
        opened = report_start - timedelta(days=age)
        conn.execute(
            """
            INSERT INTO analytics.issues (project_id, number, is_pull_request, state, title,
                severity, is_bug, revenue_impact_per_day, assignee, opened_at, closed_at)
            VALUES (%s, %s, false, %s, %s, %s, true, %s, %s, %s, %s)
            ON CONFLICT (project_id, number) DO UPDATE SET state = EXCLUDED.state,
                title = EXCLUDED.title, severity = EXCLUDED.severity,
                revenue_impact_per_day = EXCLUDED.revenue_impact_per_day,
                assignee = EXCLUDED.assignee, opened_at = EXCLUDED.opened_at,
                closed_at = EXCLUDED.closed_at
            """,
            (
                ids[repo],
                number,
                "closed" if closed else "open",
                title,
                severity,
                Decimal(impact),
                assignee,
                opened,
                opened + timedelta(days=2) if closed else None,
            ),
        )
    counts["issues"] = len(issues)

    # The nightly scorer's rows for two projects; the others get a computed status.
    for repo, score, status, reasons in (
        ("acme/data-pipeline", 92, "healthy", ["all checks green"]),
        ("acme/mobile-app", 68, "warning", ["1 high-severity crash open 5 days"]),
    ):
        conn.execute(
            """
            INSERT INTO analytics.project_health (project_id, health_date, score, status, reasons)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (project_id, health_date) DO UPDATE SET score = EXCLUDED.score,
                status = EXCLUDED.status, reasons = EXCLUDED.reasons
            """,
            (ids[repo], end_day, score, status, jsonb(reasons)),
        )
    counts["project_health"] = 2

    if job_runs:
        n = 0
        rng = random.Random(f"jobs:{seed}:{end_day}")
        for day in week:
            for dag_id, task_id, base in (
                ("analytics_nightly", "run_checks", 40.0),
                ("analytics_nightly", "capture_snapshot", 25.0),
                ("inventory_refresh", "refresh_client", 90.0),
            ):
                started = datetime.combine(day, time(10), tzinfo=UTC)
                failed = dag_id == "inventory_refresh" and day == week[2]
                slow = dag_id == "analytics_nightly" and task_id == "run_checks" and day == week[5]
                duration = 420.0 if slow else base * rng.uniform(0.8, 1.2)
                conn.execute(
                    """
                    INSERT INTO ops.job_runs (dag_id, task_id, run_id, run_type, status,
                        started_at, finished_at, duration_seconds, last_error)
                    VALUES (%s, %s, %s, 'scheduled', %s, %s, %s, %s, %s)
                    ON CONFLICT ON CONSTRAINT job_runs_attempt_key DO NOTHING
                    """,
                    (
                        dag_id,
                        task_id,
                        f"scheduled__{day.isoformat()}T10:00:00+00:00",
                        "failed" if failed else "completed",
                        started,
                        started + timedelta(seconds=duration),
                        duration,
                        "HTTP 503 from inventory API for client-007" if failed else None,
                    ),
                )
                n += 1
        counts["job_runs"] = n
    return counts
