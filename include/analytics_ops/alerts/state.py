"""The ``ops.alerts`` state machine: ``raise_alert`` / ``resolve_alert`` record and de-duplicate
an alert by its key, decide which transition is news, and read open and recent alerts."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from include.analytics_ops.alerts.channels import Channel
from include.analytics_ops.alerts.delivery import fetch_alert
from include.analytics_ops.alerts.holds import dispatch
from include.analytics_ops.alerts.messages import log_text
from include.analytics_ops.alerts.settings import RANK, SEVERITIES, min_severity, reminder_interval
from include.analytics_ops.silences import active_silence
from include.analytics_ops.store import dict_rows, jsonb

log = logging.getLogger(__name__)
NOTIFY_TRANSITIONS = frozenset({"opened", "reopened", "escalated"})


@dataclass(frozen=True)
class AlertOutcome:
    alert_id: int
    dedup_key: str
    transition: str  # 'opened' | 'reopened' | 'escalated' | 'repeated' | 'resolved'
    severity: str
    count: int
    # What each channel answered when this call notified ({} when nothing was sent).
    deliveries: Mapping[str, Any] = field(default_factory=dict)
    # The silence that held this call's notification back (None: not silenced).
    silenced_by: int | None = None
    # The alert is flapping: this call's news was paused (or announced the flapping).
    flapping: bool = False

    @property
    def notified(self) -> bool:
        return bool(self.deliveries)


def raise_alert(
    conn: psycopg.Connection,
    dedup_key: str,
    severity: str,
    source: str,
    title: str,
    body: str = "",
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    url: str | None = None,
    details: Mapping[str, Any] | None = None,
    notify: bool = True,
    channels: Sequence[Channel] | None = None,
) -> AlertOutcome:
    """Open (or re-open) the alert ``dedup_key``; an alert already open is counted, not duplicated.

    Returns the transition: 'opened'/'reopened'/'escalated' are news and are sent to the
    channels; 'repeated' (the same open condition seen again) is only counted — unless the alert
    is critical and its reminder is due, then it is re-sent as a reminder. ``notify=False``
    records without sending; ``channels`` overrides the configured channels (tests, demo).
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    row = conn.execute(
        """
        INSERT INTO ops.alerts AS a (dedup_key, severity, source, title, body, dag_id, run_id,
                                     task_id, url, details)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (dedup_key) DO UPDATE
           SET severity = EXCLUDED.severity, title = EXCLUDED.title, body = EXCLUDED.body,
               source = EXCLUDED.source,
               dag_id = EXCLUDED.dag_id, run_id = EXCLUDED.run_id, task_id = EXCLUDED.task_id,
               url = EXCLUDED.url, details = EXCLUDED.details, last_seen = now(),
               count = CASE WHEN a.state = 'open' THEN a.count + 1 ELSE 1 END,
               first_seen = CASE WHEN a.state = 'open' THEN a.first_seen ELSE now() END,
               notify_count = CASE WHEN a.state = 'open' THEN a.notify_count ELSE 0 END,
               resolved_at = NULL, state = 'open'
        RETURNING id, count, (xmax = 0) AS inserted,
                  (SELECT state FROM ops.alerts WHERE dedup_key = %s) AS previous_state,
                  (SELECT severity FROM ops.alerts WHERE dedup_key = %s) AS previous_severity,
                  (SELECT last_notified_at FROM ops.alerts WHERE dedup_key = %s) AS last_notified
        """,
        (
            dedup_key,
            severity,
            source,
            title,
            body,
            dag_id,
            run_id,
            task_id,
            url,
            jsonb(dict(details or {})),
            dedup_key,
            dedup_key,
            dedup_key,
        ),
    ).fetchone()
    alert_id, count, inserted, previous_state, previous_severity, last_notified = row
    if inserted:
        transition = "opened"
    elif previous_state != "open":
        transition = "reopened"
    elif RANK[severity] > RANK.get(previous_severity, 0):
        transition = "escalated"
    else:
        transition = "repeated"
    event_id = conn.execute(
        "INSERT INTO ops.alert_events (alert_id, kind, severity, message)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (alert_id, transition, severity, title),
    ).fetchone()[0]
    level = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}[severity]
    log.log(
        level,
        "ALERT %s [%s] %s: %s %s",
        transition,
        severity,
        log_text(dedup_key),
        log_text(title),
        f"- {log_text(body)}" if body else "",
    )
    kind: str | None = None
    if notify and RANK[severity] >= RANK[min_severity()]:
        if transition in NOTIFY_TRANSITIONS:
            kind = transition
        elif (
            transition == "repeated"
            and severity == "critical"
            and (last_notified is None or datetime.now(UTC) - last_notified >= reminder_interval())
        ):
            kind = "reminder"
    if kind is None:
        return AlertOutcome(alert_id, dedup_key, transition, severity, count)
    # news a silence held back and not yet delivered goes out now, as itself
    alert = fetch_alert(conn, alert_id)
    if alert["held_kind"] in NOTIFY_TRANSITIONS and kind == "reminder":
        kind = alert["held_kind"]
    deliveries, silenced_by, flapping = dispatch(
        conn, alert, kind, channels, event_id=event_id if kind != "reminder" else None,
        change=transition in ("opened", "reopened"),
    )  # fmt: skip
    return AlertOutcome(
        alert_id, dedup_key, transition, severity, count, deliveries,
        silenced_by=silenced_by, flapping=flapping,
    )  # fmt: skip


def resolve_alert(
    conn: psycopg.Connection,
    dedup_key: str,
    note: str = "",
    *,
    notify: bool = True,
    channels: Sequence[Channel] | None = None,
) -> AlertOutcome | None:
    """Resolve an open alert; returns None when there was nothing open under that key.

    A recovery message goes to the channels when the alert had been notified."""
    row = conn.execute(
        """
        UPDATE ops.alerts SET state = 'resolved', resolved_at = now(), last_seen = now()
         WHERE dedup_key = %s AND state = 'open'
        RETURNING id, severity, count, last_notified_at
        """,
        (dedup_key,),
    ).fetchone()
    if row is None:
        return None
    event_id = conn.execute(
        "INSERT INTO ops.alert_events (alert_id, kind, severity, message)"
        " VALUES (%s, 'resolved', %s, %s) RETURNING id",
        (row[0], row[1], note or "resolved"),
    ).fetchone()[0]
    log.info("ALERT resolved %s %s", log_text(dedup_key), log_text(note))
    if notify and row[3] is not None:  # a recovery only for what the channels were told
        alert = fetch_alert(conn, row[0])
        if note:
            alert["body"] = note
        deliveries, silenced_by, flapping = dispatch(
            conn, alert, "resolved", channels, event_id=event_id, change=True
        )
        return AlertOutcome(
            row[0], dedup_key, "resolved", row[1], row[2], deliveries,
            silenced_by=silenced_by, flapping=flapping,
        )  # fmt: skip
    # never told (or held back before it was): nothing to recover from
    conn.execute("UPDATE ops.alerts SET held_kind = NULL WHERE id = %s", (row[0],))
    silence = active_silence(conn, dedup_key) if notify else None
    return AlertOutcome(
        row[0],
        dedup_key,
        "resolved",
        row[1],
        row[2],
        silenced_by=silence["id"] if silence else None,
    )


def resolve_alerts_like(
    conn: psycopg.Connection,
    key_prefix: str,
    note: str = "",
    *,
    seen_before: datetime | None = None,
    channels: Sequence[Channel] | None = None,
) -> list[AlertOutcome]:
    """Resolve every open alert whose key starts with ``key_prefix`` (last seen before
    ``seen_before`` when given) — e.g. a DAG's task failures once a later run succeeded."""
    keys = [
        r[0]
        for r in conn.execute(
            "SELECT dedup_key FROM ops.alerts WHERE state = 'open' AND starts_with(dedup_key, %s)"
            " AND (%s::timestamptz IS NULL OR last_seen < %s) ORDER BY id",
            (key_prefix, seen_before, seen_before),
        )
    ]
    out = []
    for key in keys:
        outcome = resolve_alert(conn, key, note, channels=channels)
        if outcome is not None:
            out.append(outcome)
    return out


# --------------------------------------------------------------------------- queries
def open_alerts(conn: psycopg.Connection, limit: int = 200) -> list[dict[str, Any]]:
    """Open alerts, most severe and most recent first (health page, demo)."""
    return dict_rows(
        conn,
        """
        SELECT id, dedup_key, severity, source, title, body, dag_id, run_id, task_id, url,
               count, first_seen, last_seen, last_notified_at, channels
          FROM ops.alerts WHERE state = 'open'
         ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                  last_seen DESC
         LIMIT %s
        """,
        (limit,),
    )


def recent_alerts(
    conn: psycopg.Connection, since: datetime | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Alerts (open or resolved) last seen since ``since``, newest first."""
    return dict_rows(
        conn,
        """
        SELECT id, dedup_key, severity, state, source, title, body, dag_id, run_id, task_id,
               url, count, first_seen, last_seen, resolved_at, channels
          FROM ops.alerts WHERE (%s::timestamptz IS NULL OR last_seen >= %s)
         ORDER BY last_seen DESC LIMIT %s
        """,
        (since, since, limit),
    )
