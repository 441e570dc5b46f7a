"""
# inventory_refresh — inventory-analytics cache refresh, every 2 hours

Every two hours (00:00, 02:00, … 22:00 Pacific) calls the dashboard backend's
`GET /api/dashboard/inventory-analytics?client_id=…&platform=…&force_refresh=true` for every
connected client (a `connected` row in `analytics.client_api_credentials`) on every platform
(`shopify`, `amazon`, `all`), so dashboard data is never more than 2 hours old. The endpoint
recomputes and caches; this DAG only triggers it and records what happened. Replaces the legacy
`analytics_refresh_cron.py`.

**Owner:** data-platform (`#data-platform`). Deadline: logical time + 2 h
(`DEADLINE_INVENTORY_REFRESH_SECONDS` env at parse time overrides it).

## Tasks
1. `list_refresh_jobs` — connected clients × platforms (or the validated `client_ids` /
   `platforms` params), split into batches; the work list goes to
   `analytics.inventory_refresh_runs` / `analytics.inventory_refresh_jobs`. XCom carries only the
   batch descriptors (≤ 64 small dicts).
2. `refresh_client` — dynamically mapped, **one instance per batch of clients**, labelled like
   `batch 3/12: client-001…client-025 (25 clients) × shopify,amazon,all`. Inside an instance the
   client × platform calls run concurrently (asyncio + httpx, `INVENTORY_CALLS_PER_TASK` = 8 in
   flight); each instance takes that many slots of the `inventory_api` pool (16), so the pool
   counts concurrent API calls across all runs, and `max_active_tis_per_dagrun` (2) caps a run.
   Every outcome (status, HTTP status, platforms, SKUs, duration, attempts, error) is upserted
   into `analytics.inventory_refresh_results` keyed (run_id, client_id, platform).
3. `summarize_refresh` (`all_done`) — reads the outcomes from Postgres, logs a line per job and
   `Results: N successful, M failed out of T total jobs`; any failure fails the run and raises
   the `inventory_refresh:failed_refreshes` alert naming the clients; a clean run resolves it.

## Why batches, not one instance per client
`[core] max_map_length` is 1024 and every task instance costs the scheduler a round trip
(queueing, a worker process, heartbeats: seconds each), far more than one ~100 ms API call.
5,000 clients × 3 platforms as instances would break the limit and spend most of the run in
scheduling. Batches keep the instance count at most `INVENTORY_MAX_BATCHES` (64) whatever the
client count: `batch_size = max(25, ceil(clients / 64))` — 300 clients → 12 batches of 25,
5,000 → 64 batches of ~79 — while the calls inside a batch are concurrent, so throughput is set by
the concurrency, not by the number of instances. The UI still shows per-batch labels, and the
per-client detail is in the results table and the summary log.

## Retries and clears
Each call is retried in place (3 attempts, exponential backoff) on 5xx, 429 and timeouts; other
4xx fail at once. A batch with failures fails its instance: permanent (4xx) → no retry;
transient → Airflow retries it (30 s, 60 s). Any retry, a clear of one mapped instance or a clear
of the whole run calls only the jobs **not already successful in this run**
(`INVENTORY_RETRY_ONLY_FAILED=false` re-calls everything); rows are upserted, never duplicated.
To force a fresh refresh of clients that already succeeded, trigger a new run.

## Params (manual runs)
- `client_ids`: list of client ids (default: every connected client). Unknown or not-connected
  ids are refused before any call.
- `platforms`: subset of `["shopify", "amazon", "all"]` (default: all three).

`airflow dags trigger inventory_refresh -c '{"client_ids": ["client-001"], "platforms": ["all"]}'`

## When it fails
- Summary says `❌ FAILED - <client> (<platform>): HTTP 5xx…`: the backend failed for that
  client; check the backend's logs, then clear the failed `refresh_client` instance (only the
  failed jobs are re-called) or wait for the next run (2 h).
- HTTP 401/403 for every client: the `inventory_api` connection's token (password) is wrong or
  expired — fix the connection, clear the run.
- `list_refresh_jobs` failed: bad params (message names the ids), or `analytics_db` unreachable.
- "No active clients found": no credential row is `connected` — not an error of this DAG.
- Results: `SELECT * FROM analytics.inventory_refresh_results WHERE run_id = '<run id>'`.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, dag

from include.analytics_ops import assets, callbacks, config, deadlines
from include.analytics_ops.operators.inventory import (
    MAP_INDEX_TEMPLATE,
    ListRefreshJobsOperator,
    RefreshInventoryBatchOperator,
    SummarizeRefreshOperator,
)

# Parse-time knobs (env only: they shape the task instances, not the work).
CALLS_PER_TASK = int(os.getenv("INVENTORY_CALLS_PER_TASK", "8"))
MAX_ACTIVE_BATCHES = int(os.getenv("INVENTORY_MAX_ACTIVE_BATCHES", "2"))


@dag(
    dag_id="inventory_refresh",
    schedule=CronTriggerTimetable("0 */2 * * *", timezone=config.PT),
    start_date=pendulum.datetime(2026, 1, 1, tz=config.PT),
    catchup=False,
    max_active_runs=1,
    default_args=callbacks.default_args(),
    on_failure_callback=callbacks.on_dag_failure,
    deadline=deadlines.deadline("inventory_refresh"),
    tags=["two-hourly", "inventory", "analytics"],
    doc_md=__doc__,
    params={
        "client_ids": Param(
            None,
            type=["null", "array"],
            items={"type": "string", "minLength": 1},
            description="Refresh only these clients (default: every connected client).",
        ),
        "platforms": Param(
            None,
            type=["null", "array"],
            items={"type": "string", "enum": ["shopify", "amazon", "all"]},
            description="Refresh only these platforms (default: shopify, amazon, all).",
        ),
    },
)
def inventory_refresh():
    list_refresh_jobs = ListRefreshJobsOperator(task_id="list_refresh_jobs")
    refresh_client = RefreshInventoryBatchOperator.partial(
        task_id="refresh_client",
        outlets=[assets.INVENTORY_RESULTS],
        concurrency=CALLS_PER_TASK,
        pool="inventory_api",
        pool_slots=CALLS_PER_TASK,
        max_active_tis_per_dagrun=MAX_ACTIVE_BATCHES,
        map_index_template=MAP_INDEX_TEMPLATE,
    ).expand(batch=list_refresh_jobs.output)
    summarize_refresh = SummarizeRefreshOperator(
        task_id="summarize_refresh", trigger_rule="all_done"
    )
    refresh_client >> summarize_refresh


inventory_refresh()
