"""
# cron_ledger — legacy cron ledger + health of every job, every 5 minutes

Every 5 minutes (UTC: a 5-minute cadence has no business day, and UTC has no DST gaps) two
tasks run, one after the other:

1. `collect_ledger` — reads the result lines legacy cron scripts append to JSONL files
   (`{"ts": ISO-8601, "exit": int, "msg": str}` + optional `"job"`; files/globs in
   `LEDGER_PATHS`, comma-separated) into `ops.ledger_entries`: incremental by byte offset
   (`ops.ledger_files`), a half-written last line waits for the next run, rotation (new inode:
   the rest of the old file is read first) and truncation are detected, duplicates are dropped by
   `(source, ts, exit_code, sha256(message))`; malformed lines, and lines that cannot be stored,
   are kept in `ops.dead_letters` (stream `ledger`) with the reason. Only regular files under
   `LEDGER_ROOTS` are read, with line and per-run byte caps. A non-zero exit raises
   `ledger_failed:<job>` with the exit code and message (critical from 3 failures in a row); the
   next exit 0 resolves it.
2. `evaluate_job_health` — evaluates every monitored job (the five DAGs, every ledger job, the
   nightly sampling proof and snapshot due at 03:30 PT) healthchecks-style from Airflow's run
   history (REST API; `ops.job_runs` when the API does not answer), stores the states in
   `ops.job_health` (+ `ops.job_health_history`), alerts on flips (`health:<job>`: late =
   warning, down/stuck = critical; back to up = recovery), resolves failure alerts of DAGs that
   succeeded since, and re-sends reminders for still-open critical alerts (every 4 h).

The watcher runs after the collector so ledger jobs are judged on the lines just collected (run
side by side, a job that reported a minute ago could still look late or miss its failure), with
trigger rule `all_done`: a failed collector never skips the watcher. Either one failing fails
the run: `ledger_collected` (no work, `all_success`) is the second leaf that carries a failed
collection into the run's state, since a succeeding `all_done` leaf alone would turn it green.

**Owner:** data-platform (`#data-platform`). Deadline: 10 min after queueing
(`DEADLINE_CRON_LEDGER_SECONDS` env at parse time overrides it).

## Params (manual runs)
- `ledger_paths`: files/globs to collect instead of `LEDGER_PATHS` (e.g. a one-off backfill of an
  old file): `airflow dags trigger cron_ledger -c '{"ledger_paths": "/var/log/old/ladder.jsonl"}'`.

## Settings (Variable > env > default)
`LEDGER_PATHS` (none), `LEDGER_JOBS` (JSON per-job schedule/interval),
`LEDGER_EXPECTED_INTERVAL_SECONDS` (3600), `LEDGER_GRACE_SECONDS` (900),
`HEALTH_JOBS` (JSON overrides of the DAG monitors),
`HEALTH_RUN_SOURCE` (`api` | `cli` | `job_runs`), connection `airflow_api` (API URL + login),
`ALERT_*` (see `include/analytics_ops/alerts/`).

## When it fails
- `collect_ledger` failed: usually `analytics_db` unreachable (retry fixes it) — offsets are
  committed with the rows, so nothing is lost or doubled. A file that vanished is only logged.
- Many malformed lines (`status = partial` in `ops.job_runs`): a script writes a different format;
  see `SELECT * FROM ops.dead_letters WHERE stream = 'ledger'`.
- `evaluate_job_health` says `source: ops.job_runs (fallback: ...)`: Airflow's API did not answer
  (check the `airflow_api` connection); states are then computed from our own run records and
  paused DAGs cannot be recognised.
- Ledger stats: `python -m include.analytics_ops.ledger stats`; job states:
  `python -m include.analytics_ops.monitoring status`.
- If this DAG itself stops, nothing here can tell you: run
  `python -m include.analytics_ops.monitoring evaluate` from system cron as a watchdog.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Param, TriggerRule, dag

from include.analytics_ops import assets, callbacks, deadlines
from include.analytics_ops.operators.monitoring import (
    CollectLedgerOperator,
    EvaluateJobHealthOperator,
)


@dag(
    dag_id="cron_ledger",
    schedule="*/5 * * * *",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=callbacks.default_args(
        execution_timeout=timedelta(minutes=8), retry_delay=timedelta(seconds=20)
    ),
    deadline=deadlines.deadline("cron_ledger"),
    on_failure_callback=callbacks.on_dag_failure,
    tags=["every-5-min", "monitoring", "ledger"],
    doc_md=__doc__,
    params={
        "ledger_paths": Param(
            "",
            type="string",
            maxLength=4096,
            description="Comma-separated JSONL files or globs to collect instead of "
            "LEDGER_PATHS (empty: use LEDGER_PATHS).",
        ),
    },
)
def cron_ledger():
    collect_ledger = CollectLedgerOperator(
        task_id="collect_ledger", outlets=[assets.LEDGER_ENTRIES]
    )
    # all_done: the watcher still runs (on what is already collected) when the collector fails
    collect_ledger >> EvaluateJobHealthOperator(
        task_id="evaluate_job_health",
        trigger_rule=TriggerRule.ALL_DONE,
        inlets=[assets.LEDGER_ENTRIES],
        outlets=[assets.JOB_HEALTH],
    )
    # The run's state comes from its leaves: this one fails it when the collection failed.
    collect_ledger >> EmptyOperator(task_id="ledger_collected")


cron_ledger()
