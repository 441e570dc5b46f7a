"""The CTO report as an email, and sending it through the ``smtp_default`` connection.

Message layout (what mail clients expect for HTML mail with inline images)::

    multipart/alternative
    ├── text/plain                      the plain-text report
    └── multipart/related
        ├── text/html                   <img src="cid:revenue@cto-report"> ...
        └── image/png × N               Content-ID: <revenue@cto-report>, inline

Sending uses ``smtplib`` with the connection's host/port/login/password and the SMTP provider's
extras (``disable_ssl``, ``disable_tls``, ``timeout``, ``from_email``) with the provider's
meanings: implicit TLS unless ``disable_ssl``, STARTTLS unless ``disable_tls``. (The provider's
``SmtpHook.send_email_smtp`` builds its own multipart/mixed message with one HTML part, so it
cannot send this layout; the connection semantics are kept the same.) A plain loopback receiver
such as aiosmtpd needs ``{"disable_ssl": true, "disable_tls": true}``.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate, getaddresses, make_msgid
from pathlib import Path
from typing import Any

SMTP_CONN_ID = "smtp_default"


class EmailConfigError(ValueError):
    """Bad SMTP configuration or addresses: retrying will not help."""


def build_message(subject: str, text: str, html: str, charts: Sequence[Any]) -> EmailMessage:
    """The unaddressed report message (``send_message`` sets From/To/Date)."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["Subject"] = subject
    msg["X-Report"] = "analytics-ops cto-report"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    html_part = msg.get_payload()[1]
    for chart in charts:
        html_part.add_related(
            chart.png,
            "image",
            "png",
            cid=f"<{chart.cid}>",
            filename=chart.filename,
            disposition="inline",
        )
    return msg


def load_message(path: str | Path) -> EmailMessage:
    with open(path, "rb") as fh:
        return BytesParser(policy=policy.SMTP).parse(fh)  # type: ignore[return-value]


def parse_recipients(value: str | Sequence[str] | None) -> list[str]:
    """``"a@x, b@y"`` or a list → addresses; refuses entries that are not addresses."""
    if not value:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for _, addr in getaddresses([i.replace(";", ",") for i in items]):
        addr = addr.strip()
        if not addr:
            continue
        if "@" not in addr or any(c.isspace() for c in addr):
            raise EmailConfigError(f"not an email address in REPORT_EMAILS: {addr!r}")
        if addr not in out:
            out.append(addr)
    return out


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    login: str | None = None
    password: str | None = None
    use_ssl: bool = True
    starttls: bool = True
    timeout: float = 30.0
    from_email: str | None = None

    def __repr__(self) -> str:  # never print the password
        return (
            f"SmtpSettings(host={self.host!r}, port={self.port}, login={self.login!r}, "
            f"ssl={self.use_ssl}, starttls={self.starttls})"
        )

    @classmethod
    def from_connection(cls, conn: Any) -> SmtpSettings:
        """From an Airflow ``Connection`` (or anything with its attributes)."""
        return cls.from_fields(
            host=conn.host,
            port=conn.port,
            login=conn.login,
            password=conn.password,
            extra=getattr(conn, "extra_dejson", None) or {},
        )

    @classmethod
    def from_fields(
        cls,
        *,
        host: str | None,
        port: int | str | None = None,
        login: str | None = None,
        password: str | None = None,
        extra: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> SmtpSettings:
        """From connection fields, with the SMTP provider's extras (``disable_ssl``,
        ``disable_tls``, ``timeout``, ``from_email``)."""
        extra = extra or {}
        if not host:
            raise EmailConfigError("the SMTP connection has no host")

        def flag(name: str) -> bool:
            return str(extra.get(name, False)).strip().lower() in ("1", "true", "yes", "on")

        use_ssl, starttls = not flag("disable_ssl"), not flag("disable_tls")
        port = int(port) if port else (465 if use_ssl else 587 if starttls else 25)
        return cls(
            host=str(host),
            port=port,
            login=login or None,
            password=password or None,
            use_ssl=use_ssl,
            starttls=starttls and not use_ssl,
            timeout=float(extra.get("timeout") or timeout),
            from_email=extra.get("from_email"),
        )

    @classmethod
    def from_airflow(cls, conn_id: str = SMTP_CONN_ID) -> SmtpSettings:
        from airflow.sdk import BaseHook

        try:
            conn = BaseHook.get_connection(conn_id)
        except Exception as exc:
            raise EmailConfigError(
                f"Airflow connection {conn_id!r} is not defined: {exc}"
            ) from None
        return cls.from_connection(conn)


def send_message(
    settings: SmtpSettings, message: EmailMessage, sender: str, recipients: Sequence[str]
) -> dict[str, Any]:
    """Address and send ``message``; returns the refused recipients (empty = all accepted).

    Raises ``EmailConfigError`` for authentication failures and when every recipient is refused
    (not retryable); connection problems raise ``OSError``/``smtplib`` errors (retryable).
    """
    if not recipients:
        raise EmailConfigError("no recipients")
    for header in ("From", "To", "Date", "Message-ID"):
        del message[header]
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid("cto-report", domain=sender.rpartition("@")[2] or None)
    with smtp_session(settings) as client:
        try:
            refused = client.send_message(message, from_addr=sender, to_addrs=list(recipients))
        except smtplib.SMTPRecipientsRefused as exc:
            raise EmailConfigError(
                f"every recipient was refused: {sorted(exc.recipients)}"
            ) from None
    return {k: list(v) if isinstance(v, tuple) else v for k, v in (refused or {}).items()}


@contextmanager
def smtp_session(settings: SmtpSettings) -> Iterator[smtplib.SMTP]:
    """An SMTP client connected, encrypted and logged in — the one way this package talks SMTP
    (the CTO report and the alert mail).

    TLS before login: implicit TLS, or STARTTLS, which must then be offered — a server (or an
    attacker stripping the capability) that does not offer it gets
    ``smtplib.SMTPNotSupportedError``, never the password in clear. Only a connection that
    explicitly disables both (``disable_ssl`` and ``disable_tls``) talks plain SMTP."""
    smtp_cls = smtplib.SMTP_SSL if settings.use_ssl else smtplib.SMTP
    kwargs: dict[str, Any] = {"timeout": settings.timeout}
    if settings.use_ssl:
        kwargs["context"] = ssl.create_default_context()
    with smtp_cls(settings.host, settings.port, **kwargs) as client:
        client.ehlo()
        if settings.starttls:
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if settings.login and settings.password:
            try:
                client.login(settings.login, settings.password)
            except smtplib.SMTPAuthenticationError as exc:
                raise EmailConfigError(
                    f"SMTP login refused for {settings.login!r}: {exc.smtp_code}"
                ) from None
        yield client
