"""Deadline Alerts (Airflow 3's successor of SLA misses): ``deadline(dag_id)`` for the DAG and the
callback it fires.

``on_deadline_missed`` runs in the triggerer (``AsyncCallback``), so it lives in the package, not a
DAG file. It receives ``context={"dag_run": <REST DagRun JSON>, "deadline": {...}}``. One alert per
missed run (``deadline_missed:<dag_id>:<run_id>``); the health evaluation in ``cron_ledger``
resolves it once the run has finished.

The intervals are plain ``timedelta`` values from ``config.deadline_seconds`` (defaults in
``config.DEADLINE_DEFAULT_SECONDS``): no configuration state can block run creation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from include.analytics_ops.config import deadline_seconds

log = logging.getLogger(__name__)
# States in which a passed deadline is not news: a failed run already raised its failure alert
# (Airflow 3.3.2 still fires the deadline afterwards, #60927); a successful one made it in time.
_FINISHED_STATES = frozenset({"failed", "success"})


def deadline_key(dag_id: str, run_id: str | None) -> str:
    return f"deadline_missed:{dag_id}:{run_id}"


def record_deadline_miss(dag_id: str, context: Mapping[str, Any] | None, dsn: str | None = None):
    """Record the miss through the alert path; runs that already finished are ignored."""
    from include.analytics_ops import alerts, db
    from include.analytics_ops.callbacks import airflow_ui_url

    dag_run = dict((context or {}).get("dag_run") or {})
    deadline = dict((context or {}).get("deadline") or {})
    state = str(dag_run.get("state") or "").lower()
    run_id = dag_run.get("dag_run_id") or dag_run.get("run_id")
    if state in _FINISHED_STATES:
        log.info("deadline of %s %s passed after the run ended %s: no alert", dag_id, run_id, state)
        return None
    queued = dag_run.get("queued_at") or dag_run.get("start_date")
    with db.connect(dsn) as conn:
        return alerts.raise_alert(
            conn,
            dedup_key=deadline_key(dag_id, run_id),
            severity="critical",
            source="deadline",
            title=f"{dag_id} missed its deadline",
            body=f"run {run_id} (queued {queued}) was still {state or 'unfinished'}"
            f" at its deadline {deadline.get('deadline_time')}",
            dag_id=dag_id,
            run_id=run_id,
            url=airflow_ui_url(dag_id, run_id),
            details={"deadline": deadline, "run_state": state},
        )


async def on_deadline_missed(
    dag_id: str, context: Mapping[str, Any] | None = None, **_: Any
) -> None:
    await asyncio.to_thread(record_deadline_miss, dag_id, context)


def deadline(dag_id: str):
    """The DAG's Deadline Alert: fires ``on_deadline_missed`` in the triggerer.

    DAGRUN_QUEUED_AT works for scheduled, manual (no logical date) and backfill runs alike.
    """
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(seconds=deadline_seconds(dag_id)),
        callback=AsyncCallback(on_deadline_missed, kwargs={"dag_id": dag_id}),
        name=f"{dag_id}_deadline",
    )
