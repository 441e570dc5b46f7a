"""Operators of ``analytics_hourly``: thin ``execute()`` over ``include.analytics_ops.ingest``.

Importing this module is cheap (DAG parse time): psycopg, httpx and the ingest package load inside
``execute()``.

Window of a run: ``params.window_start``/``params.window_end`` when given (both, ISO timestamps),
else the run's data interval (``CronDataIntervalTimetable``: scheduled, backfill and manual runs
with a logical date all have one), else — a run without a logical date — the last whole UTC hour
before ``dag_run.run_after``.

Settle delay: a window is read only ``POSTHOG_SETTLE_MINUTES`` (15) after its end, because PostHog
is still receiving its events (arrival lag). A scheduled run starts right at the window end, so the
ingest task *defers* until then (``DateTimeTrigger`` in the triggerer): no worker slot and no
``posthog_api`` pool slot are held while waiting, and the wait shows as "deferred" in the UI. A
PostHog throttle whose hint ("Expected available in 1200 seconds") is longer than
``POSTHOG_MAX_INLINE_WAIT_SECONDS`` or the task's time budget is waited out the same way: the
attempt stays ``running`` in ``ops.job_runs`` and resumes from the checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException


def _params(context: Mapping[str, Any]) -> Mapping[str, Any]:
    return context.get("params") or {}


def resolve_window(
    params: Mapping[str, Any],
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    run_after: datetime | None,
):
    """The run's window (see module docstring); raises ``ValueError`` with a clear message."""
    from include.analytics_ops.ingest.config import parse_instant
    from include.analytics_ops.ingest.loader import Window

    ws, we = params.get("window_start"), params.get("window_end")
    if ws or we:
        if not (ws and we):
            raise ValueError("params window_start and window_end must be given together")
        window = Window(parse_instant(ws, "window_start"), parse_instant(we, "window_end"))
        if window.end - window.start > timedelta(hours=24):
            raise ValueError("a manual window spans at most 24 hours")
        return window
    if (
        data_interval_start is not None
        and data_interval_end is not None
        and data_interval_end > data_interval_start
    ):
        return Window(data_interval_start, data_interval_end)
    if run_after is None:
        raise ValueError("the run has no data interval, no run_after and no window params")
    end = run_after.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return Window(end - timedelta(hours=1), end)


def _window_from_context(context: Mapping[str, Any]):
    dag_run = context.get("dag_run")
    try:
        return resolve_window(
            _params(context),
            context.get("data_interval_start"),
            context.get("data_interval_end"),
            getattr(dag_run, "run_after", None),
        )
    except ValueError as exc:
        raise AirflowFailException(f"bad window: {exc}") from exc


def _config(context: Mapping[str, Any]):
    from include.analytics_ops.ingest.config import IngestConfig

    try:
        cfg = IngestConfig.from_settings()
        page_size = _params(context).get("page_size")
        return cfg.with_page_size(int(page_size)) if page_size else cfg
    except (ValueError, TypeError) as exc:
        raise AirflowFailException(f"bad PostHog ingest setting: {exc}") from exc


def _client_and_deadline(op: Any, cfg: Any):
    """The PostHog client of ``op.conn_id`` with the ingest settings, and the attempt's deadline
    (``time.monotonic()``: the task's execution timeout less 30 s)."""
    import time

    from include.analytics_ops import db
    from include.analytics_ops.ingest.posthog import PostHogClient

    budget = op.execution_timeout.total_seconds() - 30 if op.execution_timeout else None
    deadline = time.monotonic() + budget if budget and budget > 0 else None
    try:
        client = PostHogClient.from_airflow(
            op.conn_id,
            timeout=cfg.request_timeout,
            max_attempts=cfg.max_attempts,
            backoff_base=cfg.backoff_base,
            backoff_cap=cfg.backoff_cap,
            max_inline_wait=cfg.max_inline_wait,
        )
    except db.ConfigError as exc:
        raise AirflowFailException(str(exc)) from exc
    return client, deadline


def defer_until(op: BaseOperator, when: datetime, why: str, method_name: str) -> None:
    """Wait in the triggerer (no worker slot, no ``posthog_api`` pool slot), then resume in
    ``method_name`` — the settle delay and long PostHog throttles alike."""
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger

    op.log.info("%s: deferring until %s", why, when.isoformat())
    op.defer(
        trigger=DateTimeTrigger(moment=when),
        method_name=method_name,
        timeout=(when - datetime.now(UTC)) + timedelta(hours=1),
    )


class ValidateIngestParamsOperator(BaseOperator):
    """Refuse bad ``params`` / settings before any branch of the run starts work.

    Resolves the run's window and the ingest settings exactly as ``ingest_events`` will (no
    database, no network) and fails with ``AirflowFailException`` — no retries — on a bad value.
    """

    ui_color = "#eeeeee"

    def execute(self, context: Any) -> str:
        window = _window_from_context(context)
        _config(context)
        self.log.info("params ok: window [%s, %s)", window.start, window.end)
        return f"{window.start.isoformat()}/{window.end.isoformat()}"


class IngestEventsOperator(BaseOperator):
    """Ingest the run's window of PostHog events exactly once (``ingest.loader.ingest_window``).

    :param conn_id: Airflow connection of the PostHog API (templated; default ``posthog_api``).
    :param reprocess: re-read a window whose checkpoint is already complete (templated; the
        merge keeps it exactly-once). ``params.reprocess`` also turns it on.

    ``template_fields``: ``conn_id``, ``reprocess``.
    """

    template_fields: Sequence[str] = ("conn_id", "reprocess")
    ui_color = "#fbe6c2"

    def __init__(
        self, *, conn_id: str = "posthog_api", reprocess: bool | str = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.reprocess = reprocess

    def execute(self, context: Any) -> None:
        from include.analytics_ops.ingest.loader import ready_at

        window = _window_from_context(context)
        cfg = _config(context)
        when = ready_at(window, cfg)
        if datetime.now(UTC) < when:
            self._defer_until(
                when, f"window {window.label} settles at {when.isoformat()} (end + {cfg.settle})"
            )
        self._ingest(context, window, cfg)

    def _defer_until(self, when: datetime, why: str) -> None:
        defer_until(self, when, why, "execute_settled")

    def execute_settled(self, context: Any, event: Any = None) -> None:
        self._ingest(context, _window_from_context(context), _config(context))

    def _ingest(self, context: Any, window: Any, cfg: Any) -> None:
        from include.analytics_ops import db, store
        from include.analytics_ops.ingest.loader import WindowError, WindowNotSettled, ingest_window
        from include.analytics_ops.ingest.posthog import PostHogFatalError, ThrottledFor

        reprocess = str(self.reprocess).lower() in ("1", "true", "yes") or bool(
            _params(context).get("reprocess")
        )
        key = store.RunKey.from_context(context)
        client, deadline = _client_and_deadline(self, cfg)
        try:
            with db.connect(autocommit=True) as conn, client:
                result = ingest_window(
                    conn, client, window, cfg, key=key, reprocess=reprocess, deadline=deadline
                )
        except (PostHogFatalError, WindowError, db.ConfigError) as exc:
            raise AirflowFailException(str(exc)) from exc
        except WindowNotSettled as exc:  # a manual window too close to now: retry later
            raise RuntimeError(str(exc)) from exc
        except ThrottledFor as exc:  # "Expected available in N seconds": wait in the triggerer
            self._defer_until(datetime.now(UTC) + timedelta(seconds=exc.seconds), str(exc))
        self.log.info(
            "%s: %d fetched = %d loaded (%d new) + %d dead-lettered in %d page(s), %.1fs; "
            "PostHog calls %s, errors %s, rate-limit hits %s",
            window.label,
            result.fetched,
            result.loaded,
            result.inserted,
            result.dead_lettered,
            result.pages,
            result.seconds,
            result.api.get("api_calls"),
            result.api.get("api_errors"),
            result.api.get("rate_limit_hits"),
        )
        if result.dead_lettered:
            self.log.warning(
                "%d row(s) went to ops.dead_letters; list them with "
                "`python -m include.analytics_ops.dead_letters list`",
                result.dead_lettered,
            )


class UpdateRollupsOperator(BaseOperator):
    """Recompute the rollups of every PT date the run's window touched, mark the window rolled
    up and advance the ``posthog`` watermark (``ingest.rollups.rollup_window``). No templated
    fields."""

    template_fields: Sequence[str] = ()
    ui_color = "#d7ecd9"

    def execute(self, context: Any) -> None:
        from include.analytics_ops import db, store
        from include.analytics_ops.ingest.rollups import rollup_window

        window = _window_from_context(context)
        cfg = _config(context)
        with db.connect(autocommit=True) as conn:
            result = rollup_window(
                conn, window.start, window.end, cfg, key=store.RunKey.from_context(context)
            )
        self.log.info(
            "%s: recomputed PT dates %s (daily_metrics for %s); watermark now %s; %s",
            window.label,
            [d.isoformat() for d in result.dates],
            [d.isoformat() for d in result.era_dates],
            result.watermark.isoformat() if result.watermark else None,
            {k: v for k, v in result.stats().items() if k.endswith(("_processed", "_inserted"))},
        )


class ReconcileLateArrivalsOperator(BaseOperator):
    """Recount recent windows at each ``POSTHOG_RECONCILE_OFFSETS_HOURS`` offset and fetch what
    arrived after their read; once a UTC day is over, sweep it for events older than the
    event-time bound (``ingest.reconcile.reconcile``). A long PostHog throttle is waited out
    deferred, as in ``ingest_events``. No templated fields."""

    template_fields: Sequence[str] = ()
    ui_color = "#e3d7ec"

    def __init__(self, *, conn_id: str = "posthog_api", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    def execute(self, context: Any, event: Any = None) -> None:
        from include.analytics_ops import db, store
        from include.analytics_ops.ingest.posthog import ThrottledFor
        from include.analytics_ops.ingest.reconcile import reconcile

        cfg = _config(context)
        client, deadline = _client_and_deadline(self, cfg)
        try:
            with db.connect(autocommit=True) as conn, client:
                result = reconcile(
                    conn, client, cfg, key=store.RunKey.from_context(context), deadline=deadline
                )
        except ThrottledFor as exc:
            defer_until(
                self, datetime.now(UTC) + timedelta(seconds=exc.seconds), str(exc), "execute"
            )
        self.log.info(
            "reconciliation: %s", {k: v for k, v in result.stats().items() if k != "checks"}
        )
