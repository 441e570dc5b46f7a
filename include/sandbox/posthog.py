"""PostHog Query API stand-in: ``POST /api/projects/:id/query/`` with a ``HogQLQuery``.

The HogQL is parsed by PostHog's own parser and executed by real ClickHouse in-process
(``hogql.translate`` → ``clickhouse.Engine``); this module keeps the API around it.

Behaviour follows PostHog's documented API (see /work/shared/POSTHOG_NOTES.md): personal-API-key
bearer auth, no LIMIT → 100 rows + ``hasMore``, LIMIT capped at 50,000, OFFSET refused (keyset
pagination), results cached unless ``refresh`` forces a recalculation, 3 concurrent queries per
project, throttling as HTTP 429 with a ``throttled_error`` body and no Retry-After.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import zlib
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from include.sandbox import clickhouse, hogql
from include.sandbox import events as ev
from include.sandbox.constants import POSTHOG_API_KEY, POSTHOG_PROJECT_ID
from include.sandbox.http import Request, Response
from include.sandbox.timeutil import US, iso_us, parse_datetime_us

try:
    import msgspec

    _encode = msgspec.json.encode
    Raw = msgspec.Raw
except ImportError:  # pragma: no cover - msgspec ships with Airflow
    msgspec = None

    def _encode(obj):
        return json.dumps(obj, separators=(",", ":"), default=_raw_default).encode()

    class Raw(bytes):  # type: ignore[no-redef]
        pass

    def _raw_default(obj):
        raise TypeError(obj)


MAX_LIMIT = 50_000
DEFAULT_LIMIT = 100
MAX_MATERIALIZE = 2_000_000
REFRESH_MODES = {
    "blocking",
    "force_blocking",
    "force_cache",
    "async",
    "async_except_on_cache_miss",
    "force_async",
    "lazy_async",
}
QUERY_KINDS = {
    "HogQLQuery",
    "EventsQuery",
    "TrendsQuery",
    "FunnelsQuery",
    "RetentionQuery",
    "PathsQuery",
    "ActorsQuery",
    "HogQLMetadata",
    "SessionsQuery",
}
OFFSET_DETAIL = (
    "OFFSET is not supported for queries made with a personal API key. Use keyset pagination "
    "instead: filter on the sort key of the last row you received, e.g. WHERE "
    "(toUnixTimestamp64Milli(created_at), uuid) > ({last_ms}, {last_uuid}) ORDER BY "
    "toUnixTimestamp64Milli(created_at), uuid LIMIT 50000."
)
SERVER_ERRORS = {
    500: ("server_error", "error", "A server error occurred."),
    502: ("server_error", "bad_gateway", "Bad gateway."),
    503: ("server_error", "clickhouse_at_capacity", "Queries are currently at capacity."),
    504: (
        "server_error",
        "query_timeout",
        "Query has hit the max execution time before completing.",
    ),
    512: (
        "validation_error",
        "estimated_execution_time_too_long",
        "Estimated query execution time is too long. Try reducing its scope.",
    ),
    524: ("server_error", "timeout", "A timeout occurred (origin did not answer in time)."),
}


def error_body(typ: str, code: str, detail: str, attr: str | None = None) -> dict:
    return {"type": typ, "code": code, "detail": detail, "attr": attr}


def validation_error(detail: str) -> Response:
    return Response(400, error_body("validation_error", "invalid_input", detail))


def throttled(detail: str) -> Response:
    # DRF's Throttled without a wait: no Retry-After header.
    return Response(429, error_body("throttled_error", "throttled", detail))


class PostHogService:
    def __init__(self, sandbox) -> None:
        self.sb = sandbox
        self.store = ev.EventStore(sandbox.seed)
        self._cache: OrderedDict[str, dict] = OrderedDict()
        self._cache_rows = 0
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}
        self._engine: clickhouse.Engine | None = None

    def reset(self) -> None:
        with self._lock:
            self._cache.clear()
            self._cache_rows = 0
            engine = self._engine
        self.store.reset()
        if engine is not None:
            engine.reset()

    # ------------------------------------------------------------------ HTTP entry
    def handle_query(self, req: Request, project: str) -> Response:
        auth = req.headers.get("Authorization") or ""
        if not auth:
            return Response(
                401,
                error_body(
                    "authentication_error",
                    "not_authenticated",
                    "Authentication credentials were not provided.",
                ),
            )
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != POSTHOG_API_KEY:
            return Response(
                401,
                error_body(
                    "authentication_error",
                    "authentication_failed",
                    "Personal API key found in request Authorization header is invalid.",
                ),
            )
        if not project.isdigit():
            return Response(404, error_body("invalid_request", "not_found", "Not found."))
        if int(project) != POSTHOG_PROJECT_ID:
            return Response(
                403,
                error_body(
                    "authentication_error",
                    "permission_denied",
                    "You don't have access to the project.",
                ),
            )
        if req.method != "POST":
            return Response(
                405,
                error_body(
                    "invalid_request", "method_not_allowed", f'Method "{req.method}" not allowed.'
                ),
            )
        try:
            body = json.loads(req.body or b"null")
        except ValueError:
            return Response(400, error_body("parse_error", "parse_error", "JSON parse error."))
        problem = self._validate(body)
        if problem:
            return validation_error(problem)

        faults = self.sb.faults_snapshot()
        forced = self.sb.next_posthog_status()
        if forced is not None and forced != 200:
            return self._forced(forced, faults)
        if self.sb.take_posthog_429():
            return self._throttle(faults)
        if self.sb.roll_posthog_error():
            return self._forced(self.sb.pick_server_error(), faults)

        query = body["query"]
        refresh = body.get("refresh")
        if refresh is True:
            refresh = "force_blocking"
        elif refresh in (None, False):
            refresh = "blocking"
        if refresh in ("async", "force_async", "lazy_async"):
            return validation_error(
                f"sandbox does not support refresh={refresh!r}; use 'blocking' or 'force_blocking'"
            )
        values = query.get("values") or {}
        try:
            parsed = hogql.translate(query["query"], values)
        except hogql.OffsetRefused:
            return validation_error(OFFSET_DETAIL)
        except hogql.HogQLError as exc:
            return validation_error(str(exc))

        key = self._cache_key(query)
        if refresh != "force_blocking":
            hit = self._cache_get(key, faults)
            if hit is not None:
                self.sb.sleep_latency("posthog", faults)
                return self._respond(hit, True)
            if refresh == "force_cache":
                return Response(200, {"cache_key": key, "query_status": None, "results": None})

        if not self._acquire(project, faults):
            return throttled(
                f"Exceeded maximum concurrency limit: {faults['posthog_max_concurrency']} for key: "
                f"posthog:query:concurrency:project:{project} and task: {key[:16]}. "
                "Try again later."
            )
        try:
            self.sb.sleep_latency("posthog", faults)
            per_k = int(faults.get("posthog_latency_per_1000_rows_ms") or 0)
            if per_k:  # a bigger page takes longer (holding its concurrency slot)
                rows = min(parsed.limit, MAX_LIMIT) if parsed.limit is not None else DEFAULT_LIMIT
                time.sleep(per_k * rows / 1000 / 1000)
            try:
                result = self.execute(parsed, faults)
            except clickhouse.EngineError as exc:
                if exc.timeout:
                    return self._forced(504, faults)
                return validation_error(str(exc))
            except hogql.HogQLError as exc:
                return validation_error(str(exc))
        finally:
            self._release(project)
        result["cache_key"] = key
        result["hogql"] = parsed.text
        self._cache_put(key, result)
        return self._respond(result, False)

    def _validate(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "Request body must be a JSON object with a `query`."
        query = body.get("query")
        if not isinstance(query, dict):
            return "`query` must be an object with a `kind`."
        kind = query.get("kind")
        if kind not in QUERY_KINDS:
            return f"Unknown query kind {kind!r}."
        if kind != "HogQLQuery":
            return f"sandbox supports only HogQLQuery (got {kind})."
        if not isinstance(query.get("query"), str):
            return "HogQLQuery.query must be a string."
        if query.get("values") is not None and not isinstance(query.get("values"), dict):
            return "HogQLQuery.values must be an object."
        if query.get("modifiers") is not None and not isinstance(query.get("modifiers"), dict):
            return "HogQLQuery.modifiers must be an object."
        refresh = body.get("refresh")
        if refresh is not None and not isinstance(refresh, bool) and refresh not in REFRESH_MODES:
            return f"Input should be one of {sorted(REFRESH_MODES)} (refresh={refresh!r})."
        return None

    def _forced(self, status: int, faults: dict) -> Response:
        if status == 429:
            return self._throttle(faults)
        typ, code, detail = SERVER_ERRORS.get(status, ("server_error", "error", "Server error."))
        if status in (401, 402, 403, 404, 400):
            typ, code, detail = {
                400: ("validation_error", "invalid_input", "Bad request."),
                401: ("authentication_error", "authentication_failed", "Invalid key."),
                402: ("quota_limited", "payment_required", "Quota exceeded."),
                403: ("authentication_error", "permission_denied", "Forbidden."),
                404: ("invalid_request", "not_found", "Not found."),
            }[status]
        return Response(status, error_body(typ, code, detail))

    def _throttle(self, faults: dict) -> Response:
        seconds = int(faults["posthog_throttle_seconds"])
        return throttled(f"Request was throttled. Expected available in {seconds} seconds.")

    # ------------------------------------------------------------------ concurrency
    def _acquire(self, project: str, faults: dict) -> bool:
        with self._lock:
            n = self._running.get(project, 0)
            if n >= int(faults["posthog_max_concurrency"]):
                return False
            self._running[project] = n + 1
            return True

    def _release(self, project: str) -> None:
        with self._lock:
            self._running[project] -= 1

    # ------------------------------------------------------------------ cache
    @staticmethod
    def _cache_key(query: dict) -> str:
        material = json.dumps(
            [
                POSTHOG_PROJECT_ID,
                query.get("query"),
                query.get("values") or {},
                query.get("modifiers") or {},
            ],
            sort_keys=True,
            default=str,
        )
        return "cache_" + hashlib.sha256(material.encode()).hexdigest()[:32]

    def _cache_get(self, key: str, faults: dict) -> dict | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
            if time.time() - hit["_computed"] > float(faults["posthog_cache_ttl_seconds"]):
                return None
            self._cache.move_to_end(key)
            return hit

    def _cache_put(self, key: str, result: dict) -> None:
        with self._lock:
            old = self._cache.pop(key, None)
            if old is not None:
                self._cache_rows -= old["_rows"]
            self._cache[key] = result
            self._cache_rows += result["_rows"]
            while self._cache_rows > 300_000 and len(self._cache) > 1:
                _, evicted = self._cache.popitem(last=False)
                self._cache_rows -= evicted["_rows"]

    def _respond(self, result: dict, cached: bool) -> Response:
        out = {k: v for k, v in result.items() if not k.startswith("_")}
        out["is_cached"] = cached
        return Response(200, _encode(out), content_type="application/json")

    # ------------------------------------------------------------------ execution
    @property
    def engine(self) -> clickhouse.Engine:
        with self._lock:
            if self._engine is None:
                self._engine = clickhouse.Engine(self.store)
            return self._engine

    def add_events(self, rows: list[tuple], visible: dict[str, int]) -> int:
        """Inject rows (``visible``: uuid → µs when the row reaches ClickHouse)."""
        self.store.add_events(rows)
        self.engine.add(rows, visible)
        return len(rows)

    def execute(self, q: hogql.Query, faults: dict) -> dict:
        own_limit = q.limit is not None
        limit = min(q.limit, MAX_LIMIT) if own_limit else DEFAULT_LIMIT
        now_us = int(time.time() * US)
        until = None
        if faults.get("posthog_now"):
            until = parse_datetime_us(str(faults["posthog_now"]))
            if until is not None:
                now_us = until
        started = time.perf_counter()
        results, n = self.engine.execute(
            q,
            limit if own_limit else limit + 1,
            mode=int(faults.get("posthog_events_per_hour") or 0),
            now_us=now_us,
            until_us=until,
        )
        took = time.perf_counter() - started
        has_more = None
        if not own_limit:
            has_more = n > limit
            if has_more:
                rows = json.loads(results)[:limit]
                results, n = _encode(rows), limit
        rate = float(faults.get("posthog_malformed_rate") or 0)
        if rate > 0 and "uuid" in q.columns:
            rows = [_maybe_malformed(r, q.columns, rate, self.sb.seed) for r in json.loads(results)]
            results = _encode(rows)
        types = [
            [name, hogql.DATETIME if dt else hogql.COLUMNS.get(name, "String")]
            for name, dt in zip(q.columns, q.datetime_columns, strict=True)
        ]
        computed = time.time()
        return {
            "columns": list(q.columns),
            "types": types,
            "results": Raw(results),
            "hasMore": has_more,
            "limit": limit,
            "offset": 0,
            "is_cached": False,
            "cache_key": None,
            "last_refresh": datetime.fromtimestamp(computed, UTC)
            .isoformat()
            .replace("+00:00", "Z"),
            "next_allowed_client_refresh": None,
            "hogql": q.text,
            "timings": [{"k": "./clickhouse_execute", "t": round(took, 6)}],
            "error": None,
            "query_status": None,
            "modifiers": {"convertToProjectTimezone": False},
            "_computed": computed,
            "_rows": n,
        }


MALFORMED_KINDS = ("missing_uuid", "bad_timestamp", "bad_properties", "purchase_without_revenue")


def malformed_kind(uuid: str, rate: float, seed: int) -> str | None:
    """Deterministic per uuid, so a re-read serves the same rows malformed the same way."""
    h = zlib.crc32(f"{seed}:{uuid}".encode())
    if (h & 0xFFFF) / 0x10000 >= rate:
        return None
    return MALFORMED_KINDS[(h >> 16) % 4]


def _maybe_malformed(row: list, columns: list[str], rate: float, seed: int) -> list:
    """Break a served row (by its columns' names) the way ``malformed_kind`` says."""
    col = {c: i for i, c in enumerate(columns)}
    uid = row[col["uuid"]]
    kind = malformed_kind(uid, rate, seed)
    if kind is None:
        return row
    event = row[col["event"]] if "event" in col else None
    if kind == "purchase_without_revenue" and event != "purchase":
        kind = MALFORMED_KINDS[zlib.crc32(uid.encode()) % 3]
    row = list(row)
    if kind == "missing_uuid":
        row[col["uuid"]] = None
    elif kind == "bad_timestamp" and "timestamp" in col:
        row[col["timestamp"]] = "2026-13-45T25:61:00Z"
    elif kind == "bad_properties" and "properties" in col:
        props = row[col["properties"]]
        row[col["properties"]] = props[: max(1, len(props) // 2)]
    elif kind == "purchase_without_revenue" and "properties" in col:
        props = json.loads(row[col["properties"]])
        props.pop("revenue", None)
        row[col["properties"]] = json.dumps(props, separators=(",", ":"))
    return row


def injected_visibility(item: dict) -> int:
    """µs since the epoch when an injected event becomes visible (``visible_at``; 0 = now)."""
    if not item.get("visible_at"):
        return 0
    visible = parse_datetime_us(str(item["visible_at"]))
    if visible is None:
        raise ValueError("visible_at must be ISO-8601")
    return visible


def parse_injected_event(item: dict) -> tuple:
    """An event given to ``POST /_sandbox/posthog/events`` as a row tuple."""
    ts = parse_datetime_us(str(item["timestamp"]))
    created = parse_datetime_us(str(item.get("created_at") or item["timestamp"]))
    if ts is None or created is None:
        raise ValueError("timestamp/created_at must be ISO-8601")
    ts = ts // 1000 * 1000
    props = item.get("properties") or {}
    props_text = props if isinstance(props, str) else json.dumps(props, separators=(",", ":"))
    uid = str(item.get("uuid") or ev.uuid7(ts // 1000, zlib.crc32(props_text.encode()) << 40))
    return (
        created // 1000,
        uid.lower(),
        created,
        ts,
        str(item["event"]),
        str(item["distinct_id"]),
        props_text,
        iso_us(ts),
        iso_us(created),
    )
