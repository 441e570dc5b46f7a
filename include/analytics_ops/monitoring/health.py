"""Job health, healthchecks.io-style, as a pure function: ``evaluate(job, runs, now)``.

- next expected = the job's next cron tick (its time zone, computed in UTC — DST safe) after the
  tick its last successful run covered (or ``last success + interval`` for interval jobs);
- **late** once ``next expected + grace`` passed without a newer success;
- **down** once a further ``down_after`` passed, or ``down_missed_ticks`` ticks were missed, or the
  last ``failure_threshold`` (3) finished runs all failed;
- **stuck** when a started run has been running longer than ``max_runtime``;
- **paused** when Airflow says so (nothing is expected of a paused DAG);
- **unknown** for a job that never ran and is not yet overdue;
- **up** otherwise.
Precedence: paused > stuck > down > late > unknown/up.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from include.analytics_ops.monitoring.jobs import MonitoredJob
from include.analytics_ops.monitoring.schedule import next_tick, nth_tick, ticks_between

STATES = ("up", "late", "down", "stuck", "paused", "unknown")
SUCCESS, FAILED, RUNNING, QUEUED = "success", "failed", "running", "queued"


@dataclass(frozen=True)
class RunRecord:
    """One run of a monitored job, from whichever source (Airflow, ops.job_runs, the ledger)."""

    run_id: str
    state: str  # success | failed | running | queued
    scheduled_for: datetime | None = None  # the tick it covers (Airflow run_after)
    start: datetime | None = None
    end: datetime | None = None

    @property
    def anchor(self) -> datetime | None:
        return self.scheduled_for or self.start or self.end

    @property
    def duration(self) -> timedelta | None:
        if self.start and self.end:
            return self.end - self.start
        return None


@dataclass(frozen=True)
class HealthState:
    job_key: str
    kind: str
    state: str
    reason: str
    last_success: datetime | None = None
    last_run: datetime | None = None
    next_expected: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_problem(self) -> bool:
        return self.state in ("late", "down", "stuck")


def _fmt(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def _duration(td: timedelta) -> str:
    seconds = int(td.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _next_expected(job: MonitoredJob, reference: datetime) -> datetime:
    if job.schedule:
        return next_tick(job.schedule, job.tz, reference)
    assert job.interval is not None
    return reference + job.interval


def _down_at(job: MonitoredJob, reference: datetime, late_at: datetime) -> datetime:
    candidates = []
    if job.down_after is not None:
        candidates.append(late_at + job.down_after)
    if job.down_missed_ticks:
        if job.schedule:
            candidates.append(
                nth_tick(job.schedule, job.tz, reference, job.down_missed_ticks) + job.grace
            )
        elif job.interval is not None:
            candidates.append(reference + job.interval * job.down_missed_ticks + job.grace)
    return min(candidates) if candidates else late_at


def run_stats(runs: Iterable[RunRecord], now: datetime) -> dict[str, Any]:
    """Seed extras for the health page: success rates, durations, failures (24 h / 7 d)."""
    finished = [r for r in runs if r.state in (SUCCESS, FAILED) and r.anchor]
    out: dict[str, Any] = {}
    for label, span in (("24h", timedelta(hours=24)), ("7d", timedelta(days=7))):
        window = [r for r in finished if r.anchor >= now - span]
        ok = sum(r.state == SUCCESS for r in window)
        out[f"runs_{label}"] = len(window)
        out[f"failed_{label}"] = len(window) - ok
        out[f"success_rate_{label}"] = round(100.0 * ok / len(window), 1) if window else None
    durations = [r.duration.total_seconds() for r in finished if r.duration is not None]
    out["avg_duration_seconds"] = round(statistics.fmean(durations), 1) if durations else None
    out["max_duration_seconds"] = round(max(durations), 1) if durations else None
    anchors = sorted(r.anchor for r in finished if r.anchor >= now - timedelta(days=7))
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(anchors)]
    out["avg_interval_seconds"] = round(statistics.fmean(gaps), 1) if gaps else None
    failures = [r for r in finished if r.state == FAILED]
    last_failure = max(failures, key=lambda r: r.anchor, default=None)
    out["last_failure"] = last_failure.anchor.isoformat() if last_failure else None
    out["last_failure_run"] = last_failure.run_id if last_failure else None
    return out


def evaluate(
    job: MonitoredJob,
    runs: Iterable[RunRecord],
    now: datetime,
    *,
    paused: bool = False,
    first_seen: datetime | None = None,
    extra: Mapping[str, Any] | None = None,
) -> HealthState:
    """The job's state at ``now`` from its runs (any order). Pure: no I/O, no clock."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    runs = sorted((r for r in runs if r.anchor is not None), key=lambda r: r.anchor)
    successes = [r for r in runs if r.state == SUCCESS]
    last_success = successes[-1].anchor if successes else None
    last_run = runs[-1].anchor if runs else None
    finished = [r for r in runs if r.state in (SUCCESS, FAILED)]
    streak = 0
    for r in reversed(finished):
        if r.state != FAILED:
            break
        streak += 1
    details: dict[str, Any] = {
        **run_stats(runs, now),
        "consecutive_failures": streak,
        "schedule": job.schedule,
        "interval_seconds": job.interval.total_seconds() if job.interval else None,
        "tz": job.tz,
        "grace_seconds": job.grace.total_seconds(),
        **dict(extra or {}),
    }

    def state(name: str, reason: str, next_expected: datetime | None = None) -> HealthState:
        return HealthState(
            job.key, job.kind, name, reason, last_success, last_run, next_expected, details
        )

    if paused:
        return state("paused", "paused in Airflow: no run is expected")

    if job.max_runtime is not None:
        for r in runs:
            if r.state == RUNNING and r.start and now - r.start > job.max_runtime:
                details["stuck_run"] = r.run_id
                return state(
                    "stuck",
                    f"run {r.run_id} has been running for {_duration(now - r.start)}"
                    f" (max runtime {_duration(job.max_runtime)})",
                )

    reference = last_success or job.start_date or first_seen
    if reference is None:
        return state("unknown", "no run yet and no start date to measure from")
    next_expected = _next_expected(job, reference)
    late_at = next_expected + job.grace
    down_at = _down_at(job, reference, late_at)
    details["late_at"] = late_at.isoformat()
    details["down_at"] = down_at.isoformat()
    if job.schedule:
        details["missed_ticks"] = ticks_between(job.schedule, job.tz, reference, now - job.grace)
    since = f"since {_fmt(last_success)}" if last_success else "ever"

    if job.failure_threshold and streak >= job.failure_threshold:
        return state(
            "down",
            f"{streak} consecutive failed runs (last success {_fmt(last_success)})",
            next_expected,
        )
    if now >= down_at:
        missed = details.get("missed_ticks")
        return state(
            "down",
            f"no successful run {since}; expected by {_fmt(late_at)}"
            + (f" ({missed} ticks missed)" if missed else ""),
            next_expected,
        )
    if now >= late_at:
        return state(
            "late",
            f"no successful run {since}; expected by {_fmt(next_expected)}"
            f" + {_duration(job.grace)} grace",
            next_expected,
        )
    if last_success is None:
        return state(
            "unknown", f"no successful run yet; first expected by {_fmt(late_at)}", next_expected
        )
    return state("up", f"last success {_fmt(last_success)}", next_expected)
