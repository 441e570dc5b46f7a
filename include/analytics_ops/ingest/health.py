"""The fail-safe plan's health rules for the PostHog ingest, as queries over ``ops.job_runs``.

Each function takes a connection and returns plain rows/dicts that the health page and alert rules
can use. ``now`` defaults to the database clock (pass one in tests). The rules:

- ``stuck_runs``: attempts still ``running`` after 2 h (a killed worker leaves such a row);
- ``failed_runs``: attempts that ``failed``/``timeout`` in the last 24 h;
- ``missing_runs``: no completed window in the last 2 h (the hourly schedule stopped);
- ``error_rate``: per day, share of failed attempts (and dead-lettered share of events);
- ``rate_limit_hits``: attempts that hit PostHog's 429 throttle, with totals.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from include.analytics_ops.ingest import DAG_ID, INGEST_TASK_ID

_RUN_COLS = (
    "id",
    "dag_id",
    "task_id",
    "run_id",
    "try_number",
    "status",
    "window_start",
    "window_end",
    "started_at",
    "finished_at",
    "records_in",
    "records_out",
    "error_count",
    "last_error",
)
_SELECT_RUNS = "SELECT " + ", ".join(_RUN_COLS) + " FROM ops.job_runs"


def _rows(cur) -> list[dict[str, Any]]:
    cols = [d.name for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def stuck_runs(
    conn: psycopg.Connection,
    *,
    older_than: timedelta = timedelta(hours=2),
    dag_id: str = DAG_ID,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    cur = conn.execute(
        _SELECT_RUNS + " WHERE dag_id = %s AND status = 'running'"
        " AND started_at < COALESCE(%s, now()) - %s ORDER BY started_at",
        (dag_id, now, older_than),
    )
    return _rows(cur)


def failed_runs(
    conn: psycopg.Connection,
    *,
    within: timedelta = timedelta(hours=24),
    dag_id: str = DAG_ID,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    cur = conn.execute(
        _SELECT_RUNS + " WHERE dag_id = %s AND status IN ('failed', 'timeout')"
        " AND started_at > COALESCE(%s, now()) - %s ORDER BY started_at DESC",
        (dag_id, now, within),
    )
    return _rows(cur)


def missing_runs(
    conn: psycopg.Connection,
    *,
    within: timedelta = timedelta(hours=2),
    dag_id: str = DAG_ID,
    task_id: str = INGEST_TASK_ID,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``missing`` is True when no ingest attempt completed (or completed with dead letters,
    ``partial``) within ``within``."""
    row = conn.execute(
        """
        SELECT max(finished_at), max(window_end), COALESCE(%s, now())
          FROM ops.job_runs
         WHERE dag_id = %s AND task_id = %s AND status IN ('completed', 'partial')
        """,
        (now, dag_id, task_id),
    ).fetchone()
    last, last_window_end, current = row
    since = (current - last) if last else None
    return {
        "last_completed_at": last,
        "last_window_end": last_window_end,
        "seconds_since": since.total_seconds() if since is not None else None,
        "missing": last is None or since > within,
    }


def error_rate(
    conn: psycopg.Connection,
    *,
    days: int = 7,
    dag_id: str = DAG_ID,
    task_id: str = INGEST_TASK_ID,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    cur = conn.execute(
        """
        SELECT started_at::date AS day,
               count(*) AS total_runs,
               count(*) FILTER (WHERE status IN ('failed', 'timeout')) AS failed_runs,
               round(100.0 * count(*) FILTER (WHERE status IN ('failed', 'timeout'))
                     / count(*), 2) AS error_rate_percent,
               COALESCE(sum(records_in), 0) AS events_fetched,
               COALESCE(sum(error_count), 0) AS events_dead_lettered,
               round(100.0 * COALESCE(sum(error_count), 0)
                     / NULLIF(sum(records_in), 0), 3) AS dead_letter_percent
          FROM ops.job_runs
         WHERE dag_id = %s AND task_id = %s AND started_at > COALESCE(%s, now()) - %s
         GROUP BY 1 ORDER BY 1 DESC
        """,
        (dag_id, task_id, now, timedelta(days=days)),
    )
    return _rows(cur)


def rate_limit_hits(
    conn: psycopg.Connection,
    *,
    within: timedelta = timedelta(hours=24),
    dag_id: str = DAG_ID,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Attempts whose stats show 429s (``posthog_rate_limit_hits`` > 0), and the totals."""
    cur = conn.execute(
        """
        SELECT id, run_id, try_number, status, window_start, started_at,
               (stats ->> 'posthog_rate_limit_hits')::int AS rate_limit_hits,
               (stats ->> 'posthog_api_calls')::int AS api_calls,
               (stats ->> 'posthog_api_errors')::int AS api_errors,
               (stats ->> 'posthog_wait_seconds')::float AS wait_seconds
          FROM ops.job_runs
         WHERE dag_id = %s AND started_at > COALESCE(%s, now()) - %s
           AND COALESCE((stats ->> 'posthog_rate_limit_hits')::int, 0) > 0
         ORDER BY started_at DESC
        """,
        (dag_id, now, within),
    )
    runs = _rows(cur)
    return {
        "runs": runs,
        "total_hits": sum(r["rate_limit_hits"] or 0 for r in runs),
        "total_api_calls": sum(r["api_calls"] or 0 for r in runs),
    }


def health_summary(conn: psycopg.Connection, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything above in one dict, with ``ok`` False when any rule fires."""
    stuck = stuck_runs(conn, now=now)
    failed = failed_runs(conn, now=now)
    missing = missing_runs(conn, now=now)
    limits = rate_limit_hits(conn, now=now)
    return {
        "ok": not stuck and not failed and not missing["missing"],
        "stuck_runs": stuck,
        "failed_runs": failed,
        "missing": missing,
        "error_rate": error_rate(conn, now=now),
        "rate_limits": limits,
    }
