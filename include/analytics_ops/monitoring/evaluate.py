"""One health evaluation pass (``cron_ledger.evaluate_job_health``, or the CLI from system cron
as a watchdog that does not depend on Airflow's scheduler):

1. every DAG from the registry, with its runs from the primary source (Airflow's REST API by
   default) — falling back to ``ops.job_runs`` when that source is unreachable, marked in the
   state's ``details.source``;
2. every ledger job found in ``ops.ledger_entries``;
3. the nightly artifacts: yesterday's (PT) sampling proof and dashboard snapshot must exist by
   03:30 PT — checked from files and tables, so it fires even if the scheduler died;
4. states stored, flips alerted (``health:<job_key>``: late = warning, down/stuck = critical;
   back to up/paused resolves it with a recovery message);
5. failure alerts of DAGs with a later successful run are resolved; deadline alerts of runs that
   have finished are resolved; due reminders and failed deliveries are re-sent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from include.analytics_ops import alerts, config
from include.analytics_ops.monitoring import jobs as registry
from include.analytics_ops.monitoring import store
from include.analytics_ops.monitoring.health import (
    FAILED,
    SUCCESS,
    HealthState,
    RunRecord,
    evaluate,
)
from include.analytics_ops.monitoring.sources import (
    JobRunsSource,
    RunSource,
    SourceUnavailable,
    ledger_runs,
)

log = logging.getLogger(__name__)
PT = ZoneInfo(registry.PT)
SEVERITY = {"late": "warning", "down": "critical", "stuck": "critical"}


def health_alert_key(job_key: str) -> str:
    return f"health:{job_key}"


@dataclass
class EvaluationResult:
    now: datetime
    states: list[HealthState] = field(default_factory=list)
    flips: list[tuple[str | None, HealthState]] = field(default_factory=list)
    source: str = ""
    fallback_reason: str | None = None
    alerts: list[Any] = field(default_factory=list)
    reminders: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for s in self.states:
            counts[s.state] = counts.get(s.state, 0) + 1
        return {
            "evaluated_at": self.now.isoformat(),
            "jobs": len(self.states),
            "states": counts,
            "problems": {s.job_key: s.state for s in self.states if s.is_problem},
            "flips": [f"{s.job_key}: {p or 'new'} -> {s.state}" for p, s in self.flips],
            "source": self.source,
            "fallback_reason": self.fallback_reason,
            "reminders": self.reminders,
        }


# --------------------------------------------------------------------------- artifacts
def artifact_due(now: datetime) -> tuple[datetime, date, datetime]:
    """(latest 03:30 PT deadline passed, the business day it covers, the next deadline)."""
    local = now.astimezone(PT)
    hour, minute = registry.ARTIFACT_DUE_LOCAL
    today_due = datetime.combine(local.date(), time(hour, minute), tzinfo=PT)
    due = (
        today_due
        if local >= today_due
        else datetime.combine(local.date() - timedelta(days=1), time(hour, minute), tzinfo=PT)
    )
    nxt = datetime.combine(due.date() + timedelta(days=1), time(hour, minute), tzinfo=PT)
    return due.astimezone(UTC), due.date() - timedelta(days=1), nxt.astimezone(UTC)


def _artifact_present(
    conn: psycopg.Connection, name: str, day: date, artifacts_dir: str
) -> str | None:
    """Where the artifact for ``day`` was found (file or table), or None."""
    if name == "sampling_proof":
        path = Path(artifacts_dir) / "sampling-proofs" / f"sampling-proof-{day:%Y%m%d}.json"
        sql = "SELECT 1 FROM analytics.sampling_proofs WHERE target_date = %s"
    else:
        path = Path(artifacts_dir) / "snapshots" / f"{day:%Y-%m-%d}.json"
        sql = "SELECT 1 FROM analytics.dashboard_snapshots WHERE snapshot_date = %s"
    if path.is_file():
        return str(path)
    try:
        if conn.execute(sql, (day,)).fetchone():
            return sql.split(" FROM ")[1].split(" ")[0]
    except psycopg.errors.UndefinedTable:
        return None
    return None


def evaluate_artifacts(
    conn: psycopg.Connection, now: datetime, artifacts_dir: str
) -> list[HealthState]:
    due, day, next_due = artifact_due(now)
    out = []
    for job in registry.ARTIFACT_JOBS:
        found = _artifact_present(conn, job.name, day, artifacts_dir)
        label = job.name.replace("_", " ")
        details = {"target_date": day.isoformat(), "due": due.isoformat(), "found": found}
        if found:
            out.append(
                HealthState(job.key, "artifact", "up", f"{label} for {day} present ({found})",
                            None, None, next_due, details)
            )  # fmt: skip
        else:
            out.append(
                HealthState(
                    job.key, "artifact", "down",
                    f"no {label} for {day} (PT) by 03:30 PT — the nightly run did not produce it",
                    None, None, next_due, details,
                )
            )  # fmt: skip
    return out


# --------------------------------------------------------------------------- the pass
def _dag_states(
    conn: psycopg.Connection,
    now: datetime,
    primary: RunSource | None,
    previous: dict[str, dict[str, Any]],
    result: EvaluationResult,
    dag_jobs: Sequence[registry.MonitoredJob],
) -> dict[str, list[RunRecord]]:
    fallback = JobRunsSource(conn)
    source: RunSource = primary or fallback
    if primary is None:
        result.fallback_reason = "HEALTH_RUN_SOURCE=job_runs"
    runs_by_dag: dict[str, list[RunRecord]] = {}
    for job in dag_jobs:
        paused = None
        try:
            runs = source.dag_runs(job.name)
            paused = source.is_paused(job.name)
        except SourceUnavailable as exc:
            log.warning("run source %s unavailable (%s): using ops.job_runs", source.name, exc)
            result.fallback_reason = str(exc)
            source = fallback
            runs = source.dag_runs(job.name)
        runs_by_dag[job.name] = runs
        prev = previous.get(job.key)
        first_seen = None
        if prev and (prev.get("details") or {}).get("first_seen"):
            first_seen = datetime.fromisoformat(prev["details"]["first_seen"])
        marker = source.name
        if source is fallback and primary is not None:
            marker = f"ops.job_runs (fallback: {result.fallback_reason})"
        state = evaluate(
            job, runs, now, paused=bool(paused), first_seen=first_seen or now,
            extra={"source": marker},
        )  # fmt: skip
        result.states.append(state)
    result.source = source.name
    return runs_by_dag


def _pool_states(
    primary: RunSource | None, now: datetime, result: EvaluationResult
) -> list[HealthState]:
    """Pools the DAGs need, from the primary source (ops.job_runs cannot see pools)."""
    from include.analytics_ops.monitoring.pools import pool_states
    from include.analytics_ops.pools import required_pools

    if primary is None or result.fallback_reason or not hasattr(primary, "pools"):
        return []
    try:
        existing, waiting = primary.pools(), primary.waiting_tasks()
    except SourceUnavailable as exc:
        log.warning("pools not checked: %s", exc)
        return []
    return pool_states(existing, waiting, required_pools(), now, primary.name)


def _ledger_states(conn: psycopg.Connection, now: datetime) -> list[HealthState]:
    names = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT job FROM ops.ledger_entries WHERE job IS NOT NULL ORDER BY 1"
        )
    ]
    out = []
    for name in names:
        runs = ledger_runs(conn, name, now)
        anchors = [r.anchor for r in runs if r.anchor is not None][-50:] if runs else []
        job, origin = registry.ledger_job(name, anchors)
        if not job.enabled:
            continue
        out.append(
            evaluate(job, runs, now, extra={"source": "ops.ledger_entries",
                                            "interval_origin": origin})
        )  # fmt: skip
    return out


def _alert_flips(
    conn: psycopg.Connection,
    states: Sequence[HealthState],
    flips: Sequence[tuple[str | None, HealthState]],
    channels: Sequence[Any] | None,
) -> list[Any]:
    from include.analytics_ops.callbacks import airflow_ui_url

    flipped = {s.job_key for _, s in flips}
    out = []
    for st in states:
        key = health_alert_key(st.job_key)
        if st.is_problem:
            name = st.job_key.split(":", 1)[1]
            out.append(
                alerts.raise_alert(
                    conn,
                    key,
                    SEVERITY[st.state],
                    "job_health",
                    f"{st.job_key} is {st.state.upper()}",
                    st.reason,
                    dag_id=name if st.kind == "dag" else None,
                    url=airflow_ui_url(name) if st.kind == "dag" else None,
                    details={"state": st.state, **dict(st.details)},
                    channels=channels,
                )
            )
        elif st.job_key in flipped or st.state in ("up", "paused"):
            resolved = alerts.resolve_alert(
                conn, key, f"{st.job_key} is {st.state.upper()} again: {st.reason}",
                channels=channels,
            )  # fmt: skip
            if resolved is not None:
                out.append(resolved)
    return out


def _resolve_recovered(
    conn: psycopg.Connection,
    runs_by_dag: dict[str, list[RunRecord]],
    channels: Sequence[Any] | None,
) -> list[Any]:
    """Failure alerts of DAGs that succeeded later; deadline alerts of runs now finished."""
    from include.analytics_ops.callbacks import dag_failure_key
    from include.analytics_ops.deadlines import deadline_key

    out = []
    open_deadlines = {
        r[0]
        for r in conn.execute(
            "SELECT dedup_key FROM ops.alerts WHERE state = 'open'"
            " AND starts_with(dedup_key, 'deadline_missed:')"
        )
    }
    for dag_id, runs in runs_by_dag.items():
        ok = [r for r in runs if r.state == SUCCESS and (r.end or r.start)]
        if ok:
            latest = max(ok, key=lambda r: r.end or r.start)
            when = latest.end or latest.start
            note = f"{dag_id} run {latest.run_id} succeeded at {when:%Y-%m-%d %H:%M} UTC"
            out += alerts.resolve_alerts_like(
                conn, f"task_failed:{dag_id}:", note, seen_before=when, channels=channels
            )
            out += alerts.resolve_alerts_like(
                conn, dag_failure_key(dag_id), note, seen_before=when, channels=channels
            )
        for r in runs:
            if r.state in (SUCCESS, FAILED) and deadline_key(dag_id, r.run_id) in open_deadlines:
                res = alerts.resolve_alert(
                    conn, deadline_key(dag_id, r.run_id),
                    f"run {r.run_id} finished {r.state} at {r.end or r.start}",
                    channels=channels,
                )  # fmt: skip
                if res is not None:
                    out.append(res)
    return out


def _aware_instant(raw: str) -> datetime | None:
    value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00")) if raw.strip() else None
    if value is not None and value.tzinfo is None:
        raise ValueError("needs a UTC offset")
    return value


def evaluation_time() -> datetime | None:
    """The instant to evaluate at when none is given: the ``HEALTH_EVALUATE_AT`` setting (ISO
    8601 with an offset; for demos and replays of a fixed day, e.g. ``make demo``), else None
    (= now). A value that is not a timezone-aware instant is refused, not silently ignored."""
    value = config.setting("HEALTH_EVALUATE_AT", None, _aware_instant)
    if value is not None:
        log.warning("job health evaluated as of HEALTH_EVALUATE_AT=%s, not the current time", value)
    return value


def evaluate_all(
    conn: psycopg.Connection,
    now: datetime | None = None,
    *,
    source: RunSource | str | None = "settings",
    artifacts_dir: str | None = None,
    dag_jobs: Sequence[registry.MonitoredJob] | None = None,
    check_artifacts: bool = True,
    alert: bool = True,
    channels: Sequence[Any] | None = None,
) -> EvaluationResult:
    """Evaluate, store and alert. ``source``: a RunSource, None (ops.job_runs only) or
    "settings" (``HEALTH_RUN_SOURCE``). ``conn`` should be autocommit (each step commits).
    ``now`` defaults to :func:`evaluation_time` (``HEALTH_EVALUATE_AT``), else the clock."""
    from include.analytics_ops.monitoring.sources import primary_source

    now = now or evaluation_time() or datetime.now(UTC)
    result = EvaluationResult(now=now)
    primary = primary_source() if source == "settings" else source
    previous = store.previous_states(conn)
    jobs_to_check = list(dag_jobs) if dag_jobs is not None else registry.dag_jobs()
    runs_by_dag = _dag_states(conn, now, primary, previous, result, jobs_to_check)
    result.states += _pool_states(primary, now, result)
    result.states += _ledger_states(conn, now)
    if check_artifacts:
        result.states += evaluate_artifacts(conn, now, artifacts_dir or config.artifacts_dir())
    with conn.transaction():
        result.flips = store.save_states(conn, result.states, now, previous, source=result.source)
    if alert:
        with conn.transaction():
            result.alerts = _alert_flips(conn, result.states, result.flips, channels)
        with conn.transaction():
            result.alerts += _resolve_recovered(conn, runs_by_dag, channels)
        with conn.transaction():
            result.reminders = alerts.send_due_reminders(conn, channels)
    return result
