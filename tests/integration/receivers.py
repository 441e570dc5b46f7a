"""Real alert receivers on loopback: a Slack-style webhook (http.server) and an SMTP server
(aiosmtpd), wired in through the ``alerts_slack`` / ``smtp_default`` connections exactly as in
production (the ``receivers`` fixture in this package's conftest)."""

from __future__ import annotations

import json
import socket
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Webhook:
    """A Slack incoming-webhook stand-in: records JSON bodies, answers ``status`` (or first the
    statuses queued in ``then``; a 429 says ``Retry-After: 0`` as Slack's rate limit does)."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.status = 200
        self.then: list[int] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.posts.append({"path": self.path, "json": json.loads(body)})
                status = hook.then.pop(0) if hook.then else hook.status
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"internal_error")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/XXXX"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def texts(self) -> list[str]:
        return [p["json"]["text"] for p in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.content)
        self.messages.append((envelope.rcpt_tos, msg))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [m["Subject"] for _, m in self.messages]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alert_row(db, key: str) -> dict:
    cur = db.execute("SELECT * FROM ops.alerts WHERE dedup_key = %s", (key,))
    return dict(zip([d.name for d in cur.description], cur.fetchone(), strict=True))
