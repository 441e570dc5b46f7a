"""Late arrivals: what the one read of a window at end + settle delay cannot have seen.

**Arrival lag.** PostHog stamps ``created_at`` at capture, before the event travels through Kafka
into ClickHouse: a row can become visible minutes (in an incident, hours) after its window was
read. So every complete window is recounted at each offset of ``POSTHOG_RECONCILE_OFFSETS_HOURS``
(1 h and 24 h after its end): one cheap ``count()`` query compared with what the read held
(loaded + dead-lettered). When PostHog has more, the window is read again under its own
checkpoint stream (``posthog_reconcile_<h>h``: resumable, and the merge on ``uuid`` keeps every
event exactly once), its rollups are recomputed (the dates the late rows touch included), the
check is a row of ``ops.posthog_reconciliations`` and of the task's ``ops.job_runs`` stats, and a
window that gained more than ``POSTHOG_RECONCILE_ALERT_EVENTS`` raises an alert.

**Events older than the event-time bound.** Each window's query keeps ``timestamp >= start − 7 d``
(partition pruning), so an event whose client clock or offline queue put it further back is never
fetched by its window. Once a UTC arrival day is over, ``sweep_old_events`` reads that day's
``created_at`` range for ``timestamp`` below each hour's bound, back to
``POSTHOG_SWEEP_HORIZON_DAYS`` (90): what it finds is loaded (its old days' rollups recomputed;
days before the ingest era keep their legacy ``daily_metrics``); anything older is counted,
recorded and alerted on — never silently absent.

``ops.watermarks['posthog'].complete_until`` keeps its meaning: every window before it was read
once (after the settle delay) and rolled up — *not* that late arrivals were fetched.
Reconciliation does not move it; it moves ``ops.watermarks['posthog_reconciled']``: every window
before it was also recounted at the first offset (+1 h) and its late rows loaded. The nightly
freshness gate reads ``posthog_reconciled`` wherever reconciliation runs (else ``posthog``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from include.analytics_ops import store
from include.analytics_ops.dates import pt_date
from include.analytics_ops.ingest import STREAM
from include.analytics_ops.ingest.config import IngestConfig
from include.analytics_ops.ingest.loader import (
    COUNT_QUERY_TEMPLATE,
    EVENT_TIME,
    OLD_EVENT_TIME,
    Progress,
    Source,
    Window,
    _ch,
    ingest_window,
    query_values,
)
from include.analytics_ops.ingest.posthog import PostHogClient
from include.analytics_ops.ingest.rollups import (
    advance_contiguous_watermark,
    refresh,
    rollup_window,
    stored_stream_start,
)

log = logging.getLogger(__name__)

OLD_EVENTS_STREAM = "posthog_old_events"
BEYOND_HORIZON = "\n  AND timestamp < toDateTime64({t_start}, 6, 'UTC')"
#: Windows / days older than this are not checked any more (the task was down longer).
MAX_CATCH_UP = timedelta(days=7)
MAX_CHECKS_PER_RUN = 96


@dataclass
class Check:
    kind: str
    window: Window
    offset: timedelta | None
    posthog_count: int
    held: int
    fetched: int = 0
    loaded: int = 0
    dead_lettered: int = 0
    beyond_horizon: int = 0
    alerted: bool = False

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["window"] = self.window.label
        out["offset_hours"] = self.offset.total_seconds() / 3600 if self.offset else None
        del out["offset"]
        return out


@dataclass
class ReconcileResult:
    checks: list[Check] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        return {
            "windows_checked": sum(1 for c in self.checks if c.kind == "window"),
            "windows_refetched": sum(1 for c in self.checks if c.kind == "window" and c.fetched),
            "late_events_loaded": sum(c.loaded for c in self.checks),
            "days_swept": sum(1 for c in self.checks if c.kind == "old_events"),
            "events_beyond_horizon": sum(c.beyond_horizon for c in self.checks),
            "checks": [c.as_dict() for c in self.checks],
        }


def _count(client, window, cfg, event_time: str, extra: dict, deadline) -> int:
    body = client.query(
        COUNT_QUERY_TEMPLATE % {"event_time": event_time},
        query_values(window, cfg, extra),
        name=f"analytics_hourly count {window.start:%Y-%m-%dT%H:%M}",
        deadline=deadline,
    )
    return int(body["results"][0][0])


def _record(conn: psycopg.Connection, check: Check, job_run_id: int | None) -> None:
    conn.execute(
        """
        INSERT INTO ops.posthog_reconciliations
               (kind, window_start, window_end, check_offset, posthog_count, held_count, fetched,
                loaded, dead_lettered, beyond_horizon, job_run_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (kind, window_start, window_end, check_offset) DO NOTHING
        """,
        (
            check.kind, check.window.start, check.window.end, check.offset, check.posthog_count,
            check.held, check.fetched, check.loaded, check.dead_lettered, check.beyond_horizon,
            job_run_id,
        ),
    )  # fmt: skip


def _held(cursor: Any, refetched: int | None) -> Progress:
    """What we hold of a window: its read, or a later re-read if that saw more."""
    held = Progress.from_checkpoint(cursor)
    if refetched is not None and refetched > held.loaded + held.dead_lettered:
        return Progress(loaded=refetched - held.dead_lettered, dead_lettered=held.dead_lettered)
    return held


def due_windows(
    conn: psycopg.Connection, cfg: IngestConfig, now: datetime
) -> list[tuple[Window, timedelta, Progress]]:
    """Complete windows whose recount at an offset is due and not yet recorded (oldest first)."""
    due: list[tuple[Window, timedelta, Progress]] = []
    for offset in cfg.reconcile_offsets:
        rows = conn.execute(
            """
            SELECT c.window_start, c.window_end, c.cursor,
                   (SELECT max((r.cursor ->> 'fetched')::bigint) FROM ops.checkpoints r
                     WHERE starts_with(r.stream, 'posthog_reconcile_') AND r.status = 'complete'
                       AND r.window_start = c.window_start AND r.window_end = c.window_end)
              FROM ops.checkpoints c
             WHERE c.stream = %(stream)s AND c.status = 'complete'
               AND c.window_end + %(offset)s <= %(now)s
               AND c.window_end + %(offset)s > %(now)s - %(catch_up)s
               AND NOT EXISTS (
                   SELECT 1 FROM ops.posthog_reconciliations r
                    WHERE r.kind = 'window' AND r.window_start = c.window_start
                      AND r.window_end = c.window_end AND r.check_offset = %(offset)s)
             ORDER BY c.window_start LIMIT %(limit)s
            """,
            {
                "stream": STREAM,
                "offset": offset,
                "now": now,
                "catch_up": MAX_CATCH_UP,
                "limit": MAX_CHECKS_PER_RUN,
            },
        ).fetchall()
        due += [(Window(r[0], r[1]), offset, _held(r[2], r[3])) for r in rows]
    return sorted(due, key=lambda d: (d[0].start, d[1]))[:MAX_CHECKS_PER_RUN]


def reconcile_window(
    conn: psycopg.Connection,
    client: PostHogClient,
    window: Window,
    offset: timedelta,
    held: Progress,
    cfg: IngestConfig,
    *,
    job_run_id: int | None = None,
    key: store.RunKey | None = None,
    deadline: float | None = None,
) -> Check:
    count = _count(client, window, cfg, EVENT_TIME, {}, deadline)
    check = Check("window", window, offset, count, held.loaded + held.dead_lettered)
    if count > check.held:
        hours = f"{offset.total_seconds() / 3600:g}"
        source = Source(stream=f"posthog_reconcile_{hours}h", defines_start=False)
        result = ingest_window(
            conn, client, window, cfg, check_settled=False, deadline=deadline, source=source
        )
        rollup_window(conn, window.start, window.end, cfg)
        check.fetched, check.loaded = result.fetched, result.inserted
        check.dead_lettered = max(0, result.dead_lettered - held.dead_lettered)
        gained = count - check.held
        if gained > cfg.reconcile_alert_events:
            _alert(conn, check, key, gained)
    _record(conn, check, job_run_id)
    return check


def _alert(conn, check: Check, key: store.RunKey | None, gained: int) -> None:
    from include.analytics_ops import alerts

    what = "late events" if check.kind == "window" else "events older than the sweep horizon"
    alerts.raise_alert(
        conn,
        f"posthog_{check.kind}:{check.window.start.isoformat()}",
        "warning",
        "analytics_hourly",
        f"PostHog {what}: {gained} in {check.window.label}",
        (
            f"{gained} event(s) of {check.window.label} reached PostHog after the window was read"
            f" (recount {check.as_dict()['offset_hours']} h after its end); {check.loaded} loaded"
            if check.kind == "window"
            else f"{gained} event(s) that arrived in {check.window.label} happened more than "
            "POSTHOG_SWEEP_HORIZON_DAYS before: counted, not loaded (see "
            "ops.posthog_reconciliations)"
        ),
        dag_id=key.dag_id if key else "analytics_hourly",
        run_id=key.run_id if key else None,
        task_id=key.task_id if key else None,
        details=check.as_dict(),
    )
    check.alerted = True


def due_sweep_days(conn: psycopg.Connection, cfg: IngestConfig, now: datetime) -> list[Window]:
    """UTC arrival days that are over (+ settle delay) and not yet swept, within the catch-up."""
    last = (now - cfg.settle).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [Window(last - timedelta(days=k + 1), last - timedelta(days=k)) for k in range(3)]
    done = {
        r[0]
        for r in conn.execute(
            "SELECT window_start FROM ops.posthog_reconciliations"
            " WHERE kind = 'old_events' AND window_start >= %s",
            (days[-1].start,),
        ).fetchall()
    }
    first = stored_stream_start(conn)
    return [d for d in reversed(days) if d.start not in done and (first is None or d.end > first)]


def sweep_old_events(
    conn: psycopg.Connection,
    client: PostHogClient,
    day: Window,
    cfg: IngestConfig,
    *,
    job_run_id: int | None = None,
    key: store.RunKey | None = None,
    deadline: float | None = None,
) -> Check:
    """Load what arrived in ``day`` with ``timestamp`` below its hour's event-time bound (back to
    the horizon); count and report anything older."""
    horizon = {"t_start": _ch(day.start - cfg.sweep_horizon)}
    beyond = _count(client, day, cfg, BEYOND_HORIZON, horizon, deadline)
    values = {**horizon, "lookback_s": int(cfg.lookback.total_seconds())}
    source = Source(OLD_EVENTS_STREAM, OLD_EVENT_TIME, values, defines_start=False)
    result = ingest_window(
        conn, client, day, cfg, check_settled=False, deadline=deadline, source=source
    )
    check = Check("old_events", day, None, result.fetched + beyond, 0, result.fetched,
                  result.inserted, result.dead_lettered, beyond)  # fmt: skip
    if result.inserted:
        scope = sql.SQL(
            "created_at >= %(lo)s AND created_at < %(hi)s"
            " AND \"timestamp\" < date_trunc('hour', created_at) - %(lookback)s"
        )
        params = {"lo": day.start, "hi": day.end, "lookback": cfg.lookback}
        with conn.transaction():
            rows = conn.execute(
                sql.SQL(
                    'SELECT DISTINCT "timestamp" FROM analytics.posthog_events WHERE {}'
                ).format(scope),
                params,
            ).fetchall()
            refresh(conn, cfg, {pt_date(r[0]) for r in rows}, scope, params)
    if beyond:
        _alert(conn, check, key, beyond)
    _record(conn, check, job_run_id)
    return check


def reconcile(
    conn: psycopg.Connection,
    client: PostHogClient,
    cfg: IngestConfig,
    now: datetime | None = None,
    *,
    key: store.RunKey | None = None,
    deadline: float | None = None,
) -> ReconcileResult:
    """Every due recount and sweep (see module docstring); one ``ops.job_runs`` row with ``key``.
    ``conn`` in autocommit mode."""
    now = now or datetime.now(UTC)
    result = ReconcileResult()
    job_run_id = store.start_job_run(conn, key, status_message="reconciling") if key else None
    try:
        for window, offset, held in due_windows(conn, cfg, now):
            result.checks.append(
                reconcile_window(conn, client, window, offset, held, cfg,
                                 job_run_id=job_run_id, key=key, deadline=deadline)
            )  # fmt: skip
        for day in due_sweep_days(conn, cfg, now):
            result.checks.append(
                sweep_old_events(conn, client, day, cfg, job_run_id=job_run_id, key=key,
                                 deadline=deadline)
            )  # fmt: skip
        if cfg.reconcile_offsets:
            with conn.transaction():
                advance_contiguous_watermark(conn, cfg, recounted_at=min(cfg.reconcile_offsets))
    except Exception as exc:
        if job_run_id is not None:
            store.finish_job_run(
                conn, job_run_id, "failed", last_error=f"{type(exc).__name__}: {exc}"[:2000],
                stats=result.stats(),
            )  # fmt: skip
        raise
    if job_run_id is not None:
        stats = result.stats()
        store.finish_job_run(
            conn,
            job_run_id,
            "completed",
            records_in=sum(c.fetched for c in result.checks),
            records_out=stats["late_events_loaded"],
            stats=stats,
            status_message=(
                f"{stats['windows_checked']} window recount(s), {stats['windows_refetched']} "
                f"re-read, {stats['late_events_loaded']} late event(s) loaded; "
                f"{stats['days_swept']} day(s) swept, {stats['events_beyond_horizon']} beyond "
                "the horizon"
            ),
        )
    return result
