"""Render the CTO report with headless Chromium and check the picture is a real page with the
charts (the PNG is kept under the test's tmp dir for a person to look at)."""

from __future__ import annotations

from datetime import date

from include.analytics_ops.reports import report
from include.analytics_ops.reports.window import ReportWindow
from include.sandbox.samples import weekly as sample
from include.sandbox.screenshot import screenshot

WEEK = ReportWindow.ending(date(2026, 11, 22))


def test_report_renders_in_chromium(db, tmp_path, chromium):
    from PIL import Image

    sample.load_weekly_sample(db, WEEK.end, hostile=True)
    built = report.build_report(db, WEEK, tmp_path)
    png = screenshot(built.html_path, tmp_path / "cto-report.png", width=1200, height=2400)
    with Image.open(png) as img:
        assert img.size == (1200, 2400)
        rgb = img.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200  # text, badges, charts — not a blank page
    by_count = dict((c, n) for n, c in colours)
    # the charts' bars/lines (#2563eb) and the critical-health bars (#dc2626) are drawn
    blue = sum(
        n for c, n in by_count.items() if abs(c[0] - 37) + abs(c[1] - 99) + abs(c[2] - 235) < 40
    )
    red = sum(
        n for c, n in by_count.items() if abs(c[0] - 220) + abs(c[1] - 38) + abs(c[2] - 38) < 40
    )
    assert blue > 2000 and red > 2000, (blue, red)
