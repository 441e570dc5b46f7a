"""Operators of the ``inventory_refresh`` DAG: list → refresh (mapped over batches) → summarize.

Thin wrappers over :mod:`include.analytics_ops.inventory`; heavy imports (psycopg, httpx) happen
inside ``execute()``, so a DAG file can import this module at parse time. Every operator records
its attempt in ``ops.job_runs``.

Errors: bad params/config and permanent (4xx) refresh failures raise ``AirflowFailException`` (no
retry); transient ones (5xx/timeouts still failing after the in-call retries) raise normally, so
Airflow retries the batch — and the retry calls only the jobs not yet successful in this run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from include.analytics_ops.inventory import ALERT_KEY, CONN_ID
from include.analytics_ops.operators.job_run import JobRun

log = logging.getLogger(__name__)

#: Mapped instances show this in the UI ("batch 3/12: client-001…client-025 × shopify,…").
#: ``refresh_label`` is set during execute (adding the failure count); before that the label
#: comes straight from the expanded batch descriptor.
MAP_INDEX_TEMPLATE = "{{ refresh_label | default(task.batch['label']) }}"


class ListRefreshJobsOperator(BaseOperator):
    """List connected clients × platforms, split them into batches, record the work list.

    Reads the run's ``client_ids`` / ``platforms`` params (validated: unknown or disconnected
    ids are refused before any call). Returns the list of batch descriptors (≤ ``max_batches``
    small dicts) that ``refresh_client`` expands over; the client ids themselves stay in
    ``analytics.inventory_refresh_jobs``.

    Settings (Variable > env > default, read at run time): ``INVENTORY_MAX_BATCHES`` (64),
    ``INVENTORY_MIN_BATCH_CLIENTS`` (25). No templated fields.
    """

    template_fields = ()
    ui_color = "#e8f4fd"

    def __init__(
        self, *, max_batches: int | None = None, min_batch_size: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.max_batches = max_batches
        self.min_batch_size = min_batch_size

    def execute(self, context: Mapping[str, Any]) -> list[dict[str, Any]]:
        from include.analytics_ops.config import setting
        from include.analytics_ops.inventory import jobs

        try:
            client_ids, platforms = jobs.parse_params(context.get("params"))
        except jobs.InvalidRefreshParams as exc:
            raise AirflowFailException(str(exc)) from None
        max_batches = self.max_batches or setting("INVENTORY_MAX_BATCHES", 64, int)
        min_size = self.min_batch_size or setting("INVENTORY_MIN_BATCH_CLIENTS", 25, int)

        with JobRun(context, permanent=(ValueError,)) as job:  # InvalidRefreshParams too
            clients = jobs.select_clients(job.conn, client_ids)
            batches = jobs.plan_batches(
                clients, platforms, max_batches=max_batches, min_batch_size=min_size
            )
            n_jobs = jobs.record_work_list(
                job.conn,
                job.key.run_id,
                batches,
                platforms=platforms,
                requested_client_ids=client_ids,
            )
            scope = "requested" if client_ids is not None else "active"
            if clients:
                log.info("Found %d %s clients for analytics refresh", len(clients), scope)
            else:
                log.warning(
                    "No active clients found: no client_api_credentials row is "
                    "'connected'; nothing to refresh"
                )
            log.info(
                "Processing %d clients × %d platforms = %d refresh jobs in %d batches "
                "(≤ %d clients each)",
                len(clients),
                len(platforms),
                n_jobs,
                len(batches),
                max((len(b.client_ids) for b in batches), default=0),
            )
            for b in batches:
                log.info("  %s", b.label)
            job.finish(
                records_in=len(clients),
                records_out=n_jobs,
                stats={
                    "clients": len(clients),
                    "jobs": n_jobs,
                    "batches": len(batches),
                    "platforms": list(platforms),
                },
            )
        return [b.descriptor() for b in batches]


class RefreshInventoryBatchOperator(BaseOperator):
    """Refresh one batch of the run's work list (clients × platforms, calls run concurrently).

    :param batch: a descriptor from ``list_refresh_jobs`` (``{"batch": 3, "batches": 12,
        "label": ...}``), supplied by ``.expand(batch=...)``.
    :param concurrency: calls in flight inside this task (also set ``pool_slots`` to it so the
        ``inventory_api`` pool counts concurrent calls).
    :param conn_id: the inventory API connection (templated).

    Settings: ``INVENTORY_TIMEOUT_SECONDS`` (60), ``INVENTORY_MAX_ATTEMPTS`` (3, per call),
    ``INVENTORY_BACKOFF_SECONDS`` (1.0), ``INVENTORY_RETRY_ONLY_FAILED`` (true: a retry or clear
    skips jobs already successful in this run).
    """

    template_fields = ("conn_id",)
    ui_color = "#fdf3e8"

    def __init__(
        self,
        *,
        batch: Mapping[str, Any],
        concurrency: int = 8,
        conn_id: str = CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.concurrency = concurrency
        self.conn_id = conn_id

    def execute(self, context: Mapping[str, Any]) -> None:
        from include.analytics_ops import db
        from include.analytics_ops.config import setting
        from include.analytics_ops.inventory.api import InventoryApi, RetryPolicy
        from include.analytics_ops.inventory.results import run_batch

        number = int(self.batch["batch"])
        label = str(self.batch.get("label") or f"batch {number}")
        context["refresh_label"] = label  # type: ignore[index]
        try:
            api = InventoryApi.from_airflow(
                self.conn_id,
                timeout_seconds=setting("INVENTORY_TIMEOUT_SECONDS", 60.0, float),
            )
        except db.ConfigError as exc:
            raise AirflowFailException(str(exc)) from None
        policy = RetryPolicy(
            max_attempts=max(1, setting("INVENTORY_MAX_ATTEMPTS", 3, int)),
            backoff_seconds=setting("INVENTORY_BACKOFF_SECONDS", 1.0, float),
        )
        skip_successful = setting("INVENTORY_RETRY_ONLY_FAILED", True, bool)

        with JobRun(context) as job:
            report = run_batch(
                job.conn,
                api,
                job.key.run_id,
                number,
                concurrency=self.concurrency,
                policy=policy,
                task_try=job.key.try_number,
                skip_successful=skip_successful,
            )
            status = (
                "completed"
                if not report.failed
                else "partial"
                if report.succeeded or report.skipped
                else "failed"
            )
            job.finish(
                status,
                records_in=report.jobs,
                records_out=report.succeeded + report.skipped,
                error_count=report.failed,
                last_error=report.failures[0].error if report.failures else None,
                stats=report.stats(),
            )
        log.info(
            "%s: %d refreshed, %d failed, %d skipped (already successful in this run) "
            "in %.2fs with %d concurrent calls",
            label,
            report.succeeded,
            report.failed,
            report.skipped,
            report.seconds,
            self.concurrency,
        )
        if not report.failed:
            return
        context["refresh_label"] = f"{label} ({report.failed} failed)"  # type: ignore[index]
        message = (
            f"{label}: {report.failed} of {report.jobs} refreshes failed "
            f"(clients: {', '.join(report.failed_clients)})"
        )
        if report.retryable_failed:
            # Transient (5xx/429/timeout): let Airflow retry this batch later; the retry calls
            # only the jobs that are not successful yet.
            raise RuntimeError(message + "; transient errors, the batch will be retried")
        raise AirflowFailException(message + "; permanent errors (4xx / refused), not retried")


class SummarizeRefreshOperator(BaseOperator):
    """Read the run's outcomes from Postgres, log them, alert and fail the run on failures.

    Runs with ``trigger_rule="all_done"`` so it reports even when batches failed, and fails
    itself (so the run fails) when any job failed, was never recorded, or when no work list was
    recorded at all (the listing failed). A clean run resolves the alert.

    Setting: ``INVENTORY_SUMMARY_MAX_LINES`` (1000) caps the ✅ lines logged (failures always).
    """

    template_fields = ()
    ui_color = "#eafbea"

    def execute(self, context: Mapping[str, Any]) -> dict[str, int]:
        from include.analytics_ops import alerts
        from include.analytics_ops.callbacks import airflow_ui_url
        from include.analytics_ops.config import setting
        from include.analytics_ops.inventory.results import (
            clients_still_alerting,
            failure_body,
            read_summary,
        )

        max_lines = setting("INVENTORY_SUMMARY_MAX_LINES", 1000, int)
        with JobRun(context) as job:
            conn, key = job.conn, job.key
            url = airflow_ui_url(key.dag_id, key.run_id)
            summary = read_summary(conn, key.run_id)
            if not summary.listed:
                message = (
                    f"run {key.run_id}: no work list was recorded (list_refresh_jobs failed or "
                    "was skipped), so no client was refreshed"
                )
                alerts.raise_alert(
                    conn,
                    ALERT_KEY,
                    "critical",
                    "inventory_refresh",
                    "Inventory refresh did not run",
                    message,
                    dag_id=key.dag_id,
                    run_id=key.run_id,
                    task_id=key.task_id,
                    url=url,
                )
                job.finish("failed", last_error=message)
                raise AirflowFailException(message)

            shown = 0
            for result in summary.results:
                if result.ok:
                    shown += 1
                    if shown > max_lines:
                        continue
                    log.info("%s", result.line())
                else:
                    log.error("%s", result.line())
            if shown > max_lines:
                log.info(
                    "… %d more successful jobs not listed (INVENTORY_SUMMARY_MAX_LINES)",
                    shown - max_lines,
                )
            log.info("%s", summary.headline)

            counts = {
                "total": summary.total,
                "successful": summary.successful,
                "failed": summary.failed,
            }
            if not summary.failed:
                if summary.total == 0:
                    log.warning("No active clients found: nothing was refreshed")
                uncovered = clients_still_alerting(conn, key.run_id, ALERT_KEY)
                if uncovered:
                    log.info(
                        "alert %s stays open: this run did not refresh %s", ALERT_KEY, uncovered
                    )
                else:
                    alerts.resolve_alert(
                        conn, ALERT_KEY, note=f"run {key.run_id}: {summary.headline}"
                    )
                job.finish(
                    records_in=summary.total,
                    records_out=summary.successful,
                    stats=counts,
                )
                return counts

            clients = summary.failed_clients
            title = (
                f"Inventory refresh: {summary.failed} of {summary.total} refreshes failed "
                f"({len(clients)} clients: {', '.join(clients[:10])}"
                f"{', …' if len(clients) > 10 else ''})"
            )
            alerts.raise_alert(
                conn,
                ALERT_KEY,
                "critical" if summary.successful == 0 else "warning",
                "inventory_refresh",
                title,
                failure_body(summary),
                dag_id=key.dag_id,
                run_id=key.run_id,
                task_id=key.task_id,
                url=url,
                details={**counts, "failed_clients": clients[:200]},
            )
            job.finish(
                "partial" if summary.successful else "failed",
                records_in=summary.total,
                records_out=summary.successful,
                error_count=summary.failed,
                last_error=title,
                stats=counts,
            )
        raise AirflowFailException(
            f"{summary.headline}; failed clients: {', '.join(clients[:50])}"
            f"{' …' if len(clients) > 50 else ''}"
        )
