"""Pure logic of inventory_refresh: params, batch planning, result lines, payload parsing."""

from __future__ import annotations

import pytest

from include.analytics_ops.db import ConfigError
from include.analytics_ops.inventory import PLATFORMS
from include.analytics_ops.inventory.api import InventoryApi, RetryPolicy, parse_refresh_payload
from include.analytics_ops.inventory.jobs import (
    MAX_MAP_LENGTH,
    InvalidRefreshParams,
    batch_size_for,
    parse_params,
    plan_batches,
)
from include.analytics_ops.inventory.results import JobResult, RunSummary


def clients(n: int) -> list[str]:
    return [f"client-{i:04d}" for i in range(1, n + 1)]


# --------------------------------------------------------------------------- params
def test_params_default_to_every_client_and_platform():
    assert parse_params({}) == (None, PLATFORMS)
    assert parse_params({"client_ids": None, "platforms": None}) == (None, PLATFORMS)


def test_params_are_deduplicated_and_platforms_put_in_canonical_order():
    ids, platforms = parse_params(
        {"client_ids": ["client-002", " client-001", "client-002"], "platforms": ["all", "shopify"]}
    )
    assert ids == ["client-002", "client-001"]
    assert platforms == ("shopify", "all")


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"client_ids": []}, "empty list"),
        ({"client_ids": ["client-001", ""]}, "empty or non-text"),
        ({"client_ids": [7]}, "empty or non-text"),
        ({"client_ids": {"a": 1}}, "must be a list"),
        ({"platforms": ["shopify", "ebay"]}, "unknown platforms ['ebay']"),
        ({"platforms": []}, "non-empty list"),
    ],
)
def test_bad_params_are_refused_with_a_clear_message(params, fragment):
    with pytest.raises(InvalidRefreshParams, match=None) as err:
        parse_params(params)
    assert fragment in str(err.value)


# --------------------------------------------------------------------------- batches
@pytest.mark.parametrize(
    ("n", "batches", "largest"),
    [(1, 1, 1), (10, 1, 10), (25, 1, 25), (26, 2, 13), (300, 12, 25), (5000, 64, 79)],
)
def test_batches_stay_under_the_cap_and_cover_every_client_once(n, batches, largest):
    plan = plan_batches(clients(n), max_batches=64, min_batch_size=25)
    assert len(plan) == batches <= 64
    assert max(len(b.client_ids) for b in plan) == largest
    flat = [c for b in plan for c in b.client_ids]
    assert flat == clients(n)  # sorted, contiguous, each client exactly once
    sizes = {len(b.client_ids) for b in plan}
    assert max(sizes) - min(sizes) <= 1  # evenly spread, no tiny last batch
    assert [b.number for b in plan] == list(range(1, batches + 1))
    assert all(b.count == batches for b in plan)


def test_5000_clients_map_to_far_fewer_instances_than_max_map_length():
    plan = plan_batches(clients(5000), PLATFORMS)
    assert len(plan) <= 64 < MAX_MAP_LENGTH
    assert sum(b.jobs for b in plan) == 15000


def test_no_clients_means_no_batches():
    assert plan_batches([], PLATFORMS) == []


def test_max_batches_above_max_map_length_is_refused():
    with pytest.raises(ValueError, match="max_map_length"):
        batch_size_for(10, MAX_MAP_LENGTH + 1, 1)


def test_batch_label_and_descriptor_name_the_clients_and_platforms():
    plan = plan_batches(clients(300), PLATFORMS)
    third = plan[2]
    assert third.label == ("batch 3/12: client-0051…client-0075 (25 clients) × shopify,amazon,all")
    assert third.descriptor() == {
        "batch": 3,
        "batches": 12,
        "clients": 25,
        "jobs": 75,
        "label": third.label,
    }
    single = plan_batches(["client-001"], ("amazon",))[0]
    assert single.label == "batch 1/1: client-001 × amazon"


# --------------------------------------------------------------------------- api config
def test_connection_host_may_carry_scheme_and_port():
    api = InventoryApi.from_connection_fields("http://127.0.0.1:8811/", "tok")
    assert api.url == "http://127.0.0.1:8811/api/dashboard/inventory-analytics"
    bare = InventoryApi.from_connection_fields("api.example.com", "tok", port=8443)
    assert bare.url == "https://api.example.com:8443/api/dashboard/inventory-analytics"
    http = InventoryApi.from_connection_fields("backend", "tok", schema="http")
    assert http.base_url == "http://backend"


def test_token_is_required_and_never_in_repr():
    with pytest.raises(ConfigError, match="bearer token"):
        InventoryApi.from_connection_fields("http://x", None)
    assert "s3cret" not in repr(InventoryApi.from_connection_fields("http://x", "s3cret"))


def test_backoff_grows_and_honours_retry_after():
    policy = RetryPolicy(max_attempts=5, backoff_seconds=1.0, max_backoff_seconds=3.0)
    assert 0.5 <= policy.delay(1) <= 1.0
    assert 1.0 <= policy.delay(2) <= 2.0
    assert 1.5 <= policy.delay(4) <= 3.0  # capped
    assert policy.delay(1, retry_after=2.5) == 2.5


@pytest.mark.parametrize(
    ("platform", "payload", "expected"),
    [
        ("shopify", {"summary": {"total_skus": 45}}, (1, 45, None)),
        ("all", {"platforms": ["shopify", "amazon"], "total_skus": 68}, (2, 68, None)),
        ("amazon", {"skus": [{"sku": "a"}, {"sku": "b"}]}, (1, 2, None)),
    ],
)
def test_payload_counts(platform, payload, expected):
    assert parse_refresh_payload(platform, payload) == expected


def test_payload_reporting_failure_is_a_failure():
    _, _, error = parse_refresh_payload("shopify", {"success": False, "error": "cache down"})
    assert error and "cache down" in error
    _, _, error = parse_refresh_payload("shopify", "<html>oops</html>")
    assert error and "not a JSON object" in error


# --------------------------------------------------------------------------- summary lines
def _result(client, platform, status, **kw):
    base = dict(
        batch=1, http_status=200, platforms=1, skus=45, duration_ms=5, attempts=1, error=None
    )
    base.update(kw)
    return JobResult(client, platform, status=status, **base)


def test_summary_lines_and_headline_match_the_legacy_log():
    summary = RunSummary(
        "run-1",
        True,
        [
            _result("c1", "shopify", "success"),
            _result("c1", "all", "success", platforms=2, skus=68),
            _result("c2", "amazon", "failed", http_status=500, error="HTTP 500: boom"),
            _result("c3", "shopify", "missing", http_status=None, platforms=None, skus=None),
        ],
    )
    assert summary.headline == "Results: 2 successful, 2 failed out of 4 total jobs"
    assert summary.failed_clients == ["c2", "c3"]
    lines = [r.line() for r in summary.results]
    assert lines[0] == "✅ SUCCESS - c1 (shopify): 1 platforms, 45 SKUs"
    assert lines[1] == "✅ SUCCESS - c1 (all): 2 platforms, 68 SKUs"
    assert lines[2] == "❌ FAILED - c2 (amazon): HTTP 500: boom"
    assert "not refreshed" in lines[3]
    timeout = _result("c4", "all", "failed", http_status=None, error="timeout after 60s")
    assert timeout.line() == "❌ FAILED - c4 (all): timeout after 60s"
    assert _result("c5", "all", "failed", http_status=502, error=None).reason() == "HTTP 502"
