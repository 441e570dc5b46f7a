"""Cron ticks in a job's time zone, computed in UTC, safe across DST.

The cron expression is walked in local *wall-clock* time (naive), and each candidate is mapped to
an instant with the zone's rules, like Airflow's cron timetables do:
- a wall-clock time that does not exist (spring forward, 02:30 on a March Sunday in PT) maps to
  the instant one hour later (03:30 PDT) — the job still runs once that day;
- a wall-clock time that exists twice (fall back, 01:30 on a November Sunday in PT) is taken once,
  at its first occurrence — the job does not run twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter

MAX_TICKS = 10_000


@lru_cache(maxsize=64)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


def _to_utc(naive_local: datetime, zone: ZoneInfo) -> datetime:
    aware = naive_local.replace(tzinfo=zone, fold=0)
    utc = aware.astimezone(UTC)
    # A non-existent local time (DST gap) round-trips to a different wall clock: zoneinfo then
    # used the offset from before the gap, which lands after the gap, as Airflow does.
    return utc


def next_tick(expr: str, tz: str, after: datetime) -> datetime:
    """The first tick strictly after ``after`` (aware), as an aware UTC datetime."""
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    zone = _zone(tz)
    # Start one hour of wall clock early: around fall-back the local clock repeats an hour.
    local = after.astimezone(zone).replace(tzinfo=None) - timedelta(hours=1)
    it = croniter(expr, local)
    last_utc: datetime | None = None
    for _ in range(MAX_TICKS):
        candidate = _to_utc(it.get_next(datetime), zone)
        if last_utc is not None and candidate <= last_utc:
            continue  # a repeated or gap-shifted wall-clock time: counted once
        last_utc = candidate
        if candidate > after.astimezone(UTC):
            return candidate
    raise ValueError(f"no tick of {expr!r} after {after}")


def ticks_between(expr: str, tz: str, start: datetime, end: datetime, limit: int = 1000) -> int:
    """How many ticks fall in ``(start, end]`` (capped at ``limit``)."""
    count, tick = 0, start
    while count < limit:
        tick = next_tick(expr, tz, tick)
        if tick > end:
            break
        count += 1
    return count


def nth_tick(expr: str, tz: str, after: datetime, n: int) -> datetime:
    """The n-th tick after ``after`` (n >= 1)."""
    tick = after
    for _ in range(max(1, n)):
        tick = next_tick(expr, tz, tick)
    return tick


def is_valid(expr: str) -> bool:
    return croniter.is_valid(expr)
