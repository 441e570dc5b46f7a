"""GitHub sync against the sandbox GitHub (real loopback HTTP, real Postgres)."""

from __future__ import annotations

import time

import pytest

from include.analytics_ops.github.client import GitHubAuthError, GitHubClient
from include.analytics_ops.github.sync import LabelConvention, sync_projects
from include.analytics_ops.store import RunKey
from include.sandbox.constants import GITHUB_TOKEN, SAMPLE_REPOS

ACTIVE = [r for r, _, active in SAMPLE_REPOS if active]
KEY = RunKey("analytics_nightly", "sync_github", "manual__test")


@pytest.fixture
def projects(db):
    for repo, name, active in SAMPLE_REPOS:
        db.execute(
            "INSERT INTO analytics.projects (repo, name, active) VALUES (%s, %s, %s)",
            (repo, name, active),
        )
    return db


class RecordingSleep:
    """Really sleeps (the sandbox's rate-limit window must pass) and remembers how long."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


def client_for(sandbox, **kwargs) -> GitHubClient:
    kwargs.setdefault("backoff_seconds", 0.05)
    return GitHubClient(sandbox.url, GITHUB_TOKEN, **kwargs)


def run_sync(conn, sandbox, **kwargs):
    with client_for(sandbox, **kwargs) as client:
        return sync_projects(conn, client, LabelConvention(), key=KEY), client


def issue_versions(conn) -> dict:
    rows = conn.execute(
        "SELECT project_id, number, xmin::text, synced_at FROM analytics.issues"
    ).fetchall()
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def test_first_sync_pages_through_every_repo(projects, sandbox):
    summary, _ = run_sync(projects, sandbox, per_page=25)
    by_repo = {o.repo: o for o in summary.outcomes}
    assert sorted(by_repo) == sorted(ACTIVE)  # the inactive repo is not synced
    # storefront has 110 items: 5 pages of 25
    assert by_repo["acme/storefront"].pages == 5
    assert by_repo["acme/storefront"].fetched == by_repo["acme/storefront"].written == 110
    assert summary.run_status == "completed"
    calls = [c for c in sandbox.calls("github") if c["status"] == 200]
    # page 1 on /repos/..., the rest follow the Link header to /repositories/{id}/issues
    assert sum(c["path"].startswith("/repositories/") for c in calls) == sum(
        o.pages - 1 for o in summary.outcomes
    )
    count, bugs, critical, revenue, prs = projects.execute(
        """SELECT count(*), count(*) FILTER (WHERE is_bug),
                  count(*) FILTER (WHERE is_bug AND severity = 'critical' AND state = 'open'),
                  sum(revenue_impact_per_day) FILTER (WHERE state = 'open'),
                  count(*) FILTER (WHERE is_pull_request)
             FROM analytics.issues"""
    ).fetchone()
    assert count == 110 + 84 + 62 + 48
    assert bugs > 0 and prs > 0 and critical == 4  # the planted critical bugs of active repos
    assert revenue > 10_000
    row = projects.execute(
        "SELECT assignee, revenue_impact_per_day, severity FROM analytics.issues i"
        " JOIN analytics.projects p USING (project_id)"
        " WHERE p.repo = 'acme/checkout' AND title LIKE 'Payment webhook%%'"
    ).fetchone()
    assert row == (None, 5000, "critical")
    states = projects.execute(
        "SELECT count(*) FROM analytics.project_sync_state WHERE last_status = 'synced'"
        " AND etag IS NOT NULL AND since_watermark IS NOT NULL"
    ).fetchone()[0]
    assert states == len(ACTIVE)
    events = projects.execute(
        "SELECT count(*) FROM ops.job_events WHERE event_type = 'github_sync' AND level = 'info'"
    ).fetchone()[0]
    assert events == len(ACTIVE)


def test_unchanged_repos_answer_304_and_nothing_is_written(projects, sandbox):
    run_sync(projects, sandbox)
    # The first incremental request (since = watermark) is a new URL: a small 200 that
    # rewrites nothing and stores the ETag for that URL.
    before = issue_versions(projects)
    summary, _ = run_sync(projects, sandbox)
    assert {o.status for o in summary.outcomes} == {"synced"}
    assert summary.stats["issues_written"] == 0 and summary.stats["issues_fetched"] < 20
    assert issue_versions(projects) == before
    before = issue_versions(projects)
    state_before = projects.execute(
        "SELECT project_id, since_watermark, etag FROM analytics.project_sync_state"
    ).fetchall()
    sandbox.reset()  # forget the first run's calls (the sandbox data stays the same)
    summary, client = run_sync(projects, sandbox)
    assert [o.status for o in summary.outcomes] == ["not_modified"] * len(ACTIVE)
    assert summary.stats["issues_written"] == 0 and client.stats.not_modified == len(ACTIVE)
    assert issue_versions(projects) == before  # no row rewritten (same xmin, same synced_at)
    assert (
        projects.execute(
            "SELECT project_id, since_watermark, etag FROM analytics.project_sync_state"
        ).fetchall()
        == state_before
    )
    calls = sandbox.calls("github")
    assert [c["status"] for c in calls] == [304] * len(ACTIVE)
    assert all(c["headers"].get("If-None-Match") for c in calls)
    assert all("since" in c["query"] for c in calls)


def test_incremental_sync_picks_up_only_changed_issues(projects, sandbox):
    run_sync(projects, sandbox)
    run_sync(projects, sandbox)  # settles the ETag on the watermark (see the test above)
    before = issue_versions(projects)
    pid, number = projects.execute(
        "SELECT project_id, min(number) FROM analytics.issues JOIN analytics.projects"
        " USING (project_id) WHERE repo = 'acme/storefront' AND NOT is_pull_request"
        " AND NOT is_bug GROUP BY project_id"
    ).fetchone()
    sandbox.touch_issue(
        "acme/storefront", number, labels=["bug", "severity:critical", "revenue:750"], assignee=None
    )
    sandbox.touch_issue("acme/storefront", None, title="Brand new crash", labels=["bug"])
    summary, _ = run_sync(projects, sandbox)
    by_repo = {o.repo: o for o in summary.outcomes}
    assert by_repo["acme/storefront"].status == "synced"
    assert by_repo["acme/storefront"].written == 2
    assert by_repo["acme/storefront"].fetched < 10  # only what changed since the watermark
    assert {o.status for r, o in by_repo.items() if r != "acme/storefront"} == {"not_modified"}
    after = issue_versions(projects)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {(pid, number), (pid, 111)}
    row = projects.execute(
        "SELECT severity, revenue_impact_per_day, is_bug, assignee FROM analytics.issues"
        " WHERE project_id = %s AND number = %s",
        (pid, number),
    ).fetchone()
    assert row == ("critical", 750, True, None)


def test_a_missing_repo_is_recorded_as_failed_while_the_others_sync(projects, sandbox):
    projects.execute("INSERT INTO analytics.projects (repo, name) VALUES ('acme/ghost', 'Ghost')")
    sandbox.set_faults(github_fail_repos={"acme/checkout": 502})
    summary, _ = run_sync(projects, sandbox)
    by_repo = {o.repo: o for o in summary.outcomes}
    assert by_repo["acme/ghost"].status == "failed"
    assert by_repo["acme/ghost"].http_status == 404 and not by_repo["acme/ghost"].retryable
    assert by_repo["acme/checkout"].status == "failed" and by_repo["acme/checkout"].retryable
    assert {by_repo[r].status for r in ACTIVE if r != "acme/checkout"} == {"synced"}
    assert summary.run_status == "partial"
    rows = projects.execute(
        "SELECT p.repo, s.last_status, s.last_http_status, s.last_error"
        " FROM analytics.project_sync_state s JOIN analytics.projects p USING (project_id)"
        " WHERE s.last_status = 'failed' ORDER BY p.repo"
    ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("acme/checkout", "failed", 502),
        ("acme/ghost", "failed", 404),
    ]
    assert GITHUB_TOKEN not in " ".join(r[3] for r in rows)
    errors = projects.execute(
        "SELECT entity_id FROM ops.job_events WHERE level = 'error' ORDER BY entity_id"
    ).fetchall()
    assert [e[0] for e in errors] == ["acme/checkout", "acme/ghost"]
    # nothing was written for the failed repos, the others are complete
    assert projects.execute(
        "SELECT count(*) FROM analytics.issues i JOIN analytics.projects p USING (project_id)"
        " WHERE p.repo IN ('acme/checkout', 'acme/ghost')"
    ).fetchone() == (0,)
    # 5xx was retried (3 attempts) before giving up on checkout
    checkout_calls = [c for c in sandbox.calls("github") if "acme/checkout" in c["path"]]
    assert [c["status"] for c in checkout_calls] == [502, 502, 502]


def test_an_exhausted_rate_limit_is_waited_out(projects, sandbox):
    sandbox.set_faults(github_rate_limit_remaining=2, github_rate_limit_reset_seconds=1)
    sleep = RecordingSleep()
    summary, client = run_sync(projects, sandbox, sleep=sleep)
    assert summary.run_status == "completed"
    assert {o.status for o in summary.outcomes} == {"synced"}
    statuses = [c["status"] for c in sandbox.calls("github")]
    assert 403 in statuses and statuses[-1] == 200
    assert client.stats.rate_limit_waits >= 1
    assert sleep.waits and 0 < max(sleep.waits) <= 5  # waited until X-RateLimit-Reset


def test_a_secondary_limit_honours_retry_after(projects, sandbox):
    sandbox.set_faults(github_secondary_limit=1)
    sleep = RecordingSleep()
    summary, client = run_sync(projects, sandbox, sleep=sleep)
    assert summary.run_status == "completed"
    assert client.stats.secondary_limit_waits == 1 and sleep.waits == [1.0]
    assert [c["status"] for c in sandbox.calls("github")][:2] == [403, 200]


def test_a_rate_limit_beyond_the_wait_cap_fails_the_project_as_transient(projects, sandbox):
    sandbox.set_faults(github_rate_limit_remaining=0, github_rate_limit_reset_seconds=30)
    summary, _ = run_sync(projects, sandbox, max_wait_seconds=2)
    assert summary.run_status == "failed"
    assert all(o.retryable and o.http_status == 429 for o in summary.outcomes)


def test_a_bad_token_stops_the_sync_at_once(projects, sandbox):
    with (
        GitHubClient(sandbox.url, "not-the-token") as client,
        pytest.raises(GitHubAuthError, match="401"),
    ):
        sync_projects(projects, client, LabelConvention(), key=KEY)
    assert len(sandbox.calls("github")) == 1
    assert projects.execute(
        "SELECT count(*) FROM analytics.project_sync_state WHERE last_status = 'failed'"
    ).fetchone() == (1,)
