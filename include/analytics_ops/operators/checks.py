"""Operators of the ``analytics_nightly`` main branch: freshness gate, the six metric checks,
the sampling proof and the dashboard snapshot.

Thin wrappers over :mod:`include.analytics_ops.nightly`: each validates the run's params first
(a bad ``target_date`` fails with ``AirflowFailException`` before any work), derives the business
date (``dates.business_date``: ``params.target_date`` or the PT day before the run — works for
runs without a logical date), records its attempt in ``ops.job_runs`` (``target_date`` = the day)
and imports psycopg/numpy/the statistics inside ``execute`` so the DAG file stays cheap to parse.
Nothing goes through XCom: every result is a Postgres row (and a file for proof and snapshot).

Settings (Airflow Variable > env > default, read at run time): ``ARTIFACTS_DIR`` (``artifacts``),
``CHECK_CONFIG_OVERRIDES`` (JSON thresholds, default none — see
:mod:`include.analytics_ops.nightly.metric_checks`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator, BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, AirflowSkipException

from include.analytics_ops.operators.job_run import JobRun


def _target_date(context: Mapping[str, Any]):
    """The business date, or AirflowFailException for a bad ``target_date`` param."""
    from include.analytics_ops.dates import business_date, previous_pt_day, run_time

    try:
        day = business_date(context)
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from None
    latest = previous_pt_day(run_time(context))
    if day > latest:
        raise AirflowFailException(
            f"param 'target_date' {day.isoformat()} is not a finished PT day for this run "
            f"(latest is {latest.isoformat()})"
        )
    return day


# --------------------------------------------------------------------------- freshness
class FreshnessGateOperator(BaseSensorOperator):
    """Wait until the target day's data is complete (row in ``analytics.daily_metrics`` and the
    PostHog watermark at or past the end of the day in PT — see ``nightly.freshness``).

    A sensor in ``reschedule`` mode. Stale (ingest watermark behind): the poke says "not yet" and
    the task is rescheduled every ``poke_interval`` (no worker slot held in between, no retry
    spent); the attempt's ``ops.job_runs`` row stays ``running`` with the STALE message as its
    ``status_message``. Once the data is complete the row ends ``completed``; when ``timeout``
    (from the first poke) runs out first, it ends ``failed`` (``stale``) and the task fails with
    the STALE message, not retried. Missing (watermark past the day, row/columns absent):
    ``AirflowFailException`` at once (row ``failed``, ``missing``) — waiting cannot help, a person
    must reload the day.

    :param stream: the watermark stream (default ``posthog``).
    :param required_columns: ``daily_metrics`` columns that must be set.
    :param poke_interval: default 5 minutes; ``timeout``: give one within the DAG's deadline.

    ``template_fields``: ``stream``.
    """

    template_fields: Sequence[str] = ("stream",)
    ui_color = "#fde9c9"

    def __init__(
        self,
        *,
        stream: str = "posthog",
        required_columns: Sequence[str] | None = None,
        mode: str = "reschedule",
        poke_interval: timedelta | float = timedelta(minutes=5),
        **kwargs: Any,
    ) -> None:
        super().__init__(mode=mode, poke_interval=poke_interval, **kwargs)
        self.stream = stream
        self.required_columns = tuple(required_columns) if required_columns else None

    def execute(self, context: Mapping[str, Any]) -> None:
        self.day = _target_date(context)  # a bad param fails before the first poke
        try:
            super().execute(context)
        except AirflowSensorTimeout:
            message = (
                f"{self.stale.message()} Timed out after waiting {self.timeout / 60:g} min;"
                " once the ingest catches up, clear check_freshness."
            )
            with JobRun(context, target_date=self.day, resume=True) as job:
                job.finish(
                    "failed",
                    error_count=1,
                    last_error=message,
                    stats=self.stale.as_stats(),
                    status_message="stale",
                )
            self.log.error("%s", message)
            raise AirflowSensorTimeout(message) from None

    def poke(self, context: Mapping[str, Any]) -> bool:
        from include.analytics_ops.nightly import freshness

        kwargs = {"required_columns": self.required_columns} if self.required_columns else {}
        with JobRun(context, target_date=self.day, resume=True) as job:
            result = freshness.evaluate_freshness(job.conn, self.day, stream=self.stream, **kwargs)
            message, stats = result.message(), result.as_stats()
            if result.fresh:
                job.finish("completed", records_in=1, stats=stats, status_message=message)
                self.log.info("%s", message)
                return True
            if not result.retryable:
                job.finish(
                    "failed",
                    error_count=1,
                    last_error=message,
                    stats=stats,
                    status_message="missing",
                )
                self.log.error("%s", message)
                raise AirflowFailException(message)
            job.update(stats=stats, status_message=message)
        self.stale = result
        self.log.warning("%s", message)
        return False


# --------------------------------------------------------------------------- metric checks
class _MetricCheckOperator(BaseOperator):
    """Judge one metric on the target day and upsert its ``analytics.check_results`` row.

    The task succeeds whatever the severity (``write_proof`` decides the day's verdict); it fails
    on real errors: bad threshold configuration (``AirflowFailException``), database problems
    (retried).

    :param metric: ``revenue``, ``conversion_rate`` or ``sessions``.
    :param config_overrides: thresholds for this check on top of ``CHECK_CONFIG_OVERRIDES``
        (same shape; templated).

    ``template_fields``: ``config_overrides``.
    """

    kind: str = ""
    template_fields: Sequence[str] = ("config_overrides",)
    ui_color = "#e3f1e0"

    def __init__(
        self, *, metric: str, config_overrides: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.metric = metric
        self.config_overrides = dict(config_overrides or {})

    def _config(self):
        from include.analytics_ops.config import setting
        from include.analytics_ops.nightly.metric_checks import (
            InvalidCheckConfig,
            config_for,
            parse_overrides,
        )

        try:
            from_settings = parse_overrides(setting("CHECK_CONFIG_OVERRIDES", None, str))
            return config_for(
                self.metric, self.kind, from_settings, parse_overrides(self.config_overrides)
            )
        except InvalidCheckConfig as exc:
            raise AirflowFailException(str(exc)) from None

    def execute(self, context: Mapping[str, Any]) -> None:
        from include.analytics_ops.nightly.metric_checks import run_check

        day = _target_date(context)
        cfg = self._config()
        with JobRun(context, target_date=day) as job:
            outcome, stats = run_check(job.conn, self.metric, self.kind, day, cfg, job.key.run_id)
            job.finish(
                "completed",
                records_in=stats["history_rows"],
                records_out=1,
                stats={
                    **stats,
                    "severity": outcome.severity,
                    "score": outcome.score,
                    "config_version": outcome.config_version,
                },
                status_message=f"{outcome.severity}: {outcome.explanation}"[:1000],
            )
        level = logging.WARNING if outcome.severity in ("warning", "critical") else logging.INFO
        self.log.log(
            level,
            "%s on %s: %s — %s (config %s)",
            outcome.check_name,
            day,
            outcome.severity.upper(),
            outcome.explanation,
            outcome.config_version,
        )


class MetricRangeCheckOperator(_MetricCheckOperator):
    """Range check: the day's value against its seasonal robust band (median of the last 8 same
    weekdays, 1.4826·MAD of 56 days of log residuals; warning z ≥ 3, critical z ≥ 4, each with a
    minimum effect), after the hard bounds."""

    kind = "range"


class MetricTrendCheckOperator(_MetricCheckOperator):
    """Trend check: day-over-day on seasonally adjusted residuals (vs the median of the previous
    3) and week-over-week on 7-day totals, each judged against its own 56-day history."""

    kind = "trend"


# --------------------------------------------------------------------------- proof
class CriticalProofError(AirflowFailException):
    """The proof is critical. The per-check alerts already went through the alert path."""

    already_alerted = True


class WriteProofOperator(BaseOperator):
    """Fold the six check rows of this run into the sampling proof: file
    ``$ARTIFACTS_DIR/sampling-proofs/sampling-proof-YYYYMMDD.json`` + ``analytics.sampling_proofs``
    row, per-check alerts on state changes; then passed → success, warning → success (warning
    alerts raised), critical → the task fails (``CriticalProofError``, no retry), so the run
    fails.

    ``template_fields``: none.
    """

    template_fields: Sequence[str] = ()
    ui_color = "#dfe7fd"

    def execute(self, context: Mapping[str, Any]) -> None:
        from include.analytics_ops.config import artifacts_dir
        from include.analytics_ops.nightly import proof as proof_mod

        day = _target_date(context)
        artifacts = artifacts_dir()
        with JobRun(context, target_date=day) as job:
            run_id = job.key.run_id
            mine, missing = proof_mod.rows_of_run(proof_mod.load_check_rows(job.conn, day), run_id)
            if missing:
                raise AirflowFailException(
                    f"no result of this run for {', '.join(missing)} on {day}: the proof is only"
                    " written from the six checks of the same run (clear the check tasks)"
                )
            proof = proof_mod.build_proof(mine, day, run_id)
            with job.conn.transaction():
                path = proof_mod.store_proof(job.conn, proof, artifacts)
            changes = proof_mod.sync_check_alerts(job.conn, day, proof.checks, **job.origin)
            alert_stats = {c.check_name: c.action for c in changes}
            critical = proof.status == "critical"
            verdict = (
                f"sampling proof for {day} is CRITICAL (exit code 2): "
                + "; ".join(
                    f"{a['check']}: {a['message']}"
                    for a in proof.anomalies
                    if a["severity"] == "critical"
                )
                if critical
                else None
            )
            # The attempt's row mirrors the task: a critical proof is written *and* fails the task.
            job.finish(
                "failed" if critical else "completed",
                records_in=len(mine),
                records_out=1,
                error_count=proof.summary.get("critical", 0),
                last_error=verdict[:2000] if verdict else None,
                stats={
                    "status": proof.status,
                    "exit_code": proof.exit_code,
                    "artifact": str(path),
                    "anomalies": len(proof.anomalies),
                    "alerts": alert_stats,
                    "config_version": proof.config_version,
                },
                status_message=f"proof {proof.status} (exit code {proof.exit_code}),"
                f" {len(proof.anomalies)} anomalies",
            )
        self.log.info(
            "sampling proof for %s: %s (exit code %d), %s — %s",
            day,
            proof.status.upper(),
            proof.exit_code,
            ", ".join(f"{k}={v}" for k, v in proof.summary.items()),
            path,
        )
        for anomaly in proof.anomalies:
            self.log.warning(
                "ANOMALY [%s] %s: %s", anomaly["severity"], anomaly["check"], anomaly["message"]
            )
        self.log.info("alerts: %s", alert_stats)
        if verdict:
            raise CriticalProofError(verdict)


# --------------------------------------------------------------------------- snapshot
class CaptureSnapshotOperator(BaseOperator):
    """Capture the dashboard snapshot (revenue, conversion, traffic, idea pool) of the target day
    with the proof status of this run: file ``$ARTIFACTS_DIR/snapshots/YYYY-MM-DD.json`` +
    ``analytics.dashboard_snapshots`` row.

    Meant to run with ``trigger_rule="all_done"`` after the checks, so it also captures critical
    days. It is skipped when the day's data is not complete (the freshness gate failed: nothing
    trustworthy to capture). A category that cannot be read → ``partial`` (row, file and
    ``ops.job_runs``), task still succeeds; it fails when it cannot write, or when no category at
    all could be read.

    ``template_fields``: none.
    """

    template_fields: Sequence[str] = ()
    ui_color = "#f3e5f5"

    def execute(self, context: Mapping[str, Any]) -> None:
        from include.analytics_ops.config import artifacts_dir
        from include.analytics_ops.nightly import freshness
        from include.analytics_ops.nightly import proof as proof_mod
        from include.analytics_ops.nightly import snapshot as snapshot_mod

        day = _target_date(context)
        artifacts = artifacts_dir()
        with JobRun(context, target_date=day) as job:
            fresh = freshness.evaluate_freshness(job.conn, day)
            if not fresh.fresh:
                job.finish("cancelled", stats=fresh.as_stats(), status_message=fresh.message())
                raise AirflowSkipException(f"snapshot not captured: {fresh.message()}")
            proof_status, missing = proof_mod.status_of_run(job.conn, day, job.key.run_id)
            if proof_status is None:
                proof_status = "incomplete"
                self.log.warning("checks without a result in this run: %s", ", ".join(missing))
            snap = snapshot_mod.capture(
                job.conn, day, proof_status=proof_status, run_id=job.key.run_id
            )
            with job.conn.transaction():
                path = snapshot_mod.store_snapshot(job.conn, snap, artifacts)
            snapshot_mod.sync_snapshot_alert(job.conn, snap, day, **job.origin)
            job.finish(
                "completed" if snap.status == "complete" else "partial",
                records_out=len(snap.captured),
                error_count=len(snap.errors),
                last_error="; ".join(f"{e['category']}: {e['error']}" for e in snap.errors)[:2000]
                or None,
                error_details={"errors": snap.errors} if snap.errors else None,
                stats={"artifact": str(path), "proof_status": proof_status, **snap.summary},
                status_message=f"snapshot {snap.status}: {len(snap.captured)}/"
                f"{len(snap.metrics)} categories, proof {proof_status}",
            )
        self.log.info(
            "dashboard snapshot for %s: %s (%d/%d categories, proof %s) — %s",
            day,
            snap.status,
            len(snap.captured),
            len(snap.metrics),
            proof_status,
            path,
        )
        for error in snap.errors:
            self.log.warning(
                "snapshot category %s not captured: %s", error["category"], error["error"]
            )
        if not snap.captured:
            raise AirflowFailException(
                f"no metric category could be read for {day}: "
                + "; ".join(f"{e['category']}: {e['error']}" for e in snap.errors)
            )
