"""Pure pieces of the weekly jobs: formula-injection neutralising, the reporting window, file
dates for retention, recipient parsing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from include.analytics_ops.reports.email import EmailConfigError, parse_recipients
from include.analytics_ops.reports.export import neutralise_cell
from include.analytics_ops.reports.retention import RetentionPolicy, file_date
from include.analytics_ops.reports.window import InvalidWeeklyParams, ReportWindow, window_for


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1+2", "'+1+2"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tleading tab", "'\tleading tab"),
        ("\rcarriage", "'\rcarriage"),
        ("plain text", "plain text"),
        ("-12.5", "-12.5"),  # numeric text stays a number
        ("+3", "+3"),
        ("1e-3", "1e-3"),
        ("", ""),
    ],
)
def test_text_cells_are_neutralised_and_numbers_are_not(raw, expected):
    assert neutralise_cell(raw) == expected


@pytest.mark.parametrize("number", [-12.5, -3, 0, 7, None])
def test_non_text_values_pass_unchanged(number):
    assert neutralise_cell(number) == number


def test_scheduled_monday_run_reports_the_previous_monday_to_sunday():
    # 2026-11-23T12:00Z = Monday 04:00 PST
    w = window_for(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    assert (w.start, w.end, w.stamp) == (date(2026, 11, 16), date(2026, 11, 22), "20261123")
    assert len(w.days) == 7 and w.days[0].weekday() == 0


def test_run_on_another_weekday_reports_the_week_before_its_monday():
    # Wednesday 2026-11-25 10:00 PST
    w = window_for(datetime(2026, 11, 25, 18, 0, tzinfo=UTC))
    assert (w.start, w.end) == (date(2026, 11, 16), date(2026, 11, 22))


def test_monday_early_utc_is_still_sunday_in_pt():
    # 2026-11-23T03:00Z is Sunday 19:00 PST: that run's Monday is Nov 16
    w = window_for(datetime(2026, 11, 23, 3, 0, tzinfo=UTC))
    assert w.report_date == date(2026, 11, 16)


def test_week_ending_param_pins_the_window_and_is_validated():
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    w = window_for(now, "2026-11-20")
    assert (w.start, w.end, w.stamp) == (date(2026, 11, 14), date(2026, 11, 20), "20261121")
    with pytest.raises(InvalidWeeklyParams, match="ISO date"):
        window_for(now, "20-11-2026")
    with pytest.raises(InvalidWeeklyParams, match="not a complete day"):
        window_for(now, "2026-11-23")
    assert window_for(now, "") == ReportWindow.for_monday_of(date(2026, 11, 23))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("metrics-weekly-20261123.csv", date(2026, 11, 23)),
        ("2026-11-20.json", date(2026, 11, 20)),
        ("sampling-proof-20260101.json", date(2026, 1, 1)),
        ("cto-report-20261123.eml", date(2026, 11, 23)),
        ("notes.txt", None),
        ("build-123456789.log", None),
        ("x-20261399.csv", None),
    ],
)
def test_artifact_dates_come_from_the_file_name(name, expected):
    assert file_date(name) == expected


def test_retention_policy_rejects_nonsense():
    with pytest.raises(ValueError, match="keep_job_runs"):
        RetentionPolicy(keep_job_runs=0)


def test_recipients_are_parsed_and_validated():
    assert parse_recipients("cto@x.com, eng@x.com;cto@x.com") == ["cto@x.com", "eng@x.com"]
    assert parse_recipients("") == []
    with pytest.raises(EmailConfigError):
        parse_recipients("not-an-address")
