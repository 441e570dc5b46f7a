"""Rollups, ingest era, watermark and health rules against real PostgreSQL and the sandbox.

The expected numbers come from the sandbox's deterministic generator (``EventStore``) read in this
process, aggregated here in Python — independent of the SQL under test.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from include.analytics_ops import store
from include.analytics_ops.dates import pt_date, pt_day_bounds
from include.analytics_ops.health_page.queries import collect_health
from include.analytics_ops.ingest import STREAM
from include.analytics_ops.ingest.config import IngestConfig
from include.analytics_ops.ingest.loader import Window, ingest_window
from include.analytics_ops.ingest.posthog import PostHogClient
from include.analytics_ops.ingest.rollups import rollup_window
from include.sandbox import events as ev
from include.sandbox.constants import DEFAULT_SEED, POSTHOG_API_KEY, POSTHOG_PROJECT_ID
from include.sandbox.timeutil import dt_to_us, us_to_dt

HOUR = timedelta(hours=1)
W = Window(datetime(2026, 11, 17, 18, tzinfo=UTC), datetime(2026, 11, 17, 19, tzinfo=UTC))
OLD_DAY = date(2026, 11, 14)  # three days before W
W_OLD = Window(datetime(2026, 11, 14, 18, tzinfo=UTC), datetime(2026, 11, 14, 19, tzinfo=UTC))
ROLLUP_TABLES = {
    "listing_daily_stats": "listing_id, stat_date, development_id, views, unique_viewers, saves,"
    " leads",
    "user_daily_stats": "user_id, user_type, stat_date, events, page_views, sessions,"
    " listings_viewed, leads, purchases",
    "development_daily_stats": "development_id, stat_date, views, unique_viewers, leads",
    "leads": "listing_id, seeker_id, development_id, first_seen_at, last_seen_at, lead_count",
    "daily_metrics": "metric_date, revenue, orders, sessions, conversions, ideas_total",
    "posthog_events": "uuid, properties",
}


@pytest.fixture
def conn(db, pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        yield c


def run_window(conn, url, window, cfg, **kwargs):
    with PostHogClient(url, POSTHOG_API_KEY, POSTHOG_PROJECT_ID) as client:
        ingest_window(conn, client, window, cfg, **kwargs)
    return rollup_window(conn, window.start, window.end, cfg)


def digest(conn) -> dict[str, str]:
    return {
        t: conn.execute(
            f"SELECT count(*) || ':' || COALESCE(md5(string_agg(x::text, '|' ORDER BY x::text)),"
            f" '') FROM (SELECT {cols} FROM analytics.{t}) x"
        ).fetchone()[0]
        for t, cols in ROLLUP_TABLES.items()
    }


def generated(created_lo: datetime, created_hi: datetime) -> list[tuple]:
    lo, hi = dt_to_us(created_lo), dt_to_us(created_hi)
    rows = ev.EventStore(DEFAULT_SEED).candidates(
        (lo, hi), (lo - 7 * 86_400 * 10**6, hi), now_us=hi + 10**12, events_per_hour=None
    )
    return [r for r in rows if lo <= r[ev.CREATED_US] < hi]


def traffic(rows: list[tuple], day: date) -> dict[str, object]:
    """daily_metrics traffic of ``day`` from raw rows, per the documented mapping."""
    sessions, converting, orders, revenue = set(), set(), 0, Decimal("0")
    for r in rows:
        if pt_date(us_to_dt(r[ev.TS_US])) != day:
            continue
        props = json.loads(r[ev.PROPS])
        sid = props.get("$session_id")
        if sid:
            sessions.add(sid)
        if r[ev.EVENT] == "purchase":
            orders += 1
            revenue += Decimal(str(props["revenue"]))
            if sid:
                converting.add(sid)
    return {
        "sessions": len(sessions),
        "conversions": len(converting),
        "orders": orders,
        "revenue": revenue,
    }


def metrics(conn, day: date) -> dict[str, object] | None:
    row = conn.execute(
        "SELECT sessions, conversions, orders, revenue FROM analytics.daily_metrics"
        " WHERE metric_date = %s",
        (day,),
    ).fetchone()
    return (
        dict(zip(("sessions", "conversions", "orders", "revenue"), row, strict=True))
        if row
        else None
    )


LATE = [
    {
        "uuid": "01930000-0000-7000-8000-00000000000a",
        "event": "listing_viewed",
        "distinct_id": "seeker-late-1",
        "timestamp": "2026-11-14T18:30:00.000Z",
        "created_at": "2026-11-17T18:20:00.000Z",
        "properties": {
            "listing_id": "lst-late-1",
            "development_id": "dev-late",
            "$session_id": "s-late-1",
            "user_type": "seeker",
        },
    },
    {
        "uuid": "01930000-0000-7000-8000-00000000000b",
        "event": "purchase",
        "distinct_id": "seeker-late-1",
        "timestamp": "2026-11-14T18:31:00.000Z",
        "created_at": "2026-11-17T18:20:00.000Z",
        "properties": {
            "revenue": 123.45,
            "order_id": "ord-late-1",
            "currency": "USD",
            "$session_id": "s-late-1",
            "user_type": "seeker",
        },
    },
]


def test_a_late_event_changes_its_old_day_by_exactly_itself(conn, sandbox):
    cfg = IngestConfig(page_size=500, ingest_start=pt_day_bounds(OLD_DAY)[0])
    run_window(conn, sandbox.url, W_OLD, cfg)
    before = metrics(conn, OLD_DAY)
    before_listings = dict(
        conn.execute(
            "SELECT listing_id, views FROM analytics.listing_daily_stats WHERE stat_date = %s",
            (OLD_DAY,),
        ).fetchall()
    )
    assert before and before["orders"] > 0

    sandbox.add_events(LATE)
    result = run_window(conn, sandbox.url, W, cfg)
    assert OLD_DAY in result.dates and date(2026, 11, 17) in result.dates
    assert OLD_DAY in result.era_dates

    # Independent oracle: what else in W happened on OLD_DAY (the sandbox's own late sessions).
    natural = traffic(generated(W.start, W.end), OLD_DAY)
    after = metrics(conn, OLD_DAY)
    assert after["orders"] - before["orders"] == natural["orders"] + 1
    assert after["revenue"] - before["revenue"] == natural["revenue"] + Decimal("123.45")
    assert after["sessions"] - before["sessions"] == natural["sessions"] + 1
    assert after["conversions"] - before["conversions"] == natural["conversions"] + 1

    late_listing = conn.execute(
        "SELECT development_id, views, unique_viewers FROM analytics.listing_daily_stats"
        " WHERE listing_id = 'lst-late-1' AND stat_date = %s",
        (OLD_DAY,),
    ).fetchone()
    assert late_listing == ("dev-late", 1, 1)
    user = conn.execute(
        "SELECT user_type, events, sessions, listings_viewed, purchases FROM"
        " analytics.user_daily_stats WHERE user_id = 'seeker-late-1' AND stat_date = %s",
        (OLD_DAY,),
    ).fetchone()
    assert user == ("seeker", 2, 1, 1, 1)
    # Listings no event of W touched on OLD_DAY keep their numbers.
    touched = {
        json.loads(r[ev.PROPS]).get("listing_id")
        for r in generated(W.start, W.end)
        if pt_date(us_to_dt(r[ev.TS_US])) == OLD_DAY
    }
    after_listings = dict(
        conn.execute(
            "SELECT listing_id, views FROM analytics.listing_daily_stats WHERE stat_date = %s",
            (OLD_DAY,),
        ).fetchall()
    )
    for listing, views in before_listings.items():
        if listing not in touched:
            assert after_listings[listing] == views, listing


def test_days_before_the_ingest_era_keep_their_preloaded_daily_metrics(conn, sandbox):
    conn.execute(
        "INSERT INTO analytics.daily_metrics (metric_date, revenue, orders, sessions, conversions,"
        " ideas_total) VALUES (%s, 1.00, 1, 999, 1, 42), ('2026-11-17', 2.00, 2, 888, 2, 43)",
        (OLD_DAY,),
    )
    sandbox.add_events(LATE)
    # Era starts at 11-17 00:00 PT (08:00 UTC): 11-17 is recomputed, 11-14 is not.
    cfg = IngestConfig(page_size=500, ingest_start=pt_day_bounds(date(2026, 11, 17))[0])
    result = run_window(conn, sandbox.url, W, cfg)
    assert result.era_dates == [date(2026, 11, 17)]
    assert metrics(conn, OLD_DAY) == {
        "sessions": 999,
        "conversions": 1,
        "orders": 1,
        "revenue": Decimal("1.00"),
    }
    assert metrics(conn, date(2026, 11, 17)) == traffic(
        generated(W.start, W.end), date(2026, 11, 17)
    )
    ideas = conn.execute(
        "SELECT ideas_total FROM analytics.daily_metrics ORDER BY metric_date"
    ).fetchall()
    assert ideas == [(42,), (43,)]  # other columns are never touched
    # ... but the late events still reach the entity rollups of the old day.
    assert conn.execute(
        "SELECT views FROM analytics.listing_daily_stats WHERE listing_id = 'lst-late-1'"
    ).fetchone() == (1,)

    # Without a setting, the era starts at the earliest checkpointed window (W.start = 18:00
    # UTC, after 11-17 00:00 PT): no daily_metrics row is rewritten.
    conn.execute(
        "UPDATE analytics.daily_metrics SET sessions = 777 WHERE metric_date = '2026-11-17'"
    )
    again = rollup_window(conn, W.start, W.end, replace(cfg, ingest_start=None))
    assert again.era_dates == []
    assert metrics(conn, date(2026, 11, 17))["sessions"] == 777


def test_any_order_rerun_or_reprocess_gives_the_same_tables_and_watermark(conn, sandbox):
    a = Window(datetime(2026, 11, 18, 8, tzinfo=UTC), datetime(2026, 11, 18, 9, tzinfo=UTC))
    b, c = Window(a.end, a.end + HOUR), Window(a.end + HOUR, a.end + 2 * HOUR)
    cfg = IngestConfig(page_size=300)
    conn.execute(
        "INSERT INTO ops.watermarks (stream, complete_until) VALUES (%s, %s)", (STREAM, a.start)
    )
    for w in (a, b, c):
        assert run_window(conn, sandbox.url, w, cfg).watermark == w.end
    clean = digest(conn)
    # daily_metrics of 11-18 (era: 11-18 00:00 PT = a.start) against the independent count.
    assert metrics(conn, date(2026, 11, 18)) == traffic(
        generated(a.start, c.end), date(2026, 11, 18)
    )

    conn.execute(
        "TRUNCATE analytics.posthog_events, analytics.listing_daily_stats,"
        " analytics.user_daily_stats, analytics.development_daily_stats, analytics.leads,"
        " analytics.daily_metrics, ops.checkpoints, ops.watermarks"
    )
    conn.execute(
        "INSERT INTO ops.watermarks (stream, complete_until) VALUES (%s, %s)", (STREAM, a.start)
    )
    assert run_window(conn, sandbox.url, c, cfg).watermark == a.start  # gap: a, b missing
    assert run_window(conn, sandbox.url, a, cfg).watermark == a.end
    assert run_window(conn, sandbox.url, a, cfg, reprocess=True).watermark == a.end
    assert run_window(conn, sandbox.url, b, cfg).watermark == c.end  # contiguous through c
    run_window(conn, sandbox.url, b, cfg)  # plain rerun
    rollup_window(conn, c.start, c.end, cfg)
    assert digest(conn) == clean
    assert store.read_watermark(conn, STREAM) == c.end


def test_rollups_refuse_an_unfinished_window(conn, sandbox):
    from include.analytics_ops.ingest.rollups import RollupNotReady

    with pytest.raises(RollupNotReady, match="not fully ingested"):
        rollup_window(conn, W.start, W.end, IngestConfig())


def _job(conn, status, started, *, finished=None, hits=0, task="ingest_events", run="r"):
    conn.execute(
        "INSERT INTO ops.job_runs (dag_id, task_id, run_id, status, started_at, finished_at,"
        " records_in, error_count, stats) VALUES ('analytics_hourly', %s, %s, %s, %s, %s, 100, 2,"
        " %s)",
        (
            task,
            run,
            status,
            started,
            finished,
            store.jsonb({"posthog_rate_limit_hits": hits, "posthog_api_calls": 5}),
        ),
    )


def test_health_rules_find_stuck_failed_missing_runs_and_rate_limits(conn):
    """The ingest's fail-safe rules as the health page applies them (one implementation)."""
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)

    def hourly() -> tuple[dict, dict]:
        page = collect_health(conn, now, expected_dags=["analytics_hourly"])
        job = next(j for j in page["jobs"] if j.get("dag_id") == "analytics_hourly")
        return job, page["ingest"]

    job, ingest = hourly()
    assert job["last_run"] is None and job["last_success"] is None  # never ran: listed, no run
    _job(conn, "running", now - timedelta(hours=3), run="stuck")
    _job(conn, "running", now - timedelta(minutes=20), run="fresh")
    _job(conn, "failed", now - timedelta(hours=5), finished=now - timedelta(hours=5), run="f1")
    _job(conn, "failed", now - timedelta(hours=30), finished=now - timedelta(hours=30), run="f0")
    _job(
        conn,
        "completed",
        now - timedelta(hours=3),
        finished=now - timedelta(hours=3),
        hits=7,
        run="ok",
    )
    job, ingest = hourly()
    assert [r["run_id"] for r in job["stuck"]] == ["stuck"]
    assert job["last_failure"]["run_id"] == "f1" and job["failed_7d"] == 2
    assert job["last_success"] == now - timedelta(hours=3)
    assert ingest["rate_limit_hits_24h"] == 7 and ingest["api_calls_24h"] == 5 * 4
    assert job["runs_7d"] == 3 and job["running"] == 2  # finished attempts; 2 still running
    _job(
        conn,
        "partial",
        now - timedelta(minutes=50),
        finished=now - timedelta(minutes=40),
        run="new",
    )
    job, _ = hourly()
    assert job["partial_7d"] == 1 and job["runs_7d"] == 4
    assert len(job["stuck"]) == 1
