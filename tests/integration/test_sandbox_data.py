"""In-process properties of the sandbox's sample data and its HogQL on chDB (no HTTP, no DB)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date

import pytest

from include.sandbox import hogql
from include.sandbox.constants import DEMO_DAY, PLANTED_ANOMALIES
from include.sandbox.data import daily_metrics_for, sample_clients
from include.sandbox.events import (
    CREATED_MS,
    CREATED_US,
    EVENT,
    PROPS,
    TS_US,
    UUID,
    SyntheticHour,
    generate_day,
)
from include.sandbox.server import Sandbox
from include.sandbox.timeutil import pt_day_bounds_us

REQUIRED = {
    "$pageview": {"$session_id", "user_type"},
    "listing_viewed": {"listing_id", "$session_id", "user_type"},
    "listing_saved": {"listing_id"},
    "lead_submitted": {"listing_id", "seeker_id"},
    "purchase": {"revenue", "order_id"},
}


@pytest.mark.parametrize(
    "day",
    [
        date(2026, 3, 8),  # spring forward: 23-hour PT day
        date(2026, 11, 1),  # fall back: 25-hour PT day
        *sorted(PLANTED_ANOMALIES),
        DEMO_DAY,
    ],
)
def test_generated_day_matches_its_metrics_and_taxonomy(day):
    rows = generate_day(day, 7)
    m = daily_metrics_for(day, 7)
    lo, hi = pt_day_bounds_us(day)
    sessions, conversions, orders, cents = set(), set(), 0, 0
    for r in rows:
        assert lo <= r[TS_US] < hi
        assert r[CREATED_US] >= r[TS_US] and r[CREATED_MS] == r[CREATED_US] // 1000
        props = json.loads(r[PROPS])
        assert REQUIRED[r[EVENT]] <= props.keys(), (r[EVENT], props)
        if "$session_id" in props:
            sessions.add(props["$session_id"])
        if r[EVENT] == "purchase":
            orders += 1
            cents += round(props["revenue"] * 100)
            if "$session_id" in props:
                conversions.add(props["$session_id"])
    assert (len(sessions), orders, len(conversions), cents) == (
        m.sessions,
        m.orders,
        m.conversions,
        m.revenue_cents,
    )
    assert len({r[UUID] for r in rows}) == len(rows)
    assert rows == sorted(rows)
    if m.sessions:
        assert 4 <= len(rows) / m.sessions <= 6


def test_generation_is_deterministic_per_seed():
    assert generate_day(date(2026, 11, 18), 7) == generate_day(date(2026, 11, 18), 7)
    assert generate_day(date(2026, 11, 18), 8)[:5] != generate_day(date(2026, 11, 18), 7)[:5]


def test_arrival_lag_late_events_and_ties():
    rows = generate_day(date(2026, 11, 17), 7)
    lags = sorted((r[CREATED_US] - r[TS_US]) / 1e6 for r in rows)
    p95 = lags[int(len(lags) * 0.95)]
    assert 20 <= p95 <= 120
    late = sum(1 for lag in lags if lag >= 86400) / len(lags)
    assert 0.003 <= late <= 0.03
    assert Counter(r[CREATED_MS] for r in rows).most_common(1)[0][1] >= 10


def test_synthetic_hour_is_sorted_and_indexable():
    hour = SyntheticHour(1_795_168_800_000_000, 10_000, 7)
    rows = list(hour.rows(0, 10_000))
    assert rows == sorted(rows)
    assert [hour.key(i) for i in (0, 4_999, 9_999)] == [
        (rows[i][CREATED_MS], rows[i][UUID]) for i in (0, 4_999, 9_999)
    ]
    assert all(700 <= len(r[PROPS]) <= 850 for r in rows[:100])


def test_clients_pattern():
    clients = sample_clients(24)
    assert [c[0] for c in clients[:2]] == ["client-001", "client-002"]
    assert Counter(c[2] for c in clients) == {"connected": 18, "disconnected": 4, "error": 2}


@pytest.fixture(scope="module")
def app():
    return Sandbox(7)


def run(app, text, values=None):
    result = app.posthog.execute(hogql.translate(text, values or {}), app.faults_snapshot())
    return json.loads(bytes(result["results"]))


W = {"a": "2026-11-20T03:00:00Z", "b": "2026-11-20T04:00:00Z"}


def test_hogql_alias_tuple_and_in(app):
    rows = run(
        app,
        "SELECT e.uuid, toUnixTimestamp64Milli(e.created_at) AS ms, e.event FROM events AS e"
        " WHERE e.created_at >= {a} AND e.created_at < {b} AND e.event IN {kinds}"
        " ORDER BY ms, e.uuid LIMIT 1000",
        {**W, "kinds": ["purchase", "listing_saved"]},
    )
    assert rows and {r[2] for r in rows} <= {"purchase", "listing_saved"}
    middle = rows[len(rows) // 2]
    after = run(
        app,
        "SELECT uuid FROM events WHERE created_at < {b}"
        " AND (toUnixTimestamp64Milli(created_at), uuid) >= ({ms}, {u})"
        " AND event IN ('purchase', 'listing_saved')"
        " ORDER BY toUnixTimestamp64Milli(created_at), uuid LIMIT 1000",
        {**W, "ms": middle[1], "u": middle[0]},
    )
    assert [r[0] for r in after] == [r[0] for r in rows[len(rows) // 2 :]]


def test_hogql_descending_order_and_datetime_arithmetic(app):
    rows = run(
        app,
        "SELECT timestamp, created_at FROM events"
        " WHERE timestamp >= toDateTime({a}) - INTERVAL 30 MINUTE AND created_at >= {a}"
        " AND created_at < {b} ORDER BY timestamp DESC LIMIT 50000",
        W,
    )
    assert [r[0] for r in rows] == sorted((r[0] for r in rows), reverse=True)
    assert all(r[0] >= "2026-11-20T02:30:00" for r in rows)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT uuid FROM events WHERE created_at >= {a} LIMIT {n}", "Placeholder {n}"),
        ("SELECT uuid FROM events WHERE created_at >= 'not a date'", "Cannot parse"),
        (
            "SELECT uuid FROM events WHERE created_at >= {a} AND uuid = 'x'",
            "Cannot parse uuid",
        ),  # ClickHouse: CANNOT_PARSE_UUID
        ("SELECT uuid FROM events WHERE created_at >= {a} AND event = 1", "no supertype"),
        ("SELECT nope FROM events WHERE created_at >= {a}", "Unable to resolve field"),
        ("SELECT uuid FROM events WHERE created_at >= {a} AND event LIKE 'x%'", "does not support"),
        ("SELECT uuid FROM events WHERE uuid IN (SELECT uuid FROM events)", "does not support"),
        ("SELECT DISTINCT event FROM events WHERE created_at >= {a}", "does not support"),
        ("SELECT uuid FROM events e JOIN persons p ON 1", "does not support"),
        ("SELECT uuid FROM events WHERE created_at >= {a} ORDER BY 1 NULLS FIRST", "not support"),
    ],
)
def test_hogql_refuses_what_it_cannot_answer(app, text, message):
    with pytest.raises(hogql.HogQLError) as err:
        run(app, text, W)
    assert message in str(err.value)
