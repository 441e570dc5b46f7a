"""
# analytics_weekly — metrics CSV, CTO report email, retention, project health

Every Monday 04:00 PT (`0 4 * * 1`, America/Los_Angeles). Replaces the legacy weekly crons
(`export-metrics.mjs` and the CTO dashboard's `api/cron/weekly.js`). The **reporting week** is the
seven PT days before the run's Monday (Mon..Sun); files are named by that Monday (`YYYYMMDD`).

Tasks:
- `export_metrics_csv` — `$ARTIFACTS_DIR/exports/metrics-weekly-YYYYMMDD.csv`: one row per day,
  every `analytics.daily_metrics` column + proof/snapshot statuses + snapshot metrics,
  spreadsheet-safe (formula injection neutralised); also `projects-weekly-YYYYMMDD.csv`.
- `build_cto_report` — `$ARTIFACTS_DIR/reports/cto-report-YYYYMMDD.html` (+ `.eml`): key metrics
  week over week, 8-week charts, sampling proofs and anomalies, project health, critical bugs and
  revenue at risk, job reliability.
- `send_cto_report` — emails it (text + HTML + inline charts) to `REPORT_EMAILS` from
  `EMAIL_FROM` via `smtp_default`; no recipients → logs where the report is and succeeds.
- `archive_old_records` — keeps the newest 10,000 `ops.job_events` / 1,000 `ops.job_runs`;
  removes ledger entries, resolved dead letters and artifacts dated more than 90 days before the
  report date; everything removed is archived under `$ARTIFACTS_DIR/archive/` first
  (`ops.archive_batches` lists each batch).
- `check_project_health` — healthy / warning / critical per active project (from
  `analytics.project_health`, else computed from open issues); alert `project_health:<repo>`,
  resolved when healthy.

**Params** (manual runs): `week_ending` (ISO date, optional) — report on the seven days ending
there instead (must be before the run's PT date); `resend_email` (bool, default false) — send
again even if this week's report already went to the same recipients.

**Deadline:** report out by 09:00 PT Monday (5 h; env `DEADLINE_ANALYTICS_WEEKLY_SECONDS`
overrides).

## Owner
data-platform (`#data-platform`). Settings: `ARTIFACTS_DIR`, `REPORT_EMAILS`, `EMAIL_FROM`,
`REPORT_SLOW_RUN_SECONDS`, `RETENTION_KEEP_JOB_EVENTS`, `RETENTION_KEEP_JOB_RUNS`,
`RETENTION_MAX_AGE_DAYS` (Airflow Variable > env var > default).

## When it fails
- Find the failed task's row in `ops.job_runs` (`dag_id = 'analytics_weekly'`): `last_error`.
- `export_metrics_csv` / `build_cto_report`: usually the database; fix and clear the task (it
  rewrites the same files). A bad `week_ending` fails at once with the reason.
- `send_cto_report`: "login refused" / "every recipient was refused" → fix the `smtp_default`
  connection or `REPORT_EMAILS`, then clear the task; connection errors retry by themselves. The
  report file is on disk either way (path in the log). To send again on purpose, trigger with
  `{"week_ending": "<Sunday>", "resend_email": true}`.
- `archive_old_records`: safe to clear and rerun — it removes only what is beyond the limits and
  archives before deleting (`ops.archive_batches` lists every batch and its file).
- `check_project_health`: alerts are in `ops.alerts` (`source = 'project_health'`).
- Rerun a past week: `airflow dags trigger analytics_weekly -c '{"week_ending": "2026-11-22"}'`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, dag

from include.analytics_ops import assets, callbacks, config, deadlines
from include.analytics_ops.operators.weekly import (
    ArchiveOldRecordsOperator,
    BuildCtoReportOperator,
    CheckProjectHealthOperator,
    ExportMetricsCsvOperator,
    SendCtoReportOperator,
)


@dag(
    dag_id="analytics_weekly",
    schedule=CronTriggerTimetable("0 4 * * 1", timezone=config.PT),
    start_date=pendulum.datetime(2026, 1, 5, tz=config.PT),
    catchup=False,
    max_active_runs=1,
    default_args=callbacks.default_args(),
    on_failure_callback=callbacks.on_dag_failure,
    deadline=deadlines.deadline("analytics_weekly"),
    tags=["weekly", "reports", "analytics"],
    doc_md=__doc__,
    params={
        "week_ending": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Last PT day of the week to report on (YYYY-MM-DD, before the run's "
            "date). Empty: the seven days before the run's Monday.",
        ),
        "resend_email": Param(
            False,
            type="boolean",
            description="Send the email even if this week's report already went out.",
        ),
    },
)
def analytics_weekly():
    export = ExportMetricsCsvOperator(
        task_id="export_metrics_csv",
        inlets=[assets.DAILY_METRICS, *assets.SAMPLING_PROOFS, *assets.DASHBOARD_SNAPSHOTS],
        outlets=[assets.WEEKLY_EXPORTS],
    )
    build = BuildCtoReportOperator(
        task_id="build_cto_report",
        inlets=[assets.DAILY_METRICS, *assets.SAMPLING_PROOFS, assets.PROJECT_HEALTH],
        outlets=[assets.CTO_REPORT],
    )
    send = SendCtoReportOperator(task_id="send_cto_report", smtp_conn_id="smtp_default")
    archive = ArchiveOldRecordsOperator(task_id="archive_old_records")
    CheckProjectHealthOperator(task_id="check_project_health", inlets=[assets.PROJECT_HEALTH])
    build >> send
    # Trim only after the report has read the week's job runs and the CSV is written.
    [export, send] >> archive


analytics_weekly()
