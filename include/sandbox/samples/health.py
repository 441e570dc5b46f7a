"""A small, deterministic, made-up week of history for the health page (tests and benchmarks only:
``make up`` shows real runs).

``insert_sample_history(conn, now)`` writes job runs, ledger lines, job health rows, alerts, a
sampling proof, a snapshot, PostHog events, dead letters and inventory results around ``now``,
with one of each problem the page must surface: a late job (``analytics_nightly``), a failed run
with its message, an open critical alert, waiting dead letters, failing inventory clients.
It appends; call it on empty tables.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg

LATE_JOB = "analytics_nightly"
CRITICAL_ALERT_TITLE = "analytics_nightly missed its 03:30 PT deadline"
FAILURE_MESSAGE = "PostHog query failed: HTTP 503 from /api/projects/1/query/"


def _run(
    rows: list,
    dag_id: str,
    task_id: str,
    run_id: str,
    start: datetime,
    seconds: float | None,
    status: str,
    *,
    try_number: int = 1,
    last_error: str | None = None,
    stats: dict | None = None,
    map_index: int = -1,
) -> None:
    finished = start + timedelta(seconds=seconds) if seconds is not None else None
    rows.append(
        (
            dag_id,
            task_id,
            run_id,
            map_index,
            try_number,
            "scheduled",
            status,
            start,
            finished,
            seconds,
            last_error,
            json.dumps(stats or {}),
        )
    )


def insert_sample_history(conn: psycopg.Connection, now: datetime) -> dict[str, Any]:
    """Insert the scenario; returns a few facts the tests compare the page against."""
    jr: list = []
    # analytics_hourly: every hour for 8 days; two tasks. The run 5 h ago failed for good
    # (3 attempts), the run 10 h ago failed once and succeeded on retry.
    hour0 = now.replace(minute=5, second=0, microsecond=0)
    if hour0 > now:
        hour0 -= timedelta(hours=1)
    for h in range(0, 8 * 24):
        start = hour0 - timedelta(hours=h)
        run_id = f"scheduled__{start:%Y-%m-%dT%H}"
        stats = {
            "posthog_api_calls": 4,
            "posthog_api_errors": 0,
            "posthog_rate_limit_hits": 1 if h % 6 == 0 else 0,
        }
        if h == 5:
            for t in (1, 2, 3):
                _run(
                    jr,
                    "analytics_hourly",
                    "ingest_events",
                    run_id,
                    start + timedelta(minutes=3 * (t - 1)),
                    20,
                    "failed",
                    try_number=t,
                    last_error=FAILURE_MESSAGE,
                    stats={
                        "posthog_api_calls": 2,
                        "posthog_api_errors": 2,
                        "posthog_rate_limit_hits": 2,
                    },
                )
            continue
        if h == 10:
            _run(
                jr,
                "analytics_hourly",
                "ingest_events",
                run_id,
                start,
                15,
                "failed",
                last_error="timeout reading PostHog page",
                stats={
                    "posthog_api_calls": 1,
                    "posthog_api_errors": 1,
                    "posthog_rate_limit_hits": "3",
                },
            )
            _run(
                jr,
                "analytics_hourly",
                "ingest_events",
                run_id,
                start + timedelta(minutes=2),
                40,
                "completed",
                try_number=2,
                stats=stats,
            )
        else:
            _run(
                jr, "analytics_hourly", "ingest_events", run_id, start, 40, "completed", stats=stats
            )
        _run(
            jr,
            "analytics_hourly",
            "roll_up_stats",
            run_id,
            start + timedelta(minutes=4),
            25,
            "completed",
        )

    # analytics_nightly: daily at 10:00 UTC, but the last two days never ran (late).
    day0 = now.replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=2)
    if day0 > now - timedelta(days=2):
        day0 -= timedelta(days=1)
    for d in range(0, 9):
        start = day0 - timedelta(days=d)
        run_id = f"scheduled__{start:%Y-%m-%d}"
        slow = d == 3
        _run(jr, LATE_JOB, "check_freshness", run_id, start, 30, "completed")
        _run(
            jr,
            LATE_JOB,
            "capture_snapshot",
            run_id,
            start + timedelta(minutes=1),
            1900 if slow else 600,
            "completed",
        )

    # inventory_refresh: every 2 h; the last run is partial (2 of 6 failed).
    two0 = now.replace(minute=0, second=0, microsecond=0) - timedelta(minutes=50)
    inv_rows = []
    for k in range(0, 12):
        start = two0 - timedelta(hours=2 * k)
        run_id = f"scheduled__inv{k}"
        status = "partial" if k == 0 else "completed"
        _run(
            jr,
            "inventory_refresh",
            "summarize_refresh",
            run_id,
            start,
            90,
            status,
            last_error="2 failed out of 6" if k == 0 else None,
        )
        for c in range(3):
            for platform in ("shopify", "amazon"):
                failed = k <= 1 and c == 2  # client c3 failed in the last two runs
                inv_rows.append(
                    (
                        run_id,
                        f"c{c + 1}",
                        platform,
                        "failed" if failed else "success",
                        502 if failed else 200,
                        None if failed else 100 * (c + 1),
                        "HTTP 502 from inventory endpoint" if failed else None,
                        start + timedelta(seconds=30 + c),
                    )
                )

    # cron_ledger: every 30 min, one attempt running since 3 h ago (stuck).
    for m in range(0, 2 * 24 * 7):
        start = now - timedelta(minutes=30 * m + 7)
        status = "running" if m == 6 else "completed"
        _run(
            jr,
            "cron_ledger",
            "evaluate_health",
            f"scheduled__ledger{m}",
            start,
            None if status == "running" else 12,
            status,
        )

    with conn.cursor() as cur:
        with cur.copy(
            "COPY ops.job_runs (dag_id, task_id, run_id, map_index, try_number, run_type, status,"
            " started_at, finished_at, duration_seconds, last_error, stats) FROM STDIN"
        ) as copy:
            for row in jr:
                copy.write_row(row)
        cur.executemany(
            "INSERT INTO analytics.inventory_refresh_results (run_id, client_id, platform, status,"
            " http_status, skus, error, refreshed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            inv_rows,
        )

        # Ledger: a legacy job every 10 min for 7 days; every 12th line exits 1.
        ledger = []
        for i in range(0, 6 * 24 * 7):
            ts = now - timedelta(minutes=10 * i + 3)
            code = 1 if i % 12 == 5 else 0
            msg = "Authentication failed - invalid credentials" if code else f"ok {i}"
            ledger.append(("ladder", "order_check", ts, code, msg))
        cur.executemany(
            "INSERT INTO ops.ledger_entries (source, job, ts, exit_code, message)"
            " VALUES (%s, %s, %s, %s, %s)",
            ledger,
        )

        # Job health as the cron_ledger evaluation would write it (when the table exists).
        cur.execute("SELECT to_regclass('ops.job_health') IS NOT NULL")
        if cur.fetchone()[0]:
            health = [
                (
                    "dag:analytics_hourly",
                    "dag",
                    "up",
                    now - timedelta(hours=4),
                    now - timedelta(minutes=50),
                    now + timedelta(minutes=10),
                    "on schedule",
                    {"source": "ops.job_runs"},
                ),
                (
                    f"dag:{LATE_JOB}",
                    "dag",
                    "late",
                    day0 + timedelta(days=1, minutes=90),
                    day0,
                    day0 + timedelta(days=1),
                    "no successful run since the 10:00 UTC tick + 90 min",
                    {"source": "ops.job_runs"},
                ),
                (
                    "dag:inventory_refresh",
                    "dag",
                    "up",
                    now - timedelta(days=3),
                    two0,
                    two0 + timedelta(hours=2),
                    "on schedule",
                    {"source": "ops.job_runs"},
                ),
                (
                    "dag:cron_ledger",
                    "dag",
                    "stuck",
                    now - timedelta(hours=1),
                    now - timedelta(minutes=7),
                    now + timedelta(minutes=3),
                    "evaluate_health running for 3 h",
                    {"source": "ops.job_runs"},
                ),
                (
                    "ledger:order_check",
                    "ledger",
                    "up",
                    now - timedelta(days=1),
                    now - timedelta(minutes=3),
                    now + timedelta(minutes=7),
                    "on schedule",
                    {"source": "ops.ledger_entries"},
                ),
                (
                    "artifact:sampling_proof",
                    "artifact",
                    "late",
                    day0 + timedelta(days=1, minutes=90),
                    day0 + timedelta(minutes=5),
                    day0 + timedelta(days=1, minutes=90),
                    "no sampling proof for the day before yesterday's run",
                    {},
                ),
            ]
            cur.executemany(
                "INSERT INTO ops.job_health (job_key, kind, state, since, last_success,"
                " next_expected, reason, details, last_run, evaluated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(*h[:7], json.dumps(h[7]), h[4], now) for h in health],
            )

        alerts = [
            (
                "deadline:analytics_nightly",
                "critical",
                "deadline",
                CRITICAL_ALERT_TITLE,
                "open",
                LATE_JOB,
                now - timedelta(days=1, hours=6),
                now - timedelta(minutes=20),
                3,
            ),
            (
                "task_failed:analytics_hourly:ingest_events",
                "warning",
                "task_failure",
                "analytics_hourly.ingest_events failed",
                "open",
                "analytics_hourly",
                now - timedelta(hours=5),
                now - timedelta(hours=4, minutes=50),
                1,
            ),
            (
                "inventory_failed:c3",
                "warning",
                "inventory_refresh",
                "inventory refresh failing for c3",
                "open",
                "inventory_refresh",
                now - timedelta(hours=3),
                now,
                2,
            ),
            (
                "ledger_exit:ladder",
                "info",
                "ledger",
                "ladder exited 1",
                "open",
                None,
                now - timedelta(hours=2),
                now - timedelta(hours=2),
                1,
            ),
            (
                "old:resolved",
                "critical",
                "deadline",
                "old incident",
                "resolved",
                LATE_JOB,
                now - timedelta(days=6),
                now - timedelta(days=6),
                1,
            ),
        ]
        cur.executemany(
            "INSERT INTO ops.alerts (dedup_key, severity, source, title, state, dag_id,"
            " first_seen, last_seen, count) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            alerts,
        )

        cur.execute(
            "INSERT INTO analytics.sampling_proofs (target_date, status, anomalies, created_at)"
            " VALUES (%s, 'warning', %s, %s)",
            (
                (day0 - timedelta(days=1)).date(),
                json.dumps([{"check": "revenue_range", "explanation": "revenue 38% below range"}]),
                day0 + timedelta(minutes=5),
            ),
        )
        cur.execute(
            "INSERT INTO analytics.dashboard_snapshots (snapshot_date, status, errors, created_at)"
            " VALUES (%s, 'partial', %s, %s)",
            (
                (day0 - timedelta(days=1)).date(),
                json.dumps([{"category": "idea_pool", "error": "ideas table unavailable"}]),
                day0 + timedelta(minutes=12),
            ),
        )

        # PostHog: 40 events per clock hour for the last 48 h except an empty hour 30 h ago.
        events = []
        for h in range(0, 48):
            if h == 30:
                continue
            for e in range(40):
                created = now.replace(minute=0, second=0, microsecond=0) - timedelta(
                    hours=h, seconds=-90 * e
                )
                if created > now:
                    continue
                events.append(
                    (
                        str(uuid.uuid5(uuid.NAMESPACE_URL, f"ev-{h}-{e}")),
                        "$pageview",
                        f"u{e}",
                        created,
                        created,
                    )
                )
        with cur.copy(
            'COPY analytics.posthog_events (uuid, event, distinct_id, "timestamp", created_at)'
            " FROM STDIN"
        ) as copy:
            for row in events:
                copy.write_row(row)
        cur.execute(
            "INSERT INTO ops.watermarks (stream, complete_until) VALUES ('posthog', %s)"
            " ON CONFLICT (stream) DO UPDATE SET complete_until = EXCLUDED.complete_until",
            (now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1),),
        )
        for i in range(4):
            cur.execute(
                "INSERT INTO ops.dead_letters (stream, fingerprint, reason, payload, first_seen,"
                " resolved_at) VALUES ('posthog', %s, 'malformed: missing uuid', %s, %s, %s)",
                (
                    f"fp{i}",
                    json.dumps({"i": i}),
                    now - timedelta(hours=i + 1),
                    now if i == 3 else None,
                ),
            )
    return {
        "late_job": LATE_JOB,
        "critical_alert_title": CRITICAL_ALERT_TITLE,
        "failure_message": FAILURE_MESSAGE,
        "job_runs": len(jr),
    }
