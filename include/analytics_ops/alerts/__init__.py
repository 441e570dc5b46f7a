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
  exists (``SlackWebhookHook``'s form: webhook URL in its password, or host + token path); email
  when ``smtp_default`` exists and ``ALERT_EMAILS`` (default: ``REPORT_EMAILS``) names
  recipients. Each channel's answer is stored in ``ops.alerts.channels`` and in a ``notified``
  row of ``ops.alert_events``.

Settings (Airflow Variable > env > default): ``ALERT_CHANNELS`` (``log,slack,email``),
``ALERT_MIN_SEVERITY`` (``warning``: info alerts are recorded and logged only),
``ALERT_REMINDER_SECONDS`` (``14400``), ``ALERT_EMAILS``, ``EMAIL_FROM``,
``ALERT_CHANNEL_TIMEOUT_SECONDS`` (``10``), ``ALERT_DELIVERY_RETRIES`` (``3``).

Where each part lives: ``state`` (raise/resolve, de-duplication, the ``ops.alerts`` state
machine), ``holds`` (silences, flapping, reminders and retries), ``delivery`` (sending one
notification and recording the answers), ``channels`` (log, Slack, email), ``messages`` (the
message and its escaping), ``settings``. Import the public names from here.
"""

from include.analytics_ops.alerts.channels import (
    SLACK_CONN_ID,
    SMTP_CONN_ID,
    Channel,
    ChannelError,
    EmailChannel,
    LogChannel,
    SlackWebhookChannel,
    configured_channels,
    connection_fields,
    deliver,
)
from include.analytics_ops.alerts.holds import send_due_reminders
from include.analytics_ops.alerts.messages import AlertMessage, header_text, log_text, slack_escape
from include.analytics_ops.alerts.settings import SEVERITIES, flap_settings, reminder_interval
from include.analytics_ops.alerts.state import (
    NOTIFY_TRANSITIONS,
    AlertOutcome,
    open_alerts,
    raise_alert,
    recent_alerts,
    resolve_alert,
    resolve_alerts_like,
)

__all__ = [
    "NOTIFY_TRANSITIONS",
    "SEVERITIES",
    "SLACK_CONN_ID",
    "SMTP_CONN_ID",
    "AlertMessage",
    "AlertOutcome",
    "Channel",
    "ChannelError",
    "EmailChannel",
    "LogChannel",
    "SlackWebhookChannel",
    "configured_channels",
    "connection_fields",
    "deliver",
    "flap_settings",
    "header_text",
    "log_text",
    "open_alerts",
    "raise_alert",
    "recent_alerts",
    "reminder_interval",
    "resolve_alert",
    "resolve_alerts_like",
    "send_due_reminders",
    "slack_escape",
]
