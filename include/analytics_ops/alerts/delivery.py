"""One notification about a stored alert: build its message, deliver it and record what each
channel answered (``ops.alerts.channels``, ``ops.alert_events``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from include.analytics_ops.alerts.channels import Channel, configured_channels, deliver
from include.analytics_ops.alerts.messages import AlertMessage
from include.analytics_ops.store import dict_rows, jsonb

ALERT_COLUMNS = (
    "id, dedup_key, severity, source, title, body, dag_id, run_id, task_id, url, count,"
    " first_seen, state, last_notified_at, notify_count, channels, held_kind, flapping_since"
)


def message_for(row: Mapping[str, Any], kind: str) -> AlertMessage:
    return AlertMessage(
        kind=kind,
        dedup_key=row["dedup_key"],
        severity=row["severity"],
        source=row["source"],
        title=row["title"],
        body=row["body"] or "",
        dag_id=row["dag_id"],
        run_id=row["run_id"],
        task_id=row["task_id"],
        url=row["url"],
        count=row["count"],
        first_seen=row["first_seen"],
    )


def fetch_alert(conn: psycopg.Connection, alert_id: int) -> dict[str, Any]:
    return dict_rows(conn, f"SELECT {ALERT_COLUMNS} FROM ops.alerts WHERE id = %s", (alert_id,))[0]


def notify(
    conn: psycopg.Connection,
    alert: Mapping[str, Any],
    kind: str,
    channels: Sequence[Channel] | None = None,
    *,
    only: set[str] | None = None,
    event_id: int | None = None,
    event_kind: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Deliver and store what each channel answered: merged into ``ops.alerts.channels`` and on
    the transition's ``ops.alert_events`` row (``event_id``), or on a new ``reminder``/``retry``
    event row."""
    chosen = configured_channels() if channels is None else list(channels)
    if only is not None:
        chosen = [c for c in chosen if c.name in only]
    results = deliver(message_for(alert, kind), chosen)
    merged = dict(alert.get("channels") or {})
    merged.update(results)
    failed = any(not r.get("ok") for r in merged.values())
    conn.execute(
        """
        UPDATE ops.alerts
           SET channels = %s, last_notified_at = now(), delivery_failed = %s, held_kind = NULL,
               notify_count = CASE WHEN %s THEN notify_count ELSE notify_count + 1 END
         WHERE id = %s
        """,
        (jsonb(merged), failed, kind == "retry", alert["id"]),
    )
    if event_id is not None:
        conn.execute(
            "UPDATE ops.alert_events SET channels = %s WHERE id = %s", (jsonb(results), event_id)
        )
    else:
        conn.execute(
            "INSERT INTO ops.alert_events (alert_id, kind, severity, message, channels)"
            " VALUES (%s, %s, %s, %s, %s)",
            (alert["id"], event_kind or kind, alert["severity"], alert["title"], jsonb(results)),
        )
    return results


def annotate_event(conn: psycopg.Connection, event_id: int | None, note: dict[str, Any]) -> None:
    """Say on the transition's event row why nothing was sent."""
    if event_id is not None:
        conn.execute(
            "UPDATE ops.alert_events SET channels = %s WHERE id = %s", (jsonb(note), event_id)
        )
