"""The reporting week of an ``analytics_weekly`` run.

A run at Monday 04:00 PT reports on the seven PT calendar days before that Monday (Mon..Sun).
A manual run may pass ``week_ending`` (any past date): the window is the seven days ending there.
``report_date`` (the day after the window; the run's Monday for scheduled runs) names the files:
``metrics-weekly-YYYYMMDD.csv``, ``cto-report-YYYYMMDD.html``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from include.analytics_ops.dates import parse_date_param, pt_date, pt_day_bounds, run_time

WINDOW_DAYS = 7
EARLIEST_WEEK_ENDING = date(2000, 1, 1)


class InvalidWeeklyParams(ValueError):
    """A bad ``params`` value: the run must fail before doing any work, without retries."""


@dataclass(frozen=True)
class ReportWindow:
    start: date  # first PT day of the week (inclusive)
    end: date  # last PT day of the week (inclusive)

    @property
    def report_date(self) -> date:
        return self.end + timedelta(days=1)

    @property
    def stamp(self) -> str:
        """YYYYMMDD of ``report_date`` (file names)."""
        return self.report_date.strftime("%Y%m%d")

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def previous(self, weeks: int = 1) -> ReportWindow:
        shift = timedelta(days=WINDOW_DAYS * weeks)
        return ReportWindow(self.start - shift, self.end - shift)

    def utc_bounds(self) -> tuple[datetime, datetime]:
        """[start of ``start`` PT, start of ``report_date`` PT) in UTC."""
        return pt_day_bounds(self.start)[0], pt_day_bounds(self.end)[1]

    @property
    def label(self) -> str:
        return f"{self.start:%b %-d} – {self.end:%b %-d, %Y}"

    @classmethod
    def ending(cls, last_day: date) -> ReportWindow:
        return cls(last_day - timedelta(days=WINDOW_DAYS - 1), last_day)

    @classmethod
    def for_monday_of(cls, day: date) -> ReportWindow:
        """The week before the Monday of ``day``'s week (``day`` itself when it is a Monday)."""
        monday = day - timedelta(days=day.weekday())
        return cls.ending(monday - timedelta(days=1))


def window_for(moment: datetime, week_ending: Any = None) -> ReportWindow:
    """The window of a run at ``moment`` (aware), optionally pinned by ``week_ending``."""
    today = pt_date(moment)
    try:
        pinned = parse_date_param(week_ending, "week_ending")
    except ValueError as exc:
        raise InvalidWeeklyParams(str(exc)) from None
    if pinned is None:
        return ReportWindow.for_monday_of(today)
    if pinned < EARLIEST_WEEK_ENDING:
        raise InvalidWeeklyParams(f"param 'week_ending' {pinned} is before {EARLIEST_WEEK_ENDING}")
    if pinned >= today:
        raise InvalidWeeklyParams(
            f"param 'week_ending' {pinned} is not a complete day yet (the run's PT date is "
            f"{today}); pass a date before {today}"
        )
    return ReportWindow.ending(pinned)


def window_from_context(context: Mapping[str, Any]) -> ReportWindow:
    """Window of a task's run: params ``week_ending`` if given, else from the run's time."""
    params = context.get("params") or {}
    return window_for(run_time(context), params.get("week_ending"))


def validate_params(params: Mapping[str, Any] | None) -> None:
    """Type checks of every documented param (``week_ending`` is checked by ``window_for``)."""
    params = params or {}
    resend = params.get("resend_email", False)
    if not isinstance(resend, bool):
        raise InvalidWeeklyParams(f"param 'resend_email' must be true or false, got {resend!r}")
