"""inventory_refresh logic against real Postgres and the sandbox inventory endpoint (loopback)."""

from __future__ import annotations

import pytest

from include.analytics_ops import alerts
from include.analytics_ops.inventory import ALERT_KEY, PLATFORMS
from include.analytics_ops.inventory.api import InventoryApi, RetryPolicy, refresh_many
from include.analytics_ops.inventory.jobs import (
    InvalidRefreshParams,
    batch_jobs,
    connected_clients,
    plan_batches,
    record_work_list,
    select_clients,
)
from include.analytics_ops.inventory.results import clients_still_alerting, read_summary, run_batch
from include.sandbox.constants import INVENTORY_TOKEN
from include.sandbox.data import sku_count
from include.sandbox.samples.inventory import insert_clients, numbered_clients

FAST = RetryPolicy(max_attempts=3, backoff_seconds=0.01, max_backoff_seconds=0.05)


def inventory_calls(sandbox) -> list[tuple[str, str]]:
    """(client_id, platform) of every call the sandbox inventory endpoint received."""
    out = []
    for call in sandbox.calls("inventory"):
        query = call.get("query") or call.get("params") or {}
        out.append((query.get("client_id"), query.get("platform")))
    return out


@pytest.fixture
def api(sandbox) -> InventoryApi:
    return InventoryApi.from_connection_fields(sandbox.url, INVENTORY_TOKEN, timeout_seconds=5)


def plan_and_record(db, run_id, client_ids=None, platforms=PLATFORMS, **kw):
    clients = select_clients(db, client_ids)
    batches = plan_batches(clients, platforms, **kw)
    record_work_list(db, run_id, batches, platforms=platforms, requested_client_ids=client_ids)
    return batches


# --------------------------------------------------------------------------- listing
def test_a_client_counts_as_connected_when_any_credential_is(db):
    insert_clients(
        db,
        [
            ("client-001", "connected"),
            ("client-002", "disconnected"),
            ("client-002", "connected", "amazon"),
            ("client-003", "error"),
            ("client-004", "pending"),
            ("client-005", "disconnected"),
            ("client-005", "error", "amazon"),
        ],
    )
    assert connected_clients(db) == ["client-001", "client-002"]


def test_requested_ids_are_checked_against_the_database(db):
    insert_clients(db, [("client-001", "connected"), ("client-002", "disconnected")])
    assert select_clients(db, ["client-001"]) == ["client-001"]
    with pytest.raises(InvalidRefreshParams) as err:
        select_clients(db, ["client-001", "client-777", "client-002"])
    message = str(err.value)
    assert "unknown client ids ['client-777']" in message
    assert "['client-002']" in message and "connected" in message


def test_relisting_a_run_replaces_its_work_list_and_drops_stale_results(db, api):
    insert_clients(db, numbered_clients(4))
    plan_and_record(db, "run-1")
    run_batch(db, api, "run-1", 1, policy=FAST)
    assert (
        db.execute(
            "SELECT count(*) FROM analytics.inventory_refresh_results WHERE run_id = 'run-1'"
        ).fetchone()[0]
        == 12
    )
    # client-004 disconnects, the listing runs again for the same run (e.g. a cleared run).
    insert_clients(db, [("client-004", "disconnected")])
    plan_and_record(db, "run-1")
    jobs = db.execute(
        "SELECT count(*), count(DISTINCT client_id) FROM analytics.inventory_refresh_jobs"
        " WHERE run_id = 'run-1'"
    ).fetchone()
    assert jobs == (9, 3)
    clients = db.execute(
        "SELECT DISTINCT client_id FROM analytics.inventory_refresh_results WHERE run_id = 'run-1'"
        " ORDER BY 1"
    ).fetchall()
    assert [c[0] for c in clients] == ["client-001", "client-002", "client-003"]


# --------------------------------------------------------------------------- calls
def test_refresh_records_platforms_and_sku_counts_from_the_endpoint(db, api, sandbox):
    insert_clients(db, numbered_clients(3))
    plan_and_record(db, "run-ok")
    report = run_batch(db, api, "run-ok", 1, policy=FAST, concurrency=4)
    assert (report.jobs, report.succeeded, report.failed) == (9, 9, 0)
    assert sorted(inventory_calls(sandbox)) == sorted(
        (c, p) for c in ("client-001", "client-002", "client-003") for p in PLATFORMS
    )
    rows = db.execute(
        "SELECT client_id, platform, status, http_status, platforms, skus, batch, attempts"
        " FROM analytics.inventory_refresh_results WHERE run_id = 'run-ok'"
    ).fetchall()
    assert len(rows) == 9
    for client_id, platform, status, http_status, platforms, skus, batch, attempts in rows:
        assert (status, http_status, batch, attempts) == ("success", 200, 1, 1)
        assert platforms == (2 if platform == "all" else 1)
        assert skus == sku_count(client_id, platform, sandbox.seed)


def test_5xx_is_retried_4xx_is_not_and_one_failure_does_not_stop_the_others(db, api, sandbox):
    insert_clients(db, numbered_clients(4))
    sandbox.set_faults(inventory_fail_clients={"client-002": 503, "client-003": 403})
    plan_and_record(db, "run-f")
    report = run_batch(db, api, "run-f", 1, policy=FAST)
    assert (report.succeeded, report.failed) == (6, 6)
    assert report.retryable_failed == 3  # client-002's three platforms
    calls = inventory_calls(sandbox)
    assert calls.count(("client-002", "shopify")) == 3  # retried up to max_attempts
    assert calls.count(("client-003", "shopify")) == 1  # 403: not retried
    assert calls.count(("client-004", "all")) == 1
    rows = {
        (r[0], r[1]): r[2:]
        for r in db.execute(
            "SELECT client_id, platform, status, http_status, attempts, error"
            " FROM analytics.inventory_refresh_results WHERE run_id = 'run-f'"
        ).fetchall()
    }
    assert rows[("client-002", "amazon")][:3] == ("failed", 503, 3)
    assert "Upstream amazon API error" in rows[("client-002", "amazon")][3]
    assert rows[("client-003", "all")][:3] == ("failed", 403, 1)
    assert rows[("client-004", "all")][:2] == ("success", 200)
    summary = read_summary(db, "run-f")
    assert summary.headline == "Results: 6 successful, 6 failed out of 12 total jobs"
    assert summary.failed_clients == ["client-002", "client-003"]


def test_a_retry_calls_only_jobs_not_yet_successful_and_never_duplicates_rows(db, api, sandbox):
    insert_clients(db, numbered_clients(3))
    sandbox.set_faults(inventory_fail_clients={"client-002": 500})
    plan_and_record(db, "run-r")
    first = run_batch(db, api, "run-r", 1, policy=FAST, task_try=1)
    assert first.failed == 3
    sandbox.reset()  # the backend recovered; recorded calls start afresh
    second = run_batch(db, api, "run-r", 1, policy=FAST, task_try=2)
    assert (second.skipped, second.called, second.succeeded, second.failed) == (6, 3, 3, 0)
    assert sorted(inventory_calls(sandbox)) == sorted(("client-002", p) for p in PLATFORMS)
    rows = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'success'),"
        " max(task_try) FILTER (WHERE client_id = 'client-002'),"
        " max(task_try) FILTER (WHERE client_id = 'client-001')"
        " FROM analytics.inventory_refresh_results WHERE run_id = 'run-r'"
    ).fetchone()
    assert rows == (9, 9, 2, 1)
    # Re-refreshing everything is a setting away: every job called again, rows still unique.
    sandbox.reset()
    third = run_batch(db, api, "run-r", 1, policy=FAST, task_try=3, skip_successful=False)
    assert third.called == 9 and len(inventory_calls(sandbox)) == 9
    assert (
        db.execute(
            "SELECT count(*) FROM analytics.inventory_refresh_results WHERE run_id = 'run-r'"
        ).fetchone()[0]
        == 9
    )


def test_a_batch_refreshes_only_its_own_clients(db, api, sandbox):
    insert_clients(db, numbered_clients(6))
    batches = plan_and_record(db, "run-b", max_batches=3, min_batch_size=2)
    assert [b.client_ids for b in batches] == [
        ("client-001", "client-002"),
        ("client-003", "client-004"),
        ("client-005", "client-006"),
    ]
    assert batch_jobs(db, "run-b", 2)[0] == ("client-003", "shopify")
    run_batch(db, api, "run-b", 2, policy=FAST)
    assert {c for c, _ in inventory_calls(sandbox)} == {"client-003", "client-004"}
    summary = read_summary(db, "run-b")
    assert (summary.total, summary.successful) == (18, 6)
    assert {r.status for r in summary.results if r.client_id == "client-001"} == {"missing"}


def test_timeouts_are_retried_then_reported(db, sandbox):
    insert_clients(db, numbered_clients(1))
    sandbox.set_faults(inventory_latency_ms=400)
    api = InventoryApi.from_connection_fields(sandbox.url, INVENTORY_TOKEN, timeout_seconds=0.1)
    outcomes = refresh_many(api, [("client-001", "shopify")], policy=FAST)
    (outcome,) = outcomes
    assert outcome.status == "failed" and outcome.retryable
    assert outcome.http_status is None and outcome.attempts == 3
    assert "timeout after 0.1s" in outcome.error


def test_a_wrong_token_is_a_permanent_401_and_the_token_is_not_logged(db, sandbox):
    api = InventoryApi.from_connection_fields(sandbox.url, "wrong-token-xyz")
    (outcome,) = refresh_many(api, [("client-001", "all")], policy=FAST)
    assert (outcome.status, outcome.http_status, outcome.attempts) == ("failed", 401, 1)
    assert not outcome.retryable and "wrong-token-xyz" not in (outcome.error or "")


def test_the_airflow_connection_from_the_environment_is_used(sandbox):
    api = InventoryApi.from_airflow()
    assert api.base_url == sandbox.url.rstrip("/")
    (outcome,) = refresh_many(api, [("client-001", "amazon")], policy=FAST)
    assert outcome.ok and outcome.skus == sku_count("client-001", "amazon", sandbox.seed)


def test_a_narrow_manual_run_does_not_resolve_an_alert_about_other_clients(db):
    insert_clients(db, numbered_clients(3))
    alerts.raise_alert(
        db,
        ALERT_KEY,
        "warning",
        "inventory_refresh",
        "2 of 9 failed",
        details={"failed_clients": ["client-002", "client-003"]},
        notify=False,
    )
    plan_and_record(db, "run-narrow", client_ids=["client-002"])
    assert clients_still_alerting(db, "run-narrow", ALERT_KEY) == ["client-003"]
    plan_and_record(db, "run-full")
    assert clients_still_alerting(db, "run-full", ALERT_KEY) == []
