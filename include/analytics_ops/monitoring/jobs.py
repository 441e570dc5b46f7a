"""The registry of monitored jobs: every DAG, every ledger job, and the nightly artifacts.

Each job has a schedule (cron + time zone, or a plain interval), a grace period (how long after
a tick a successful run may still arrive), a further ``down_after`` / ``down_missed_ticks``
threshold, a max runtime (longer = stuck) and a consecutive-failure threshold.

Overrides (Airflow Variable > env, JSON; read inside tasks only):
- ``HEALTH_JOBS``: ``{"analytics_nightly": {"grace_seconds": 7200, "max_runtime_seconds": 10800}}``
  (keys: schedule, tz, grace_seconds, down_after_seconds, down_missed_ticks, max_runtime_seconds,
  failure_threshold, interval_seconds, enabled);
- ``LEDGER_JOBS``: the same per ledger job, e.g. ``{"ladder": {"interval_seconds": 300}}`` or
  ``{"backup": {"schedule": "0 3 * * *", "tz": "America/Los_Angeles"}}``;
- ``LEDGER_EXPECTED_INTERVAL_SECONDS`` (default 3600): interval of a ledger job with no entry in
  ``LEDGER_JOBS`` and too few entries to infer it (with 5+ entries the median gap is used);
  ``LEDGER_GRACE_SECONDS`` (default 900).
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from include.analytics_ops.config import seconds, setting

PT = "America/Los_Angeles"
UTC_TZ = "UTC"


@dataclass(frozen=True)
class MonitoredJob:
    key: str  # "dag:<dag_id>" | "ledger:<job>" | "artifact:<name>"
    kind: str  # dag | ledger | artifact
    name: str
    schedule: str | None = None  # cron, in ``tz``
    tz: str = UTC_TZ
    interval: timedelta | None = None  # for jobs without a cron schedule
    grace: timedelta = timedelta(minutes=30)
    down_after: timedelta | None = None
    down_missed_ticks: int = 2
    max_runtime: timedelta | None = None
    failure_threshold: int = 3
    start_date: datetime | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        if not self.schedule and self.interval is None and self.kind != "artifact":
            raise ValueError(f"{self.key}: needs a schedule or an interval")


def _m(minutes: float) -> timedelta:
    return timedelta(minutes=minutes)


# DESIGN §1: grace = the DAG's deadline (a run may take that long), down a while after that.
DAG_JOBS: tuple[MonitoredJob, ...] = (
    MonitoredJob(
        "dag:analytics_nightly", "dag", "analytics_nightly", "0 2 * * *", PT,
        grace=_m(90), down_after=_m(150), max_runtime=_m(120),
    ),
    MonitoredJob(
        "dag:analytics_hourly", "dag", "analytics_hourly", "0 * * * *", UTC_TZ,
        grace=_m(30), down_after=_m(90), down_missed_ticks=2, max_runtime=_m(60),
    ),
    MonitoredJob(
        "dag:inventory_refresh", "dag", "inventory_refresh", "0 */2 * * *", PT,
        grace=_m(60), down_after=_m(120), max_runtime=_m(120),
    ),
    MonitoredJob(
        "dag:analytics_weekly", "dag", "analytics_weekly", "0 4 * * 1", PT,
        grace=_m(300), down_after=_m(180), max_runtime=_m(180),
    ),
    MonitoredJob(
        "dag:cron_ledger", "dag", "cron_ledger", "*/5 * * * *", UTC_TZ,
        grace=_m(10), down_after=_m(20), down_missed_ticks=4, max_runtime=_m(15),
    ),
)  # fmt: skip

# Nightly artifacts for yesterday (PT) must exist by 03:30 PT (evaluated separately).
ARTIFACT_JOBS: tuple[MonitoredJob, ...] = (
    MonitoredJob("artifact:sampling_proof", "artifact", "sampling_proof", tz=PT),
    MonitoredJob("artifact:dashboard_snapshot", "artifact", "dashboard_snapshot", tz=PT),
)
ARTIFACT_DUE_LOCAL = (3, 30)  # 03:30 PT


def _apply(job: MonitoredJob, spec: Mapping[str, Any]) -> MonitoredJob:
    changes: dict[str, Any] = {}
    for key in ("schedule", "tz", "enabled", "down_missed_ticks", "failure_threshold"):
        if key in spec:
            changes[key] = spec[key]
    for key, attr in (
        ("grace_seconds", "grace"),
        ("down_after_seconds", "down_after"),
        ("max_runtime_seconds", "max_runtime"),
        ("interval_seconds", "interval"),
    ):
        if key in spec:
            changes[attr] = None if spec[key] is None else timedelta(seconds=float(spec[key]))
    if "interval_seconds" in spec and "schedule" not in spec:
        changes["schedule"] = None
    return replace(job, **changes)


def _json_object(raw: str) -> dict[str, Any]:
    value = json.loads(raw) if raw.strip() else {}
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object, got {type(value).__name__}")
    return value


def dag_jobs(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> list[MonitoredJob]:
    """The DAG monitors with ``HEALTH_JOBS`` overrides (pass ``overrides`` to skip the lookup)."""
    overrides = setting("HEALTH_JOBS", {}, _json_object) if overrides is None else overrides
    jobs = [_apply(j, overrides.get(j.name, {})) for j in DAG_JOBS]
    return [j for j in jobs if j.enabled]


def ledger_job(
    name: str, recent_ts: Sequence[datetime] = (), spec: Mapping[str, Any] | None = None
) -> tuple[MonitoredJob, str]:
    """A ledger job's monitor and where its interval came from (configured/inferred/default);
    ``spec`` defaults to the job's ``LEDGER_JOBS`` entry."""
    spec = dict(setting("LEDGER_JOBS", {}, _json_object).get(name, {}) if spec is None else spec)
    interval = setting("LEDGER_EXPECTED_INTERVAL_SECONDS", timedelta(hours=1), seconds)
    origin = "default"
    ordered = sorted(recent_ts)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ordered)]
    gaps = [g for g in gaps if g > 0]
    if len(gaps) >= 4:
        interval, origin = timedelta(seconds=statistics.median(gaps)), "inferred"
    if "schedule" in spec or "interval_seconds" in spec:
        origin = "configured"
    grace = setting("LEDGER_GRACE_SECONDS", timedelta(minutes=15), seconds)
    job = MonitoredJob(
        f"ledger:{name}", "ledger", name, None, UTC_TZ, interval=interval, grace=grace,
        down_after=None, down_missed_ticks=3, max_runtime=None,
    )  # fmt: skip
    return _apply(job, spec), origin
