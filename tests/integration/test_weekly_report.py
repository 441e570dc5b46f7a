"""The metrics CSV matches the database, and hostile upstream text comes out inert in the CSVs
and the HTML report."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from include.analytics_ops.reports import export, report
from include.analytics_ops.reports.window import ReportWindow
from include.sandbox.samples import weekly as sample

WEEK = ReportWindow.ending(date(2026, 11, 22))


@pytest.fixture
def hostile_db(db):
    sample.load_weekly_sample(db, WEEK.end, hostile=True)
    return db


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def test_metrics_csv_header_and_rows_match_the_database(hostile_db, tmp_path):
    # a day inside the window without a daily_metrics row still gets its (empty) row
    hostile_db.execute("DELETE FROM analytics.daily_metrics WHERE metric_date = %s", (WEEK.end,))
    result = export.export_metrics(hostile_db, WEEK, tmp_path)
    assert result.path == tmp_path / "exports" / "metrics-weekly-20261123.csv"
    header, rows = _read_csv(result.path)
    assert header[: len(export.DAILY_COLUMNS)] == list(export.DAILY_COLUMNS)
    assert header[len(export.DAILY_COLUMNS) : len(export.DAILY_COLUMNS) + 2] == [
        "proof_status",
        "snapshot_status",
    ]
    snapshot_cols = header[len(export.DAILY_COLUMNS) + 2 :]
    assert snapshot_cols == sorted(snapshot_cols) and "snapshot.revenue.total" in snapshot_cols
    assert [r[0] for r in rows] == [d.isoformat() for d in WEEK.days]

    db_rows = {
        r[0].isoformat(): r
        for r in hostile_db.execute(
            "SELECT metric_date, revenue, orders, sessions, conversions, conversion_rate,"
            " ideas_total, ideas_added FROM analytics.daily_metrics"
            " WHERE metric_date BETWEEN %s AND %s",
            (WEEK.start, WEEK.end),
        ).fetchall()
    }
    assert len(db_rows) == 6
    col = {name: i for i, name in enumerate(header)}
    for row in rows:
        day = row[0]
        if day not in db_rows:
            assert row[col["revenue"]] == row[col["sessions"]] == ""
            continue
        _, revenue, orders, sessions, conversions, rate, ideas_total, ideas_added = db_rows[day]
        assert Decimal(row[col["revenue"]]) == revenue  # exact, e.g. "3737.83"
        assert row[col["revenue"]] == f"{revenue:.2f}"
        assert int(row[col["orders"]]) == orders
        assert int(row[col["sessions"]]) == sessions
        assert int(row[col["conversions"]]) == conversions
        assert float(row[col["conversion_rate"]]) == pytest.approx(rate)
        assert int(row[col["ideas_total"]]) == ideas_total
        assert int(row[col["ideas_added"]]) == ideas_added
        assert Decimal(row[col["average_order_value"]]) == (revenue / orders).quantize(
            Decimal("0.01")
        )
        assert "," not in row[col["revenue"]]  # no thousands separators


def test_hostile_text_is_inert_in_the_csvs(hostile_db, tmp_path):
    result = export.export_metrics(hostile_db, WEEK, tmp_path)
    header, rows = _read_csv(result.path)
    col = {name: i for i, name in enumerate(header)}
    for row in rows:
        assert row[col["snapshot.traffic.note"]] == "'" + sample.HOSTILE_SNAPSHOT_TEXT
        assert row[col["snapshot.idea_pool.top_idea"]] == "'@SUM(1+1)*cmd"
        assert row[col["snapshot.revenue.change_vs_prior_day"]] == "-12.5"  # still a number
    p_header, p_rows = _read_csv(result.projects_path)
    assert p_header == list(export.PROJECT_COLUMNS)
    names = {r[p_header.index("repo")]: r[p_header.index("name")] for r in p_rows}
    assert names["evil/hyperlink"] == "'" + sample.HOSTILE_PROJECT
    assert names["acme/checkout"] == "Checkout"
    assert "acme/legacy-admin" not in names  # inactive projects are not listed
    for r in p_rows:
        for cell in r:
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell


class _Audit(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.handlers: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.handlers += [(tag, k) for k, _ in attrs if k.startswith("on")]

    def handle_data(self, data):
        self.text.append(data)


def test_hostile_text_is_escaped_in_the_html_report(hostile_db, tmp_path):
    built = report.build_report(hostile_db, WEEK, tmp_path)
    html = built.html_path.read_text()
    assert built.html_path == tmp_path / "reports" / "cto-report-20261123.html"
    audit = _Audit()
    audit.feed(html)
    assert "script" not in audit.tags
    assert audit.handlers == []
    assert audit.tags.count("img") == 4  # the four charts, nothing injected
    text = "".join(audit.text)
    # shown to the reader as typed, not interpreted
    assert sample.HOSTILE_TITLE in text
    assert sample.HOSTILE_PROJECT in text
    assert "<img src=x onerror=alert(1)>" in text
    assert "&lt;script&gt;" in html and "<script>" not in html
    # the plain-text part carries the same facts
    data = report.collect_report_data(hostile_db, WEEK)
    assert sample.HOSTILE_TITLE in report.render_text(data)


def test_report_shows_the_weeks_numbers(hostile_db, tmp_path):
    revenue, sessions, conversions = hostile_db.execute(
        "SELECT sum(revenue), sum(sessions), sum(conversions) FROM analytics.daily_metrics"
        " WHERE metric_date BETWEEN %s AND %s",
        (WEEK.start, WEEK.end),
    ).fetchone()
    risk = hostile_db.execute(
        "SELECT sum(revenue_impact_per_day) FROM analytics.issues WHERE state = 'open'"
    ).fetchone()[0]
    built = report.build_report(hostile_db, WEEK, tmp_path)
    html = built.html_path.read_text()
    assert f"${float(revenue):,.0f}" in html
    assert f"{sessions:,}" in html
    assert f"{100 * conversions / sessions:.2f}%" in html
    assert f"${float(risk):,.0f}" in html
    assert "Payment retries double-charge some cards" in html  # a critical bug
    assert "Search returns stale prices" in html
    assert "Coupon field ignores uppercase codes" not in html  # high, not critical
    assert "HTTP 503 from inventory API for client-007" in html  # a failed job run
    assert html.count("data:image/png;base64,") == 4
    assert built.eml_path.is_file()
