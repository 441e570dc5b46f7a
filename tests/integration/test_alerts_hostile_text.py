"""Upstream text in alerts (issue 15): a ledger job with a newline still gets its email, Slack
mrkdwn in titles and bodies stays text, logs cannot be forged, and alert mail never logs in over
plaintext unless the connection explicitly allows it."""

from __future__ import annotations

import json
import logging
import smtplib
from datetime import UTC, datetime

import pytest

from include.analytics_ops import alerts, callbacks
from include.analytics_ops.ledger import collect
from tests.integration.receivers import alert_row
from tests.integration.test_weekly_email import PASSWORD, USER, SmtpReceiver


def test_a_newline_in_a_ledger_job_does_not_block_the_alert_email(db, receivers, tmp_path):
    path = tmp_path / "ladder.jsonl"
    entry = {"ts": "2026-11-20T08:00:00Z", "exit": 2, "msg": "boom",
             "job": "backup\nBcc: attacker@evil.test"}  # fmt: skip
    path.write_text(json.dumps(entry) + "\n")
    result = collect(db, str(path))  # the configured channels: Slack + email on loopback
    (outcome,) = result.alerts
    assert outcome.deliveries["email"]["ok"] is True, outcome.deliveries
    ((rcpts, mail),) = receivers.box.messages
    assert sorted(rcpts) == ["cto@example.com", "oncall@example.com"]  # no Bcc smuggled in
    assert mail["Subject"] == "[WARNING] cron job backup Bcc: attacker@evil.test exited 2"
    assert mail["Bcc"] is None
    assert alert_row(db, outcome.dedup_key)["delivery_failed"] is False


def test_slack_text_is_escaped_and_the_only_link_is_the_trusted_one(db, receivers):
    url = callbacks.airflow_ui_url("cron_ledger", "manual__2026-11-20T08:00:00+00:00")
    alerts.raise_alert(
        db, "ledger_failed:x", "critical", "ledger",
        "cron job <!channel> exited 1",
        "msg: <https://evil.test/login|Open in Airflow> & <@U123> <!here>",
        url=url,
    )  # fmt: skip
    (text,) = receivers.hook.texts()
    assert "<!channel>" not in text and "<!here>" not in text and "<@U123>" not in text
    assert "&lt;!channel&gt;" in text
    assert "&lt;https://evil.test/login|Open in Airflow&gt; &amp; &lt;@U123&gt;" in text
    links = [part.split(">", 1)[0] for part in text.split("<")[1:]]
    assert links == [f"{url}|Open in Airflow"]  # one real link, the trusted one, at the end
    assert text.endswith(f"<{url}|Open in Airflow>")


def test_a_link_that_would_break_out_of_slack_syntax_is_encoded(db, receivers):
    alerts.raise_alert(db, "k", "warning", "test", "t", url="https://airflow.test/a|b>c d")
    (text,) = receivers.hook.texts()
    assert text.endswith("<https://airflow.test/a%7Cb%3Ec%20d|Open in Airflow>")


def test_alert_text_cannot_forge_log_lines(db, caplog):
    caplog.set_level(logging.INFO, logger="include.analytics_ops.alerts")
    alerts.raise_alert(
        db, "k\nALERT resolved everything", "warning", "test",
        "title\r\nALERT resolved k", "body\nline 2\u2028line 3", channels=[alerts.LogChannel()],
    )  # fmt: skip
    messages = [r.getMessage() for r in caplog.records]
    assert messages and all("\n" not in m and "\r" not in m and "\u2028" not in m for m in messages)
    assert any("title\\r\\nALERT resolved k" in m for m in messages)


@pytest.fixture
def mail_without_starttls():
    """An SMTP server that offers AUTH but no STARTTLS (as after an attacker strips it)."""
    with SmtpReceiver() as rx:
        yield rx


def channel_for(rx, monkeypatch, **extra) -> alerts.EmailChannel:
    """The alert mail channel exactly as ``smtp_default`` configures it."""
    conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": rx.port, "login": USER,
            "password": PASSWORD, "extra": extra}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("ALERT_EMAILS", "oncall@example.com")
    monkeypatch.setenv("ALERT_CHANNELS", "email")
    (_, channel) = alerts.configured_channels()
    return channel


def message() -> alerts.AlertMessage:
    return alerts.AlertMessage("opened", "k", "critical", "test", "title",
                               first_seen=datetime(2026, 11, 20, tzinfo=UTC))  # fmt: skip


def test_alert_mail_never_logs_in_over_plaintext(mail_without_starttls, monkeypatch):
    rx = mail_without_starttls
    channel = channel_for(
        rx, monkeypatch, disable_ssl=True
    )  # TLS not disabled: STARTTLS is required
    with pytest.raises(smtplib.SMTPNotSupportedError):
        channel.send(message())
    assert rx.logins == [] and rx.messages == []
    # through the alert path the refusal is the channel's answer, the alert is kept
    results = alerts.deliver(message(), [channel])
    assert results["email"]["ok"] is False and "STARTTLS" in results["email"]["error"]
    assert rx.logins == []


def test_plain_smtp_only_when_the_connection_disables_tls_explicitly(
    mail_without_starttls, monkeypatch
):
    rx = mail_without_starttls
    channel = channel_for(rx, monkeypatch, disable_ssl=True, disable_tls=True)
    assert channel.send(message()) == {"recipients": 1}
    assert rx.logins == [USER] and len(rx.messages) == 1
