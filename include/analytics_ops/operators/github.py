"""Operators and DAG factories for the GitHub project sync, project health and the bug-risk monitor.

Factories (call inside a ``@dag`` function body):

- ``add_github_branch() -> (first, last)``: ``sync_github >> compute_project_metrics >>
  score_project_health >> cleanup_old_logs`` (nightly; business date = previous PT day of the
  run, ``params.target_date`` overrides).
- ``add_bug_risk_group() -> TaskGroup``: task group ``bug_risk`` with ``compute_bug_risk >>
  raise_bug_risk_alerts`` (hourly; the run's hour = its data-interval end, or ``run_after`` for
  runs without one).

How a partial sync stays honest: ``sync_github`` syncs every project it can, records
``partial`` in ``ops.job_runs`` when some failed, and then fails (a transient failure → normal
exception, Airflow retries; only permanent ones such as a 404 repo → ``AirflowFailException``).
``compute_project_metrics`` and ``score_project_health`` run anyway (``all_done``): the projects
that did sync get today's metrics and health, the failed ones are scored from their last data with
the reason "last GitHub sync failed". ``cleanup_old_logs`` (``all_done``, log retention does not
depend on the sync) then carries the branch's verdict: after its cleanup it fails unless the
latest attempt of every upstream task of the branch is ``completed`` in ``ops.job_runs`` — so the
DAG run ends failed whenever any part of the branch did not fully succeed.

Every task records its attempt in ``ops.job_runs``; retries = 3 with exponential backoff for
transient errors; bad configuration, bad params and auth errors raise ``AirflowFailException``.

Module level imports only Airflow's SDK (cheap at DAG parse time); psycopg/httpx and the logic
are imported inside ``execute``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator, TaskGroup
from airflow.sdk.exceptions import AirflowFailException

from include.analytics_ops.operators.job_run import JobRun

SYNC_TASK = "sync_github"
METRICS_TASK = "compute_project_metrics"
HEALTH_TASK = "score_project_health"
CLEANUP_TASK = "cleanup_old_logs"
RISK_GROUP = "bug_risk"
RISK_TASK = "compute_bug_risk"
ALERTS_TASK = "raise_bug_risk_alerts"

DEFAULT_RETENTION_DAYS = 30


# --------------------------------------------------------------------------- helpers
def _business_date(context: Mapping[str, Any]):
    from include.analytics_ops.dates import business_date

    try:
        return business_date(context)
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from exc


def run_hour(context: Mapping[str, Any]) -> datetime:
    """The hour an hourly run stands for: its data-interval end (window end) floored to the hour,
    or ``run_after`` for runs without a data interval."""
    moment = context.get("data_interval_end")
    if moment is None:
        dag_run = context.get("dag_run")
        moment = getattr(dag_run, "run_after", None) if dag_run is not None else None
    if moment is None:
        raise AirflowFailException("the run has neither a data interval nor run_after")
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _setting(name: str, default: Any, cast: type | None = None) -> Any:
    from include.analytics_ops.config import setting

    try:
        return setting(name, default, cast)
    except (TypeError, ValueError) as exc:
        raise AirflowFailException(f"setting {name} is invalid: {exc}") from exc


# --------------------------------------------------------------------------- nightly
class SyncGitHubOperator(BaseOperator):
    """Sync issues and PRs of every active project from the ``github_api`` connection.

    :param repos: optional list of ``owner/name`` to restrict the sync to (templated); default:
        every active project in ``analytics.projects``.
    :param conn_id: the GitHub connection (default ``github_api``).

    Settings (Variable > env > default): ``GITHUB_PER_PAGE`` (100), ``GITHUB_MAX_PAGES`` (200 pages
    per project and run: a project with more fails with that reason, nothing half-written),
    ``GITHUB_MAX_RATE_LIMIT_WAIT``
    (seconds a rate limit may be waited out in-task, 300), ``GITHUB_TIMEOUT_SECONDS`` (30), and
    the label convention ``GITHUB_BUG_LABELS``, ``GITHUB_SEVERITY_LABEL_PREFIX``,
    ``GITHUB_REVENUE_LABEL_PREFIX``, ``GITHUB_SEVERITY_ALIASES``.
    """

    template_fields: Sequence[str] = ("repos",)
    ui_color = "#d9e8fb"

    def __init__(
        self, *, repos: Sequence[str] | None = None, conn_id: str = "github_api", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.repos = repos
        self.conn_id = conn_id

    def execute(self, context: Mapping[str, Any]) -> None:
        from include.analytics_ops.db import ConfigError
        from include.analytics_ops.github.client import GitHubAuthError, GitHubClient
        from include.analytics_ops.github.sync import LabelConvention, sync_projects

        day = _business_date(context)
        repos = list(self.repos) if self.repos else None
        try:
            convention = LabelConvention.from_settings()
            client = GitHubClient.from_airflow(
                self.conn_id,
                per_page=_setting("GITHUB_PER_PAGE", 100, int),
                max_pages=_setting("GITHUB_MAX_PAGES", 200, int),
                max_wait_seconds=_setting("GITHUB_MAX_RATE_LIMIT_WAIT", 300.0, float),
                timeout_seconds=_setting("GITHUB_TIMEOUT_SECONDS", 30.0, float),
            )
        except (ConfigError, ValueError) as exc:
            raise AirflowFailException(f"GitHub sync is misconfigured: {exc}") from exc
        with client, JobRun(context, target_date=day) as job:
            try:
                summary = sync_projects(
                    job.conn, client, convention, repos=repos, key=job.key, job_run_id=job.id
                )
            except GitHubAuthError as exc:
                raise AirflowFailException(f"GitHub rejected the token: {exc}") from exc
            failed = summary.failed
            message = (
                f"{summary.stats['synced']} synced, {summary.stats['not_modified']} not modified,"
                f" {len(failed)} failed out of {len(summary.outcomes)} projects"
            )
            job.finish(
                summary.run_status,
                records_in=summary.stats["issues_fetched"],
                records_out=summary.stats["issues_written"],
                error_count=len(failed),
                last_error="; ".join(f"{o.repo}: {o.error}" for o in failed)[:2000] or None,
                error_details={"failed": [o.as_dict() for o in failed]} if failed else None,
                stats={**summary.stats, "label_convention": convention.as_dict()},
                status_message=message,
            )
        self.log.info("GitHub sync: %s", message)
        if failed:
            text = f"GitHub sync incomplete ({message}): " + ", ".join(
                f"{o.repo} ({o.http_status or o.error})" for o in failed
            )
            if any(o.retryable for o in failed):
                raise RuntimeError(text + " — transient, will retry")
            raise AirflowFailException(text)


class ComputeProjectMetricsOperator(BaseOperator):
    """Daily metrics per active project for the business date into
    ``analytics.project_daily_metrics``. Setting ``BUG_SLA_HOURS``."""

    template_fields: Sequence[str] = ()

    def execute(self, context: Mapping[str, Any]) -> None:
        from include.analytics_ops.github import parse_sla_hours
        from include.analytics_ops.github.metrics import compute_project_metrics

        day = _business_date(context)
        try:
            sla = parse_sla_hours(_setting("BUG_SLA_HOURS", "", str))
        except ValueError as exc:
            raise AirflowFailException(f"BUG_SLA_HOURS: {exc}") from exc
        with JobRun(context, target_date=day) as job:
            out = compute_project_metrics(job.conn, day, sla_hours=sla, run_id=job.key.run_id)
            job.finish(
                records_out=len(out),
                stats={"projects": len(out), "sla_hours": sla},
                status_message=f"metrics for {len(out)} projects on {day}",
            )
        self.log.info("project metrics for %s: %d projects", day, len(out))


class ScoreProjectHealthOperator(BaseOperator):
    """Health score and status per project for the business date into
    ``analytics.project_health``. Settings ``HEALTH_HEALTHY_MIN`` (80), ``HEALTH_WARNING_MIN``
    (50)."""

    template_fields: Sequence[str] = ()

    def execute(self, context: Mapping[str, Any]) -> None:
        from include.analytics_ops.github.health import HealthThresholds, score_project_health

        day = _business_date(context)
        try:
            thresholds = HealthThresholds.from_settings()
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from exc
        with JobRun(context, target_date=day) as job:
            try:
                out = score_project_health(job.conn, day, thresholds=thresholds)
            except LookupError as exc:
                raise AirflowFailException(str(exc)) from exc
            counts = {s: sum(h.status == s for h in out.values()) for s in ("healthy", "warning")}
            counts["critical"] = len(out) - sum(counts.values())
            message = f"{len(out)} projects: " + ", ".join(f"{v} {k}" for k, v in counts.items())
            if not out:
                message = "0 projects: no active project in analytics.projects, nothing to score"
            job.finish(
                records_out=len(out),
                stats={"projects": len(out), **counts},
                status_message=message,
            )
        self.log.info("project health for %s: %s", day, message)


class BranchIncomplete(AirflowFailException):
    """A step of the GitHub branch did not complete. That step's own failure callback already
    alerted, so this task's failure (which only turns the run red) adds no second alert."""

    already_alerted = True


class CleanupOldLogsOperator(BaseOperator):
    """Delete ``ops.job_events`` older than ``JOB_EVENTS_RETENTION_DAYS`` (default 30) before the
    run's time, then fail unless every task in ``verify_task_ids`` completed in this run (the
    branch verdict, see the module docstring).

    :param verify_task_ids: task ids whose latest attempt in this DAG run must be ``completed``
        in ``ops.job_runs``.
    :param retention_days: overrides the setting (templated).
    """

    template_fields: Sequence[str] = ("retention_days",)

    def __init__(
        self,
        *,
        verify_task_ids: Sequence[str] = (),
        retention_days: int | str | None = None,
        batch_size: int = 10_000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.verify_task_ids = list(verify_task_ids)
        self.retention_days = retention_days
        self.batch_size = batch_size

    def execute(self, context: Mapping[str, Any]) -> None:
        from include.analytics_ops.dates import run_time

        raw = self.retention_days
        if raw in (None, ""):
            raw = _setting("JOB_EVENTS_RETENTION_DAYS", DEFAULT_RETENTION_DAYS, int)
        try:
            days = int(raw)
        except (TypeError, ValueError):
            days = -1
        if days < 1:
            raise AirflowFailException(f"retention must be a whole number of days >= 1, got {raw}")
        cutoff = run_time(context) - timedelta(days=days)
        with JobRun(context) as job:
            deleted = delete_old_job_events(job.conn, cutoff, batch_size=self.batch_size)
            verdict = branch_verdict(job.conn, job.key.dag_id, job.key.run_id, self.verify_task_ids)
            stats = {"deleted": deleted, "cutoff": cutoff, "retention_days": days, **verdict}
            bad = {t: s for t, s in verdict["tasks"].items() if s != "completed"}
            if bad:
                message = "branch incomplete: " + ", ".join(f"{t}={s}" for t, s in bad.items())
                job.finish(
                    "failed",
                    records_out=deleted,
                    error_count=len(bad),
                    last_error=message,
                    stats=stats,
                    status_message=f"{deleted} old job events deleted; {message}",
                )
            else:
                job.finish(
                    records_out=deleted,
                    stats=stats,
                    status_message=f"{deleted} job events older than {cutoff:%Y-%m-%d} deleted",
                )
        self.log.info("deleted %d job events older than %s", deleted, cutoff.isoformat())
        if bad:
            raise BranchIncomplete(
                f"{message} (old logs were cleaned; clear the failed task to re-run the branch)"
            )


def delete_old_job_events(conn, cutoff: datetime, *, batch_size: int = 10_000) -> int:
    """Delete ``ops.job_events`` with ``occurred_at < cutoff`` in batches; returns the count."""
    total = 0
    while True:
        n = conn.execute(
            """
            DELETE FROM ops.job_events WHERE id IN (
                SELECT id FROM ops.job_events WHERE occurred_at < %s LIMIT %s)
            """,
            (cutoff, batch_size),
        ).rowcount
        total += n
        if n < batch_size:
            return total


def branch_verdict(conn, dag_id: str, run_id: str, task_ids: Sequence[str]) -> dict[str, Any]:
    """Status of the latest recorded attempt of each task in this DAG run ('missing' if none)."""
    rows = conn.execute(
        """
        SELECT DISTINCT ON (task_id) task_id, status FROM ops.job_runs
         WHERE dag_id = %s AND run_id = %s AND task_id = ANY(%s)
         ORDER BY task_id, try_number DESC, started_at DESC
        """,
        (dag_id, run_id, list(task_ids)),
    ).fetchall()
    found = dict(rows)
    return {"tasks": {t: found.get(t, "missing") for t in task_ids}}


# --------------------------------------------------------------------------- hourly
def _risk_config():
    from include.analytics_ops.github.risk import RiskConfig

    try:
        return RiskConfig.from_settings()
    except (ValueError, ArithmeticError) as exc:
        raise AirflowFailException(f"bug-risk settings are invalid: {exc}") from exc


class ComputeBugRiskOperator(BaseOperator):
    """Revenue at risk, velocity and SLA breaches at the run's hour into
    ``analytics.bug_risk_snapshots``. Settings ``BUG_SLA_HOURS``, ``BUG_RISK_REVENUE_THRESHOLD``."""

    template_fields: Sequence[str] = ()

    def execute(self, context: Mapping[str, Any]) -> None:
        from include.analytics_ops.github.risk import compute_bug_risk

        hour = run_hour(context)
        config = _risk_config()
        with JobRun(context, window_end=hour) as job:
            risk = compute_bug_risk(job.conn, hour, config=config, run_id=job.key.run_id)
            stats = {
                "revenue_at_risk": str(risk["revenue_at_risk"]),
                "open_bugs": risk["open_bugs"],
                "velocity_7d": risk["velocity_7d"],
                "sla_breaches": risk["sla_breaches"],
                "unassigned_critical": len(risk["unassigned_critical"]),
                "critical_in_breach": len(risk["critical_in_breach"]),
            }
            job.finish(
                records_out=1,
                stats=stats,
                status_message=f"${risk['revenue_at_risk']:,.0f}/day at risk,"
                f" {risk['sla_breaches']} SLA breaches, velocity {risk['velocity_7d']}/week",
            )
        self.log.info("bug risk at %s: %s", hour.isoformat(), stats)


class RaiseBugRiskAlertsOperator(BaseOperator):
    """Raise/resolve the bug-risk alerts from the hour's snapshot (see ``github.risk``)."""

    template_fields: Sequence[str] = ()

    def execute(self, context: Mapping[str, Any]) -> None:
        from include.analytics_ops.github.risk import apply_bug_risk_alerts

        hour = run_hour(context)
        config = _risk_config()
        with JobRun(context, window_end=hour) as job:
            try:
                result = apply_bug_risk_alerts(
                    job.conn, hour, config=config, now=datetime.now(UTC), **job.origin
                )
            except LookupError as exc:
                raise AirflowFailException(str(exc)) from exc
            kinds: dict[str, int] = {}
            for t in result["transitions"]:
                kinds[t["transition"]] = kinds.get(t["transition"], 0) + 1
            job.finish(
                records_out=len(result["transitions"]),
                stats={"transitions": kinds, "skipped": result["skipped"]},
                status_message=result["skipped"]
                or (", ".join(f"{v} {k}" for k, v in kinds.items()) or "no alerts"),
            )
        self.log.info("bug-risk alerts at %s: %s", hour.isoformat(), result)


# --------------------------------------------------------------------------- factories
def _task_args(timeout_minutes: int) -> dict[str, Any]:
    """callbacks.default_args with retries=3 (exponential backoff) and this task's timeout."""
    from include.analytics_ops import callbacks

    return callbacks.default_args(retries=3, execution_timeout=timedelta(minutes=timeout_minutes))


def add_github_branch(*, repos: Sequence[str] | None = None) -> tuple[BaseOperator, BaseOperator]:
    """Create ``sync_github >> compute_project_metrics >> score_project_health >>
    cleanup_old_logs`` in the current DAG; returns (first, last) for wiring."""
    from include.analytics_ops import assets

    sync = SyncGitHubOperator(
        task_id=SYNC_TASK, repos=repos, outlets=[assets.GITHUB_ISSUES], **_task_args(30)
    )
    metrics = ComputeProjectMetricsOperator(
        task_id=METRICS_TASK, trigger_rule="all_done", inlets=[assets.GITHUB_ISSUES],
        **_task_args(15),
    )  # fmt: skip
    health = ScoreProjectHealthOperator(
        task_id=HEALTH_TASK, trigger_rule="all_done", inlets=[assets.GITHUB_ISSUES],
        outlets=[assets.PROJECT_HEALTH], **_task_args(15),
    )  # fmt: skip
    cleanup = CleanupOldLogsOperator(
        task_id=CLEANUP_TASK,
        trigger_rule="all_done",
        verify_task_ids=[sync.task_id, metrics.task_id, health.task_id],
        **_task_args(15),
    )
    sync >> metrics >> health >> cleanup
    return sync, cleanup


def add_bug_risk_group() -> TaskGroup:
    """Create the task group ``bug_risk`` (``compute_bug_risk >> raise_bug_risk_alerts``)."""
    with TaskGroup(
        RISK_GROUP, tooltip="revenue at risk, velocity, SLA breaches and their alerts"
    ) as group:
        risk = ComputeBugRiskOperator(task_id=RISK_TASK, **_task_args(10))
        alerts = RaiseBugRiskAlertsOperator(task_id=ALERTS_TASK, **_task_args(10))
        risk >> alerts
    return group
