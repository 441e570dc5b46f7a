"""Business dates across DST and for runs without a logical date."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest

from include.analytics_ops import dates


@pytest.mark.parametrize(
    ("run_at_utc", "expected"),
    [
        (datetime(2026, 11, 21, 10, 0, tzinfo=UTC), date(2026, 11, 20)),  # 02:00 PST
        (datetime(2026, 3, 8, 10, 0, tzinfo=UTC), date(2026, 3, 7)),  # spring-forward day 03:00 PDT
        (datetime(2026, 11, 1, 9, 0, tzinfo=UTC), date(2026, 10, 31)),  # fall-back day 02:00 PST
        (datetime(2026, 11, 21, 7, 59, tzinfo=UTC), date(2026, 11, 19)),  # 23:59 PST Nov 20
    ],
)
def test_previous_pt_day(run_at_utc, expected):
    assert dates.previous_pt_day(run_at_utc) == expected


def test_pt_day_bounds_are_23_and_25_hours_on_dst_days():
    start, end = dates.pt_day_bounds(date(2026, 3, 8))
    assert end - start == timedelta(hours=23)
    start, end = dates.pt_day_bounds(date(2026, 11, 1))
    assert end - start == timedelta(hours=25)
    assert dates.pt_day_bounds(date(2026, 11, 20))[0] == datetime(2026, 11, 20, 8, tzinfo=UTC)


def test_business_date_without_logical_date_uses_run_after():
    ctx = {
        "dag_run": SimpleNamespace(run_after=datetime(2026, 11, 21, 10, 5, tzinfo=UTC)),
        "params": {},
    }
    assert dates.business_date(ctx) == date(2026, 11, 20)


def test_business_date_param_wins_and_is_validated():
    ctx = {
        "logical_date": datetime(2026, 11, 21, 10, tzinfo=UTC),
        "params": {"target_date": "2026-10-01"},
    }
    assert dates.business_date(ctx) == date(2026, 10, 1)
    with pytest.raises(ValueError, match="ISO date"):
        dates.business_date({**ctx, "params": {"target_date": "yesterday"}})


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        dates.pt_date(datetime(2026, 11, 21, 10))
