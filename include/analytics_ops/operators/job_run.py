"""One ``ops.job_runs`` row per task attempt: the bookkeeping every operator of the package (and
the freshness sensor, once per poke) shares.

    with JobRun(context, target_date=day) as job:
        result = do_the_work(job.conn, job.key)
        job.finish("completed", records_out=..., stats=..., status_message=...)

Entering opens an autocommit connection to ``analytics_db`` (missing or bad configuration →
``AirflowFailException``: retrying cannot fix it) and starts the attempt's row with the window
given (``window_start``, ``window_end``, ``target_date``). The operator does its work and finishes
the row with its status and counts (``job.finish``); what it raises or returns after that leaves
the row as finished. An exception escaping the block before ``finish`` records ``failed``
(``error_count`` 1, ``last_error`` "Type: message") and propagates — as ``AirflowFailException``
with that text when it is a ``db.ConfigError`` or one of ``permanent`` (bad settings or params met
during the work), so Airflow does not retry it.

Why a block and not a base class with a template ``execute()``, nor a listener: what must happen
before the row differs per operator (params, settings and clients are checked first and leave no
row), and so does what follows it (log, return the XCom value, raise after recording
``partial``). A block keeps that in each operator's own order and works in a sensor's ``poke`` as
in ``execute``. A listener (``on_task_instance_*``) sees neither the stats nor a ``partial``
outcome, and does not run when ``execute()`` is called outside a task runner.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

log = logging.getLogger(__name__)


class JobRun:
    """The attempt's connection (``conn``), identity (``key``) and ``ops.job_runs`` row (``id``).

    :param permanent: exception types raised as ``AirflowFailException`` (after being recorded),
        besides ``db.ConfigError``.
    :param resume: a row of this attempt still ``running`` keeps its ``started_at`` (the next
        poke of a sensor in reschedule mode).
    :param window: ``window_start`` / ``window_end`` / ``target_date`` of the row.
    """

    def __init__(
        self,
        context: Mapping[str, Any],
        *,
        permanent: tuple[type[Exception], ...] = (),
        resume: bool = False,
        **window: Any,
    ) -> None:
        self.context = context
        self.permanent = permanent
        self.resume = resume
        self.window = window
        self.finished = False

    def __enter__(self) -> JobRun:
        from include.analytics_ops import db, store

        try:
            self.conn = db.connect(autocommit=True)
        except db.ConfigError as exc:
            raise AirflowFailException(str(exc)) from None
        try:
            self.key = store.RunKey.from_context(self.context)
            self.id = store.start_job_run(self.conn, self.key, resume=self.resume, **self.window)
        except BaseException:
            self.conn.close()
            raise
        return self

    @property
    def origin(self) -> dict[str, Any]:
        """``dag_id``, ``run_id``, ``task_id`` and the task's ``url`` in the Airflow UI: where an
        alert raised by this attempt comes from."""
        from include.analytics_ops.callbacks import airflow_ui_url

        dag_id, run_id, task_id = self.key.dag_id, self.key.run_id, self.key.task_id
        url = airflow_ui_url(dag_id, run_id, task_id)
        return {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "url": url}

    def update(self, **fields: Any) -> None:
        """Progress of a row that stays ``running`` (``store.update_job_run`` fields)."""
        from include.analytics_ops import store

        store.update_job_run(self.conn, self.id, **fields)

    def finish(self, status: str = "completed", **fields: Any) -> None:
        """The attempt's outcome (``store.finish_job_run`` fields)."""
        from include.analytics_ops import store

        store.finish_job_run(self.conn, self.id, status, **fields)
        self.finished = True

    def __exit__(self, exc_type, exc, tb) -> bool:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        try:
            if exc is not None and not self.finished and not self.conn.closed:
                self.finish("failed", error_count=1, last_error=error)
        except Exception:
            log.exception("could not record the failed attempt in ops.job_runs")
        finally:
            self.conn.close()
        from include.analytics_ops.db import ConfigError

        permanent = (ConfigError, *self.permanent)
        if isinstance(exc, permanent) and not isinstance(exc, AirflowFailException):
            raise AirflowFailException(error) from exc
        return False
