"""
# analytics_hourly — PostHog events, exactly once, every hour

Each run owns one **UTC hour of PostHog arrival time** (`created_at`), its data interval:

0. `validate_params` — resolves the window and settings (no I/O); bad params fail the run here.
1. `ingest_events` — waits (deferred, no worker slot) until the window end + settle delay
   (`POSTHOG_SETTLE_MINUTES`, 15), then pages through PostHog's Query API (HogQL with `values`
   placeholders, keyset on `(toUnixTimestamp64Milli(created_at), uuid)`, `force_blocking`),
   and per page, in one Postgres transaction: validates → `COPY` into staging → merges into
   `analytics.posthog_events` on `uuid` → writes bad rows to `ops.dead_letters` → advances the
   checkpoint in `ops.checkpoints`. A retry resumes from the checkpoint. Runs in pool
   `posthog_api` (3 slots = PostHog's 3 concurrent queries per project).
2. `update_rollups` — recomputes every PT date the window's events touched (late events change
   their old date): `analytics.listing_daily_stats`, `user_daily_stats`,
   `development_daily_stats`, `analytics.leads`, and the traffic columns of
   `analytics.daily_metrics` (ingest-era dates only), then advances the `posthog` watermark in
   `ops.watermarks` over contiguous finished windows. `complete_until` promises: every window
   before it was read once (after the settle delay) and rolled up — not that later arrivals
   were fetched.
3. `reconcile_late_arrivals` — arrival lag: a row can reach PostHog's ClickHouse minutes or hours
   after its `created_at`, after the window was read. Every complete window is recounted with
   one `count()` query at `POSTHOG_RECONCILE_OFFSETS_HOURS` (1, 24) after its end against what
   its read held (loaded + dead-lettered); when PostHog has more, the window is re-read under its
   own checkpoint (exactly once by the uuid merge), its rollups recomputed, the check recorded in
   `ops.posthog_reconciliations` and `ops.job_runs`, and an alert raised above
   `POSTHOG_RECONCILE_ALERT_EVENTS`. Then `ops.watermarks['posthog_reconciled']` advances over
   windows also recounted at +1 h — what the nightly freshness gate reads where it exists. Once a
   UTC arrival day is over it is swept for events whose `timestamp` is older than their window's
   bound (offline queues, imports, bad clocks): loaded back to `POSTHOG_SWEEP_HORIZON_DAYS` (90),
   older ones counted and alerted on.

4. `bug_risk` (task group, independent of the ingest) — `compute_bug_risk` snapshots revenue at
   risk, velocity and SLA breaches from the GitHub issues the nightly sync stored;
   `raise_bug_risk_alerts` raises/resolves unassigned-critical, critical-past-SLA and
   revenue-at-risk > $10k/day alerts (deduplicated: an unchanged condition is not re-sent).

The stream's first window is `ANALYTICS_HOURLY_START` (env, read at parse time; default
2026-11-20T08:00Z); catchup runs every hour since.

Every attempt is a row in `ops.job_runs` (window, status, fetched/processed/dead-lettered, API
calls/errors/rate-limit hits in `stats`); errors go to `ops.job_events`.

**Params** (manual runs): `window_start` + `window_end` (ISO, both or neither; ≤ 24 h) to
ingest an explicit window; `page_size` (1–50000) to override `POSTHOG_PAGE_SIZE`; `reprocess`
(bool) to re-read a window that is already complete (still exactly-once).

**Owner:** data-platform (#data-platform on Slack).

## When it fails

- *401/403/404/402/400 from PostHog* — the task fails at once without retries (message names
  the cause): fix connection `posthog_api` (key = password, `project_id` in extra), then clear
  the task.
- *429 / 5xx / timeouts* — retried inside the task with Retry-After / the throttle hint /
  backoff; if the wait outlives the task's time budget the attempt fails (`timeout` in
  `ops.job_runs`) and Airflow retries, resuming from the checkpoint. Nothing to do unless it
  keeps failing; check `stats->'posthog_rate_limit_hits'` and other PostHog users.
- *Killed worker* — the attempt stays `running` in `ops.job_runs` (health: stuck run); clear the
  task: it resumes from the last committed page, no duplicates.
- *Dead letters* — malformed rows never block a window. Inspect with
  `python -m include.analytics_ops.dead_letters list`, fix (setting or payload), then
  `python -m include.analytics_ops.dead_letters replay`.
- *Backfill* — `airflow backfill create --dag-id analytics_hourly --from-date A --to-date B`
  (the DAG must be unpaused for backfill runs to start). Any window run twice or out of order
  leaves the tables as one clean run would.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, dag

from include.analytics_ops import assets, callbacks, deadlines
from include.analytics_ops.operators.github import add_bug_risk_group
from include.analytics_ops.operators.ingest import (
    IngestEventsOperator,
    ReconcileLateArrivalsOperator,
    UpdateRollupsOperator,
    ValidateIngestParamsOperator,
)


@dag(
    dag_id="analytics_hourly",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    # First window of the PostHog stream in this deployment (default: 00:00 PT of the demo day);
    # catchup fills every hour since, one run at a time. A deployment (or a test) that starts the
    # stream later sets ANALYTICS_HOURLY_START instead of catching up hours it never needs.
    start_date=datetime.fromisoformat(
        os.getenv("ANALYTICS_HOURLY_START", "2026-11-20T08:00:00+00:00")
    ),
    catchup=True,
    max_active_runs=1,
    default_args=callbacks.default_args(),
    on_failure_callback=callbacks.on_dag_failure,
    deadline=deadlines.deadline("analytics_hourly"),
    tags=["hourly", "posthog", "analytics"],
    doc_md=__doc__,
    params={
        "window_start": Param(
            None,
            type=["null", "string"],
            description="Manual window start (ISO, UTC if no offset); with window_end.",
        ),
        "window_end": Param(
            None,
            type=["null", "string"],
            description="Manual window end (exclusive); with window_start; at most 24 h later.",
        ),
        "page_size": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=50000,
            description="Rows per PostHog Query API page (default: POSTHOG_PAGE_SIZE, 10000).",
        ),
        "reprocess": Param(
            False,
            type="boolean",
            description="Re-read a window whose checkpoint is already complete.",
        ),
    },
)
def analytics_hourly():
    ingest_events = IngestEventsOperator(
        task_id="ingest_events",
        outlets=[assets.POSTHOG_EVENTS],
        pool="posthog_api",
        pool_slots=1,
        execution_timeout=timedelta(minutes=45),
    )
    update_rollups = UpdateRollupsOperator(
        task_id="update_rollups",
        inlets=[assets.POSTHOG_EVENTS],
        outlets=[*assets.ROLLUPS, assets.DAILY_METRICS],
    )
    # Bad params stop every branch before any work (no retries: AirflowFailException).
    validate_params = ValidateIngestParamsOperator(
        task_id="validate_params", execution_timeout=timedelta(minutes=2)
    )
    # Recount recent windows (+1 h, +24 h) and fetch what arrived after their read; once a day,
    # sweep for events older than the event-time bound. Its own leaf: it never blocks the hour.
    reconcile = ReconcileLateArrivalsOperator(
        task_id="reconcile_late_arrivals",
        outlets=[assets.POSTHOG_EVENTS, *assets.ROLLUPS, assets.DAILY_METRICS],
        pool="posthog_api",
        pool_slots=1,
        execution_timeout=timedelta(minutes=30),
    )
    validate_params >> ingest_events >> update_rollups >> reconcile

    # GitHub revenue-at-risk / SLA-breach monitor; independent of the ingest, its own leaf.
    validate_params >> add_bug_risk_group()


analytics_hourly()
