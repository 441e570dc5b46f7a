"""Alert message content and channel configuration parsing (no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from include.analytics_ops import alerts


def test_message_carries_what_failed_where_and_the_link():
    msg = alerts.AlertMessage(
        kind="opened", dedup_key="task_failed:d:t", severity="critical", source="task_failure",
        title="d.t failed", body="ValueError: bad", dag_id="d", run_id="manual__1", task_id="t",
        url="http://airflow/dags/d/runs/manual__1/tasks/t", count=2,
        first_seen=datetime(2026, 11, 21, 10, 5, tzinfo=UTC),
    )  # fmt: skip
    assert msg.lines() == [
        "[CRITICAL] d.t failed",
        "ValueError: bad",
        "DAG: d | run: manual__1 | task: t",
        "source: task_failure | key: task_failed:d:t | seen 2x | since 2026-11-21 10:05 UTC",
        "Airflow: http://airflow/dags/d/runs/manual__1/tasks/t",
    ]
    assert alerts.AlertMessage("resolved", "k", "warning", "s", "x").headline == "[RESOLVED] x"
    assert alerts.AlertMessage("reminder", "k", "critical", "s", "x").headline == (
        "[REMINDER CRITICAL] x"
    )


def test_slack_webhook_url_from_the_connection_fields(monkeypatch):
    """The provider's ``slackwebhook`` connection form (``SlackWebhookHook`` builds the URL)."""
    url = "https://hooks.slack.com/services/T0/B0/XX"

    def slack_url(**conn):
        monkeypatch.setenv("AIRFLOW_CONN_ALERTS_SLACK", json.dumps(conn))
        monkeypatch.setenv("ALERT_CHANNELS", "slack")
        slack = [c for c in alerts.configured_channels() if c.name == "slack"]
        return slack[0].hook.get_conn().url if slack else None

    assert slack_url(password=url) == url
    assert slack_url(host="https://hooks.slack.com/services", password="T0/B0/XX") == url
    assert slack_url(host="hooks.slack.com/services", password="T0/B0/XX") == url
    assert slack_url(password="T0/B0/XX") == url  # the provider's default host
    assert slack_url(host=url) is None  # the token is the password in the provider's form
    assert slack_url(login="nobody") is None


def test_connection_fields_from_json_and_uri_env(monkeypatch):
    conn = {"conn_type": "smtp", "host": "mail", "port": 2525, "extra": '{"disable_ssl": true}'}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(conn))
    fields = alerts.connection_fields("smtp_default")
    assert (fields["host"], fields["port"], fields["extra"]) == (
        "mail",
        2525,
        {"disable_ssl": True},
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT", "smtp://user:p%40ss@mail.example.com:587?from_email=a%40b.c"
    )
    fields = alerts.connection_fields("smtp_default")
    assert (fields["login"], fields["password"], fields["port"]) == ("user", "p@ss", 587)
    assert fields["extra"] == {"from_email": "a@b.c"}


def test_channels_follow_configuration(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_ALERTS_SLACK", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_ALERTS_SLACK", json.dumps({"password": "http://127.0.0.1:9/x"})
    )
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({"host": "127.0.0.1", "port": 25}))
    monkeypatch.setenv("ALERT_EMAILS", "")
    monkeypatch.setenv("REPORT_EMAILS", "")
    names = [c.name for c in alerts.configured_channels()]
    assert names == ["log", "slack"]  # no recipients: no email channel
    monkeypatch.setenv("REPORT_EMAILS", "cto@example.com")
    monkeypatch.setenv("ALERT_CHANNELS", "log,email")
    channels = alerts.configured_channels()
    assert [c.name for c in channels] == ["log", "email"]
    assert channels[1].recipients == ["cto@example.com"]
    assert channels[1].use_ssl is True  # the smtp provider's default unless extra.disable_ssl
