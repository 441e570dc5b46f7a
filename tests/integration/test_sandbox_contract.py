"""Contract tests of the sandbox upstreams (include/sandbox) over real loopback HTTP.

They pin the documented behaviour the clients are written against: PostHog's Query API limits
(OFFSET refused, LIMIT capped, default 100 + hasMore, keyset paging, throttle/concurrency 429s,
caching), the inventory endpoint, GitHub's pagination/ETag/rate limits, and the sample data
(served events aggregate to ``analytics.daily_metrics``; the loader is idempotent).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import httpx
import pytest

from include.sandbox.constants import (
    DEMO_DAY,
    GITHUB_TOKEN,
    INVENTORY_TOKEN,
    PLANTED_ANOMALIES,
    POSTHOG_API_KEY,
    POSTHOG_PROJECT_ID,
    airflow_connections,
)
from include.sandbox.data import daily_metrics_for, sku_count
from include.sandbox.generator import load_sample_data, write_ladder_file
from include.sandbox.timeutil import iso_us, pt_day_bounds_us

QUERY_PATH = f"/api/projects/{POSTHOG_PROJECT_ID}/query/"
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
KEYSET = (
    "SELECT uuid, event, created_at, toUnixTimestamp64Milli(created_at) AS ms FROM events"
    " WHERE created_at >= {w_start} AND created_at < {w_end}"
    " AND (toUnixTimestamp64Milli(created_at), uuid) > ({ms}, {uuid})"
    " ORDER BY toUnixTimestamp64Milli(created_at), uuid LIMIT {limit}"
)
EVENING_START, EVENING_END = "2026-11-20T03:00:00Z", "2026-11-20T04:00:00Z"  # 19:00 PT Nov 19


@pytest.fixture
def ph(sandbox):
    with httpx.Client(
        base_url=sandbox.url,
        headers={"Authorization": f"Bearer {POSTHOG_API_KEY}"},
        timeout=60,
    ) as client:
        yield client


def hogql(client: httpx.Client, query: str, values=None, refresh="force_blocking", **extra):
    body = {"query": {"kind": "HogQLQuery", "query": query, "values": values or {}, **extra}}
    if refresh is not None:
        body["refresh"] = refresh
    return client.post(QUERY_PATH, json=body)


def ch_uuid_key(text: str) -> tuple[int, int]:
    """ClickHouse's order of a UUID: its two 64-bit halves, the second half first."""
    h = text.replace("-", "")
    return int(h[16:], 16), int(h[:16], 16)


def keyset_pages(client, w_start, w_end, page_size):
    ms, uuid, rows, pages = 0, ZERO_UUID, [], 0
    while True:
        values = {"w_start": w_start, "w_end": w_end, "ms": ms, "uuid": uuid, "limit": page_size}
        r = hogql(client, KEYSET, values)
        assert r.status_code == 200, r.text
        page = r.json()["results"]
        pages += 1
        rows.extend(page)
        if len(page) < page_size:
            return rows, pages
        ms, uuid = page[-1][3], page[-1][0]


# ----------------------------------------------------------------------------- PostHog
def test_offset_is_rejected_with_keyset_hint(ph):
    r = hogql(ph, "SELECT uuid FROM events WHERE created_at >= '2026-11-20' LIMIT 10 OFFSET 10")
    assert r.status_code == 400
    body = r.json()
    assert body["type"] == "validation_error"
    assert "OFFSET is not supported" in body["detail"]
    assert "keyset" in body["detail"]
    r = hogql(ph, "SELECT uuid FROM events WHERE created_at >= '2026-11-20' LIMIT 10, 10")
    assert r.status_code == 400 and "OFFSET is not supported" in r.json()["detail"]


def test_limit_is_capped_at_50000(sandbox, ph):
    sandbox.set_faults(posthog_events_per_hour=60_000)
    r = hogql(
        ph,
        "SELECT uuid, toUnixTimestamp64Milli(created_at) FROM events"
        " WHERE created_at >= {a} AND created_at < {b}"
        " ORDER BY toUnixTimestamp64Milli(created_at), uuid LIMIT 100000",
        {"a": "2026-11-20T10:00:00Z", "b": "2026-11-20T11:00:00Z"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["results"]) == 50_000
    assert body["limit"] == 50_000
    assert body["hasMore"] is None  # the query had its own LIMIT
    assert len({row[0] for row in body["results"]}) == 50_000


def test_no_limit_defaults_to_100_rows_with_has_more(ph):
    window = {"a": EVENING_START, "b": EVENING_END}
    q = "SELECT uuid FROM events WHERE created_at >= {a} AND created_at < {b}"
    body = hogql(ph, q, window).json()
    assert len(body["results"]) == 100
    assert body["hasMore"] is True
    assert body["limit"] == 100 and body["offset"] == 0
    small = hogql(ph, q + " AND event = 'purchase'", window).json()
    assert 0 < len(small["results"]) < 100 and small["hasMore"] is False
    own = hogql(ph, q + " LIMIT 5", window).json()
    assert len(own["results"]) == 5 and own["hasMore"] is None


def test_response_shape_and_types(ph):
    body = hogql(
        ph,
        "SELECT uuid, event, distinct_id, timestamp, created_at, properties,"
        " toUnixTimestamp64Milli(created_at) FROM events"
        " WHERE created_at >= {a} AND created_at < {b} ORDER BY toUnixTimestamp64Milli(created_at),"
        " uuid LIMIT 50",
        {"a": EVENING_START, "b": EVENING_END},
    ).json()
    for key in ("columns", "types", "results", "hasMore", "limit", "offset", "is_cached"):
        assert key in body
    for key in ("cache_key", "last_refresh", "hogql", "timings", "error"):
        assert key in body
    assert body["columns"][:6] == [
        "uuid",
        "event",
        "distinct_id",
        "timestamp",
        "created_at",
        "properties",
    ]
    assert dict(body["types"])["created_at"].startswith("DateTime64")
    row = body["results"][0]
    assert row[3].endswith("Z") and row[4].endswith("Z")
    assert isinstance(json.loads(row[5]), dict)
    assert EVENING_START <= row[4] < EVENING_END
    assert body["error"] is None and body["is_cached"] is False


def test_keyset_pages_are_complete_and_ordered_with_created_at_ties(ph):
    # Find a backlog burst (many events sharing one created_at millisecond) on DEMO_DAY.
    lo, hi = pt_day_bounds_us(DEMO_DAY)
    day = hogql(
        ph,
        "SELECT toUnixTimestamp64Milli(created_at) FROM events WHERE timestamp >= {a}"
        " AND timestamp < {b} AND created_at < {b} LIMIT 50000",
        {"a": iso_us(lo), "b": iso_us(hi)},
    ).json()["results"]
    burst_ms, ties = Counter(r[0] for r in day).most_common(1)[0]
    page_size = 10
    assert ties > page_size, "the sample data must contain created_at ties larger than a page"
    w_start = iso_us((burst_ms - 20 * 60 * 1000) * 1000)
    w_end = iso_us((burst_ms + 20 * 60 * 1000) * 1000)

    paged, pages = keyset_pages(ph, w_start, w_end, page_size)
    whole = hogql(
        ph, KEYSET, {"w_start": w_start, "w_end": w_end, "ms": 0, "uuid": ZERO_UUID, "limit": 50000}
    ).json()["results"]
    assert pages > 3
    assert [r[0] for r in paged] == [r[0] for r in whole]  # no gap, no duplicate, same order
    assert len({r[0] for r in paged}) == len(paged)
    keys = [(r[3], ch_uuid_key(r[0])) for r in paged]  # ClickHouse's UUID order, not strings
    assert keys == sorted(keys)
    assert all(w_start <= r[2] < w_end for r in paged)
    assert sum(1 for r in paged if r[3] == burst_ms) == ties


def test_pages_follow_clickhouse_uuid_order_across_a_page_boundary(sandbox, ph):
    # Three events in one created_at millisecond. ClickHouse orders UUIDs by their second 64-bit
    # half first, so ffffffff-0000-… comes before 00000000-…-0001: a client that compared uuids
    # as strings (or a stand-in that sorted them so) would skip or repeat rows at the boundary.
    first, mid, last = (
        "ffffffff-0000-0000-0000-000000000000",
        "00000000-0000-0000-0000-000000000001",
        "00000000-0000-0000-0000-000000000002",
    )
    at = "2026-11-18T10:00:00Z"
    base = {"event": "listing_viewed", "distinct_id": "seeker-00001", "timestamp": at}
    sandbox.add_events(
        [
            {**base, "uuid": u, "created_at": at, "properties": {"listing_id": "lst-00001"}}
            for u in (last, first, mid)
        ]
    )
    w_start, w_end = at, "2026-11-18T10:00:00.001000Z"
    paged, pages = keyset_pages(ph, w_start, w_end, 1)
    ours = [r[0] for r in paged if r[0] in (first, mid, last)]
    assert ours == [first, mid, last]
    assert pages == len(paged) + 1  # one row a page, then the empty page
    # orjson's rendering: no fraction when it is zero; created_ms a JSON number
    assert all(r[2] == "2026-11-18T10:00:00Z" for r in paged if r[0] in ours)
    assert all(isinstance(r[3], int) for r in paged)


def test_throttle_429_body_is_exact_and_has_no_retry_after(sandbox, ph):
    sandbox.set_faults(posthog_429_burst=2, posthog_throttle_seconds=1)
    q = "SELECT uuid FROM events WHERE created_at >= {a} AND created_at < {b} LIMIT 1"
    window = {"a": EVENING_START, "b": EVENING_END}
    for _ in range(2):
        r = hogql(ph, q, window)
        assert r.status_code == 429
        assert r.json() == {
            "type": "throttled_error",
            "code": "throttled",
            "detail": "Request was throttled. Expected available in 1 seconds.",
            "attr": None,
        }
        assert "retry-after" not in r.headers
    assert hogql(ph, q, window).status_code == 200


def test_status_sequence_then_success(sandbox, ph):
    sandbox.set_faults(posthog_status_sequence=[429, 503, 504, 512])
    q = "SELECT uuid FROM events WHERE created_at >= {a} AND created_at < {b} LIMIT 1"
    window = {"a": EVENING_START, "b": EVENING_END}
    statuses = [hogql(ph, q, window).status_code for _ in range(5)]
    assert statuses == [429, 503, 504, 512, 200]
    assert [c["status"] for c in sandbox.calls("posthog")] == statuses


def test_concurrency_limit_of_three_queries(sandbox, ph):
    sandbox.set_faults(posthog_latency_ms=700)
    q = "SELECT uuid FROM events WHERE created_at >= {a} AND created_at < {b} LIMIT 1"
    results: list[httpx.Response] = []
    barrier = threading.Barrier(4)

    def run():
        with httpx.Client(base_url=sandbox.url, headers=dict(ph.headers), timeout=30) as c:
            barrier.wait()
            results.append(hogql(c, q, {"a": EVENING_START, "b": EVENING_END}))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    limited = [r for r in results if r.status_code == 429]
    assert len(limited) >= 1
    assert sum(1 for r in results if r.status_code == 200) >= 1
    for r in limited:
        assert r.json()["type"] == "throttled_error"
        assert r.json()["detail"].startswith("Exceeded maximum concurrency limit: 3")
        assert "retry-after" not in r.headers


def test_cache_serves_stale_results_until_force_blocking(sandbox, ph):
    q = "SELECT uuid, event FROM events WHERE created_at >= {a} AND created_at < {b} LIMIT 50000"
    window = {"a": EVENING_START, "b": EVENING_END}
    first = hogql(ph, q, window, refresh="blocking").json()
    assert first["is_cached"] is False
    again = hogql(ph, q, window, refresh=None).json()
    assert again["is_cached"] is True
    assert again["results"] == first["results"]
    assert again["cache_key"] == first["cache_key"]

    late = {
        "uuid": "01a1f8a0-0000-7000-8000-00000000beef",
        "event": "listing_viewed",
        "distinct_id": "seeker-00001",
        "timestamp": "2026-11-20T03:10:00Z",
        "created_at": "2026-11-20T03:30:00Z",
        "properties": {"listing_id": "lst-00001", "$session_id": "s-late", "user_type": "seeker"},
    }
    assert sandbox.add_events([late]) == 1
    stale = hogql(ph, q, window, refresh="blocking").json()
    assert stale["is_cached"] is True
    assert late["uuid"] not in {r[0] for r in stale["results"]}
    fresh = hogql(ph, q, window, refresh="force_blocking").json()
    assert fresh["is_cached"] is False
    assert late["uuid"] in {r[0] for r in fresh["results"]}
    assert len(fresh["results"]) == len(first["results"]) + 1
    # A knob change is not visible through the cache either.
    sandbox.set_faults(posthog_malformed_rate=1.0)
    assert hogql(ph, q, window, refresh="blocking").json()["results"] == fresh["results"]


def test_auth_project_and_validation_errors(sandbox, ph):
    q = "SELECT uuid FROM events WHERE created_at >= '2026-11-20' LIMIT 1"
    bad = hogql(httpx.Client(base_url=sandbox.url, headers={"Authorization": "Bearer nope"}), q)
    assert bad.status_code == 401
    assert bad.json()["type"] == "authentication_error"
    assert bad.json()["code"] == "authentication_failed"
    missing = httpx.post(sandbox.url + QUERY_PATH, json={"query": {"kind": "HogQLQuery"}})
    assert missing.status_code == 401
    other = ph.post("/api/projects/1/query/", json={"query": {"kind": "HogQLQuery", "query": q}})
    assert other.status_code in (403, 404)

    r = hogql(ph, "SELECT uuid FROM events WHERE created_at >= {w_start} LIMIT 1")
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_input" and "w_start" in r.json()["detail"]
    r = ph.post(QUERY_PATH, json={"query": {"kind": "NoSuchQuery", "query": q}})
    assert r.status_code == 400 and r.json()["type"] == "validation_error"
    r = ph.post(QUERY_PATH, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    for unsupported in (
        "SELECT uniq(distinct_id) FROM events WHERE created_at >= '2026-11-20'",
        "SELECT uuid FROM events WHERE created_at >= '2026-11-20' GROUP BY uuid",
        "SELECT uuid FROM persons",
    ):
        r = hogql(ph, unsupported)
        assert r.status_code == 400
        assert "sandbox HogQL does not support" in r.json()["detail"]
    # unbounded scans are refused honestly rather than answered partially
    r = hogql(ph, "SELECT uuid FROM events LIMIT 1")
    assert r.status_code == 400 and "lower time bound" in r.json()["detail"]
    assert [c["status"] for c in sandbox.calls("posthog")][:2] == [401, 401]
    assert all(
        "authorization" not in {k.lower() for k in c["headers"]} for c in sandbox.calls("posthog")
    )


def test_posthog_now_hides_events_that_have_not_arrived_yet(sandbox, ph):
    q = (
        "SELECT created_at FROM events WHERE created_at >= {a} AND created_at < {b}"
        " ORDER BY toUnixTimestamp64Milli(created_at), uuid LIMIT 50000"
    )
    window = {"a": EVENING_START, "b": EVENING_END}
    everything = hogql(ph, q, window).json()["results"]
    sandbox.set_faults(posthog_now="2026-11-20T03:30:00Z")
    so_far = hogql(ph, q, window).json()["results"]
    assert so_far == [r for r in everything if r[0] <= "2026-11-20T03:30:00.000000Z"]
    assert 0 < len(so_far) < len(everything)


def test_hogql_expressions(ph):
    window = {"a": EVENING_START, "b": EVENING_END}
    base = hogql(
        ph,
        "SELECT uuid, event, properties.listing_id, toString(created_at) FROM events"
        " WHERE created_at >= toDateTime64({a}, 6) AND created_at < {b}"
        " AND event IN ('listing_viewed', 'listing_saved') AND NOT (distinct_id = 'nobody')"
        " ORDER BY timestamp DESC LIMIT 50000",
        window,
    )
    assert base.status_code == 200, base.text
    rows = base.json()["results"]
    assert rows and all(r[1] in ("listing_viewed", "listing_saved") for r in rows)
    assert all(r[2].startswith("lst-") for r in rows)
    assert " " in rows[0][3] and not rows[0][3].endswith("Z")  # ClickHouse toString format
    interval = hogql(
        ph,
        "SELECT uuid FROM events WHERE created_at >= toDateTime({b}) - INTERVAL 1 HOUR"
        " AND created_at < {b} AND (event = 'purchase' OR event = 'listing_saved') LIMIT 50000",
        window,
    ).json()["results"]
    saved = [r for r in rows if r[1] == "listing_saved"]
    assert len(interval) >= len(saved) > 0


def test_malformed_rows_are_deterministic(sandbox, ph):
    sandbox.set_faults(posthog_malformed_rate=0.2)
    q = (
        "SELECT uuid, event, timestamp, properties FROM events WHERE created_at >= {a}"
        " AND created_at < {b} ORDER BY toUnixTimestamp64Milli(created_at), uuid LIMIT 50000"
    )
    window = {"a": EVENING_START, "b": EVENING_END}
    rows = hogql(ph, q, window).json()["results"]
    again = hogql(ph, q, window).json()["results"]
    assert rows == again

    def broken(r):
        if r[0] is None or not r[2][:4].isdigit() or r[2][5:7] == "13":
            return True
        try:
            props = json.loads(r[3])
        except ValueError:
            return True
        return r[1] == "purchase" and "revenue" not in props

    bad = [r for r in rows if broken(r)]
    assert 0.08 * len(rows) < len(bad) < 0.35 * len(rows)


def test_benchmark_volume_is_exact_and_fast_to_page(sandbox, ph):
    sandbox.set_faults(posthog_events_per_hour=1200)
    rows, _ = keyset_pages(ph, "2026-11-20T10:00:00Z", "2026-11-20T11:00:00Z", 500)
    assert len(rows) == 1200
    assert len({r[0] for r in rows}) == 1200
    assert Counter(r[3] for r in rows).most_common(1)[0][1] == 4  # groups share created_at
    props = hogql(
        ph,
        "SELECT properties FROM events WHERE created_at >= '2026-11-20 10:00:00'"
        " AND created_at < '2026-11-20 10:05:00' LIMIT 1",
    ).json()["results"][0][0]
    assert 650 <= len(props) <= 900
    assert "$session_id" in json.loads(props)


# ----------------------------------------------------------------------------- inventory
def test_inventory_contract(sandbox):
    url = sandbox.url + "/api/dashboard/inventory-analytics"
    auth = {"Authorization": f"Bearer {INVENTORY_TOKEN}"}
    params = {"client_id": "client-001", "platform": "shopify", "force_refresh": "true"}
    assert httpx.get(url, params=params).status_code == 401
    assert httpx.get(url, params=params, headers={"Authorization": "Bearer x"}).status_code == 401
    r = httpx.get(url, params={**params, "client_id": "client-zzz"}, headers=auth)
    assert r.status_code == 404 and r.json()["success"] is False
    assert httpx.get(url, params={**params, "platform": "ebay"}, headers=auth).status_code == 400

    ok = httpx.get(url, params=params, headers=auth).json()
    assert ok["success"] is True and ok["platforms"] == ["shopify"] and ok["cached"] is False
    assert set(ok["kpis"]) == {"total_sales", "inventory_units", "turnover_rate"}
    both = httpx.get(url, params={**params, "platform": "all"}, headers=auth).json()
    assert both["platforms"] == ["shopify", "amazon"]
    assert both["sku_count"] == sku_count("client-001", "shopify") + sku_count(
        "client-001", "amazon"
    )
    cached = httpx.get(url, params={"client_id": "client-001", "platform": "all"}, headers=auth)
    assert cached.json()["cached"] is True

    sandbox.set_faults(inventory_fail_clients={"client-002": 503})
    assert (
        httpx.get(url, params={**params, "client_id": "client-002"}, headers=auth).status_code
        == 503
    )
    calls = sandbox.calls("inventory")
    assert [c["status"] for c in calls] == [401, 401, 404, 400, 200, 200, 200, 503]
    assert {c["query"].get("client_id") for c in calls} == {
        "client-001",
        "client-zzz",
        "client-002",
    }
    assert all("authorization" not in {k.lower() for k in c["headers"]} for c in calls)


def test_inventory_latency_does_not_serialise_requests(sandbox):
    sandbox.set_faults(inventory_latency_ms=300)
    url = sandbox.url + "/api/dashboard/inventory-analytics"
    auth = {"Authorization": f"Bearer {INVENTORY_TOKEN}"}
    done: list[int] = []

    def call(i):
        r = httpx.get(url, params={"client_id": f"client-{i:03d}", "platform": "all"}, headers=auth)
        done.append(r.status_code)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(1, 17)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    calls = sandbox.calls("inventory")
    assert done == [200] * 16 and len(calls) == 16
    # The latency is a per-request sleep: requests were in flight at the same time.
    spans = [(c["started"], c["started"] + c["duration_ms"] / 1000) for c in calls]
    overlap = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert overlap >= 4
    assert min(c["duration_ms"] for c in calls) >= 300


# ----------------------------------------------------------------------------- GitHub
@pytest.fixture
def gh(sandbox):
    with httpx.Client(
        base_url=sandbox.url, headers={"Authorization": f"Bearer {GITHUB_TOKEN}"}, timeout=30
    ) as client:
        yield client


def test_github_pagination_link_headers(gh):
    repo = gh.get("/repos/acme/storefront")
    assert repo.status_code == 200 and repo.json()["full_name"] == "acme/storefront"
    url = "/repos/acme/storefront/issues?state=all&per_page=30&sort=updated&direction=asc"
    numbers, pages, first = [], 0, None
    while url:
        r = gh.get(url)
        assert r.status_code == 200
        pages += 1
        if first is None:
            first = r
        numbers += [i["number"] for i in r.json()]
        url = r.links.get("next", {}).get("url")
    assert pages >= 3
    assert 'rel="last"' in first.headers["link"] and 'rel="next"' in first.headers["link"]
    assert len(numbers) == len(set(numbers)) >= 90
    items = gh.get("/repos/acme/storefront/issues?state=all&per_page=100").json()
    assert any("pull_request" in i for i in items) and any("pull_request" not in i for i in items)
    labels = {label["name"] for i in items for label in i["labels"]}
    assert {"bug", "severity:critical"} <= labels and any(x.startswith("revenue:") for x in labels)
    assert len(gh.get("/repos/acme/storefront/issues?state=all").json()) == 30  # default per_page
    open_items = gh.get("/repos/acme/storefront/issues?per_page=100").json()  # default state=open
    assert open_items and all(i["state"] == "open" for i in open_items)


def test_github_etag_304_does_not_use_rate_limit(gh):
    r = gh.get("/repos/acme/checkout/issues?state=all&per_page=50")
    etag = r.headers["etag"]
    remaining = int(r.headers["x-ratelimit-remaining"])
    assert r.headers["x-ratelimit-limit"] == "5000" and r.headers["x-ratelimit-resource"] == "core"
    not_modified = gh.get(
        "/repos/acme/checkout/issues?state=all&per_page=50", headers={"If-None-Match": etag}
    )
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert int(not_modified.headers["x-ratelimit-remaining"]) == remaining
    again = gh.get("/repos/acme/checkout/issues?state=all&per_page=50")
    assert int(again.headers["x-ratelimit-remaining"]) == remaining - 1


def test_github_errors_and_limits(sandbox, gh):
    assert gh.get("/repos/acme/nope").status_code == 404
    assert gh.get("/repos/acme/nope").json()["message"] == "Not Found"
    bad = httpx.get(sandbox.url + "/repos/acme/checkout", headers={"Authorization": "token x"})
    assert bad.status_code == 401 and bad.json()["message"] == "Bad credentials"

    sandbox.set_faults(github_secondary_limit=1)
    r = gh.get("/repos/acme/checkout")
    assert r.status_code == 403 and r.headers["retry-after"] == "1"
    assert "secondary rate limit" in r.json()["message"]
    assert gh.get("/repos/acme/checkout").status_code == 200

    sandbox.set_faults(github_rate_limit_remaining=1)
    assert gh.get("/repos/acme/checkout").status_code == 200
    limited = gh.get("/repos/acme/checkout")
    assert limited.status_code == 403
    assert limited.headers["x-ratelimit-remaining"] == "0"
    reset = int(limited.headers["x-ratelimit-reset"])
    assert 0 < reset - int(__import__("time").time()) <= 3

    sandbox.set_faults(github_fail_repos={"acme/mobile-app": 502}, github_rate_limit_remaining=None)
    assert gh.get("/repos/acme/mobile-app/issues").status_code == 502


def test_github_touch_shows_up_in_incremental_sync(sandbox, gh):
    items = gh.get("/repos/acme/data-pipeline/issues?state=all&per_page=100").json()
    since = max(i["updated_at"] for i in items)
    touched = sandbox.touch_issue("acme/data-pipeline", 3, state="closed", labels=["bug"])
    created = sandbox.touch_issue("acme/data-pipeline", None, title="New outage", labels=["bug"])
    assert touched["updated_at"] > since and created["number"] == len(items) + 1
    changed = gh.get(f"/repos/acme/data-pipeline/issues?state=all&since={touched['updated_at']}")
    assert {i["number"] for i in changed.json()} == {3, created["number"]}
    sandbox.reset()
    assert len(gh.get("/repos/acme/data-pipeline/issues?state=all&per_page=100").json()) == len(
        items
    )


# ----------------------------------------------------------------------------- sample data
def test_served_events_aggregate_to_daily_metrics(sandbox, ph, db, pg_dsn):
    counts = load_sample_data(pg_dsn, days=180)
    assert counts["daily_metrics"] >= 150
    for day in (DEMO_DAY - timedelta(days=1), date(2026, 11, 11)):
        lo, hi = pt_day_bounds_us(day)
        r = hogql(
            ph,
            "SELECT event, properties FROM events WHERE timestamp >= {a} AND timestamp < {b}"
            " LIMIT 50000",
            {"a": iso_us(lo), "b": iso_us(hi)},
        )
        assert r.status_code == 200, r.text
        sessions, conversions, orders, revenue = set(), set(), 0, Decimal(0)
        for event, props_text in r.json()["results"]:
            props = json.loads(props_text)
            if "$session_id" in props:
                sessions.add(props["$session_id"])
            if event == "purchase":
                orders += 1
                revenue += Decimal(str(props["revenue"]))
                if "$session_id" in props:
                    conversions.add(props["$session_id"])
        row = db.execute(
            "SELECT sessions, orders, conversions, revenue FROM analytics.daily_metrics"
            " WHERE metric_date = %s",
            (day,),
        ).fetchone()
        assert row == (len(sessions), orders, len(conversions), revenue), day


def test_load_sample_data_is_idempotent(db, pg_dsn):
    def snapshot():
        return {
            t: db.execute(
                f"SELECT count(*), md5(string_agg(x::text, ',' ORDER BY x::text)) FROM {t} x"
            ).fetchone()
            for t in (
                "analytics.daily_metrics",
                "analytics.ideas",
                "analytics.clients",
                "analytics.client_api_credentials",
                "analytics.projects",
            )
        }

    first = load_sample_data(pg_dsn)
    before = db.execute(
        "SELECT metric_date, revenue, orders, sessions, conversions, ideas_total"
        " FROM analytics.daily_metrics ORDER BY 1"
    ).fetchall()
    second = load_sample_data(pg_dsn)
    after = db.execute(
        "SELECT metric_date, revenue, orders, sessions, conversions, ideas_total"
        " FROM analytics.daily_metrics ORDER BY 1"
    ).fetchall()
    assert first == second and before == after
    counts = snapshot()
    assert counts["analytics.daily_metrics"][0] == 180
    assert counts["analytics.clients"][0] == 12
    statuses = dict(
        db.execute(
            "SELECT status, count(*) FROM analytics.client_api_credentials GROUP BY 1"
        ).fetchall()
    )
    assert statuses["connected"] == 9 and sum(statuses.values()) == 12
    assert db.execute("SELECT count(*) FROM analytics.projects WHERE NOT active").fetchone() == (1,)
    total = db.execute(
        "SELECT ideas_total FROM analytics.daily_metrics WHERE metric_date = %s", (DEMO_DAY,)
    ).fetchone()[0]
    ideas = db.execute(
        "SELECT count(*) FROM analytics.ideas"
        " WHERE created_at < (%s::date + 1)::timestamp AT TIME ZONE 'America/Los_Angeles'",
        (DEMO_DAY,),
    ).fetchone()[0]
    assert total == ideas


def test_planted_anomalies_stand_out(db, pg_dsn):
    load_sample_data(pg_dsn)
    rows = {
        r[0]: r[1:]
        for r in db.execute(
            "SELECT metric_date, revenue, sessions, conversion_rate FROM analytics.daily_metrics"
        ).fetchall()
    }
    assert all(DEMO_DAY - timedelta(days=60) <= d < DEMO_DAY for d in PLANTED_ANOMALIES)
    assert date(2026, 11, 11) in PLANTED_ANOMALIES and rows[date(2026, 11, 11)][1] == 0
    same_weekday = [rows[date(2026, 10, 29) - timedelta(days=7 * k)][0] for k in (1, 2, 3)]
    assert rows[date(2026, 10, 29)][0] < Decimal("0.8") * min(same_weekday)
    assert daily_metrics_for(DEMO_DAY).outlier is None


def test_ladder_file_and_connections(tmp_path):
    path = tmp_path / "ledger" / "cron.jsonl"
    info = write_ladder_file(path, seed=7, lines=40)
    lines = path.read_text().splitlines()
    assert len(lines) == info["lines"]
    parsed, malformed = [], 0
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            malformed += 1
    assert malformed == 1
    assert {e["job"] for e in parsed if "job" in e} == {"backup_db", "sitemap_build", "ideas_sync"}
    assert any(e["exit"] != 0 for e in parsed) and all("ts" in e and "msg" in e for e in parsed)

    conns = airflow_connections("http://127.0.0.1:8811")
    posthog = json.loads(conns["AIRFLOW_CONN_POSTHOG_API"])
    assert posthog == {
        "conn_type": "http",
        "host": "http://127.0.0.1:8811",
        "password": POSTHOG_API_KEY,
        "extra": {"project_id": POSTHOG_PROJECT_ID},
    }
    assert json.loads(conns["AIRFLOW_CONN_GITHUB_API"])["password"] == GITHUB_TOKEN
    assert json.loads(conns["AIRFLOW_CONN_INVENTORY_API"])["password"] == INVENTORY_TOKEN
