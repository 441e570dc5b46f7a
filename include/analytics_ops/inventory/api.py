"""Client for the dashboard backend's ``GET /api/dashboard/inventory-analytics``.

The endpoint recomputes and caches a client's inventory analytics when called with
``force_refresh=true``; this module only triggers it and reports what happened. Each call gets a
timeout; 5xx, 429 and transport errors/timeouts are retried with exponential backoff (429 honours
``Retry-After``), other 4xx are final at once. Many calls run concurrently on one asyncio loop with
one pooled ``httpx.AsyncClient``, bounded by ``concurrency``.

The bearer token comes from the Airflow connection ``inventory_api`` (password = token; host may
carry scheme and port) and never appears in logs or error texts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from include.analytics_ops import retry
from include.analytics_ops.connections import airflow_connection, http_base_url
from include.analytics_ops.inventory import CONN_ID, ENDPOINT_PATH


@dataclass(frozen=True)
class InventoryApi:
    """Where and how to call the endpoint."""

    base_url: str
    token: str = field(repr=False)
    timeout_seconds: float = 60.0
    connect_timeout_seconds: float = 10.0
    path: str = ENDPOINT_PATH

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/" + self.path.lstrip("/")

    @classmethod
    def from_connection_fields(
        cls,
        host: str | None,
        password: str | None,
        *,
        port: int | None = None,
        schema: str | None = None,
        extra: Mapping[str, Any] | None = None,
        timeout_seconds: float | None = None,
    ) -> InventoryApi:
        """Build from Airflow connection fields. ``host`` may be ``https://api.example.com`` or
        ``http://127.0.0.1:8811`` (scheme and port included) or a bare host name, in which case
        ``schema`` (Airflow's HTTP-connection scheme field, default https) and ``port`` apply."""
        from include.analytics_ops.db import ConfigError

        extra = dict(extra or {})
        if not host:
            raise ConfigError(f"connection {CONN_ID!r} has no host")
        if not password:
            raise ConfigError(f"connection {CONN_ID!r} has no password (the bearer token)")
        base = http_base_url(CONN_ID, host, port, schema)
        timeout = timeout_seconds if timeout_seconds is not None else extra.get("timeout")
        return cls(
            base_url=base,
            token=password,
            timeout_seconds=float(timeout) if timeout is not None else 60.0,
            path=str(extra.get("path") or ENDPOINT_PATH),
        )

    @classmethod
    def from_airflow(cls, conn_id: str = CONN_ID, **kwargs: Any) -> InventoryApi:
        """Read the Airflow connection (inside a task only)."""
        conn = airflow_connection(conn_id)
        return cls.from_connection_fields(
            conn.host,
            conn.password,
            port=conn.port,
            schema=conn.schema,
            extra=conn.extra_dejson,
            **kwargs,
        )


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed ``attempt`` (1-based): exponential with jitter."""
        if retry_after is not None:
            return min(self.max_backoff_seconds, max(0.0, retry_after))
        return retry.backoff(attempt, self.backoff_seconds, self.max_backoff_seconds, "half")


@dataclass
class RefreshOutcome:
    """What happened to one (client, platform) refresh."""

    client_id: str
    platform: str
    status: str  # 'success' | 'failed'
    http_status: int | None = None
    platforms: int | None = None
    skus: int | None = None
    duration_ms: int = 0
    attempts: int = 0
    error: str | None = None
    retryable: bool = False  # the last failure was transient (5xx/429/timeout/transport)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "success"


_MAX_COUNT = 2**31 - 1  # the results table's integer columns


def _first_int(payload: Mapping[str, Any], *paths: str) -> int | None:
    """The first count found along ``paths``; a negative or out-of-range number is no count."""
    for path in paths:
        node: Any = payload
        for key in path.split("."):
            if not isinstance(node, Mapping) or key not in node:
                node = None
                break
            node = node[key]
        if isinstance(node, bool) or node is None:
            continue
        if isinstance(node, float) and node.is_integer():
            node = int(node)
        if isinstance(node, int):
            if 0 <= node <= _MAX_COUNT:
                return node
            continue
        if isinstance(node, (list, tuple, dict)):
            return len(node)
    return None


def parse_refresh_payload(platform: str, payload: Any) -> tuple[int | None, int | None, str | None]:
    """(platforms, skus, error) from a 2xx body. ``error`` is set when the body says the refresh
    did not happen (``success: false`` / ``status: error``) or is not a JSON object."""
    if not isinstance(payload, Mapping):
        return None, None, f"unexpected response body (not a JSON object): {str(payload)[:200]}"
    if payload.get("success") is False or str(payload.get("status", "")).lower() in (
        "error",
        "failed",
    ):
        message = payload.get("error") or payload.get("message") or "refresh reported failure"
        return None, None, f"endpoint reported failure: {str(message)[:300]}"
    platforms = _first_int(
        payload,
        "platforms_count",
        "summary.platforms_count",
        "platforms",
        "summary.platforms",
        "data.platforms",
        "data.summary.platforms",
    )
    skus = _first_int(
        payload,
        "total_skus",
        "summary.total_skus",
        "sku_count",
        "summary.sku_count",
        "data.summary.total_skus",
        "skus",
        "summary.skus",
        "data.skus",
        "sku_analysis",
        "data.sku_analysis",
    )
    if platforms is None:
        platforms = 2 if platform == "all" else 1
    return platforms, skus, None


def _error_text(response: Any) -> str:
    """The error message of a non-2xx answer (its JSON ``error``/``message``, else the text)."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, Mapping):
        for key in ("error", "message", "detail"):
            if payload.get(key):
                return str(payload[key])[:300]
    return response.text[:300].replace("\n", " ")


class _Retryable(Exception):
    """The attempt failed transiently (5xx/429/timeout/transport); ``retry_after`` from a 429."""

    def __init__(self, retry_after: float | None) -> None:
        super().__init__("retryable")
        self.retry_after = retry_after


async def _refresh_one(
    client: Any,
    api: InventoryApi,
    client_id: str,
    platform: str,
    policy: RetryPolicy,
) -> RefreshOutcome:
    import httpx

    started = time.perf_counter()
    outcome = RefreshOutcome(client_id, platform, "failed")
    params = {"client_id": client_id, "platform": platform, "force_refresh": "true"}

    async def attempt() -> None:
        outcome.attempts += 1
        try:
            response = await client.get(api.url, params=params)
        except httpx.TimeoutException as exc:
            outcome.http_status = None
            outcome.error = f"timeout after {api.timeout_seconds:g}s ({type(exc).__name__})"
            outcome.retryable = True
            raise _Retryable(None) from exc
        except httpx.TransportError as exc:
            outcome.http_status = None
            outcome.error = f"connection error: {type(exc).__name__}: {exc}"[:500]
            outcome.retryable = True
            raise _Retryable(None) from exc
        outcome.http_status = response.status_code
        if response.is_success:
            try:
                payload = response.json()
            except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
                payload = response.text
            platforms, skus, error = parse_refresh_payload(platform, payload)
            if error is None:
                outcome.status = "success"
                outcome.platforms, outcome.skus = platforms, skus
            outcome.error, outcome.retryable = error, False
            return
        outcome.error = f"HTTP {response.status_code}: {_error_text(response)}".strip()
        outcome.retryable = response.status_code >= 500 or response.status_code == 429
        if outcome.retryable:
            raise _Retryable(
                retry.parse_retry_after(response.headers.get("Retry-After"))
                if response.status_code == 429
                else None
            )

    def wait(exc: BaseException) -> float | None:
        assert isinstance(exc, _Retryable)
        return policy.delay(outcome.attempts, exc.retry_after)

    with contextlib.suppress(_Retryable):  # out of attempts: the outcome says what the last got
        await retry.policy(
            retry_if=lambda exc: isinstance(exc, _Retryable),
            max_attempts=policy.max_attempts,
            hint=wait,
            sleep=asyncio.sleep,
            asynchronous=True,
        )(attempt)
    outcome.duration_ms = int((time.perf_counter() - started) * 1000)
    if outcome.attempts > 1 and outcome.error and not outcome.ok:
        outcome.error = f"{outcome.error} (after {outcome.attempts} attempts)"
    return outcome


async def refresh_many_async(
    api: InventoryApi,
    jobs: Sequence[tuple[str, str]],
    *,
    concurrency: int = 8,
    policy: RetryPolicy | None = None,
    on_outcome: Callable[[RefreshOutcome], None] | None = None,
) -> list[RefreshOutcome]:
    """Refresh every (client_id, platform) job with at most ``concurrency`` calls in flight.
    ``on_outcome`` is called (on the loop thread) as each job finishes; outcomes are returned in
    job order. A job never raises: every failure becomes a ``failed`` outcome."""
    import httpx

    policy = policy or RetryPolicy()
    concurrency = max(1, int(concurrency))
    timeout = httpx.Timeout(api.timeout_seconds, connect=api.connect_timeout_seconds)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {api.token}", "Accept": "application/json"}
    semaphore = asyncio.Semaphore(concurrency)
    results: list[RefreshOutcome | None] = [None] * len(jobs)

    async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=headers) as client:

        async def run(i: int, client_id: str, platform: str) -> None:
            async with semaphore:
                try:
                    outcome = await _refresh_one(client, api, client_id, platform, policy)
                except Exception as exc:  # never let one job stop the others
                    outcome = RefreshOutcome(
                        client_id, platform, "failed", error=f"{type(exc).__name__}: {exc}"
                    )
            results[i] = outcome
            if on_outcome is not None:
                on_outcome(outcome)

        await asyncio.gather(*(run(i, c, p) for i, (c, p) in enumerate(jobs)))
    return [r for r in results if r is not None]


def refresh_many(
    api: InventoryApi,
    jobs: Iterable[tuple[str, str]],
    *,
    concurrency: int = 8,
    policy: RetryPolicy | None = None,
    on_outcome: Callable[[RefreshOutcome], None] | None = None,
) -> list[RefreshOutcome]:
    """Synchronous wrapper of :func:`refresh_many_async` (runs its own event loop)."""
    return asyncio.run(
        refresh_many_async(
            api, list(jobs), concurrency=concurrency, policy=policy, on_outcome=on_outcome
        )
    )
