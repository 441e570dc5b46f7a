"""``make demo`` steps for ``analytics_hourly``: a few windows right after the preloaded history.

The sample data is a legacy import of ``daily_metrics`` through the demo day, so the ingest era
starts at the end of that PT day: the watermark is set there and the next windows are ingested.
"""

from __future__ import annotations

from datetime import UTC, timedelta

import psycopg

from include.analytics_ops import store
from include.analytics_ops.dates import pt_date, pt_day_bounds
from include.sandbox.constants import DEMO_DAY

ERA_START = pt_day_bounds(DEMO_DAY)[1]  # 2026-11-21T08:00Z: end of the demo day in PT
ENV = {"POSTHOG_INGEST_START": ERA_START.strftime("%Y-%m-%dT%H:%M:%SZ")}


def when(hour: int) -> str:
    """Trigger time of the run ingesting window ``hour`` after the era start ([h, h+1))."""
    return (ERA_START + timedelta(hours=hour + 1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def prepare(conn: psycopg.Connection, env) -> None:
    if store.read_watermark(conn, "posthog") is None:
        store.advance_watermark(conn, "posthog", ERA_START)


def summarize(conn: psycopg.Connection, env) -> list[str]:
    lines = []
    row = conn.execute(
        "SELECT window_start, status, records_in, records_out, error_count, stats"
        " FROM ops.job_runs WHERE dag_id = 'analytics_hourly' AND task_id = 'ingest_events'"
        " ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if row:
        start, status, fetched, loaded, dead, stats = row
        lines.append(
            f"window {start:%Y-%m-%d %H:%M}Z: {status}, fetched {fetched}, loaded {loaded},"
            f" dead-lettered {dead}, API calls {stats.get('posthog_api_calls', '?')},"
            f" rate-limit hits {stats.get('posthog_rate_limit_hits', 0)}"
        )
    total = conn.execute("SELECT count(*) FROM analytics.posthog_events").fetchone()[0]
    mark = store.read_watermark(conn, "posthog")
    lines.append(
        f"analytics.posthog_events: {total} rows; posthog watermark complete_until"
        f" {mark.astimezone(UTC):%Y-%m-%d %H:%M}Z"
        if mark
        else "no watermark"
    )
    day = pt_date(ERA_START + timedelta(hours=1))
    traffic = conn.execute(
        "SELECT sessions, orders, conversions, revenue FROM analytics.daily_metrics"
        " WHERE metric_date = %s",
        (day,),
    ).fetchone()
    if traffic:
        lines.append(
            f"daily_metrics {day} so far (ingest era): sessions {traffic[0]}, orders"
            f" {traffic[1]}, conversions {traffic[2]}, revenue {traffic[3]}"
        )
    risk = conn.execute(
        "SELECT revenue_at_risk, unassigned_critical, critical_in_breach"
        " FROM analytics.bug_risk_snapshots ORDER BY snapshot_hour DESC LIMIT 1"
    ).fetchone()
    if risk:
        lines.append(
            f"bug risk: ${risk[0]:,.0f}/day at risk, {risk[1]} unassigned critical,"
            f" {risk[2]} critical past SLA"
        )
        for key, state in conn.execute(
            "SELECT dedup_key, state FROM ops.alerts WHERE source = 'bug_risk' ORDER BY dedup_key"
        ):
            lines.append(f"  alert {key}: {state}")
    return lines
