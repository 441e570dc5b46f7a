"""What an alert says (``AlertMessage``) and the escaping helpers that make upstream text inert
in each sink: mail headers, logs and Slack mrkdwn."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

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


def slack_link(url: str, label: str) -> str:
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
