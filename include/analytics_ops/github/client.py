"""A small GitHub REST client (httpx) for the issues endpoint, built for incremental syncs.

- Connection ``github_api``: ``host`` is the API root and may carry scheme and port
  (``https://api.github.com``, ``http://127.0.0.1:8811``); ``password`` is the token. The token
  goes into the ``Authorization`` header only: never into logs, errors or ``repr``.
- Pagination follows the ``Link: <...>; rel="next"`` header (only to the same origin, so the
  token never leaves the configured host).
- Conditional requests: the first page is sent with ``If-None-Match: <stored ETag>``; a ``304``
  means nothing changed since the last sync (and does not count against GitHub's rate limit).
- Rate limits: a 403/429 with ``X-RateLimit-Remaining: 0`` is waited out until
  ``X-RateLimit-Reset``; a secondary limit's ``Retry-After`` is honoured (60 s when GitHub gives
  no hint, as its docs ask). A successful page that leaves ``Remaining`` at 0 makes the client
  wait for the reset before the next request (when that is within the cap). Waits longer than
  ``max_wait_seconds`` raise :class:`GitHubTransientError` instead, so Airflow retries later.
- 5xx and transport errors are retried ``max_attempts`` times with exponential backoff, then
  raise :class:`GitHubTransientError`. 404/410 raise :class:`GitHubNotFound` (that repository
  only); 401 and a plain 403 raise :class:`GitHubAuthError` (every repository would fail the same).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx

from include.analytics_ops import retry
from include.analytics_ops.connections import airflow_connection, http_base_url
from include.analytics_ops.db import ConfigError
from include.analytics_ops.github import CONN_ID

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')


class GitHubError(RuntimeError):
    """Base class; ``status`` is the HTTP status when there was a response."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GitHubTransientError(GitHubError):
    """Worth retrying later: 5xx, transport errors, rate limits beyond the wait cap."""


class _Transient(GitHubError):
    """A 5xx or transport error: worth another attempt (``status`` None for transport)."""


class _RateLimited(Exception):
    """A rate limit to wait out (``seconds``) before the same request again."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"rate limited for {seconds:.0f}s")
        self.seconds = seconds


class GitHubNotFound(GitHubError):
    """The repository does not exist or the token cannot see it (404/410): final for that repo."""


class GitHubAuthError(GitHubError, ConfigError):
    """Bad or missing token / permissions (401, 403 without a rate limit): final for every repo."""


class GitHubRequestError(GitHubError):
    """Any other 4xx (e.g. 422 for a bad ``since``): final, a bug or bad configuration."""


@dataclass
class CallStats:
    api_calls: int = 0
    not_modified: int = 0
    rate_limit_waits: int = 0
    rate_limit_wait_seconds: float = 0.0
    secondary_limit_waits: int = 0
    transient_retries: int = 0
    rate_limit_remaining: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "api_calls": self.api_calls,
            "not_modified": self.not_modified,
            "rate_limit_waits": self.rate_limit_waits,
            "rate_limit_wait_seconds": round(self.rate_limit_wait_seconds, 3),
            "secondary_limit_waits": self.secondary_limit_waits,
            "transient_retries": self.transient_retries,
            "rate_limit_remaining": self.rate_limit_remaining,
        }


@dataclass(frozen=True)
class IssuesFetch:
    """Result of listing one repository's issues (all pages)."""

    not_modified: bool
    issues: list[dict[str, Any]]
    etag: str | None
    pages: int
    last_status: int


def next_link(link_header: str | None) -> str | None:
    if not link_header:
        return None
    for url, rel in _LINK.findall(link_header):
        if rel == "next":
            return url
    return None


def base_url_from_connection_fields(
    host: str | None, port: int | None = None, schema: str | None = None
) -> str:
    """API root from Airflow connection fields (``host`` may carry scheme, port and path)."""
    return http_base_url(CONN_ID, host, port, schema, example="https://api.github.com")


class GitHubClient:
    """One pooled httpx client; use as a context manager."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_seconds: float = 30.0,
        per_page: int = 100,
        max_pages: int = 200,
        max_attempts: int = 3,
        backoff_seconds: float = 1.0,
        max_wait_seconds: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not token:
            raise GitHubAuthError(f"connection {CONN_ID!r} has no password (the token)")
        self.base_url = base_url.rstrip("/")
        self.per_page = per_page
        if max_pages < 1:
            raise ValueError(f"max_pages must be >= 1, got {max_pages}")
        self.max_pages = max_pages
        self.max_attempts = max(1, max_attempts)
        self.backoff_seconds = backoff_seconds
        self.max_wait_seconds = max_wait_seconds
        self.stats = CallStats()
        self._sleep = sleep
        self._clock = clock
        self._reset_at: float | None = None  # set when a response left Remaining at 0
        origin = urlsplit(self.base_url)
        self._origin = (origin.scheme, origin.netloc)
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds)),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "analytics-ops-github-sync",
            },
            follow_redirects=False,
        )

    def __repr__(self) -> str:  # never show the token
        return f"GitHubClient(base_url={self.base_url!r})"

    @classmethod
    def from_airflow(cls, conn_id: str = CONN_ID, **kwargs: Any) -> GitHubClient:
        """Build from the Airflow connection (call inside a task, never at parse time)."""
        conn = airflow_connection(conn_id)
        extra = conn.extra_dejson or {}
        base = base_url_from_connection_fields(conn.host, conn.port, conn.schema)
        if extra.get("timeout") is not None:
            kwargs.setdefault("timeout_seconds", float(extra["timeout"]))
        return cls(base, conn.password or "", **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ requests
    def _wait(self, seconds: float, why: str) -> None:
        self._sleep(self._rate_limit_wait(seconds, why))

    def _rate_limit_wait(self, seconds: float, why: str) -> float:
        """A rate-limit wait of ``seconds``, counted in the stats (too long: a transient error)."""
        seconds = max(0.0, seconds)
        if seconds > self.max_wait_seconds:
            raise GitHubTransientError(
                f"{why}: would have to wait {seconds:.0f}s (> max {self.max_wait_seconds:.0f}s)",
                status=429,
            )
        log.warning("GitHub %s: waiting %.1fs", why, seconds)
        self.stats.rate_limit_wait_seconds += seconds
        return seconds

    def _seconds_until_reset(self, response: httpx.Response) -> float | None:
        reset = response.headers.get("X-RateLimit-Reset")
        if reset is None:
            return None
        try:
            return float(reset) - self._clock() + 1.0  # +1 s: reset is whole seconds
        except ValueError:
            return None

    def _note_rate_headers(self, response: httpx.Response) -> None:
        remaining = response.headers.get("X-RateLimit-Remaining")
        if remaining is None:
            return
        try:
            self.stats.rate_limit_remaining = int(remaining)
        except ValueError:
            return
        if self.stats.rate_limit_remaining <= 0:
            wait = self._seconds_until_reset(response)
            self._reset_at = self._clock() + wait if wait is not None else None

    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """GET with the retry/rate-limit rules of the module docstring. Returns 2xx/304 responses;
        raises :class:`GitHubError` subclasses otherwise."""
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != self._origin:
            raise GitHubRequestError(f"refusing to send the token to another origin: {url}")

        def attempt() -> httpx.Response:
            if self._reset_at is not None:
                # The previous response used the last request of the window: wait for the reset.
                # A reset further away than the cap is not waited for here: the request then
                # gets the 403 answer, whose own headers decide (wait or transient error).
                wait, self._reset_at = self._reset_at - self._clock(), None
                if 0 < wait <= self.max_wait_seconds:
                    self.stats.rate_limit_waits += 1
                    self._wait(wait, "rate limit exhausted")
            self.stats.api_calls += 1
            try:
                response = self._http.get(url, params=params, headers=headers)
            except httpx.TransportError as exc:
                raise _Transient(f"{type(exc).__name__}: {exc}", None) from exc
            status = response.status_code
            if status in (403, 429):
                seconds = self._rate_limit_seconds(response)
                if seconds is not None:
                    raise _RateLimited(seconds)  # same request again after the wait
            self._note_rate_headers(response)
            if status < 300 or status == 304:
                if status == 304:
                    self.stats.not_modified += 1
                return response
            if status >= 500:
                raise _Transient(f"HTTP {status}", status)
            message = _error_message(response)
            if status in (404, 410):
                raise GitHubNotFound(f"GET {parts.path}: HTTP {status} {message}", status)
            if status in (401, 403):
                raise GitHubAuthError(f"GET {parts.path}: HTTP {status} {message}", status)
            raise GitHubRequestError(f"GET {parts.path}: HTTP {status} {message}", status)

        def give_up(exc: BaseException, reason: str, wait: float, attempts: int) -> NoReturn:
            assert isinstance(exc, _Transient)
            if exc.status is None:
                raise GitHubTransientError(f"GET {parts.path}: {exc}") from exc.__cause__
            raise GitHubTransientError(
                f"GET {parts.path}: {exc} after {attempts} attempts", exc.status
            )

        def before_sleep(exc: BaseException, wait: float, attempts: int) -> None:
            if isinstance(exc, _Transient):
                self.stats.transient_retries += 1

        return retry.policy(
            retry_if=lambda exc: isinstance(exc, _Transient | _RateLimited),
            max_attempts=self.max_attempts,
            limited=lambda exc: isinstance(exc, _Transient),  # a rate-limit wait never gives up
            base=self.backoff_seconds,
            jitter="none",
            hint=lambda exc: exc.seconds if isinstance(exc, _RateLimited) else None,
            give_up=give_up,
            before_sleep=before_sleep,
            sleep=self._sleep,
        )(attempt)

    def _rate_limit_seconds(self, response: httpx.Response) -> float | None:
        """If ``response`` is a (primary or secondary) rate limit, how long to wait it out."""
        retry_after = response.headers.get("Retry-After")
        if retry_after is not None:
            seconds = retry.parse_retry_after(retry_after, now=self._clock)
            self.stats.secondary_limit_waits += 1
            return self._rate_limit_wait(
                60.0 if seconds is None else seconds, "secondary rate limit"
            )
        if response.headers.get("X-RateLimit-Remaining") == "0":
            seconds = self._seconds_until_reset(response)
            self.stats.rate_limit_waits += 1
            return self._rate_limit_wait(
                60.0 if seconds is None else seconds, "rate limit exhausted"
            )
        if response.status_code == 429 or "rate limit" in _error_message(response).lower():
            # Secondary limit without a hint: GitHub asks to wait at least a minute.
            self.stats.secondary_limit_waits += 1
            return self._rate_limit_wait(60.0, "secondary rate limit (no Retry-After)")
        return None

    # ------------------------------------------------------------------ endpoints
    def list_issues(
        self, repo: str, *, since: datetime | None = None, etag: str | None = None
    ) -> IssuesFetch:
        """Every issue and PR of ``repo`` updated at or after ``since`` (all when None), newest
        update first, across all pages. With ``etag`` the first page is conditional: a 304 returns
        ``not_modified=True`` and no issues.

        Newest-first matters for the ETag: any change moves that issue to the top of page 1, so
        an unchanged page 1 really means nothing changed since ``since``.
        """
        params: dict[str, Any] = {
            "state": "all",
            "sort": "updated",
            "direction": "desc",
            "per_page": self.per_page,
        }
        if since is not None:
            params["since"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        url: str | None = f"{self.base_url}/repos/{repo}/issues"
        headers = {"If-None-Match": etag} if etag else None
        issues: list[dict[str, Any]] = []
        first_etag: str | None = None
        pages = 0
        status = 0
        seen: set[str] = set()
        while url:
            if pages >= self.max_pages:
                # Newest first: keeping only the first pages would move the watermark past the
                # older changes never fetched. Fail the project (nothing written) and say why.
                raise GitHubRequestError(
                    f"{repo}: more than {self.max_pages} pages of issues changed since"
                    f" {params.get('since', 'the beginning')}; raise GITHUB_MAX_PAGES"
                )
            if url in seen:
                raise GitHubRequestError(f"{repo}: the Link header loops back to {url}")
            seen.add(url)
            response = self.get(url, params=params if pages == 0 else None, headers=headers)
            status = response.status_code
            if status == 304:
                return IssuesFetch(True, [], etag, pages, status)
            pages += 1
            if pages == 1:
                first_etag = response.headers.get("ETag")
            try:
                body = response.json()
            except ValueError as exc:
                raise GitHubTransientError(f"{repo}: page {pages} is not JSON") from exc
            if not isinstance(body, list):
                raise GitHubRequestError(f"{repo}: page {pages} is not a list of issues", status)
            issues.extend(body)
            url = next_link(response.headers.get("Link"))
            headers = None
        return IssuesFetch(False, issues, first_etag, pages, status)


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:200]
    return ""
