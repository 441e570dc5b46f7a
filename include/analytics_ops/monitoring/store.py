"""Persistence of job health (``ops.job_health`` + ``ops.job_health_history``) and the queries
the health page reads."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import psycopg

from include.analytics_ops.monitoring.health import HealthState
from include.analytics_ops.store import dict_rows, jsonb


def previous_states(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    cur = conn.execute(
        "SELECT job_key, kind, state, since, details, evaluated_at FROM ops.job_health"
    )
    names = [d.name for d in cur.description]
    return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def save_states(
    conn: psycopg.Connection,
    states: Iterable[HealthState],
    now: datetime,
    previous: dict[str, dict[str, Any]],
    *,
    source: str | None = None,
) -> list[tuple[str | None, HealthState]]:
    """Upsert the current states; add a history row for each change. Returns the flips as
    ``(previous state or None, new state)``."""
    flips = []
    for st in states:
        prev = previous.get(st.job_key)
        prev_state = prev["state"] if prev else None
        changed = prev_state != st.state
        since = now if changed else prev["since"]
        details = dict(st.details)
        details["first_seen"] = (
            (prev["details"] or {}).get("first_seen") if prev else None
        ) or now.isoformat()
        run_source = details.get("source", source)
        conn.execute(
            """
            INSERT INTO ops.job_health (job_key, kind, state, since, last_success, last_run,
                                        next_expected, reason, source, details, evaluated_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (job_key) DO UPDATE
               SET kind = EXCLUDED.kind, state = EXCLUDED.state, since = EXCLUDED.since,
                   last_success = EXCLUDED.last_success, last_run = EXCLUDED.last_run,
                   next_expected = EXCLUDED.next_expected, reason = EXCLUDED.reason,
                   source = EXCLUDED.source, details = EXCLUDED.details,
                   evaluated_at = EXCLUDED.evaluated_at
            """,
            (
                st.job_key,
                st.kind,
                st.state,
                since,
                st.last_success,
                st.last_run,
                st.next_expected,
                st.reason,
                run_source,
                jsonb(details),
                now,
            ),
        )
        if changed:
            conn.execute(
                "INSERT INTO ops.job_health_history (job_key, kind, from_state, to_state, reason,"
                " details, changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (st.job_key, st.kind, prev_state, st.state, st.reason, jsonb(details), now),
            )
            flips.append((prev_state, st))
    return flips


def job_states(conn: psycopg.Connection, kind: str | None = None) -> list[dict[str, Any]]:
    """Every monitored job's current state (health page): problems first, then by key."""
    return dict_rows(
        conn,
        """
        SELECT job_key, kind, state, since, last_success, last_run, next_expected, reason,
               source, details, evaluated_at
          FROM ops.job_health WHERE (%s::text IS NULL OR kind = %s)
         ORDER BY CASE state WHEN 'down' THEN 0 WHEN 'stuck' THEN 1 WHEN 'late' THEN 2
                             WHEN 'unknown' THEN 3 WHEN 'paused' THEN 4 ELSE 5 END, job_key
        """,
        (kind, kind),
    )


def job_health_history(
    conn: psycopg.Connection, job_key: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """State changes, newest first (one job or all)."""
    return dict_rows(
        conn,
        """
        SELECT id, job_key, kind, from_state, to_state, reason, changed_at
          FROM ops.job_health_history WHERE (%s::text IS NULL OR job_key = %s)
         ORDER BY changed_at DESC, id DESC LIMIT %s
        """,
        (job_key, job_key, limit),
    )
