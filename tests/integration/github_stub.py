"""A tiny GitHub issues endpoint on loopback for hostile payloads (real HTTP, no mocks).

``GitHubStub.pages[repo]`` is a list of pages (each a JSON-serialisable value, normally a list
of issue objects); page N links to N+1 with ``Link: <...>; rel="next"``. ``loop_repos`` makes
a repo's page link to itself forever.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class GitHubStub:
    def __init__(self) -> None:
        self.pages: dict[str, list[Any]] = {}
        self.loop_repos: set[str] = set()
        self.requests = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                stub.requests += 1
                parts = urlsplit(self.path)
                repo = parts.path.removeprefix("/repos/").removesuffix("/issues")
                page = int(parse_qs(parts.query).get("page", ["1"])[0])
                pages = stub.pages.get(repo)
                if pages is None:
                    self.send_response(404)
                    self.end_headers()
                    self.wfile.write(b'{"message": "Not Found"}')
                    return
                body = json.dumps(pages[page - 1] if page <= len(pages) else []).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("ETag", f'"{repo}-{page}"')
                nxt = page if repo in stub.loop_repos else page + 1
                if repo in stub.loop_repos or page < len(pages):
                    self.send_header(
                        "Link", f'<{stub.url}/repos/{repo}/issues?page={nxt}>; rel="next"'
                    )
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> GitHubStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def issue(number: Any, title: Any = "a bug", **extra: Any) -> dict[str, Any]:
    return {
        "number": number,
        "title": title,
        "state": "open",
        "labels": [{"name": "bug"}, {"name": "severity:high"}],
        "assignee": None,
        "created_at": "2026-11-01T10:00:00Z",
        "updated_at": "2026-11-02T10:00:00Z",
        "closed_at": None,
        **extra,
    }
