"""The one alert path: every alert (task/DAG failures, checks, monitors, deadlines, the ledger)
goes through ``raise_alert`` / ``resolve_alert``.

What it guarantees, so the team can trust it at 3 AM:

- **Recorded first.** The alert row (``ops.alerts``, de-duplicated by ``dedup_key``) and its
  transition (``ops.alert_events``) are written before any channel is tried; a channel that fails
  never loses the alert.
- **Flip-based.** Channels are told only about news: ``opened``, ``reopened``, ``escalated``
  (severity went up while open) and ``resolved`` (the recovery message, sent only for alerts that
  were notified). The same condition seen again is ``repeated``: counted, not sent.
- **Reminders.** A still-open *critical* alert is re-sent every ``ALERT_REMINDER_SECONDS``
  (default 4 h) — when it is raised again, or by ``send_due_reminders`` (``cron_ledger`` calls it
  every 5 minutes), which also retries channels whose last delivery failed.
- **Silences (maintenance windows).** ``include.analytics_ops.silences``: while a silence
  matches an alert's key, the alert is recorded and logged but the channels are not told; the
  held-back news is delivered by ``send_due_reminders`` once the silence is over, if it is still
  news (an alert that opened and resolved inside the window sends nothing).
- **Flap detection.** An alert that opens and resolves ``ALERT_FLAP_CHANGES`` (5) times within
  ``ALERT_FLAP_WINDOW_SECONDS`` (3600) sends one ``[FLAPPING]`` message; its further opens,
  resolves and reminders are paused until it has had no change for a whole window, and then its
  settled state (still open / resolved) is sent once.
- **Channels from configuration.** Always the log; Slack when the ``alerts_slack`` connection
  exists (incoming-webhook URL in its password, or in its host); email when ``smtp_default``
  exists and ``ALERT_EMAILS`` (default: ``REPORT_EMAILS``) names recipients. Each channel's answer
  is stored in ``ops.alerts.channels`` and in a ``notified`` row of ``ops.alert_events``.

Settings (Airflow Variable > env > default): ``ALERT_CHANNELS`` (``log,slack,email``),
``ALERT_MIN_SEVERITY`` (``warning``: info alerts are recorded and logged only),
``ALERT_REMINDER_SECONDS`` (``14400``), ``ALERT_EMAILS``, ``EMAIL_FROM``,
``ALERT_CHANNEL_TIMEOUT_SECONDS`` (``10``), ``ALERT_DELIVERY_RETRIES`` (``3``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import psycopg

from include.analytics_ops.silences import SILENCED_SQL, active_silence
from include.analytics_ops.store import jsonb

log = logging.getLogger(__name__)
SEVERITIES = ("info", "warning", "critical")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}
NOTIFY_TRANSITIONS = frozenset({"opened", "reopened", "escalated"})
SLACK_CONN_ID = "alerts_slack"
SMTP_CONN_ID = "smtp_default"


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


# --------------------------------------------------------------------------- settings
def _setting(name: str, default: Any, cast: type | None = None) -> Any:
    from include.analytics_ops.config import setting

    return setting(name, default, cast)


def reminder_interval() -> timedelta:
    return timedelta(seconds=float(_setting("ALERT_REMINDER_SECONDS", 4 * 3600, float)))


def flap_settings() -> tuple[int, timedelta]:
    """(state changes, window): that many opens/resolves within the window is flapping; 0 = off."""
    changes = int(_setting("ALERT_FLAP_CHANGES", 5, int))
    window = timedelta(seconds=float(_setting("ALERT_FLAP_WINDOW_SECONDS", 3600, float)))
    return changes, window


def _min_severity() -> str:
    value = str(_setting("ALERT_MIN_SEVERITY", "warning")).strip().lower()
    return value if value in _RANK else "warning"


# --------------------------------------------------------------------------- escaping
# Titles and bodies carry upstream text (ledger messages, exception texts, API errors): each sink
# gets it through exactly one helper that makes it inert there.
_MAX_SUBJECT_CHARS = 250


def header_text(text: str) -> str:
    """Mail header text (the subject): one line. CR, LF and every other control or line-separator
    character becomes a space (``EmailMessage`` refuses a newline, and a header must never gain a
    second line); runs of blanks collapse; long text is cut with an ellipsis."""
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    if len(cleaned) > _MAX_SUBJECT_CHARS:
        cleaned = cleaned[: _MAX_SUBJECT_CHARS - 1] + "…"
    return cleaned


def log_text(text: str) -> str:
    """Log text that cannot forge a log line: line breaks and control characters are shown as
    escapes (``\\n``)."""
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def slack_escape(text: str) -> str:
    """Slack mrkdwn: ``&``, ``<`` and ``>`` as entities (Slack's own rule), so upstream text can
    never become a mention (``<!channel>``), a user reference or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(url: str, label: str) -> str:
    """A trusted link in mrkdwn; characters that would end the link (``|``, ``>``, blanks) are
    percent-encoded. Anything but http(s) is shown as text, not linked."""
    if not url.startswith(("http://", "https://")):
        return slack_escape(f"{label}: {url}")
    safe = quote(url, safe=":/?#[]@!$&'()*+,;=%~")
    return f"<{slack_escape(safe)}|{label}>"


# --------------------------------------------------------------------------- messages
@dataclass(frozen=True)
class AlertMessage:
    """What a channel sends: everything a person needs without opening another tool first."""

    kind: str  # opened | reopened | escalated | reminder | resolved | retry | flapping
    dedup_key: str
    severity: str
    source: str
    title: str
    body: str = ""
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    url: str | None = None
    count: int = 1
    first_seen: datetime | None = None

    @property
    def headline(self) -> str:
        if self.kind == "resolved":
            return f"[RESOLVED] {self.title}"
        prefix = {"reminder": "REMINDER ", "escalated": "ESCALATED ", "flapping": "FLAPPING "}.get(
            self.kind, ""
        )
        return f"[{prefix}{self.severity.upper()}] {self.title}"

    def lines(self, *, with_url: bool = True) -> list[str]:
        out = [self.headline]
        if self.body:
            out.append(self.body)
        where = [
            f"{label}: {value}"
            for label, value in (("DAG", self.dag_id), ("run", self.run_id), ("task", self.task_id))
            if value
        ]
        if where:
            out.append(" | ".join(where))
        facts = [f"source: {self.source}", f"key: {self.dedup_key}"]
        if self.count > 1:
            facts.append(f"seen {self.count}x")
        if self.first_seen is not None:
            facts.append(f"since {self.first_seen.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
        out.append(" | ".join(facts))
        if self.url and with_url:
            out.append(f"Airflow: {self.url}")
        return out

    def text(self) -> str:
        return "\n".join(self.lines())


# --------------------------------------------------------------------------- channels
class Channel(Protocol):
    name: str

    def send(self, message: AlertMessage) -> dict[str, Any]:
        """Deliver; return details of the answer (e.g. HTTP status). Raise on failure."""


class LogChannel:
    name = "log"

    def send(self, message: AlertMessage) -> dict[str, Any]:
        level = logging.INFO if message.kind == "resolved" else logging.WARNING
        log.log(level, "ALERT NOTIFY %s", log_text(" || ".join(message.lines())))
        return {}


class SlackWebhookChannel:
    """Slack incoming webhook: a plain JSON POST of ``{"text": ...}``. Every dynamic text is
    escaped (``slack_escape``); the only link is the trusted Airflow one, appended after it."""

    name = "slack"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout

    def send(self, message: AlertMessage) -> dict[str, Any]:
        import httpx

        text = "\n".join(slack_escape(line) for line in message.lines(with_url=False))
        if message.url:
            text += "\n" + _slack_link(message.url, "Open in Airflow")
        response = httpx.post(self.url, json={"text": text}, timeout=self.timeout)
        if response.status_code >= 300:
            raise ChannelError(
                f"HTTP {response.status_code}: {response.text[:200]}", status=response.status_code
            )
        return {"status": response.status_code}


class EmailChannel:
    """Plain-text mail through the ``smtp_default`` server, over the package's one SMTP client
    (``reports.email.smtp_session``): TLS before login — implicit TLS, or STARTTLS that the
    server must offer — unless the connection explicitly disables both."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        *,
        login: str | None = None,
        password: str | None = None,
        use_ssl: bool = False,
        starttls: bool = True,
        timeout: float = 10.0,
    ) -> None:
        from include.analytics_ops.reports.email import SmtpSettings

        self.settings = SmtpSettings(
            host=host,
            port=port,
            login=login or None,
            password=password or None,
            use_ssl=use_ssl,
            starttls=starttls and not use_ssl,
            timeout=timeout,
        )
        self.sender = sender
        self.recipients = list(recipients)

    @property
    def use_ssl(self) -> bool:
        return self.settings.use_ssl

    @property
    def starttls(self) -> bool:
        return self.settings.starttls

    def send(self, message: AlertMessage) -> dict[str, Any]:
        from include.analytics_ops.reports.email import smtp_session

        mail = EmailMessage()
        mail["Subject"] = header_text(message.headline)
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.recipients)
        mail.set_content(message.text() + "\n\n-- analytics-ops alert path\n")
        with smtp_session(self.settings) as client:
            refused = client.send_message(mail)
        if refused:
            raise ChannelError(f"recipients refused: {sorted(refused)}")
        return {"recipients": len(self.recipients)}


class ChannelError(RuntimeError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def connection_fields(conn_id: str) -> dict[str, Any] | None:
    """An Airflow connection's fields, or None when it is not defined.

    ``AIRFLOW_CONN_<ID>`` (JSON or URI) is read directly so the path works in tasks, the
    triggerer, CLIs and tests alike; otherwise Airflow's own lookup (UI, secrets backends).
    """
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if raw:
        raw = raw.strip()
        if raw.startswith("{"):
            data = json.loads(raw)
            extra = data.get("extra") or {}
            data["extra"] = json.loads(extra) if isinstance(extra, str) and extra else extra or {}
            return data
        parts = urlsplit(raw)
        return {
            "conn_type": parts.scheme,
            "host": parts.hostname,
            "port": parts.port,
            "login": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "schema": parts.path.lstrip("/") or None,
            "extra": dict(parse_qsl(parts.query)),
        }
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:
        return None
    return {
        "conn_type": conn.conn_type,
        "host": conn.host,
        "port": conn.port,
        "login": conn.login,
        "password": conn.password,
        "schema": conn.schema,
        "extra": conn.extra_dejson,
    }


def _slack_url(fields: Mapping[str, Any]) -> str | None:
    password = (fields.get("password") or "").strip()
    host = (fields.get("host") or "").strip()
    if password.startswith(("http://", "https://")):
        return password
    if host.startswith(("http://", "https://")):
        return host.rstrip("/") + (f"/{password.lstrip('/')}" if password else "")
    if host and password:  # Slack provider style: host + webhook token path
        return f"https://{host.rstrip('/')}/{password.lstrip('/')}"
    return None


def configured_channels() -> list[Channel]:
    """The channels to notify, from settings and the connections that exist."""
    wanted = [
        c.strip().lower() for c in str(_setting("ALERT_CHANNELS", "log,slack,email")).split(",")
    ]
    timeout = float(_setting("ALERT_CHANNEL_TIMEOUT_SECONDS", 10.0, float))
    channels: list[Channel] = [LogChannel()]  # always
    if "slack" in wanted:
        fields = connection_fields(SLACK_CONN_ID)
        url = _slack_url(fields) if fields else None
        if url:
            channels.append(SlackWebhookChannel(url, timeout=timeout))
        elif fields:
            log.warning("connection %s has no webhook URL (password or host)", SLACK_CONN_ID)
    if "email" in wanted:
        fields = connection_fields(SMTP_CONN_ID)
        recipients = [
            r.strip()
            for r in str(_setting("ALERT_EMAILS", "") or _setting("REPORT_EMAILS", "")).split(",")
            if r.strip()
        ]
        if fields and fields.get("host") and recipients:
            from include.analytics_ops.reports.email import SmtpSettings

            extra = fields.get("extra") or {}
            smtp = SmtpSettings.from_fields(
                host=fields["host"],
                port=fields.get("port"),
                login=fields.get("login"),
                password=fields.get("password"),
                extra=extra,
                timeout=timeout,
            )
            sender = (
                smtp.from_email
                or _setting("EMAIL_FROM", "")
                or fields.get("login")
                or "analytics-ops@localhost"
            )
            channels.append(
                EmailChannel(
                    smtp.host,
                    smtp.port,
                    str(sender),
                    recipients,
                    login=smtp.login,
                    password=smtp.password,
                    use_ssl=smtp.use_ssl,
                    starttls=smtp.starttls,
                    timeout=smtp.timeout,
                )
            )
        elif fields and not recipients:
            log.warning("smtp_default is set but ALERT_EMAILS/REPORT_EMAILS names no recipient")
    return channels


def deliver(
    message: AlertMessage, channels: Sequence[Channel] | None = None
) -> dict[str, dict[str, Any]]:
    """Send to every channel; one failing channel never stops the others."""
    results: dict[str, dict[str, Any]] = {}
    now = datetime.now(UTC).isoformat()
    for channel in configured_channels() if channels is None else channels:
        try:
            info = channel.send(message) or {}
            results[channel.name] = {"ok": True, "at": now, "kind": message.kind, **info}
        except Exception as exc:  # a channel's failure is data, not a crash
            result: dict[str, Any] = {
                "ok": False,
                "at": now,
                "kind": message.kind,
                "error": f"{type(exc).__name__}: {exc}"[:500],
            }
            if getattr(exc, "status", None):
                result["status"] = exc.status  # type: ignore[attr-defined]
            results[channel.name] = result
            log.error(
                "alert channel %s failed for %s: %s",
                channel.name, log_text(message.dedup_key), log_text(str(exc)),
            )  # fmt: skip
    return results


# --------------------------------------------------------------------------- the alert path
_ALERT_COLUMNS = (
    "id, dedup_key, severity, source, title, body, dag_id, run_id, task_id, url, count,"
    " first_seen, state, last_notified_at, notify_count, channels, held_kind, flapping_since"
)


def _message(row: Mapping[str, Any], kind: str) -> AlertMessage:
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


def _fetch(conn: psycopg.Connection, alert_id: int) -> dict[str, Any]:
    cur = conn.execute(f"SELECT {_ALERT_COLUMNS} FROM ops.alerts WHERE id = %s", (alert_id,))
    names = [d.name for d in cur.description]
    return dict(zip(names, cur.fetchone(), strict=True))


def _notify(
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
    results = deliver(_message(alert, kind), chosen)
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
    elif _RANK[severity] > _RANK.get(previous_severity, 0):
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
    if notify and _RANK[severity] >= _RANK[_min_severity()]:
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
    alert = _fetch(conn, alert_id)
    if alert["held_kind"] in NOTIFY_TRANSITIONS and kind == "reminder":
        kind = alert["held_kind"]
    deliveries, silenced_by, flapping = _dispatch(
        conn, alert, kind, channels, event_id=event_id if kind != "reminder" else None,
        change=transition in ("opened", "reopened"),
    )  # fmt: skip
    return AlertOutcome(
        alert_id, dedup_key, transition, severity, count, deliveries,
        silenced_by=silenced_by, flapping=flapping,
    )  # fmt: skip


def _dispatch(
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
        _annotate_event(conn, event_id, {"flapping": {"since": alert["flapping_since"]}})
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
            return _notify(conn, alert, "flapping", channels, event_id=event_id), None, True
    return _notify(conn, alert, kind, channels, event_id=event_id), None, False


def _changes_within(conn: psycopg.Connection, alert_id: int, window: timedelta) -> int:
    """Opens and resolves of the alert within the last ``window`` (flap detection)."""
    return conn.execute(
        "SELECT count(*) FROM ops.alert_events WHERE alert_id = %s"
        " AND kind IN ('opened', 'reopened', 'resolved') AND occurred_at > now() - %s",
        (alert_id, window),
    ).fetchone()[0]


def _annotate_event(conn: psycopg.Connection, event_id: int | None, note: dict[str, Any]) -> None:
    """Say on the transition's event row why nothing was sent."""
    if event_id is not None:
        conn.execute(
            "UPDATE ops.alert_events SET channels = %s WHERE id = %s", (jsonb(note), event_id)
        )


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
    _annotate_event(conn, event_id, {"silenced": note})
    log.info(
        "ALERT %s %s held back by silence #%s (%s) until %s",
        kind, alert["dedup_key"], silence["id"], silence["reason"], silence["ends_at"],
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
        alert = _fetch(conn, row[0])
        if note:
            alert["body"] = note
        deliveries, silenced_by, flapping = _dispatch(
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


def send_due_reminders(
    conn: psycopg.Connection, channels: Sequence[Channel] | None = None
) -> dict[str, int]:
    """Deliver what ended silences held back, re-send still-open critical alerts whose reminder
    is due (not while silenced), and retry the channels that failed on an open alert's last
    delivery (at most ``ALERT_DELIVERY_RETRIES`` times)."""
    interval = reminder_interval()
    retries = int(_setting("ALERT_DELIVERY_RETRIES", 3, int))
    min_rank = _RANK[_min_severity()]
    sent = {"released": 0, "reminders": 0, "retries": 0}
    _, flap_window = flap_settings()
    held = conn.execute(
        "SELECT a.id FROM ops.alerts a"
        f" WHERE (a.held_kind IS NOT NULL OR a.flapping_since IS NOT NULL) AND NOT {SILENCED_SQL}"
        " ORDER BY a.id"
    ).fetchall()
    for (alert_id,) in held:
        alert = _fetch(conn, alert_id)
        if alert["flapping_since"] is not None:
            if _release_flapping(conn, alert, flap_window, channels):
                sent["released"] += 1
            continue
        kind = alert["held_kind"]
        still_news = (kind == "resolved") == (alert["state"] == "resolved")
        if still_news and _RANK[alert["severity"]] >= min_rank:
            _notify(conn, alert, kind, channels, event_kind="released")
            sent["released"] += 1
        else:
            conn.execute("UPDATE ops.alerts SET held_kind = NULL WHERE id = %s", (alert_id,))
    due = conn.execute(
        "SELECT a.id FROM ops.alerts a WHERE a.state = 'open' AND a.severity = 'critical'"
        " AND a.last_notified_at IS NOT NULL AND a.last_notified_at <= now() - %s"
        f" AND a.flapping_since IS NULL AND NOT {SILENCED_SQL} ORDER BY a.id",
        (interval,),
    ).fetchall()
    if _RANK["critical"] >= min_rank:
        for (alert_id,) in due:
            _notify(conn, _fetch(conn, alert_id), "reminder", channels)
            sent["reminders"] += 1
    failing = conn.execute(
        "SELECT id FROM ops.alerts WHERE state = 'open' AND delivery_failed ORDER BY id"
    ).fetchall()
    for (alert_id,) in failing:
        alert = _fetch(conn, alert_id)
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
        _notify(conn, alert, "retry", channels, only=failed)
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
    if _RANK[alert["severity"]] < _RANK[_min_severity()]:
        conn.execute("UPDATE ops.alerts SET held_kind = NULL WHERE id = %s", (alert["id"],))
        return False
    _notify(conn, alert, "resolved" if resolved else "reopened", channels, event_kind="released")
    return True


# --------------------------------------------------------------------------- queries
def open_alerts(conn: psycopg.Connection, limit: int = 200) -> list[dict[str, Any]]:
    """Open alerts, most severe and most recent first (health page, demo)."""
    cur = conn.execute(
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
    names = [d.name for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def recent_alerts(
    conn: psycopg.Connection, since: datetime | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Alerts (open or resolved) last seen since ``since``, newest first."""
    cur = conn.execute(
        """
        SELECT id, dedup_key, severity, state, source, title, body, dag_id, run_id, task_id,
               url, count, first_seen, last_seen, resolved_at, channels
          FROM ops.alerts WHERE (%s::timestamptz IS NULL OR last_seen >= %s)
         ORDER BY last_seen DESC LIMIT %s
        """,
        (since, since, limit),
    )
    names = [d.name for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
