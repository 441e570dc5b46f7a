"""PostHog Query API stand-in: ``POST /api/projects/:id/query/`` with a ``HogQLQuery``.

Behaviour follows PostHog's documented API (see /work/shared/POSTHOG_NOTES.md): personal-API-key
bearer auth, no LIMIT → 100 rows + ``hasMore``, LIMIT capped at 50,000, OFFSET refused (keyset
pagination), results cached unless ``refresh`` forces a recalculation, 3 concurrent queries per
project, throttling as HTTP 429 with a ``throttled_error`` body and no Retry-After.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import operator
import threading
import time
import zlib
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from include.sandbox import events as ev
from include.sandbox import hogql
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

    def reset(self) -> None:
        with self._lock:
            self._cache.clear()
            self._cache_rows = 0
        self.store.reset()

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
            parsed = hogql.parse(query["query"], values)
        except hogql.HogQLError as exc:
            return validation_error(str(exc))
        if parsed.offset is not None:
            return validation_error(OFFSET_DETAIL)

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
            try:
                result = self.execute(parsed, faults)
            except (hogql.HogQLError, ev.TooMuchData) as exc:
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
    def execute(self, q: hogql.Query, faults: dict) -> dict:
        where = hogql.compile_expr(q.where) if q.where is not None else None
        if where is not None and where.type not in ("bool", "any", "int", "null"):
            raise hogql.HogQLError(f"Illegal type {where.type} of the WHERE condition")
        select = [hogql.compile_expr(item.expr) for item in q.select]
        order = [(hogql.compile_expr(e), desc) for e, desc in q.order]
        created_b, ts_b = hogql.time_bounds(q.where)
        now_us = int(time.time() * US)
        visible_until = None
        if faults.get("posthog_now"):
            visible_until = parse_datetime_us(str(faults["posthog_now"]))
            if visible_until is not None:
                now_us = visible_until
                hi = created_b[1]
                created_b = (created_b[0], visible_until if hi is None else min(hi, visible_until))
        source = self.store.candidates(
            created_b,
            ts_b,
            now_us=now_us,
            events_per_hour=int(faults.get("posthog_events_per_hour") or 0) or None,
        )
        pred = where.fn if where is not None else None
        if visible_until is not None:
            inner = pred

            def pred(r, inner=inner, until=visible_until):
                return r[ev.CREATED_US] <= until and (inner is None or inner(r))

        rows_iter = filter(pred, source) if pred is not None else source
        own_limit = q.limit is not None
        limit = min(q.limit, MAX_LIMIT) if own_limit else DEFAULT_LIMIT
        want = limit if own_limit else limit + 1
        keys = [(c.key, desc) for c, desc in order]
        canonical = keys in ([], [("created_ms", False)]) or keys[:2] == [
            ("created_ms", False),
            ("uuid", False),
        ]
        if canonical:
            rows = list(itertools.islice(rows_iter, want))
        else:
            rows = list(itertools.islice(rows_iter, MAX_MATERIALIZE + 1))
            if len(rows) > MAX_MATERIALIZE:
                raise ev.TooMuchData(
                    f"sandbox HogQL sorts at most {MAX_MATERIALIZE} rows; narrow the time range "
                    "or ORDER BY toUnixTimestamp64Milli(created_at), uuid"
                )
            for c, desc in reversed(order):
                rows.sort(key=_sort_key(c.fn, desc), reverse=desc)
            rows = rows[:want]
        has_more = None
        if not own_limit:
            has_more = len(rows) > limit
            rows = rows[:limit]
        rate = float(faults.get("posthog_malformed_rate") or 0)
        if rate > 0:
            rows = [_maybe_malformed(r, rate, self.sb.seed) for r in rows]
        results = _project(select, rows)
        columns = [item.name for item in q.select]
        types = [
            [item.name, hogql.COLUMNS[item.expr.name]]
            if isinstance(item.expr, hogql.Col)
            else [item.name, hogql.clickhouse_type(c)]
            for item, c in zip(q.select, select, strict=True)
        ]
        computed = time.time()
        return {
            "columns": columns,
            "types": types,
            "results": Raw(_encode(results)),
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
            "timings": [],
            "error": None,
            "query_status": None,
            "modifiers": {"convertToProjectTimezone": False},
            "_computed": computed,
            "_rows": len(results),
        }


def _project(select: list[hogql.Compiled], rows: list[tuple]) -> list:
    idx = []
    for c in select:
        if c.key == "created_us":
            idx.append(ev.CREATED_ISO)
        elif c.key == "ts_us":
            idx.append(ev.TS_ISO)
        elif c.key in ("created_ms", "uuid"):
            idx.append(ev.CREATED_MS if c.key == "created_ms" else ev.UUID)
        elif isinstance(c.fn, operator.itemgetter) and c.type in ("str", "uuid"):
            idx.append(c.fn(tuple(range(9))))
        else:
            idx = None
            break
    if idx is not None:
        if len(idx) == 1:
            i = idx[0]
            return [[r[i]] for r in rows]
        getter = operator.itemgetter(*idx)
        return [getter(r) for r in rows]
    fns = [hogql.output_formatter(c) for c in select]
    return [[f(r) for f in fns] for r in rows]


def _sort_key(fn, desc: bool):
    def key(r):
        v = fn(r)
        if v is None:  # ClickHouse default: NULLS LAST in both directions
            return (0, 0) if desc else (1, 0)
        return (1, v) if desc else (0, v)

    return key


MALFORMED_KINDS = ("missing_uuid", "bad_timestamp", "bad_properties", "purchase_without_revenue")


def malformed_kind(uuid: str, rate: float, seed: int) -> str | None:
    """Deterministic per uuid, so a re-read serves the same rows malformed the same way."""
    h = zlib.crc32(f"{seed}:{uuid}".encode())
    if (h & 0xFFFF) / 0x10000 >= rate:
        return None
    return MALFORMED_KINDS[(h >> 16) % 4]


def _maybe_malformed(r: tuple, rate: float, seed: int) -> tuple:
    kind = malformed_kind(r[ev.UUID], rate, seed)
    if kind is None:
        return r
    if kind == "purchase_without_revenue" and r[ev.EVENT] != "purchase":
        kind = MALFORMED_KINDS[zlib.crc32(r[ev.UUID].encode()) % 3]
    row = list(r)
    if kind == "missing_uuid":
        row[ev.UUID] = None
    elif kind == "bad_timestamp":
        row[ev.TS_ISO] = "2026-13-45T25:61:00Z"
    elif kind == "bad_properties":
        row[ev.PROPS] = r[ev.PROPS][: max(1, len(r[ev.PROPS]) // 2)]
    else:
        props = json.loads(r[ev.PROPS])
        props.pop("revenue", None)
        row[ev.PROPS] = json.dumps(props, separators=(",", ":"))
    return tuple(row)


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
