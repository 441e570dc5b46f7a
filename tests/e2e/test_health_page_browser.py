"""The health page in a real browser: log into the Airflow UI, open "Analytics health" from the
nav route (rendered in the UI's iframe), check what a user sees, save screenshots.

Headless Chromium is Debian's ``/usr/bin/chromium`` (installed with apt-get here if missing),
driven by Playwright's Python package. ``playwright install`` is never run: no browser downloads.
Screenshots: ``artifacts/health-page.png`` (inside the Airflow UI) and
``artifacts/health-page-full.png`` (the page alone, full length).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.sandbox.samples.health import insert_sample_history
from include.sandbox.screenshot import CHROMIUM_FLAGS
from tests.e2e.test_health_page import airflow_api_server

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "artifacts"


def test_health_page_in_the_airflow_ui(chromium, devenv, db, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    facts = insert_sample_history(db, datetime.now(UTC))
    ARTIFACTS.mkdir(exist_ok=True)
    with airflow_api_server(devenv, tmp_path) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1300})
            # Not logged in: the UI sends us to SimpleAuthManager's login page.
            page.goto(f"{server.url}/plugin/analytics-health", wait_until="domcontentloaded")
            page.wait_for_url("**/auth/login**", timeout=60_000)
            page.locator("input[name='username'], input#username").first.fill(server.username)
            page.locator("input[type='password']").first.fill(server.password)
            page.locator("button[type='submit']").first.click()
            page.wait_for_url(lambda u: "/auth/login" not in u, timeout=60_000)

            # The nav entry exists and opens the page inside the UI's iframe.
            page.goto(f"{server.url}/plugin/analytics-health", wait_until="domcontentloaded")
            frame = page.frame_locator("iframe").first
            late_row = frame.locator(f"tr[data-job='dag:{facts['late_job']}']")
            expect(late_row.locator(".job-state")).to_have_text("late", timeout=60_000)
            critical = frame.locator("#alerts tr[data-severity='critical']")
            expect(critical).to_contain_text(facts["critical_alert_title"])
            expect(frame.locator("#overall")).to_have_attribute("data-status", "critical")
            expect(frame.locator("#inventory")).to_contain_text("4 successful, 2 failed out of 6")
            # The DAG link leaves the iframe for the DAG's page in the UI.
            link = late_row.locator("a").first
            expect(link).to_have_attribute("href", f"/dags/{facts['late_job']}")
            expect(link).to_have_attribute("target", "_top")
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "health-page.png"))

            # Directly, with the same session cookie: the whole page, full length.
            direct = browser.new_page(viewport={"width": 1400, "height": 1000})
            direct.context.add_cookies(page.context.cookies())
            resp = direct.goto(f"{server.url}/analytics-health/")
            assert resp is not None and resp.status == 200
            expect(
                direct.locator(f"tr[data-job='dag:{facts['late_job']}'] .job-state")
            ).to_have_text("late")
            direct.screenshot(path=str(ARTIFACTS / "health-page-full.png"), full_page=True)

            # Logged out (fresh context, no cookie): the page itself refuses.
            anon = browser.new_context().new_page()
            resp = anon.goto(f"{server.url}/analytics-health/")
            assert resp is not None and resp.status == 401
        finally:
            browser.close()
    assert (ARTIFACTS / "health-page.png").stat().st_size > 10_000
