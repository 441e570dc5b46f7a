"""The CTO report email through a real SMTP receiver on loopback (aiosmtpd, no TLS, with
AUTH): multipart/alternative with the plain-text part, the HTML part and the charts as CID
inline images; the HTML carries the week's key numbers."""

from __future__ import annotations

import re
import socket
import threading
from datetime import date
from email import message_from_bytes, policy
from types import SimpleNamespace

import pytest

from include.analytics_ops.reports import email as email_mod
from include.analytics_ops.reports import report
from include.analytics_ops.reports.window import ReportWindow
from include.sandbox.samples import weekly as sample

WEEK = ReportWindow.ending(date(2026, 11, 22))
USER, PASSWORD = "reporter", "s3cret-pass"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpReceiver:
    """aiosmtpd Controller on 127.0.0.1 that accepts one login and keeps every message."""

    def __init__(self, user: str = USER, password: str = PASSWORD) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.messages: list[SimpleNamespace] = []
        self.logins: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                with receiver._lock:
                    receiver.messages.append(
                        SimpleNamespace(
                            mail_from=envelope.mail_from,
                            rcpt_tos=list(envelope.rcpt_tos),
                            data=envelope.original_content or envelope.content,
                        )
                    )
                return "250 Message accepted for delivery"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and (
                auth_data.login.decode() == user and auth_data.password.decode() == password
            )
            if ok:
                receiver.logins.append(auth_data.login.decode())
            return AuthResult(success=ok, handled=False)

        self.port = _free_port()
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticator,
            auth_require_tls=False,
        )

    def __enter__(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    def airflow_conn(self, password: str = PASSWORD) -> dict:
        return {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": self.port,
            "login": USER,
            "password": password,
            "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10},
        }


def check_report_email(raw: bytes) -> dict:
    """Assert the report's MIME layout; return its parts for further checks."""
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    text_part, related = msg.get_payload()
    assert text_part.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, *images = related.get_payload()
    assert html_part.get_content_type() == "text/html"
    html = html_part.get_content()
    cids = {img["Content-ID"].strip("<>") for img in images}
    assert all(img.get_content_type() == "image/png" for img in images)
    assert all(img.get_content().startswith(b"\x89PNG\r\n\x1a\n") for img in images)
    referenced = set(re.findall(r'src="cid:([^"]+)"', html))
    assert referenced == cids and len(cids) == 4, (referenced, cids)
    assert "data:image/png" not in html  # mail clients block data: URIs; CIDs are used
    return {"msg": msg, "text": text_part.get_content(), "html": html, "images": images}


@pytest.fixture
def week_db(db):
    sample.load_weekly_sample(db, WEEK.end, hostile=True)
    return db


def test_report_email_arrives_with_text_html_and_charts(week_db, tmp_path):
    built = report.build_report(week_db, WEEK, tmp_path)
    with SmtpReceiver() as rx:
        settings = email_mod.SmtpSettings.from_connection(
            SimpleNamespace(**{**rx.airflow_conn(), "extra_dejson": rx.airflow_conn()["extra"]})
        )
        assert "s3cret" not in repr(settings)
        refused = email_mod.send_message(
            settings,
            email_mod.load_message(built.eml_path),
            "reports@acme.test",
            ["cto@acme.test", "eng@acme.test"],
        )
    assert refused == {}
    assert rx.logins == [USER]
    assert len(rx.messages) == 1
    got = rx.messages[0]
    assert got.mail_from == "reports@acme.test"
    assert got.rcpt_tos == ["cto@acme.test", "eng@acme.test"]
    parts = check_report_email(got.data)
    assert parts["msg"]["Subject"] == built.subject
    assert parts["msg"]["To"] == "cto@acme.test, eng@acme.test"

    revenue, sessions = week_db.execute(
        "SELECT sum(revenue), sum(sessions) FROM analytics.daily_metrics"
        " WHERE metric_date BETWEEN %s AND %s",
        (WEEK.start, WEEK.end),
    ).fetchone()
    for body in (parts["html"], parts["text"]):
        assert f"${float(revenue):,.0f}" in body
        assert f"{sessions:,}" in body
        assert "Payment retries double-charge some cards" in body
    assert "<script>" not in parts["html"] and "&lt;script&gt;" in parts["html"]


def test_wrong_password_is_a_configuration_error(week_db, tmp_path):
    built = report.build_report(week_db, WEEK, tmp_path)
    with SmtpReceiver() as rx:
        conn = rx.airflow_conn(password="wrong")
        settings = email_mod.SmtpSettings.from_connection(
            SimpleNamespace(**{**conn, "extra_dejson": conn["extra"]})
        )
        with pytest.raises(email_mod.EmailConfigError, match="login refused"):
            email_mod.send_message(
                settings, email_mod.load_message(built.eml_path), "r@acme.test", ["c@acme.test"]
            )
    assert rx.messages == []
