"""Fuzz: whatever GitHub's issues endpoint answers, every item is stored exactly once or
dead-lettered with a reason, and the sync of the other project is never stopped.

Bounded: ``max_examples`` x one real sync over loopback HTTP into the real PostgreSQL.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from include.analytics_ops import store
from include.analytics_ops.github.client import GitHubClient
from include.analytics_ops.github.sync import (
    DEAD_LETTER_STREAM,
    LabelConvention,
    Project,
    parse_issues,
    sync_projects,
)
from include.analytics_ops.store import RunKey
from tests.fuzz.bounded import bounded
from tests.integration.github_stub import GitHubStub, issue

pytestmark = pytest.mark.fuzz

KEY = RunKey("analytics_nightly", "sync_github", "manual__fuzz")
EXAMPLES = 40

text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), text)
json_values = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(text, kids, max_size=3),
    max_leaves=8,
)  # fmt: skip
valid_ts = st.datetimes().map(lambda d: d.isoformat() + "Z")
timestamps = st.one_of(valid_ts, valid_ts, valid_ts, text, st.integers(), st.none())
labels = st.lists(
    st.one_of(st.fixed_dictionaries({"name": st.one_of(text, json_values)}), json_values),
    max_size=4,
)
plausible = st.builds(
    lambda n, title, state, lab, created, updated, closed, assignee, pr: issue(
        n, title, state=state, labels=lab, created_at=created, updated_at=updated,
        closed_at=closed, assignee=assignee, **({"pull_request": pr} if pr is not None else {}),
    ),
    st.one_of(st.integers(1, 10**6), st.integers(1, 10**6), st.integers(-5, 2**40), text),
    st.one_of(text, text, json_values),
    st.sampled_from(["open", "closed", "open", "closed", "OPEN", "", None]),
    labels,
    st.one_of(valid_ts, valid_ts, valid_ts, valid_ts, timestamps),
    timestamps,
    timestamps,
    st.one_of(st.none(), st.fixed_dictionaries({"login": json_values}), json_values),
    st.one_of(st.none(), st.fixed_dictionaries({"merged_at": timestamps}), json_values),
)  # fmt: skip
# Valid shape, hostile text (NUL, lone surrogates, control characters, odd labels/assignees).
hostile_text = st.builds(
    lambda n, title, lab, assignee, state: issue(
        n, title, labels=lab, assignee={"login": assignee}, state=state
    ),
    st.integers(1, 10**6),
    text,
    labels,
    text,
    st.sampled_from(["open", "closed"]),
)
items = st.lists(st.one_of(hostile_text, plausible, json_values), max_size=6)

STATS = {"examples": 0, "items": 0, "stored": 0, "dead_letters": 0}


@pytest.fixture(scope="module")
def stub():
    with GitHubStub() as s:
        yield s


@bounded(EXAMPLES)
@given(page=items)
def test_every_item_is_stored_once_or_dead_lettered(pg_dsn, stub, page):
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as db:
        db.execute(
            "TRUNCATE analytics.issues, analytics.project_sync_state, analytics.projects,"
            " ops.dead_letters, ops.job_events RESTART IDENTITY CASCADE"
        )
        for repo in ("fuzz/a", "fuzz/b"):
            db.execute(
                "INSERT INTO analytics.projects (repo, name, active) VALUES (%s, %s, true)",
                (repo, repo),
            )
        stub.pages["fuzz/a"] = [page]
        stub.pages["fuzz/b"] = [[issue(1, "control")]]
        with GitHubClient(stub.url, "t0ken", backoff_seconds=0.01) as client:
            summary = sync_projects(db, client, LabelConvention(), key=KEY)
        by_repo = {o.repo: o for o in summary.outcomes}
        a, b = by_repo["fuzz/a"], by_repo["fuzz/b"]
        # the other project is never affected
        assert b.status == "synced" and b.written == 1
        # every item of the page: a stored row, or a dead letter with a reason
        assert a.status == "synced", a.error
        assert a.fetched == len(page)
        records, rejected = parse_issues(Project(0, "fuzz/a", "fuzz/a"), page, LabelConvention())
        numbers = [
            r[0]
            for r in db.execute(
                "SELECT number FROM analytics.issues i JOIN analytics.projects p"
                " USING (project_id) WHERE p.repo = 'fuzz/a'"
            )
        ]
        assert sorted(numbers) == sorted({r.number for r in records})  # each valid one, once
        assert a.rejected == len(rejected)
        letters = db.execute(
            "SELECT count(*), count(*) FILTER (WHERE reason LIKE 'fuzz/a: not a valid issue: %%')"
            " FROM ops.dead_letters WHERE stream = %s",
            (DEAD_LETTER_STREAM,),
        ).fetchone()
        # every rejected item is a dead letter with a reason (identical payloads are one letter)
        assert letters[0] == letters[1] == len({store.payload_fingerprint(p) for p, *_ in rejected})
        rows = (len(numbers),)
        STATS["examples"] += 1
        STATS["items"] += len(page)
        STATS["stored"] += rows[0]
        STATS["dead_letters"] += a.rejected


def test_the_fuzz_reached_both_outcomes(capsys):
    """Runs after the property (file order): the cases really stored and really rejected."""
    with capsys.disabled():
        print(f"\nGitHub issues fuzz: {STATS}")
    assert STATS["examples"] == EXAMPLES
    assert STATS["stored"] > 0 and STATS["dead_letters"] > 0
