"""Operators of the ``analytics_weekly`` DAG (thin wrappers over ``include.analytics_ops.reports``).

Every operator: validates the run's params first (a bad ``week_ending`` fails the task with
``AirflowFailException`` before any work), derives the reporting week (``reports.window``),
records its attempt in ``ops.job_runs`` (window = the week's PT days, ``target_date`` = report
date) and imports its heavy libraries (psycopg, pandas, matplotlib, jinja2) inside ``execute``,
so the DAG file can import this module at parse time.

Settings (Airflow Variable > env > default, read at run time): ``ARTIFACTS_DIR`` (artifacts),
``REPORT_EMAILS`` (none), ``EMAIL_FROM`` (the connection's ``from_email``, else
``analytics-ops@localhost``), ``REPORT_SLOW_RUN_SECONDS`` (300), ``RETENTION_KEEP_JOB_EVENTS``
(10000), ``RETENTION_KEEP_JOB_RUNS`` (1000), ``RETENTION_MAX_AGE_DAYS`` (90).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from include.analytics_ops.operators.job_run import JobRun

log = logging.getLogger(__name__)
DEFAULT_SENDER = "analytics-ops@localhost"
SENT_EVENT = "cto_report_sent"


class _WeeklyOperator(BaseOperator):
    """Shared skeleton: params → window → job run → ``work()`` → finish."""

    template_fields: tuple[str, ...] = ()

    def work(self, job: JobRun, window, context) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def execute(self, context: Mapping[str, Any]) -> None:
        from include.analytics_ops.reports import window as window_mod

        try:
            window_mod.validate_params(context.get("params"))
            window = window_mod.window_from_context(context)
        except window_mod.InvalidWeeklyParams as exc:
            raise AirflowFailException(str(exc)) from None
        log.info(
            "reporting week %s (%s .. %s), report date %s",
            window.label,
            window.start,
            window.end,
            window.report_date,
        )
        start_utc, end_utc = window.utc_bounds()
        # ValueError: config/param errors, retrying will not help
        with JobRun(
            context,
            permanent=(ValueError,),
            window_start=start_utc,
            window_end=end_utc,
            target_date=window.report_date,
        ) as job:
            outcome = self.work(job, window, context)
            job.finish(
                outcome.get("status", "completed"),
                records_in=outcome.get("records_in"),
                records_out=outcome.get("records_out"),
                stats=outcome.get("stats"),
                status_message=outcome.get("message"),
            )
        log.info("%s", outcome.get("message", "done"))


class ExportMetricsCsvOperator(_WeeklyOperator):
    """Write ``exports/metrics-weekly-YYYYMMDD.csv`` (+ ``projects-weekly-YYYYMMDD.csv``)."""

    def work(self, job: JobRun, window, context) -> dict[str, Any]:
        from include.analytics_ops.config import artifacts_dir
        from include.analytics_ops.reports.export import export_metrics

        result = export_metrics(job.conn, window, artifacts_dir())
        if result.days_with_data < len(window.days):
            log.warning(
                "only %d of %d days of the week have daily_metrics rows",
                result.days_with_data,
                len(window.days),
            )
        return {
            "records_in": result.days_with_data,
            "records_out": result.rows,
            "stats": {
                "csv": str(result.path),
                "projects_csv": str(result.projects_path),
                "columns": len(result.columns),
                "days_with_data": result.days_with_data,
                "projects": result.projects,
            },
            "message": f"metrics CSV: {result.path} ({result.rows} days, "
            f"{result.days_with_data} with data, {len(result.columns)} columns); "
            f"projects CSV: {result.projects_path} ({result.projects} projects)",
        }


class BuildCtoReportOperator(_WeeklyOperator):
    """Render ``reports/cto-report-YYYYMMDD.html`` (+ the ready-to-send ``.eml``)."""

    def work(self, job: JobRun, window, context) -> dict[str, Any]:
        from include.analytics_ops.config import artifacts_dir, setting
        from include.analytics_ops.reports.report import build_report

        result = build_report(
            job.conn,
            window,
            artifacts_dir(),
            slow_run_seconds=setting("REPORT_SLOW_RUN_SECONDS", 300.0, float),
        )
        return {
            "records_out": 1,
            "stats": {
                "html": str(result.html_path),
                "eml": str(result.eml_path),
                "charts": list(result.charts),
                "headline": result.headline,
            },
            "message": f"CTO report: {result.html_path} — {result.subject}",
        }


class SendCtoReportOperator(_WeeklyOperator):
    """Email the built report to ``REPORT_EMAILS`` through ``smtp_conn_id`` (templated).

    No recipients configured: succeeds and logs where the report is. A report already sent for
    the same week to the same recipients is not sent again unless the run's param
    ``resend_email`` is true. Authentication failures / every recipient refused fail without
    retry; connection errors are retried.
    """

    template_fields = ("smtp_conn_id",)

    def __init__(self, *, smtp_conn_id: str = "smtp_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.smtp_conn_id = smtp_conn_id

    def work(self, job: JobRun, window, context) -> dict[str, Any]:
        from include.analytics_ops import store
        from include.analytics_ops.config import artifacts_dir, setting
        from include.analytics_ops.reports import email as email_mod
        from include.analytics_ops.reports.report import report_eml_path, report_html_path

        html_path = report_html_path(artifacts_dir(), window)
        eml_path = report_eml_path(artifacts_dir(), window)
        recipients = email_mod.parse_recipients(setting("REPORT_EMAILS", "", str))
        if not recipients:
            message = f"REPORT_EMAILS is not set: the report was not emailed. It is at {html_path}"
            log.warning(message)
            return {
                "records_out": 0,
                "message": message,
                "stats": {"sent": False, "html": str(html_path)},
            }
        if not eml_path.is_file():
            raise AirflowFailException(
                f"{eml_path} is missing: clear build_cto_report of this run to rebuild it"
            )
        resend = bool((context.get("params") or {}).get("resend_email", False))
        already = job.conn.execute(
            "SELECT details->'recipients' FROM ops.job_events WHERE event_type = %s"
            " AND entity_id = %s ORDER BY id DESC LIMIT 1",
            (SENT_EVENT, window.stamp),
        ).fetchone()
        if already and sorted(already[0] or []) == sorted(recipients) and not resend:
            message = (
                f"report for {window.report_date} was already sent to "
                f"{len(recipients)} recipient(s); not sending again (set param "
                f"resend_email=true to resend). Report: {html_path}"
            )
            log.info(message)
            return {
                "records_out": 0,
                "message": message,
                "stats": {"sent": False, "duplicate": True, "html": str(html_path)},
            }
        try:
            smtp = email_mod.SmtpSettings.from_airflow(self.smtp_conn_id)
        except email_mod.EmailConfigError as exc:
            raise AirflowFailException(f"{exc}; the report is at {html_path}") from None
        sender = setting("EMAIL_FROM", "", str) or smtp.from_email or DEFAULT_SENDER
        msg = email_mod.load_message(eml_path)
        log.info("sending %s to %d recipient(s) via %r", eml_path.name, len(recipients), smtp)
        try:
            refused = email_mod.send_message(smtp, msg, sender, recipients)
        except email_mod.EmailConfigError as exc:
            raise AirflowFailException(f"{exc}; the report is at {html_path}") from None
        accepted = [r for r in recipients if r not in refused]
        store.log_event(
            job.conn,
            SENT_EVENT,
            f"CTO report {window.stamp} sent to {len(accepted)} recipient(s)",
            key=job.key,
            entity_id=window.stamp,
            details={
                "recipients": recipients,
                "refused": sorted(refused),
                "subject": str(msg["Subject"]),
                "html": str(html_path),
            },
        )
        message = (
            f"report emailed to {len(accepted)} of {len(recipients)} recipient(s) "
            f"from {sender}; refused: {sorted(refused) or 'none'}. Report: {html_path}"
        )
        return {
            "status": "partial" if refused else "completed",
            "records_in": len(recipients),
            "records_out": len(accepted),
            "message": message,
            "stats": {"sent": True, "refused": sorted(refused), "html": str(html_path)},
        }


class ArchiveOldRecordsOperator(_WeeklyOperator):
    """Trim ops tables and old artifacts, archiving what is removed (``reports.retention``)."""

    def work(self, job: JobRun, window, context) -> dict[str, Any]:
        from include.analytics_ops.config import artifacts_dir, setting
        from include.analytics_ops.reports.retention import RetentionPolicy, apply_retention

        policy = RetentionPolicy(
            keep_job_events=setting("RETENTION_KEEP_JOB_EVENTS", 10_000, int),
            keep_job_runs=setting("RETENTION_KEEP_JOB_RUNS", 1_000, int),
            max_age_days=setting("RETENTION_MAX_AGE_DAYS", 90, int),
        )
        result = apply_retention(
            job.conn, window.report_date, artifacts_dir(), policy, run_id=job.key.run_id
        )
        counts = ", ".join(f"{k}={v}" for k, v in result.removed.items())
        where = f"; archived in {result.archive_file}" if result.archive_file else ""
        return {
            "records_out": result.total,
            "stats": {
                "removed": result.removed,
                "cutoff": result.cutoff.isoformat(),
                "archive": str(result.archive_file or ""),
                "artifact_archives": [str(p) for p in result.artifact_archives],
            },
            "message": f"retention (cut-off {result.cutoff}): removed {result.total} "
            f"({counts}){where}",
        }


class CheckProjectHealthOperator(_WeeklyOperator):
    """Status of every active project; warning/critical → alert, healthy → resolve."""

    def work(self, job: JobRun, window, context) -> dict[str, Any]:
        from include.analytics_ops.reports.health import check_project_health

        result = check_project_health(job.conn, window.end, **job.origin)
        for s in result.statuses:
            log.info(
                "%-8s %3d  %s (%s): %s", s.status, s.score, s.name, s.repo, "; ".join(s.reasons)
            )
        counts = result.counts()
        return {
            "records_in": len(result.statuses),
            "records_out": len(result.alerts_raised),
            "stats": {
                **counts,
                "alerts_raised": result.alerts_raised,
                "alerts_resolved": result.alerts_resolved,
            },
            "message": f"{len(result.statuses)} projects: {counts['healthy']} healthy, "
            f"{counts['warning']} warning, {counts['critical']} critical; "
            f"{len(result.alerts_raised)} alert(s) raised, "
            f"{len(result.alerts_resolved)} resolved",
        }
