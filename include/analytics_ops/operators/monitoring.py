"""Operators of the ``cron_ledger`` DAG: collect the legacy cron ledger, evaluate job health.

Thin wrappers over :mod:`include.analytics_ops.ledger` and
:mod:`include.analytics_ops.monitoring`; heavy imports (psycopg, httpx) happen inside
``execute()``, so the DAG file imports this module at parse time cheaply. Each operator records
its attempt in ``ops.job_runs``.

Errors: bad params/config raise ``AirflowFailException`` (no retry); database trouble raises
normally so Airflow retries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from include.analytics_ops.operators.job_run import JobRun

log = logging.getLogger(__name__)


def _paths_param(context: Mapping[str, Any], configured: str | None) -> tuple[str, list[str]]:
    """(paths, roots): the run's ``ledger_paths`` param, else the operator's ``paths``, else
    ``LEDGER_PATHS``; and the directories they may be read from (``LEDGER_ROOTS``, default:
    the directories of the configured paths). A param path outside them, or not a regular file,
    fails the task before anything is read."""
    from include.analytics_ops.config import setting
    from include.analytics_ops.ledger.collector import (
        LedgerPathError,
        check_requested_paths,
        ledger_roots,
    )

    trusted = configured or setting("LEDGER_PATHS", "")
    roots = ledger_roots(trusted)
    params = context.get("params") or {}
    value = params.get("ledger_paths")
    if value not in (None, ""):
        if not isinstance(value, str) or "\x00" in value:
            raise AirflowFailException(
                f"params.ledger_paths must be a comma-separated string, got {value!r}"
            )
        if not roots:
            raise AirflowFailException(
                "params.ledger_paths refused: no LEDGER_ROOTS (or LEDGER_PATHS) is configured,"
                " so no directory may be read"
            )
        try:
            check_requested_paths(value, roots)
        except LedgerPathError as exc:
            raise AirflowFailException(f"params.ledger_paths refused: {exc}") from None
        return value, roots
    return trusted, roots


class CollectLedgerOperator(BaseOperator):
    """Collect new result lines from the legacy cron JSONL files into ``ops.ledger_entries``
    (incremental by byte offset, rotation-safe, duplicates dropped, bad lines dead-lettered) and
    alert on non-zero exits.

    :param paths: comma-separated files or globs (templated). Default: the ``LEDGER_PATHS``
        setting (Variable > env), overridden per run by the ``ledger_paths`` param.
    """

    template_fields = ("paths",)
    ui_color = "#fdf1e8"

    def __init__(self, *, paths: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.paths = paths

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        from include.analytics_ops.alerts import log_text
        from include.analytics_ops.ledger import collect
        from include.analytics_ops.ledger.collector import Limits

        paths, roots = _paths_param(context, self.paths)
        try:
            limits = Limits.from_settings()
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None
        with JobRun(context) as job:
            if not paths.strip():
                log.warning("LEDGER_PATHS is empty: nothing to collect")
                job.finish(status_message="no LEDGER_PATHS configured")
                return {"files": 0}
            result = collect(job.conn, paths, roots=roots, limits=limits)
            summary = result.summary()
            for f in result.files:
                log.info(
                    "%s: %d lines, %d new, %d duplicates, %d malformed%s%s%s%s%s%s",
                    log_text(f.path), f.lines, f.inserted, f.duplicates, f.malformed,
                    " (rotated)" if f.rotated else "", " (truncated)" if f.truncated else "",
                    " (missing)" if f.missing else "",
                    " (capped: the rest next run)" if f.capped else "",
                    f" REFUSED: {f.refused}" if f.refused else "",
                    f" FAILED: {f.error}" if f.error else "",
                )  # fmt: skip
            problems = result.malformed or result.refused or result.errors
            message = f"{result.inserted} new entries from {len(result.files)} files"
            if result.malformed:
                message += f", {result.malformed} malformed lines dead-lettered"
            if result.refused:
                message += f", {len(result.refused)} paths refused"
            if result.errors:
                message += f", {len(result.errors)} files failed"
            job.finish(
                "partial" if problems else "completed",
                records_in=result.lines,
                records_out=result.inserted,
                error_count=result.malformed + len(result.refused) + len(result.errors),
                last_error="; ".join(f"{p}: {e}" for p, e in result.errors.items())[:2000] or None,
                stats=summary,
                status_message=message,
            )
        if result.errors:  # the other files were collected; this run still says it failed
            raise RuntimeError(f"ledger files failed: {'; '.join(result.errors)}")
        return {k: summary[k] for k in ("files", "lines", "inserted", "malformed")}


class EvaluateJobHealthOperator(BaseOperator):
    """Evaluate every monitored job (DAGs, ledger jobs, nightly artifacts), store the states in
    ``ops.job_health`` (+ history), alert on flips, resolve recovered failures/deadlines, and
    send due reminders.

    :param run_source: ``api`` | ``cli`` | ``job_runs`` (templated); default: the
        ``HEALTH_RUN_SOURCE`` setting (``api``).
    """

    template_fields = ("run_source",)
    ui_color = "#e8fdf1"

    def __init__(self, *, run_source: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_source = run_source

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        from include.analytics_ops.monitoring.evaluate import evaluate_all
        from include.analytics_ops.monitoring.sources import primary_source

        try:
            source = primary_source(self.run_source) if self.run_source else primary_source()
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None
        with JobRun(context) as job:
            result = evaluate_all(job.conn, source=source)
            summary = result.summary()
            for st in result.states:
                log.info("%-34s %-8s %s", st.job_key, st.state, st.reason)
            job.finish(
                records_in=len(result.states),
                records_out=len(result.flips),
                stats=summary,
                status_message=f"{len(result.states)} jobs, {len(summary['problems'])} problems,"
                f" {len(result.flips)} flips, source {result.source}",
            )
        return {"problems": summary["problems"], "flips": summary["flips"]}
