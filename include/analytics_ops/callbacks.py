"""Airflow callbacks that feed the one alert path. A callback never raises: a broken alert must
not hide the failure it reports, so problems are logged instead.

- ``on_task_failure`` (task level, in ``default_args()``, the task defaults of every DAG): one
  alert per failing task, de-duplicated by ``task_failed:<dag_id>:<task_id>``. Each further
  failed run of the same task while the alert is open counts as a consecutive failure; from
  ``CONSECUTIVE_FAILURES_CRITICAL`` (3) on the alert escalates from warning to critical
  ("3 consecutive failures").
- ``on_dag_failure`` (DAG level, a plain function — not a ``BaseNotifier``, which crashes
  ``dag.test()`` at DAG level, #64649): the same for the run as a whole (``dag_failed:<dag_id>``),
  sent only when no task-failure alert of that run was already sent (deadlocks, killed tasks).

The job-health evaluation in ``cron_ledger`` resolves these alerts (recovery message) once a
later run of the DAG succeeded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from include.analytics_ops.config import OWNER

log = logging.getLogger(__name__)
CONSECUTIVE_FAILURES_CRITICAL = 3


def airflow_ui_url(dag_id: str, run_id: str | None = None, task_id: str | None = None) -> str:
    """Link to the DAG / run / task page in the Airflow 3 UI."""
    base = os.environ.get("AIRFLOW__API__BASE_URL", "http://localhost:8080").rstrip("/")
    url = f"{base}/dags/{quote(dag_id)}"
    if run_id:
        url += f"/runs/{quote(run_id, safe='')}"
        if task_id:
            url += f"/tasks/{quote(task_id)}"
    return url


def task_failure_key(dag_id: str, task_id: str) -> str:
    return f"task_failed:{dag_id}:{task_id}"


def dag_failure_key(dag_id: str) -> str:
    return f"dag_failed:{dag_id}"


def consecutive_failures(conn, dedup_key: str) -> int:
    """How many failures in a row this one makes: the open alert's count + 1 (the alert is
    resolved when a later run succeeds, which resets the streak)."""
    row = conn.execute(
        "SELECT count FROM ops.alerts WHERE dedup_key = %s AND state = 'open'", (dedup_key,)
    ).fetchone()
    return (row[0] if row else 0) + 1


def record_failure(
    conn,
    *,
    dedup_key: str,
    source: str,
    what: str,
    body: str,
    dag_id: str,
    run_id: str | None,
    task_id: str | None = None,
    details: Mapping[str, Any] | None = None,
    notify: bool = True,
):
    """Raise a failure alert with consecutive-failure escalation (warning → critical at 3)."""
    from include.analytics_ops import alerts

    streak = consecutive_failures(conn, dedup_key)
    critical = streak >= CONSECUTIVE_FAILURES_CRITICAL
    title = f"{what} failed" + (f" ({streak} consecutive failures)" if streak > 1 else "")
    return alerts.raise_alert(
        conn,
        dedup_key=dedup_key,
        severity="critical" if critical else "warning",
        source=source,
        title=title,
        body=body,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        url=airflow_ui_url(dag_id, run_id, task_id),
        details={**dict(details or {}), "consecutive_failures": streak},
        notify=notify,
    )


def _describe_exception(exc: Any) -> str:
    if not exc:
        return "no exception recorded"
    return f"{type(exc).__name__}: {exc}"[:2000]


def on_task_failure(context: Mapping[str, Any]) -> None:
    """Task-level ``on_failure_callback`` (runs once retries are exhausted)."""
    try:
        from include.analytics_ops import db

        ti = context["ti"]
        exc = context.get("exception")
        if getattr(exc, "already_alerted", False):
            # The operator raised its own, more specific alert (e.g. a critical sampling proof
            # alerts per check): a generic "task failed" on top would be noise.
            log.info("failure of %s.%s already alerted by the task itself", ti.dag_id, ti.task_id)
            return
        dag_id, task_id, run_id = ti.dag_id, ti.task_id, ti.run_id
        map_index = getattr(ti, "map_index", -1)
        label = f"{dag_id}.{task_id}" + (f"[{map_index}]" if map_index not in (None, -1) else "")
        with db.connect() as conn:
            record_failure(
                conn,
                dedup_key=task_failure_key(dag_id, task_id),
                source="task_failure",
                what=label,
                body=f"run {run_id}, try {getattr(ti, 'try_number', '?')}: "
                f"{_describe_exception(exc)}",
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
                details={"map_index": map_index, "try_number": getattr(ti, "try_number", None)},
            )
    except Exception:
        log.exception("could not record the task-failure alert")


def on_dag_failure(context: Mapping[str, Any]) -> None:
    """DAG-level ``on_failure_callback``: the run failed (reason: task failure, deadlock, ...)."""
    try:
        from include.analytics_ops import db

        dag = context.get("dag")
        dag_run = context.get("dag_run")
        dag_id = getattr(dag, "dag_id", None) or getattr(dag_run, "dag_id", None)
        run_id = context.get("run_id") or getattr(dag_run, "run_id", None)
        if not dag_id:
            log.error("DAG failure callback without a dag id: %s", sorted(context))
            return
        reason = context.get("reason") or "failed"
        ti = context.get("ti")
        culprit = getattr(ti, "task_id", None)
        body = f"run {run_id} ended failed ({reason})"
        if culprit:
            body += f"; failing task: {culprit}"
        with db.connect() as conn:
            # A task's failure alert for this run already told the channels: record the run's
            # failure (for counting and the health page) without a second message.
            told = conn.execute(
                "SELECT 1 FROM ops.alerts WHERE starts_with(dedup_key, %s) AND run_id = %s"
                " AND state = 'open' AND last_notified_at IS NOT NULL LIMIT 1",
                (f"task_failed:{dag_id}:", run_id),
            ).fetchone()
            record_failure(
                conn,
                notify=told is None,
                dedup_key=dag_failure_key(dag_id),
                source="dag_failure",
                what=f"DAG {dag_id}",
                body=body,
                dag_id=dag_id,
                run_id=run_id,
                details={"reason": reason, "failing_task": culprit},
            )
    except Exception:
        log.exception("could not record the DAG-failure alert")


def default_args(**overrides: Any) -> dict[str, Any]:
    """Task defaults every DAG starts from: retries with backoff, timeout, failure alert."""
    args: dict[str, Any] = {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": timedelta(minutes=30),
        "on_failure_callback": on_task_failure,
    }
    args.update(overrides)
    return args
