"""PostHog Query API client (``POST /api/projects/:id/query/``) over httpx.

Built from the Airflow connection ``posthog_api``: host (may carry scheme and port, e.g.
``https://us.posthog.com`` or ``http://127.0.0.1:8811``), personal API key as password,
``project_id`` in extra. The key is sent as a bearer token and never logged or put in errors.

Error policy (POSTHOG_NOTES.md):
- 429 (throttled, also "Exceeded maximum concurrency limit"), 500/502/503/524, other 5xx and
  transport errors/timeouts are retried. The wait is ``Retry-After`` if present, else the number
  in the throttle ``detail`` ("Expected available in N seconds"), else exponential backoff with
  full jitter. 429s are bounded by the time budget only; others also by ``max_attempts``.
- 504 and 512 raise ``QueryTooExpensive`` at once so the caller can shrink the page; so does a
  read timeout (the abandoned query still runs and counts against the 3 concurrent).
- A 200 whose JSON does not decode (invalid UTF-8, lone surrogate) raises ``UndecodableBody``.
- 400/401/402/403/404 (and other 4xx) raise ``PostHogFatalError`` at once: retrying cannot help.
- A throttle hint longer than ``max_inline_wait`` or the caller's deadline raises ``ThrottledFor``
  (the operator defers in the triggerer until then and resumes from the checkpoint); any other
  wait past the deadline raises ``BudgetExhausted`` (the task fails, Airflow retries later).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

from include.analytics_ops import retry
from include.analytics_ops.connections import airflow_connection, http_base_url

log = logging.getLogger(__name__)

SHRINK_STATUSES = {504, 512}
_DETAIL_SECONDS = re.compile(r"available in (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)
_FATAL_HINTS = {
    400: "the query was refused (bad HogQL or parameters)",
    401: "the personal API key is invalid: fix the password of connection 'posthog_api'",
    402: "the PostHog organisation is over its quota or billing limit",
    403: "the key has no access to this project or lacks the query:read scope",
    404: "the project id (extra.project_id of connection 'posthog_api') or the host is wrong",
}


class PostHogError(RuntimeError):
    """Base class; ``status`` is the HTTP status (None for transport errors)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PostHogFatalError(PostHogError):
    """A 4xx that retrying will not fix (bad key, quota, bad query, wrong project)."""


class QueryTooExpensive(PostHogError):
    """504/512: the query ran out of time/memory; retry with a smaller page."""


class UndecodableBody(PostHogError):
    """A 200 whose body is not valid JSON/UTF-8 (e.g. a lone surrogate): re-asking gives the same
    bytes, so the caller shrinks the page down to the one bad row and dead-letters it."""

    def __init__(self, message: str, raw: bytes) -> None:
        super().__init__(message, 200)
        self.raw = raw


class PostHogUnavailable(PostHogError):
    """Transient errors persisted through every attempt."""


class BudgetExhausted(PostHogError):
    """The next retry would end after the task's deadline."""


class ThrottledFor(BudgetExhausted):
    """PostHog said when it will answer again ("Expected available in 1200 seconds") and that is
    longer than the attempt should sleep: wait it out deferred (triggerer), then resume."""

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message, 429)
        self.seconds = seconds


@dataclass
class ApiStats:
    """What the run's ``ops.job_runs.stats`` records about the API."""

    api_calls: int = 0
    api_errors: int = 0
    rate_limit_hits: int = 0
    retries: int = 0
    wait_seconds: float = 0.0
    page_shrinks: int = 0
    bytes_received: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)  # status_counts as a copy
        out["rate_limit_hit"] = self.rate_limit_hits > 0
        out["wait_seconds"] = round(self.wait_seconds, 3)
        return out


def retry_after_seconds(headers: Mapping[str, str], body: Any) -> float | None:
    """The server's wait hint: ``Retry-After`` (seconds or HTTP date), else PostHog's throttle
    ``detail`` ("Expected available in 2202 seconds."), else None."""
    seconds = retry.parse_retry_after(headers.get("retry-after") if headers else None)
    if seconds is not None:
        return seconds
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        m = _DETAIL_SECONDS.search(detail)
        if m:
            return float(m.group(1))
    return None


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt))."""
    return retry.backoff(attempt + 1, base, cap, "full", rng)


class _Transient(PostHogError):
    """One failed call worth another attempt; ``hint`` is the server's wait (None: back off)."""

    def __init__(self, what: str, status: int | None, hint: float | None) -> None:
        super().__init__(what, status)
        self.what = what
        self.hint = hint


def base_url_from_connection(
    host: str | None, port: int | None = None, schema: str | None = None
) -> str:
    return http_base_url("posthog_api", host, port, schema, example="https://us.posthog.com")


class PostHogClient:
    """One pooled httpx client for one project. Thread-safe for one request at a time per thread
    (httpx.Client is thread-safe); the loader uses it from one prefetch thread."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        project_id: int | str,
        *,
        timeout: float = 60.0,
        max_attempts: int = 8,
        backoff_base: float = 1.0,
        backoff_cap: float = 120.0,
        stats: ApiStats | None = None,
        max_inline_wait: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        import httpx

        from include.analytics_ops.db import ConfigError

        if not api_key:
            raise ConfigError("connection 'posthog_api' has no password (the personal API key)")
        if project_id in (None, ""):
            raise ConfigError("connection 'posthog_api' needs extra.project_id")
        self.base_url = base_url.rstrip("/")
        self.project_id = str(project_id)
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.stats = stats or ApiStats()
        self.max_inline_wait = max_inline_wait
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._httpx = httpx
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/json",
                "User-Agent": "analytics-ops/analytics_hourly",
            },
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
        )

    def __repr__(self) -> str:  # never show the key
        return f"PostHogClient({self.base_url!r}, project={self.project_id})"

    @classmethod
    def from_airflow(cls, conn_id: str = "posthog_api", **kwargs: Any) -> PostHogClient:
        """Build from the Airflow connection (``AIRFLOW_CONN_POSTHOG_API`` works too)."""
        conn = airflow_connection(conn_id)
        base_url = base_url_from_connection(conn.host, conn.port, conn.schema)
        project_id = (conn.extra_dejson or {}).get("project_id")
        return cls(base_url, conn.password or "", project_id, **kwargs)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PostHogClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ requests
    @property
    def query_path(self) -> str:
        return f"/api/projects/{self.project_id}/query/"

    def query(
        self,
        hogql: str,
        values: Mapping[str, Any],
        *,
        name: str,
        deadline: float | None = None,
    ) -> dict[str, Any]:
        """Run one HogQL query (fresh: ``refresh=force_blocking``) and return the decoded body."""
        import msgspec

        payload = {
            "query": {
                "kind": "HogQLQuery",
                "query": hogql,
                "values": dict(values),
                "modifiers": {"convertToProjectTimezone": False},
            },
            "refresh": "force_blocking",
            "name": name,
        }
        content = msgspec.json.encode(payload)

        def attempt() -> dict[str, Any]:
            status, body, headers, error = self._post(content)
            if status == 200 and isinstance(body, dict) and isinstance(body.get("results"), list):
                return body
            self.stats.api_errors += 1
            if status is None and error and error.startswith("read timeout"):
                raise QueryTooExpensive(f"PostHog query {name!r}: {error} (shrink the page)")
            if status == 429:
                self.stats.rate_limit_hits += 1
            elif status in SHRINK_STATUSES:
                raise QueryTooExpensive(
                    f"PostHog answered {status}: {_detail(body)} (shrink the page)", status
                )
            elif status is not None and 400 <= status < 500:
                hint = _FATAL_HINTS.get(status, "client error")
                raise PostHogFatalError(
                    f"PostHog answered {status} for project {self.project_id} at "
                    f"{self.base_url}: {hint}. Server said: {_detail(body)}",
                    status,
                )
            what = (
                f"HTTP {status}: {_detail(body)}"
                if status is not None and status != 200
                else (error or "a 200 response without a results list")
            )
            hint = retry_after_seconds(headers, body) if status is not None else None
            raise _Transient(what, status, hint)

        def hinted_wait(exc: BaseException) -> float | None:
            hint = exc.hint if isinstance(exc, _Transient) else None
            return (
                None if hint is None else hint + self._rng.uniform(0, min(1.0, 0.1 * hint + 0.05))
            )

        def deferred(exc: _Transient, wait: float) -> ThrottledFor:
            self.stats.retries += 1
            return ThrottledFor(
                f"PostHog query {name!r}: throttled, {exc.what}; waiting {wait:.0f}s deferred "
                "(no worker or pool slot held), then resuming from the checkpoint",
                wait,
            )

        def give_up(exc: BaseException, reason: str, wait: float, attempts: int) -> NoReturn:
            assert isinstance(exc, _Transient)
            if reason == "attempts":
                raise PostHogUnavailable(
                    f"PostHog query {name!r} failed {attempts} times; last: {exc.what}", exc.status
                )
            if exc.status == 429 and exc.hint is not None:
                raise deferred(exc, wait)
            raise BudgetExhausted(
                f"PostHog query {name!r}: waiting {wait:.0f}s after {exc.what} would pass the "
                "task's time budget; failing so Airflow retries later (resumes from the "
                "checkpoint)",
                exc.status,
            )

        def before_sleep(exc: BaseException, wait: float, attempts: int) -> None:
            assert isinstance(exc, _Transient)
            too_long = self.max_inline_wait is not None and wait > self.max_inline_wait
            if exc.status == 429 and exc.hint is not None and too_long:
                raise deferred(exc, wait)
            log.warning("PostHog %s; retrying in %.1fs (attempt %d)", exc.what, wait, attempts + 1)
            self.stats.retries += 1
            self.stats.wait_seconds += wait

        return retry.policy(
            retry_if=lambda exc: isinstance(exc, _Transient),
            max_attempts=self.max_attempts,
            limited=lambda exc: getattr(exc, "status", None) != 429,  # 429s: the budget only
            base=self.backoff_base,
            cap=self.backoff_cap,
            jitter="full",
            hint=hinted_wait,
            deadline=deadline,
            give_up=give_up,
            before_sleep=before_sleep,
            sleep=self._sleep,
            rng=self._rng,
        )(attempt)

    def _post(self, content: bytes) -> tuple[int | None, Any, Mapping[str, str], str | None]:
        import msgspec

        httpx = self._httpx
        self.stats.api_calls += 1
        try:
            response = self._client.post(self.query_path, content=content)
        except httpx.ReadTimeout as exc:
            self._count("timeout")
            return None, None, {}, f"read timeout ({type(exc).__name__})"
        except httpx.TimeoutException as exc:
            self._count("timeout")
            return None, None, {}, f"timeout ({type(exc).__name__})"
        except httpx.TransportError as exc:
            self._count("transport_error")
            return None, None, {}, f"transport error ({type(exc).__name__}: {exc})"
        self._count(str(response.status_code))
        raw = response.content
        self.stats.bytes_received += len(raw)
        try:
            body = msgspec.json.decode(raw) if raw else None
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            body = {"detail": raw[:200].decode("utf-8", "replace")}
            if response.status_code == 200:
                if raw.lstrip()[:1] == b"{":  # JSON-shaped but undecodable: the same next time
                    raise UndecodableBody(f"undecodable response body ({exc})", raw) from None
                return None, None, response.headers, "a 200 response that is not JSON"
        return response.status_code, body, response.headers, None

    def _count(self, key: str) -> None:
        self.stats.status_counts[key] = self.stats.status_counts.get(key, 0) + 1


def _detail(body: Any) -> str:
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("error") or body.get("code")
        if detail:
            return str(detail)[:500]
    return "no detail"
