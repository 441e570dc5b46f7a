"""Minimal request/response plumbing on the stdlib ``ThreadingHTTPServer`` (HTTP/1.1 keep-alive,
one daemon thread per connection, TCP_NODELAY, one write per response)."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

try:
    import msgspec

    def dumps(obj: Any) -> bytes:
        return msgspec.json.encode(obj)
except ImportError:  # pragma: no cover

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    query_list: list[tuple[str, str]]
    headers: Any  # email.message.Message (case-insensitive .get)
    body: bytes
    host: str

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int
    body: Any = None  # dict/list -> JSON; bytes as is; None -> empty
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes | bytearray):
            return bytes(self.body)
        return dumps(self.body)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "analytics-ops-sandbox/1.0"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        query_list = parse_qsl(parts.query, keep_blank_values=True)
        req = Request(
            method=method,
            path=parts.path,
            query=dict(query_list),
            query_list=query_list,
            headers=self.headers,
            body=body,
            host=self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2]),
        )
        try:
            resp = self.server.app.handle(req)
        except Exception as exc:  # a bug in the sandbox: say so, keep serving
            traceback.print_exc(file=sys.stderr)
            resp = Response(500, {"error": f"sandbox internal error: {exc!r}"})
        payload = resp.encoded() if resp.status not in (204, 304) else b""
        lines = [f"HTTP/1.1 {resp.status} {_reason(resp.status)}"]
        lines.append(f"Date: {self.date_time_string()}")
        lines.append(f"Server: {self.server_version}")
        for k, v in resp.headers:
            lines.append(f"{k}: {v}")
        if resp.status not in (204, 304):
            if payload or resp.body is not None:
                lines.append(f"Content-Type: {resp.content_type}")
            lines.append(f"Content-Length: {len(payload)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if method == "HEAD":
            payload = b""
        self.wfile.write(head + payload if len(payload) < 65536 else head)
        if len(payload) >= 65536:
            self.wfile.write(payload)
        if (self.headers.get("Connection") or "").lower() == "close":
            self.close_connection = True


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return {512: "Query Too Long", 524: "A Timeout Occurred"}.get(status, "Unknown")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], app: Any) -> None:
        self.app = app
        super().__init__(address, Handler)
