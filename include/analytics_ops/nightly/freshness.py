"""The freshness gate: judge day D only once its data is complete.

Complete means both:

1. the PostHog ingest watermark has ``complete_until`` at or after the end of D in Pacific time
   (``pt_day_bounds`` — 23 or 25 hours on DST days). Which watermark: ``posthog_reconciled``
   (every window before it was read once AND recounted an hour later with its late arrivals
   loaded — ``ingest.reconcile``) wherever the reconciliation runs, else ``posthog`` (every
   window before it was read once, after the settle delay, and rolled up; late arrivals after
   that read are not promised), and
2. ``analytics.daily_metrics`` has a row for D with ``revenue``, ``orders``, ``sessions`` and
   ``conversions`` set.

Two ways to be incomplete, two different answers (the operator maps them to Airflow):

- **stale** (watermark missing or behind the end of D): the hourly ingest is late; it will likely
  catch up, so this is *retryable*: the gate waits for it (:class:`StaleDataError` for callers
  that raise).
- **missing** (watermark past D, but the row or a column is missing): the ingest says it is done
  and the data is still not there; waiting will not help, a person must reload the day
  (:class:`MissingDataError`, not retried).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from include.analytics_ops.dates import PT, pt_day_bounds
from include.analytics_ops.nightly import WATERMARK_STREAM

REQUIRED_COLUMNS: tuple[str, ...] = ("revenue", "orders", "sessions", "conversions")


class StaleDataError(RuntimeError):
    """The ingest has not reached the end of the day yet (retryable)."""


class MissingDataError(ValueError):
    """The ingest is past the day but its metrics are missing (a person must reload it)."""


@dataclass(frozen=True)
class Freshness:
    target_date: date
    day_start: datetime
    day_end: datetime
    stream: str
    watermark: datetime | None
    row_present: bool
    null_columns: tuple[str, ...] = ()
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def watermark_ok(self) -> bool:
        return self.watermark is not None and self.watermark >= self.day_end

    @property
    def data_ok(self) -> bool:
        return self.row_present and not self.null_columns

    @property
    def fresh(self) -> bool:
        return self.watermark_ok and self.data_ok

    @property
    def retryable(self) -> bool:
        """Stale (ingest behind) may resolve by itself; missing data with the ingest done won't."""
        return not self.watermark_ok

    def message(self) -> str:
        day = self.target_date.isoformat()
        end_pt = self.day_end.astimezone(PT)
        if self.fresh:
            return (
                f"data for {day} is complete: {self.stream} watermark "
                f"{self.watermark.isoformat()} ≥ end of day {end_pt.isoformat()}"  # type: ignore[union-attr]
            )
        problems: list[str] = []
        if self.watermark is None:
            problems.append(
                f"no '{self.stream}' watermark in ops.watermarks (the hourly ingest never "
                f"completed a window)"
            )
        elif not self.watermark_ok:
            behind = self.day_end - self.watermark
            problems.append(
                f"'{self.stream}' ingest watermark is {self.watermark.isoformat()}, "
                f"{_duration(behind)} before the end of {day} PT ({end_pt.isoformat()})"
            )
        if not self.row_present:
            problems.append(f"analytics.daily_metrics has no row for {day}")
        elif self.null_columns:
            problems.append(
                f"analytics.daily_metrics row for {day} has no {', '.join(self.null_columns)}"
            )
        head = (
            f"STALE DATA: {day} is not complete — "
            if self.retryable
            else f"MISSING DATA: {day} is not complete although the ingest is done — "
        )
        tail = (
            " — the hourly ingest is late (check analytics_hourly); check_freshness waits for it."
            if self.retryable
            else " — reload the day (rerun analytics_hourly for its windows / the loader of the"
            " missing columns), then clear check_freshness."
        )
        return head + "; ".join(problems) + tail

    def as_stats(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "required_until": self.day_end.isoformat(),
            "row_present": self.row_present,
            "null_columns": list(self.null_columns),
            "fresh": self.fresh,
        }


def _duration(delta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes / 60:.1f} h"


def evaluate_freshness(
    conn,
    day: date,
    *,
    stream: str | None = None,
    required_columns: Sequence[str] = REQUIRED_COLUMNS,
) -> Freshness:
    """Read the watermark (``stream``; ``None`` or ``posthog``: see the module docstring) and D's
    ``daily_metrics`` row; no writes."""
    from include.analytics_ops.ingest.rollups import RECONCILED_STREAM
    from include.analytics_ops.store import read_watermark

    if stream in (None, WATERMARK_STREAM):  # "the PostHog ingest": its strongest promise
        reconciled = read_watermark(conn, RECONCILED_STREAM) is not None
        stream = RECONCILED_STREAM if reconciled else WATERMARK_STREAM
    for column in required_columns:
        if column not in (*REQUIRED_COLUMNS, "ideas_total", "ideas_added"):
            raise ValueError(f"unknown daily_metrics column {column!r}")
    start, end = pt_day_bounds(day)
    watermark = read_watermark(conn, stream)
    cols = ", ".join(required_columns)
    row = conn.execute(
        f"SELECT {cols} FROM analytics.daily_metrics WHERE metric_date = %s", (day,)
    ).fetchone()
    values: dict[str, Any] = {}
    nulls: tuple[str, ...] = ()
    if row is not None:
        values = dict(zip(required_columns, row, strict=True))
        nulls = tuple(c for c in required_columns if values[c] is None)
    return Freshness(day, start, end, stream, watermark, row is not None, nulls, values)


def require_fresh(result: Freshness) -> Freshness:
    """Raise :class:`StaleDataError` / :class:`MissingDataError` unless ``result.fresh``."""
    if result.fresh:
        return result
    if result.retryable:
        raise StaleDataError(result.message())
    raise MissingDataError(result.message())
