"""``airflow dags test inventory_refresh`` against the sandbox inventory endpoint.

Sample clients follow the sandbox generator's pattern (client-001 … client-012: 9 connected,
client-004 / client-010 disconnected, client-007 in error), inserted here directly.
"""

from __future__ import annotations

import psycopg
import pytest

from include.analytics_ops import alerts
from include.analytics_ops.inventory import ALERT_KEY, PLATFORMS
from include.sandbox.data import sample_clients, sku_count
from include.sandbox.samples.inventory import insert_clients

pytestmark = pytest.mark.e2e

WHEN = "2026-11-20T10:00:00+00:00"  # 02:00 PST, a scheduled tick
CONNECTED = [c for c, _, status in sample_clients(12) if status == "connected"]
NOT_CONNECTED = [c for c, _, status in sample_clients(12) if status != "connected"]


@pytest.fixture
def clients(db):
    insert_clients(db, [(cid, status) for cid, _, status in sample_clients(12)])
    assert len(CONNECTED) == 9 and NOT_CONNECTED == ["client-004", "client-007", "client-010"]
    return CONNECTED


def inventory_calls(sandbox) -> list[tuple[str, str]]:
    out = []
    for call in sandbox.calls("inventory"):
        query = call.get("query") or call.get("params") or {}
        out.append((query.get("client_id"), query.get("platform")))
    return out


def output(result) -> str:
    return result.stdout + result.stderr


def results(db) -> dict[tuple[str, str], tuple]:
    rows = db.execute(
        "SELECT client_id, platform, status, http_status, skus, run_id"
        " FROM analytics.inventory_refresh_results"
    ).fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def rendered_map_indexes(devenv, run_id: str) -> list[str]:
    with psycopg.connect(devenv.dsn_for(devenv.airflow_db)) as conn:
        rows = conn.execute(
            "SELECT rendered_map_index FROM task_instance WHERE dag_id = 'inventory_refresh'"
            " AND task_id = 'refresh_client' AND run_id = %s ORDER BY map_index",
            (run_id,),
        ).fetchall()
    return [r[0] for r in rows]


def test_failing_client_is_reported_and_fails_the_run(db, clients, sandbox, dag_test, devenv):
    sandbox.set_faults(inventory_fail_clients={"client-005": 403})
    result = dag_test("inventory_refresh", WHEN)
    assert result.returncode != 0, output(result)[-3000:]

    calls = inventory_calls(sandbox)
    assert sorted(calls) == sorted((c, p) for c in CONNECTED for p in PLATFORMS)
    assert not {c for c, _ in calls} & set(NOT_CONNECTED)

    rows = results(db)
    assert len(rows) == 27
    run_id = next(iter(rows.values()))[3]
    for (cid, platform), (status, http_status, skus, _) in rows.items():
        if cid == "client-005":
            assert (status, http_status) == ("failed", 403)
        else:
            assert (status, http_status) == ("success", 200)
            assert skus == sku_count(cid, platform, 7)

    text = output(result)
    assert "Results: 24 successful, 3 failed out of 27 total jobs" in text
    assert "❌ FAILED - client-005 (shopify): HTTP 403" in text
    assert (
        f"✅ SUCCESS - client-001 (all): 2 platforms, {sku_count('client-001', 'all', 7)} SKUs"
        in text
    )

    alert = db.execute(
        "SELECT state, severity, title FROM ops.alerts WHERE dedup_key = %s", (ALERT_KEY,)
    ).fetchone()
    assert alert[0] == "open" and alert[1] == "warning" and "client-005" in alert[2]

    summary_run = db.execute(
        "SELECT status, records_in, records_out, error_count FROM ops.job_runs"
        " WHERE dag_id = 'inventory_refresh' AND task_id = 'summarize_refresh'"
    ).fetchone()
    assert summary_run == ("partial", 27, 24, 3)
    labels = rendered_map_indexes(devenv, run_id)
    assert labels == [
        "batch 1/1: client-001…client-012 (9 clients) × shopify,amazon,all (3 failed)"
    ]


def test_clean_run_exits_0_and_resolves_the_alert(db, clients, sandbox, dag_test):
    alerts.raise_alert(db, ALERT_KEY, "warning", "inventory_refresh", "earlier failure")
    result = dag_test("inventory_refresh", WHEN)
    assert result.returncode == 0, output(result)[-3000:]
    assert len(inventory_calls(sandbox)) == 27
    rows = results(db)
    assert len(rows) == 27 and {v[0] for v in rows.values()} == {"success"}
    assert "Results: 27 successful, 0 failed out of 27 total jobs" in output(result)
    state = db.execute(
        "SELECT state FROM ops.alerts WHERE dedup_key = %s", (ALERT_KEY,)
    ).fetchone()[0]
    assert state == "resolved"
    listed = db.execute(
        "SELECT client_count, job_count, batch_count FROM analytics.inventory_refresh_runs"
    ).fetchall()
    assert listed == [(9, 27, 1)]


def test_manual_run_refreshes_only_the_requested_clients(db, clients, sandbox, dag_test):
    conf = {"client_ids": ["client-008", "client-002"], "platforms": ["all", "shopify"]}
    result = dag_test("inventory_refresh", conf=conf)
    assert result.returncode == 0, output(result)[-3000:]
    expected = {(c, p) for c in ("client-002", "client-008") for p in ("shopify", "all")}
    assert sorted(inventory_calls(sandbox)) == sorted(expected)
    assert set(results(db)) == expected


def test_a_bad_client_id_is_refused_before_any_call(db, clients, sandbox, dag_test):
    result = dag_test("inventory_refresh", conf={"client_ids": ["client-001", "no-such-client"]})
    assert result.returncode != 0
    assert inventory_calls(sandbox) == []
    assert "unknown client ids ['no-such-client']" in output(result)
    assert results(db) == {}
