"""The sandbox process: PostHog, inventory and GitHub stand-ins on one port, plus a control API.

Paths::

    POST /api/projects/:id/query/                 PostHog Query API (HogQLQuery)
    GET  /api/dashboard/inventory-analytics       inventory backend
    GET  /repos/{owner}/{repo}[/issues[/{n}]]     GitHub REST (and /repositories/{id}/...)
    GET  /_sandbox/health                         {"status": "ok", ...}
    GET  /_sandbox/faults  POST /_sandbox/faults  read / merge fault knobs (JSON object)
    POST /_sandbox/reset                          clear faults, calls, caches, mutations
    GET  /_sandbox/calls?service=posthog|inventory|github
    POST /_sandbox/github/touch                   update/create an issue (updated_at = now)
    POST /_sandbox/posthog/events                 add events: [{"event", "distinct_id",
                                                  "timestamp", "created_at"?, "uuid"?,
                                                  "properties"?}, ...]

``SandboxProcess`` runs ``python -m include.sandbox serve`` as a subprocess (tests, demo).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.sandbox.constants import DEFAULT_SEED
from include.sandbox.github import GitHubService
from include.sandbox.http import Request, Response, Server
from include.sandbox.inventory import InventoryService
from include.sandbox.posthog import (
    SERVER_ERRORS,
    PostHogService,
    injected_visibility,
    parse_injected_event,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

DEFAULT_FAULTS: dict[str, Any] = {
    "latency_ms": 0,
    "posthog_latency_ms": 0,
    "posthog_latency_per_1000_rows_ms": 0,
    "inventory_latency_ms": 0,
    "github_latency_ms": 0,
    "posthog_error_rate": 0.0,
    "posthog_429_burst": 0,
    "posthog_status_sequence": [],
    "posthog_malformed_rate": 0.0,
    "posthog_events_per_hour": 0,
    "posthog_throttle_seconds": 1,
    "posthog_max_concurrency": 3,
    "posthog_cache_ttl_seconds": 21600,
    "posthog_now": None,
    "inventory_fail_clients": {},
    "inventory_error_rate": 0.0,
    "github_fail_repos": {},
    "github_rate_limit_remaining": None,
    "github_rate_limit_reset_seconds": 2,
    "github_secondary_limit": 0,
}
_RATES = ("posthog_error_rate", "posthog_malformed_rate", "inventory_error_rate")
_INTS = (
    "latency_ms",
    "posthog_latency_ms",
    "posthog_latency_per_1000_rows_ms",
    "inventory_latency_ms",
    "github_latency_ms",
    "posthog_429_burst",
    "posthog_events_per_hour",
    "posthog_throttle_seconds",
    "posthog_max_concurrency",
    "posthog_cache_ttl_seconds",
    "github_rate_limit_reset_seconds",
    "github_secondary_limit",
)
SERVICES = ("posthog", "inventory", "github")
MAX_CALLS = 50_000


class Sandbox:
    """State shared by the three stand-ins: seed, fault knobs, recorded calls."""

    def __init__(self, seed: int = DEFAULT_SEED) -> None:
        self.seed = seed
        self._lock = threading.Lock()
        self.faults: dict[str, Any] = copy.deepcopy(DEFAULT_FAULTS)
        self._calls: dict[str, deque] = {s: deque(maxlen=MAX_CALLS) for s in SERVICES}
        self._rngs: dict[str, random.Random] = {}
        self.posthog = PostHogService(self)
        self.inventory = InventoryService(self)
        self.github = GitHubService(self)
        self.started = time.time()

    # ------------------------------------------------------------------ faults
    def faults_snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.faults)

    def set_faults(self, knobs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(knobs) - set(DEFAULT_FAULTS))
        if unknown:
            raise ValueError(f"unknown fault knobs {unknown}; known: {sorted(DEFAULT_FAULTS)}")
        clean: dict[str, Any] = {}
        for key, value in knobs.items():
            if value is None:
                clean[key] = copy.deepcopy(DEFAULT_FAULTS[key])
            elif key in _RATES:
                value = float(value)
                if not 0 <= value <= 1:
                    raise ValueError(f"{key} must be within [0, 1]")
                clean[key] = value
            elif key in _INTS:
                value = int(value)
                if value < 0:
                    raise ValueError(f"{key} must be >= 0")
                clean[key] = value
            elif key == "posthog_status_sequence":
                if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
                    raise ValueError("posthog_status_sequence must be a list of HTTP statuses")
                clean[key] = list(value)
            elif key in ("inventory_fail_clients", "github_fail_repos"):
                if not isinstance(value, dict):
                    raise ValueError(f"{key} must be an object of id -> HTTP status")
                clean[key] = {str(k): int(v) for k, v in value.items()}
            elif key == "github_rate_limit_remaining":
                clean[key] = int(value)
            elif key == "posthog_now":
                from include.sandbox.timeutil import parse_datetime_us

                if parse_datetime_us(str(value)) is None:
                    raise ValueError("posthog_now must be an ISO-8601 datetime")
                clean[key] = str(value)
        if clean.get("posthog_events_per_hour", 0) > 10_000_000:
            raise ValueError("posthog_events_per_hour is capped at 10,000,000")
        with self._lock:
            self.faults.update(clean)
            snapshot = dict(self.faults)
        if "github_rate_limit_remaining" in clean:
            self.github.set_rate_limit(clean["github_rate_limit_remaining"])
        return snapshot

    def reset(self) -> None:
        with self._lock:
            self.faults = copy.deepcopy(DEFAULT_FAULTS)
            for q in self._calls.values():
                q.clear()
            self._rngs.clear()
        self.posthog.reset()
        self.inventory.reset()
        self.github.reset()

    def sleep_latency(self, service: str, faults: dict[str, Any]) -> None:
        ms = int(faults.get("latency_ms") or 0) + int(faults.get(f"{service}_latency_ms") or 0)
        if ms > 0:
            time.sleep(ms / 1000)

    def roll(self, name: str, rate: float) -> bool:
        """Deterministic (seeded) Bernoulli draw per fault stream."""
        if rate <= 0:
            return False
        with self._lock:
            rng = self._rngs.setdefault(name, random.Random(f"{self.seed}|{name}"))
            return rng.random() < rate

    def roll_posthog_error(self) -> bool:
        return self.roll("posthog_error", float(self.faults.get("posthog_error_rate") or 0))

    def pick_server_error(self) -> int:
        with self._lock:
            rng = self._rngs.setdefault("posthog_status", random.Random(f"{self.seed}|status"))
            return rng.choice((500, 502, 503, 504))

    def next_posthog_status(self) -> int | None:
        with self._lock:
            seq = self.faults["posthog_status_sequence"]
            if not seq:
                return None
            self.faults["posthog_status_sequence"] = seq[1:]
            return seq[0]

    def take_posthog_429(self) -> bool:
        return self.take_counter("posthog_429_burst")

    def take_counter(self, knob: str) -> bool:
        with self._lock:
            if self.faults.get(knob, 0) > 0:
                self.faults[knob] -= 1
                return True
            return False

    # ------------------------------------------------------------------ calls
    def record(self, service: str, req: Request, resp: Response, started: float) -> None:
        headers = {k: v for k, v in req.headers.items() if k.lower() != "authorization"}
        entry: dict[str, Any] = {
            "method": req.method,
            "path": req.path,
            "query": req.query,
            "headers": headers,
            "status": resp.status,
            "time": datetime.fromtimestamp(started, UTC).isoformat().replace("+00:00", "Z"),
            "started": started,
            "duration_ms": round((time.time() - started) * 1000, 2),
        }
        if req.body:
            try:
                entry["body"] = json.loads(req.body)
            except ValueError:
                entry["body"] = req.body[:2000].decode("utf-8", "replace")
        with self._lock:
            self._calls[service].append(entry)

    def calls(self, service: str) -> list[dict]:
        with self._lock:
            return list(self._calls[service])

    # ------------------------------------------------------------------ routing
    _QUERY_RE = re.compile(r"^/api/(?:projects|environments)/([^/]+)/query/?$")

    def handle(self, req: Request) -> Response:
        path = req.path
        if path.startswith("/_sandbox/"):
            return self._control(req)
        started = time.time()
        service = None
        m = self._QUERY_RE.match(path)
        if m:
            service = "posthog"
            resp = self.posthog.handle_query(req, m.group(1))
        elif path.rstrip("/") == "/api/dashboard/inventory-analytics":
            service = "inventory"
            resp = self.inventory.handle(req)
        elif path.startswith(("/repos/", "/repositories/")):
            service = "github"
            resp = self.github.handle(req)
        elif path.startswith("/api/"):
            resp = Response(
                404, {"type": "invalid_request", "code": "not_found", "detail": "Not found."}
            )
        else:
            resp = Response(404, {"message": "Not Found"})
        if service:
            self.record(service, req, resp, started)
        return resp

    def _control(self, req: Request) -> Response:
        path = req.path.rstrip("/")
        try:
            if path == "/_sandbox/health":
                return Response(
                    200,
                    {
                        "status": "ok",
                        "seed": self.seed,
                        "services": list(SERVICES),
                        "pid": os.getpid(),
                    },
                )
            if path == "/_sandbox/faults":
                if req.method == "GET":
                    return Response(200, self.faults_snapshot())
                body = req.json() or {}
                if not isinstance(body, dict):
                    raise ValueError("faults body must be a JSON object")
                return Response(200, self.set_faults(body))
            if path == "/_sandbox/reset" and req.method == "POST":
                self.reset()
                return Response(200, {"status": "reset"})
            if path == "/_sandbox/calls":
                service = req.query.get("service", "")
                if service not in SERVICES:
                    raise ValueError(f"service must be one of {SERVICES}")
                return Response(200, self.calls(service))
            if path == "/_sandbox/github/touch" and req.method == "POST":
                return self.github.touch(req.json() or {})
            if path == "/_sandbox/posthog/events" and req.method == "POST":
                items = req.json()
                if not isinstance(items, list):
                    raise ValueError("body must be a JSON list of events")
                rows = [parse_injected_event(item) for item in items]
                visible = {
                    row[1]: injected_visibility(item)
                    for row, item in zip(rows, items, strict=True)
                    if item.get("visible_at")
                }
                return Response(200, {"added": self.posthog.add_events(rows, visible)})
        except (ValueError, KeyError, TypeError) as exc:
            return Response(400, {"error": str(exc)})
        return Response(404, {"error": f"unknown control endpoint {req.method} {req.path}"})


def serve(host: str = "127.0.0.1", port: int = 8811, seed: int = DEFAULT_SEED) -> None:
    sandbox = Sandbox(seed)
    server = Server((host, port), sandbox)
    actual = server.server_address[1]
    print(f"sandbox listening on http://{host}:{actual}", flush=True)

    def stop(signum, frame):  # SIGTERM (SandboxProcess.stop): exit cleanly, atexit runs
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# ----------------------------------------------------------------------------- client side
class SandboxProcess:
    """Runs the sandbox as a subprocess; a context manager.

    ``port=0`` lets the child bind a free port (race-free) and read it from its first line.
    """

    def __init__(
        self, port: int = 0, seed: int = DEFAULT_SEED, host: str = "127.0.0.1", timeout: float = 30
    ) -> None:
        self.host = host
        self.port = port
        self.seed = seed
        self.timeout = timeout
        self.url = ""
        self._proc: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
            prefix="sandbox-", suffix=".log", delete=False
        )
        self.log_path = self._log.name

    def __enter__(self) -> SandboxProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> SandboxProcess:
        if self._proc is not None:
            return self
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [sys.executable, "-m", "include.sandbox", "serve", "--host", self.host]
        cmd += ["--port", str(self.port), "--seed", str(self.seed)]
        self._proc = subprocess.Popen(
            cmd,
            cwd=str(REPO_ROOT),
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        first: list[str] = []
        reader = threading.Thread(target=self._drain, args=(first,), daemon=True)
        reader.start()
        deadline = time.monotonic() + self.timeout
        while not first and time.monotonic() < deadline and self._proc.poll() is None:
            time.sleep(0.02)
        m = re.search(r"listening on (http://\S+)", first[0]) if first else None
        if not m:
            log = self._read_log()
            self.stop()
            raise RuntimeError(f"sandbox did not start; log:\n{log}")
        self.url = m.group(1)
        self.port = int(self.url.rsplit(":", 1)[1])
        while time.monotonic() < deadline:
            try:
                if self._request("GET", "/_sandbox/health").get("status") == "ok":
                    return self
            except OSError:
                time.sleep(0.05)
        log = self._read_log()
        self.stop()
        raise RuntimeError(f"sandbox health check timed out; log:\n{log}")

    def _drain(self, first: list[str]) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if not first:
                first.append(line)

    def _read_log(self) -> str:
        try:
            return Path(self.log_path).read_text()[-5000:]
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        with contextlib.suppress(OSError):
            self._log.close()
            if proc is not None:
                os.unlink(self.log_path)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            (self.url or f"http://{self.host}:{self.port}") + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise ValueError(f"sandbox {method} {path} -> {exc.code}: {detail}") from None

    def set_faults(self, **knobs: Any) -> dict[str, Any]:
        return self._request("POST", "/_sandbox/faults", knobs)

    def faults(self) -> dict[str, Any]:
        return self._request("GET", "/_sandbox/faults")

    def reset(self) -> None:
        self._request("POST", "/_sandbox/reset", {})

    def calls(self, service: str) -> list[dict]:
        return self._request("GET", f"/_sandbox/calls?service={service}")

    def touch_issue(self, repo: str, number: int | None = None, **fields: Any) -> dict:
        return self._request(
            "POST", "/_sandbox/github/touch", {"repo": repo, "number": number, **fields}
        )

    def add_events(self, events: list[dict]) -> int:
        return self._request("POST", "/_sandbox/posthog/events", events)["added"]


__all__ = ["DEFAULT_FAULTS", "SERVER_ERRORS", "Sandbox", "SandboxProcess", "serve"]
