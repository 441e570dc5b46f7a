"""Hostile GitHub answers: a NUL or lone surrogate in a title, an item that is not an issue, a
project that fails to store, endless pagination — stored once or dead-lettered with a reason,
and one project never stops the sync of the others."""

from __future__ import annotations

import pytest

from include.analytics_ops.github.client import GitHubClient
from include.analytics_ops.github.sync import DEAD_LETTER_STREAM, LabelConvention, sync_projects
from include.analytics_ops.store import RunKey
from tests.integration.github_stub import GitHubStub, issue

KEY = RunKey("analytics_nightly", "sync_github", "manual__hostile")


@pytest.fixture
def stub():
    with GitHubStub() as s:
        yield s


def add_projects(db, *repos: str) -> None:
    for repo in repos:
        db.execute(
            "INSERT INTO analytics.projects (repo, name, active) VALUES (%s, %s, true)",
            (repo, repo),
        )


def sync(db, stub, **kwargs):
    with GitHubClient(stub.url, "t0ken", backoff_seconds=0.01, **kwargs) as client:
        return sync_projects(db, client, LabelConvention(), key=KEY)


def stored(db) -> dict[tuple[str, int], str]:
    rows = db.execute(
        "SELECT p.repo, i.number, i.title FROM analytics.issues i JOIN analytics.projects p"
        " USING (project_id)"
    ).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


def test_nul_and_surrogates_are_stored_sanitised_and_bad_items_dead_lettered(db, stub):
    add_projects(db, "acme/a", "acme/b")
    stub.pages["acme/a"] = [
        [
            issue(1, "crash\x00 on save"),
            issue(2, "emoji \ud800 half"),
            issue(3, labels=[{"name": "bug\x00"}], assignee={"login": "eve\x00"}),
            {"number": "x", "state": "open"},  # not an issue
            "just a string",
            issue(4, state="weird"),
            issue(2**31),  # does not fit analytics.issues.number
            issue(8, labels=[{"name": "bug"}, {"name": "revenue:" + "9" * 40}]),  # not an amount
        ]
    ]
    stub.pages["acme/b"] = [[issue(7, "fine")]]
    summary = sync(db, stub)
    assert summary.run_status == "completed", summary.outcomes
    by_repo = {o.repo: o for o in summary.outcomes}
    assert (by_repo["acme/a"].written, by_repo["acme/a"].rejected) == (4, 4)
    assert stored(db) == {
        ("acme/a", 1): "crash\ufffd on save",
        ("acme/a", 2): "emoji \ufffd half",
        ("acme/a", 3): "a bug",
        ("acme/a", 8): "a bug",
        ("acme/b", 7): "fine",
    }
    labels, assignee = db.execute(
        "SELECT labels, assignee FROM analytics.issues WHERE number = 3"
    ).fetchone()
    assert labels == ["bug\ufffd"] and assignee == "eve\ufffd"
    letters = db.execute(
        "SELECT source_key, reason FROM ops.dead_letters WHERE stream = %s ORDER BY id",
        (DEAD_LETTER_STREAM,),
    ).fetchall()
    assert [k for k, _ in letters] == ["acme/a#x", "acme/a#None", "acme/a#4", f"acme/a#{2**31}"]
    assert all(r.startswith("acme/a: not a valid issue: ") for _, r in letters)
    # A second identical sync stores nothing twice.
    again = sync(db, stub)
    assert sum(o.written for o in again.outcomes) == 0
    assert db.execute("SELECT count(*) FROM ops.dead_letters").fetchone()[0] == 4


def test_a_project_that_cannot_be_stored_does_not_stop_the_others(db, stub):
    add_projects(db, "acme/a", "acme/b")
    # A row the database refuses (here: a constraint added for the test) fails that project.
    stub.pages["acme/a"] = [[issue(1, "refused by the database")]]
    stub.pages["acme/b"] = [[issue(5, "ok")]]
    db.execute(
        "ALTER TABLE analytics.issues ADD CONSTRAINT test_refuse CHECK (title <> 'refused by"
        " the database')"
    )
    try:
        summary = sync(db, stub)
    finally:
        db.execute("ALTER TABLE analytics.issues DROP CONSTRAINT test_refuse")
    by_repo = {o.repo: o for o in summary.outcomes}
    assert by_repo["acme/a"].status == "failed", by_repo["acme/a"]
    assert "CheckViolation" in by_repo["acme/a"].error
    assert by_repo["acme/b"].status == "synced"
    assert summary.run_status == "partial"
    assert stored(db) == {("acme/b", 5): "ok"}


def test_pagination_is_capped_and_a_link_loop_is_refused(db, stub):
    add_projects(db, "acme/many", "acme/loop", "acme/ok")
    stub.pages["acme/many"] = [[issue(n)] for n in range(1, 6)]  # 5 pages
    stub.pages["acme/loop"] = [[issue(1)]]
    stub.loop_repos.add("acme/loop")
    stub.pages["acme/ok"] = [[issue(1)], [issue(2)]]
    summary = sync(db, stub, max_pages=3)
    by_repo = {o.repo: o for o in summary.outcomes}
    assert "more than 3 pages" in by_repo["acme/many"].error
    assert "GITHUB_MAX_PAGES" in by_repo["acme/many"].error
    assert "loops back" in by_repo["acme/loop"].error
    assert by_repo["acme/ok"].status == "synced" and by_repo["acme/ok"].written == 2
    assert stub.requests <= 3 + 2 + 2
    assert {k[0] for k in stored(db)} == {"acme/ok"}  # nothing half-written
