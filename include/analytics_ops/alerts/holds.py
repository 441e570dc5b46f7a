"""What holds a notification back and sends it later: silences (maintenance windows), flap
detection, and ``send_due_reminders`` (released news, reminders, channel retries)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import psycopg

from include.analytics_ops.alerts.channels import Channel
from include.analytics_ops.alerts.delivery import annotate_event, fetch_alert, notify
from include.analytics_ops.alerts.messages import log_text
from include.analytics_ops.alerts.settings import (
    RANK,
    flap_settings,
    min_severity,
    reminder_interval,
)
from include.analytics_ops.config import setting
from include.analytics_ops.silences import SILENCED_SQL, active_silence

log = logging.getLogger(__name__)


def dispatch(
    conn: psycopg.Connection,
    alert: dict[str, Any],
    kind: str,
    channels: Sequence[Channel] | None,
    *,
    event_id: int | None,
    change: bool,
) -> tuple[dict[str, Any], int | None, bool]:
    """Send ``kind`` about ``alert`` — unless a silence or flapping holds it back.

    Returns (what the channels answered, the silence that held it, whether it is flapping)."""
    silence = active_silence(conn, alert["dedup_key"])
    if silence is not None:
        _hold(conn, alert, kind, event_id, silence)
        return {}, silence["id"], alert["flapping_since"] is not None
    if alert["flapping_since"] is not None:
        # the settled state is sent when it is stable again (_release_flapping)
        held = "resolved" if alert["state"] == "resolved" else "reopened"
        conn.execute("UPDATE ops.alerts SET held_kind = %s WHERE id = %s", (held, alert["id"]))
        annotate_event(conn, event_id, {"flapping": {"since": alert["flapping_since"]}})
        return {}, None, True
    changes, window = flap_settings()
    if change and changes > 0:
        seen = _changes_within(conn, alert["id"], window)
        if seen >= changes:
            conn.execute(
                "UPDATE ops.alerts SET flapping_since = now() WHERE id = %s", (alert["id"],)
            )
            minutes = round(window.total_seconds() / 60)
            alert = {**alert, "body": (
                f"{seen} opens/resolves in {minutes} min (now {alert['state']}); notifications of"
                f" this alert are paused until it is stable for {minutes} min."
                + (f" Last: {alert['body']}" if alert["body"] else "")
            )}  # fmt: skip
            key = log_text(alert["dedup_key"])
            log.warning("ALERT %s is flapping (%s changes in %s)", key, seen, window)
            return notify(conn, alert, "flapping", channels, event_id=event_id), None, True
    return notify(conn, alert, kind, channels, event_id=event_id), None, False


def _changes_within(conn: psycopg.Connection, alert_id: int, window: timedelta) -> int:
    """Opens and resolves of the alert within the last ``window`` (flap detection)."""
    return conn.execute(
        "SELECT count(*) FROM ops.alert_events WHERE alert_id = %s"
        " AND kind IN ('opened', 'reopened', 'resolved') AND occurred_at > now() - %s",
        (alert_id, window),
    ).fetchone()[0]


def _hold(
    conn: psycopg.Connection,
    alert: Mapping[str, Any],
    kind: str,
    event_id: int | None,
    silence: Mapping[str, Any],
) -> None:
    """Keep the notification ``kind`` for after the silence; record why on the event row."""
    if kind == "reminder":
        held = alert["held_kind"]  # a reminder waits for the silence's end on its own
    elif kind == "resolved":
        # the channels last heard 'open' only if they were ever told
        held = "resolved" if alert["last_notified_at"] is not None else None
    elif alert["held_kind"] == "resolved":
        held = None  # resolved and reopened inside the window: the channels' picture is right
    else:
        held = alert["held_kind"] or kind  # the first held news says it best
        if alert["last_notified_at"] is None:
            held = "opened"  # never announced: whatever happened since, it is news as 'opened'
    conn.execute("UPDATE ops.alerts SET held_kind = %s WHERE id = %s", (held, alert["id"]))
    note = {
        "silence_id": silence["id"],
        "pattern": silence["pattern"],
        "until": silence["ends_at"],
        "reason": silence["reason"],
        "held": held,
    }
    annotate_event(conn, event_id, {"silenced": note})
    log.info(
        "ALERT %s %s held back by silence #%s (%s) until %s",
        kind, alert["dedup_key"], silence["id"], silence["reason"], silence["ends_at"],
    )  # fmt: skip


def send_due_reminders(
    conn: psycopg.Connection, channels: Sequence[Channel] | None = None
) -> dict[str, int]:
    """Deliver what ended silences held back, re-send still-open critical alerts whose reminder
    is due (not while silenced), and retry the channels that failed on an open alert's last
    delivery (at most ``ALERT_DELIVERY_RETRIES`` times)."""
    interval = reminder_interval()
    retries = setting("ALERT_DELIVERY_RETRIES", 3)
    min_rank = RANK[min_severity()]
    sent = {"released": 0, "reminders": 0, "retries": 0}
    _, flap_window = flap_settings()
    held = conn.execute(
        "SELECT a.id FROM ops.alerts a"
        f" WHERE (a.held_kind IS NOT NULL OR a.flapping_since IS NOT NULL) AND NOT {SILENCED_SQL}"
        " ORDER BY a.id"
    ).fetchall()
    for (alert_id,) in held:
        alert = fetch_alert(conn, alert_id)
        if alert["flapping_since"] is not None:
            if _release_flapping(conn, alert, flap_window, channels):
                sent["released"] += 1
            continue
        kind = alert["held_kind"]
        still_news = (kind == "resolved") == (alert["state"] == "resolved")
        if still_news and RANK[alert["severity"]] >= min_rank:
            notify(conn, alert, kind, channels, event_kind="released")
            sent["released"] += 1
        else:
            conn.execute("UPDATE ops.alerts SET held_kind = NULL WHERE id = %s", (alert_id,))
    due = conn.execute(
        "SELECT a.id FROM ops.alerts a WHERE a.state = 'open' AND a.severity = 'critical'"
        " AND a.last_notified_at IS NOT NULL AND a.last_notified_at <= now() - %s"
        f" AND a.flapping_since IS NULL AND NOT {SILENCED_SQL} ORDER BY a.id",
        (interval,),
    ).fetchall()
    if RANK["critical"] >= min_rank:
        for (alert_id,) in due:
            notify(conn, fetch_alert(conn, alert_id), "reminder", channels)
            sent["reminders"] += 1
    failing = conn.execute(
        "SELECT id FROM ops.alerts WHERE state = 'open' AND delivery_failed ORDER BY id"
    ).fetchall()
    for (alert_id,) in failing:
        alert = fetch_alert(conn, alert_id)
        attempts = conn.execute(
            """
            SELECT count(*) FROM ops.alert_events
             WHERE alert_id = %s AND kind = 'retry'
               AND id > COALESCE((SELECT max(id) FROM ops.alert_events
                                   WHERE alert_id = %s
                                     AND kind IN ('opened', 'reopened', 'escalated', 'reminder',
                                                  'released')),
                                 0)
            """,
            (alert_id, alert_id),
        ).fetchone()[0]
        if attempts >= retries:
            continue
        failed = {name for name, r in (alert["channels"] or {}).items() if not r.get("ok")}
        notify(conn, alert, "retry", channels, only=failed)
        sent["retries"] += 1
    return sent


def _release_flapping(
    conn: psycopg.Connection,
    alert: dict[str, Any],
    window: timedelta,
    channels: Sequence[Channel] | None,
) -> bool:
    """End the flapping of ``alert`` once it had no open/resolve for a whole window, and send
    its settled state once. False while it is still flapping."""
    if _changes_within(conn, alert["id"], window):
        return False
    conn.execute("UPDATE ops.alerts SET flapping_since = NULL WHERE id = %s", (alert["id"],))
    resolved = alert["state"] == "resolved"
    minutes = round(window.total_seconds() / 60)
    settled = "resolved" if resolved else "still open"
    alert = {**alert, "body": f"No longer flapping (no change for {minutes} min): {settled}."
             + (f" {alert['body']}" if alert["body"] else "")}  # fmt: skip
    if RANK[alert["severity"]] < RANK[min_severity()]:
        conn.execute("UPDATE ops.alerts SET held_kind = NULL WHERE id = %s", (alert["id"],))
        return False
    notify(conn, alert, "resolved" if resolved else "reopened", channels, event_kind="released")
    return True
