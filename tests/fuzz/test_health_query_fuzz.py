"""Fuzz: any query string on the health page's routes is a 200 or a 4xx with a reason, never a
5xx (a bad ``?at=`` used to be a 503 "database unavailable" with a traceback)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from include.analytics_ops.health_page.app import create_app
from tests.fuzz.bounded import bounded

pytestmark = pytest.mark.fuzz

EXAMPLES = 150
STATS: dict[str, int] = {"cases": 0}

aware = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
)
at_values = st.one_of(
    st.text(max_size=80),
    aware.map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    aware.map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.integers().map(str),
    st.sampled_from(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1970-01-08T00:00:00Z"]),
)
queries = st.dictionaries(
    st.one_of(st.just("at"), st.text(max_size=10)), at_values, max_size=3
).map(lambda q: list(q.items()))


@pytest.fixture(scope="module")
def client(pg_dsn):
    return TestClient(create_app(pg_dsn, auth_dependency=None), raise_server_exceptions=False)


@bounded(EXAMPLES)
@given(query=queries, path=st.sampled_from(["/api/health.json", "/"]))
def test_any_query_is_a_200_or_a_4xx_with_a_reason(client, query, path):
    resp = client.get(path, params=query)
    assert resp.status_code < 500, (query, resp.status_code, resp.text[:500])
    if resp.status_code >= 400:
        assert resp.status_code == 400
        assert resp.json()["detail"].startswith("'at' must")
        STATS["400"] = STATS.get("400", 0) + 1
    else:
        assert resp.status_code == 200
        STATS["200"] = STATS.get("200", 0) + 1
    STATS["cases"] += 1


def test_the_fuzz_reached_both_outcomes(capsys):
    with capsys.disabled():
        print(f"\nhealth query fuzz: {STATS}")
    assert STATS["cases"] == EXAMPLES and STATS.get("200") and STATS.get("400")


def test_every_valid_at_in_range_is_served(client):
    for at in (datetime(1970, 1, 8, tzinfo=UTC), datetime.now(UTC) + timedelta(days=365 * 7000)):
        assert client.get("/api/health.json", params={"at": at.isoformat()}).status_code == 200
