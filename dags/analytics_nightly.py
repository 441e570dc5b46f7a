"""
# analytics_nightly — freshness gate, six metric checks, sampling proof, dashboard snapshot

Every day 02:00 PT (`0 2 * * *`, America/Los_Angeles; on the spring-forward day 03:00 PDT).
Replaces the legacy `sampling-guard-proof.mjs` (02:00) and `generate-snapshot.mjs` (03:00) crons.
The **target date** is the PT calendar day before the run (`params.target_date` overrides it);
runs without a logical date (`airflow dags trigger` without `-l`) use the run's `run_after`.

Main branch:
1. `check_freshness` — day D is judged only when complete: a row in `analytics.daily_metrics`
   with revenue/orders/sessions/conversions, and the `posthog` watermark in `ops.watermarks` at or
   past the end of D in PT. A sensor in reschedule mode: *stale* (ingest late) → it **waits**,
   poking every 5 min without holding a worker slot (its `ops.job_runs` row stays `running`
   with the "STALE DATA: …" reason), for up to the deadline less 30 min (60 min), then fails
   with "STALE DATA: … Timed out …". *Missing* (ingest done, data absent) → fails at once with
   "MISSING DATA: …" (waiting cannot help). The checks need `all_success`, so they never run —
   or pass — on incomplete data.
2. Six checks, one task each (`MetricRangeCheckOperator` / `MetricTrendCheckOperator`):
   `revenue_range`, `revenue_trend`, `conversion_rate_range`, `conversion_rate_trend`,
   `sessions_range`, `sessions_trend`. Range = seasonal robust band (median of the last 8 same
   weekdays, MAD of 56 days of log residuals); trend = day-over-day on seasonally adjusted
   residuals + week-over-week on 7-day totals; hard bounds always critical. Each upserts its row
   in `analytics.check_results` (value, expected band, score, severity, explanation,
   config_version). Days already flagged critical (and not marked `expected`) stay out of later
   baselines. A check task succeeds whatever the severity; it fails only on real errors.
3. `write_proof` — status `passed` / `warning` / `critical` (legacy exit codes 0/1/2), the six
   checks and the `anomalies` with explanations → `$ARTIFACTS_DIR/sampling-proofs/
   sampling-proof-YYYYMMDD.json` + `analytics.sampling_proofs`. Alerts per check
   (`metric_check:<check>`): raised on warning/critical, resolved on pass, sent only on a change
   of state (a rerun or backfill never re-alerts). **Critical fails this task and the run.**
4. `capture_snapshot` — runs after the checks even when they are critical (`all_done`; parallel
   to `write_proof`, which therefore stays a leaf and decides the run's state). Revenue,
   conversion, traffic and idea-pool metrics + summary + errors → `$ARTIFACTS_DIR/snapshots/
   YYYY-MM-DD.json` + `analytics.dashboard_snapshots`, with this run's proof status. A category
   that cannot be read → `partial` (in `errors`), not a failure. Skipped when D is incomplete.

Parallel branch (independent of the freshness gate): `sync_github` → `compute_project_metrics` →
`score_project_health` → `cleanup_old_logs` (see `include/analytics_ops/operators/github.py`).
Old proof/snapshot files are removed by `analytics_weekly` (90-day retention), not here.

**Params** (manual runs): `target_date` (YYYY-MM-DD, optional; must be a finished PT day).

**Settings** (Airflow Variable > env > default): `ARTIFACTS_DIR` (`artifacts`),
`CHECK_CONFIG_OVERRIDES` (JSON thresholds, e.g. `{"z_warning": 3.5, "revenue":
{"min_effect_critical": 0.15}}`; default none), the alert settings of `alerts/`.

**Deadline:** done by 03:30 PT (90 min; env `DEADLINE_ANALYTICS_NIGHTLY_SECONDS` overrides).

## Owner
data-platform (`#data-platform`).

## When it fails
- Look at the failed task's row in `ops.job_runs` (`dag_id = 'analytics_nightly'`): `last_error`
  holds the reason.
- `check_freshness` "STALE DATA … Timed out": it waited (60 min) and `analytics_hourly` is still
  behind (see its runs and the `posthog` watermark); once it catches up, clear `check_freshness`.
  While it waits the task shows "up for reschedule" and its row in `ops.job_runs` is `running`.
  "MISSING DATA": reload the day (rerun `analytics_hourly` for its windows), then clear
  `check_freshness`.
- `write_proof` CRITICAL: a real anomaly (or a data break). Read `anomalies` in the proof file or
  `SELECT check_name, severity, explanation FROM analytics.check_results WHERE target_date = D`.
  If it was expected (promotion, planned outage): `UPDATE analytics.check_results SET expected =
  true WHERE target_date = D AND check_name = '…'` — keeps it in later baselines — and leave the run
  failed as the record. Snapshot and proof files exist either way.
- A check task failed: a database error (retried) or bad `CHECK_CONFIG_OVERRIDES` (fails at once;
  fix the Variable, clear the task).
- `capture_snapshot` partial: a category could not be read (see `errors`); clear it after fixing.
- Rerun / backfill a day: `airflow dags trigger analytics_nightly -c '{"target_date":
  "2026-11-20"}'` — results, files and alerts are replaced, never duplicated.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, dag

from include.analytics_ops import assets, callbacks, config, deadlines
from include.analytics_ops.operators.checks import (
    CaptureSnapshotOperator,
    FreshnessGateOperator,
    MetricRangeCheckOperator,
    MetricTrendCheckOperator,
    WriteProofOperator,
)
from include.analytics_ops.operators.github import add_github_branch


@dag(
    dag_id="analytics_nightly",
    schedule=CronTriggerTimetable("0 2 * * *", timezone=config.PT),
    start_date=pendulum.datetime(2026, 1, 1, tz=config.PT),
    catchup=False,
    max_active_runs=1,
    default_args=callbacks.default_args(),
    on_failure_callback=callbacks.on_dag_failure,
    deadline=deadlines.deadline("analytics_nightly"),
    tags=["nightly", "checks", "analytics", "github"],
    doc_md=__doc__,
    params={
        "target_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="PT day to check and snapshot (YYYY-MM-DD). Empty: the day before the "
            "run's PT date.",
        ),
    },
)
def analytics_nightly():
    # A late ingest is worth waiting for; the checks, proof and snapshot keep 30 min of the
    # deadline (03:30 PT).
    deadline = timedelta(seconds=config.deadline_seconds("analytics_nightly"))
    check_freshness = FreshnessGateOperator(
        task_id="check_freshness",
        inlets=[assets.DAILY_METRICS, assets.POSTHOG_EVENTS],
        poke_interval=timedelta(minutes=5),
        timeout=max(deadline - timedelta(minutes=30), deadline / 2),
    )
    checks = []
    for metric in ("revenue", "conversion_rate", "sessions"):
        lineage = {"inlets": [assets.DAILY_METRICS], "outlets": [assets.CHECK_RESULTS]}
        checks.append(MetricRangeCheckOperator(task_id=f"{metric}_range", metric=metric, **lineage))
        checks.append(MetricTrendCheckOperator(task_id=f"{metric}_trend", metric=metric, **lineage))
    write_proof = WriteProofOperator(
        task_id="write_proof", inlets=[assets.CHECK_RESULTS], outlets=assets.SAMPLING_PROOFS
    )
    # Parallel to write_proof (not after it): write_proof stays a leaf, so a critical proof fails
    # the run while the snapshot is still captured.
    capture_snapshot = CaptureSnapshotOperator(
        task_id="capture_snapshot",
        trigger_rule="all_done",
        inlets=[assets.DAILY_METRICS],
        outlets=assets.DASHBOARD_SNAPSHOTS,
    )
    check_freshness >> checks
    checks >> write_proof
    checks >> capture_snapshot

    add_github_branch()


analytics_nightly()
