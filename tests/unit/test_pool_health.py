"""Pool health states: a missing pool or one too small for a task's pool_slots is DOWN, naming
the pool and the tasks that wait on it forever."""

from __future__ import annotations

from datetime import UTC, datetime

from include.analytics_ops.monitoring.pools import pool_states

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _by_key(states):
    return {s.job_key: s for s in states}


def test_a_missing_pool_is_down_and_names_the_waiting_tasks():
    waiting = [
        {"dag_id": "analytics_hourly", "task_id": "ingest_events", "map_index": -1,
         "pool": "posthog_api", "pool_slots": 1},
        {"dag_id": "inventory_refresh", "task_id": "refresh_client", "map_index": 3,
         "pool": "inventory_api", "pool_slots": 8},
    ]  # fmt: skip
    states = _by_key(
        pool_states({"inventory_api": 16, "default_pool": 128}, waiting,
                    ["posthog_api", "inventory_api"], NOW, "airflow_api")
    )  # fmt: skip
    down = states["pool:posthog_api"]
    assert down.state == "down" and down.is_problem and down.kind == "pool"
    assert "pool posthog_api does not exist" in down.reason
    assert "analytics_hourly.ingest_events" in down.reason
    assert states["pool:inventory_api"].state == "up"
    assert "16 slots, 1 waiting" in states["pool:inventory_api"].reason


def test_a_required_pool_missing_before_anything_waits_is_down_too():
    states = _by_key(pool_states({}, [], ["posthog_api"], NOW, "airflow_api"))
    assert states["pool:posthog_api"].state == "down"
    assert "will wait in 'scheduled' forever" in states["pool:posthog_api"].reason


def test_a_pool_smaller_than_a_tasks_pool_slots_is_down():
    waiting = [{"dag_id": "inventory_refresh", "task_id": "refresh_client", "map_index": 0,
                "pool": "inventory_api", "pool_slots": 8}]  # fmt: skip
    state = pool_states({"inventory_api": 4}, waiting, ["inventory_api"], NOW, "x")[0]
    assert state.state == "down"
    assert "has 4 slot(s) but inventory_refresh.refresh_client[0] needs 8" in state.reason


def test_an_unknown_pool_named_by_a_waiting_task_is_reported():
    waiting = [{"dag_id": "d", "task_id": "t", "pool": "typo_pool", "pool_slots": 1}]
    keys = _by_key(pool_states({"default_pool": 128}, waiting, [], NOW, "x"))
    assert keys["pool:typo_pool"].state == "down"
