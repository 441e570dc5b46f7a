"""Business dates in Pacific time, derived the same way for scheduled, manual and backfill runs.

Runs without a logical date (``airflow dags trigger`` without ``-l``) have no ``ds`` or
``logical_date`` in the context, so everything here reads ``dag_run.run_after`` (always set) or an
explicit ``params`` value.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

PT = ZoneInfo("America/Los_Angeles")


def run_time(context: Mapping[str, Any]) -> datetime:
    """When the run was meant to happen: the logical date if any, else ``run_after``."""
    logical = context.get("logical_date")
    if logical is not None:
        return logical
    dag_run = context.get("dag_run")
    after = getattr(dag_run, "run_after", None) if dag_run is not None else None
    if after is None:
        raise ValueError("the run has neither a logical date nor run_after")
    return after


def pt_date(moment: datetime) -> date:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware datetime")
    return moment.astimezone(PT).date()


def previous_pt_day(moment: datetime) -> date:
    """The PT calendar day before the one ``moment`` falls on (the nightly's business date)."""
    return pt_date(moment) - timedelta(days=1)


def pt_day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a PT calendar day as UTC datetimes (23 or 25 hours on DST days)."""
    start = datetime.combine(day, time.min, tzinfo=PT).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=PT).astimezone(UTC)
    return start, end


def parse_date_param(value: Any, name: str) -> date | None:
    """Validate an optional ISO date param; raises ValueError with a clear message."""
    if value in (None, ""):
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(
            f"param {name!r} must be an ISO date (YYYY-MM-DD), got {value!r}"
        ) from None


def business_date(context: Mapping[str, Any], param: str = "target_date") -> date:
    """``params[param]`` when given, else the PT day before the run's time."""
    params = context.get("params") or {}
    explicit = parse_date_param(params.get(param), param)
    return explicit if explicit is not None else previous_pt_day(run_time(context))
