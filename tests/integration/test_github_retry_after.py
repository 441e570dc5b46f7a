"""GitHub's secondary limit may send ``Retry-After`` as an HTTP date: the client waits until then
(the one Retry-After parser of include/analytics_ops/retry.py), not a blind 60 s. Real HTTP on
loopback; the sleep and the clock are injected, so nothing waits for real."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from include.analytics_ops.github.client import GitHubClient

NOW = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)


class _Handler(BaseHTTPRequestHandler):
    answers: ClassVar[list[tuple[int, dict[str, str]]]] = []

    def do_GET(self) -> None:
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        body = (
            b"[]" if status == 200 else b'{"message": "You have exceeded a secondary rate limit"}'
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def github() -> Iterator[tuple[str, list]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Handler.answers
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        _Handler.answers.clear()


@pytest.mark.parametrize(
    ("retry_after", "expected_wait"),
    [
        (format_datetime(datetime(2026, 12, 1, 10, 0, 42, tzinfo=UTC), usegmt=True), 42.0),
        ("17", 17.0),
        ("whenever", 60.0),  # unreadable: GitHub's documented minimum
    ],
)
def test_a_secondary_limit_waits_until_the_retry_after_date(github, retry_after, expected_wait):
    url, answers = github
    answers[:] = [(403, {"Retry-After": retry_after})]
    waits: list[float] = []
    with GitHubClient(
        url, "tok", sleep=waits.append, clock=NOW.timestamp, max_wait_seconds=300
    ) as client:
        response = client.get(f"{url}/repos/acme/shop/issues")
    assert response.status_code == 200
    assert waits == [expected_wait]
    assert client.stats.secondary_limit_waits == 1 and client.stats.api_calls == 2
