"""Where alerts are sent: the log, Slack and email channels, built from settings and the
connections that exist, and ``deliver`` that tries each one."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Protocol

from include.analytics_ops.alerts.messages import (
    AlertMessage,
    header_text,
    log_text,
    slack_escape,
    slack_link,
)
from include.analytics_ops.config import setting
from include.analytics_ops.connections import connection_fields

log = logging.getLogger(__name__)
SLACK_CONN_ID = "alerts_slack"
SMTP_CONN_ID = "smtp_default"


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
    """Slack incoming webhook through the provider's ``SlackWebhookHook`` (its connection form:
    the webhook URL in the password, or host + token path; ``proxy``/``timeout`` extras; retries
    on connection errors and on 429 after Slack's Retry-After). Every dynamic text is escaped
    (``slack_escape``); the only link is the trusted Airflow one, appended after it."""

    name = "slack"

    def __init__(self, conn_id: str = SLACK_CONN_ID, timeout: float = 10.0) -> None:
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
        from slack_sdk.http_retry import all_builtin_retry_handlers

        self.hook = SlackWebhookHook(
            slack_webhook_conn_id=conn_id,
            timeout=timeout,  # type: ignore[arg-type]  # a float: urllib takes one
            retry_handlers=all_builtin_retry_handlers(),
        )

    def send(self, message: AlertMessage) -> dict[str, Any]:
        text = "\n".join(slack_escape(line) for line in message.lines(with_url=False))
        if message.url:
            text += "\n" + slack_link(message.url, "Open in Airflow")
        response = self.hook.get_conn().send_dict({"text": text})
        if response.status_code >= 300:
            raise ChannelError(
                f"HTTP {response.status_code}: {response.body[:200]}", status=response.status_code
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


def configured_channels() -> list[Channel]:
    """The channels to notify, from settings and the connections that exist."""
    wanted = [c.lower() for c in setting("ALERT_CHANNELS", ["log", "slack", "email"])]
    timeout = setting("ALERT_CHANNEL_TIMEOUT_SECONDS", 10.0)
    channels: list[Channel] = [LogChannel()]  # always
    if "slack" in wanted and connection_fields(SLACK_CONN_ID) is not None:
        from airflow.sdk.exceptions import AirflowNotFoundException

        slack = SlackWebhookChannel(SLACK_CONN_ID, timeout=timeout)
        try:
            slack.hook.get_conn()  # the webhook URL from the connection
            channels.append(slack)
        except AirflowNotFoundException as exc:
            log.warning("no Slack channel: %s", exc)
    if "email" in wanted:
        fields = connection_fields(SMTP_CONN_ID)
        recipients = setting("ALERT_EMAILS", []) or setting("REPORT_EMAILS", [])
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
                or setting("EMAIL_FROM", "")
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
