"""Fixtures of the integration tier."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller

from tests.integration.receivers import Mailbox, Webhook, free_port


@pytest.fixture
def receivers(monkeypatch):
    hook = Webhook()
    box = Mailbox()
    port = free_port()
    smtp = Controller(box, hostname="127.0.0.1", port=port)
    smtp.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_ALERTS_SLACK", json.dumps({"conn_type": "slackwebhook", "password": hook.url})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {
                    "disable_ssl": True,
                    "disable_tls": True,
                    "from_email": "ops@example.com",
                },
            }
        ),
    )
    monkeypatch.setenv("ALERT_EMAILS", "oncall@example.com,cto@example.com")
    monkeypatch.setenv("ALERT_REMINDER_SECONDS", "14400")
    yield SimpleNamespace(hook=hook, box=box)
    smtp.stop()
    hook.close()
