"""PostHog's real edges (issue 14): values that would block the stream, bodies that do not decode,
rule changes, same uuid with other content, long throttles and read timeouts.

Real PostgreSQL, the sandbox's Query API on loopback (HogQL on chDB)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from include.analytics_ops import store
from include.analytics_ops.dates import pt_day_bounds
from include.analytics_ops.ingest import STREAM
from include.analytics_ops.ingest.config import IngestConfig
from include.analytics_ops.ingest.loader import DUPLICATE_REASON, Window, ingest_window
from include.analytics_ops.ingest.posthog import PostHogFatalError, ThrottledFor
from include.analytics_ops.ingest.rollups import rollup_window
from tests.integration.test_ingest_loader import (
    KEY,
    WINDOW,
    loaded_uuids,
    make_client,
    purchases,
    source_uuids,
)

CFG = IngestConfig(page_size=97, min_page_size=10)


@pytest.fixture
def conn(db, pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        yield c


def open_dead(conn) -> dict[str, str]:
    return {d["source_key"]: d["reason"] for d in store.open_dead_letters(conn, STREAM)}


def test_revenue_1e15_is_a_dead_letter_and_the_watermark_still_advances(conn, sandbox):
    extra = purchases(WINDOW, 3)
    extra[1]["properties"]["revenue"] = 1e15  # would overflow numeric(14, 2) in daily_metrics
    sandbox.add_events(extra)
    conn.execute(
        "INSERT INTO ops.watermarks (stream, complete_until) VALUES (%s, %s)",
        (STREAM, WINDOW.start),
    )
    cfg = replace(CFG, ingest_start=pt_day_bounds(date(2026, 11, 17))[0])  # daily_metrics too
    with make_client(sandbox.url) as client:
        result = ingest_window(conn, client, WINDOW, cfg)
    rollup = rollup_window(conn, WINDOW.start, WINDOW.end, cfg)
    assert rollup.watermark == WINDOW.end and rollup.era_dates == [date(2026, 11, 17)]
    assert result.dead_lettered == 1
    assert "outside the configured range" in open_dead(conn)[extra[1]["uuid"]]
    assert set(loaded_uuids(conn, WINDOW)) == set(source_uuids(WINDOW, extra)) - {extra[1]["uuid"]}


def test_a_body_that_does_not_decode_costs_one_dead_letter_not_the_window(conn, sandbox):
    extra = purchases(WINDOW, 40)
    extra[23]["distinct_id"] = "seeker-\ud800"  # a lone surrogate: not valid UTF-8 on the wire
    sandbox.add_events(extra)
    with make_client(sandbox.url, max_attempts=3) as client:
        result = ingest_window(conn, client, WINDOW, CFG, key=KEY)
    bad = extra[23]["uuid"]
    assert result.status == "partial" and result.dead_lettered == 1
    assert open_dead(conn)[bad].startswith("undecodable response body")
    assert set(loaded_uuids(conn, WINDOW)) == set(source_uuids(WINDOW, extra)) - {bad}
    assert result.fetched == len(source_uuids(WINDOW, extra))


def test_reprocess_after_a_rule_change_leaves_each_uuid_in_exactly_one_place(conn, sandbox):
    extra = purchases(WINDOW, 30)
    for i, event in enumerate(extra):
        if i % 3 == 0:
            del event["properties"]["order_id"]  # rejected by the first rules only
        if i % 5 == 0:
            event["properties"]["currency"] = "USD"
    sandbox.add_events(extra)
    first = replace(CFG, required={"purchase": ("revenue", "order_id")})
    second = replace(CFG, required={"purchase": ("revenue", "currency")})
    with make_client(sandbox.url) as client:
        ingest_window(conn, client, WINDOW, first)
        ingest_window(conn, client, WINDOW, second, reprocess=True)
    loaded = set(loaded_uuids(conn, WINDOW))
    dead = open_dead(conn)
    for i, event in enumerate(extra):
        uid = event["uuid"]
        assert (uid in loaded) != (uid in dead), (i, uid in loaded, dead.get(uid))
        assert (uid in loaded) == (i % 5 == 0), i
    resolved = conn.execute(
        "SELECT count(*) FROM ops.dead_letters WHERE resolution = 'reloaded: now valid'"
    ).fetchone()[0]
    assert resolved == sum(1 for i in range(30) if i % 3 == 0 and i % 5 == 0)


def _versions(window_a: Window, window_b: Window) -> list[dict]:
    base = {
        "uuid": "01930000-0000-7000-8000-0000000000dd",
        "event": "purchase",
        "distinct_id": "seeker-dup",
        "timestamp": (window_a.start + timedelta(minutes=5)).isoformat(),
    }
    return [
        {
            **base,
            "created_at": (window_a.start + timedelta(minutes=6)).isoformat(),
            "properties": {"revenue": 10, "order_id": "o-dup"},
        },
        {
            **base,
            "created_at": (window_b.start + timedelta(minutes=6)).isoformat(),
            "properties": {"revenue": 99, "order_id": "o-dup"},
        },
    ]


@pytest.mark.parametrize("order", ["ab", "ba"])
def test_same_uuid_other_content_has_one_winner_whatever_the_window_order(conn, sandbox, order):
    a = WINDOW
    b = Window(a.end, a.end + timedelta(hours=1))
    versions = _versions(a, b)
    sandbox.add_events(versions)
    windows = {"a": a, "b": b}
    with make_client(sandbox.url) as client:
        for name in order:
            ingest_window(conn, client, windows[name], CFG)
    row = conn.execute(
        "SELECT created_at, properties ->> 'revenue' FROM analytics.posthog_events WHERE uuid = %s",
        (versions[0]["uuid"],),
    ).fetchall()
    # The version PostHog processed first wins, in both orders.
    assert row == [(datetime.fromisoformat(versions[0]["created_at"]), "10")]
    dead = store.open_dead_letters(conn, STREAM)
    assert [(d["source_key"], d["reason"]) for d in dead] == [
        (versions[0]["uuid"], DUPLICATE_REASON)
    ]
    assert json.loads(dead[0]["payload"]["properties"])["revenue"] == 99


def test_a_429_expected_in_1200_seconds_completes_without_a_failed_attempt(conn, sandbox):
    sandbox.set_faults(posthog_429_burst=1, posthog_throttle_seconds=1200)
    deadline = time.monotonic() + 60  # the attempt's budget is far shorter than the hint
    client = make_client(sandbox.url, max_inline_wait=120)
    with client, pytest.raises(ThrottledFor) as err:
        ingest_window(conn, client, WINDOW, CFG, key=KEY, deadline=deadline)
    assert 1200 <= err.value.seconds <= 1202
    assert conn.execute("SELECT status FROM ops.job_runs").fetchall() == [("running",)]
    # The operator waits in the triggerer, then resumes the same try (execute_settled).
    with make_client(sandbox.url, max_inline_wait=120) as client:
        result = ingest_window(conn, client, WINDOW, CFG, key=KEY, deadline=deadline)
    assert result.loaded == len(source_uuids(WINDOW))
    runs = conn.execute("SELECT try_number, status FROM ops.job_runs").fetchall()
    assert runs == [(1, "completed")]
    assert conn.execute(
        "SELECT count(*) FROM ops.job_events WHERE event_type = 'rate_limited'"
    ).fetchone() == (1,)


def test_a_read_timeout_shrinks_the_page(conn, sandbox):
    # 1 s per 1000 rows of LIMIT: 2000 rows take 2 s > the 1.2 s read timeout, 500 rows 0.5 s.
    sandbox.set_faults(posthog_latency_per_1000_rows_ms=1000)
    cfg = IngestConfig(page_size=2000, min_page_size=250, request_timeout=1.2, max_attempts=2)
    with make_client(sandbox.url, timeout=cfg.request_timeout, max_attempts=2) as client:
        result = ingest_window(conn, client, WINDOW, cfg)
        assert client.stats.page_shrinks >= 1
    assert sorted(loaded_uuids(conn, WINDOW)) == sorted(source_uuids(WINDOW))
    assert result.status == "completed"
    assert datetime.now(UTC) > WINDOW.end


def scheduled(window: Window, try_number: int = 1) -> store.RunKey:
    return store.RunKey(
        "analytics_hourly",
        "ingest_events",
        f"scheduled__{window.start:%Y%m%dT%H}",
        try_number=try_number,
        run_type="scheduled",
    )


def manual(window: Window) -> store.RunKey:
    return store.RunKey("analytics_hourly", "ingest_events", f"manual__{window.start:%H}")


def run(conn, url, window, cfg, key):
    with make_client(url) as client:
        ingest_window(conn, client, window, cfg, key=key)
    return rollup_window(conn, window.start, window.end, cfg)


def test_a_manual_run_of_an_old_window_changes_no_legacy_daily_metrics_row(conn, sandbox):
    legacy = {date(2026, 11, 15): 111, date(2026, 11, 16): 222}
    for day, sessions in legacy.items():
        conn.execute(
            "INSERT INTO analytics.daily_metrics (metric_date, revenue, orders, sessions,"
            " conversions) VALUES (%s, 1.00, 1, %s, 1)",
            (day, sessions),
        )
    late = purchases(Window(WINDOW.end, WINDOW.end + timedelta(hours=1)), 2)
    for event in late:  # arrive in the second scheduled window, happened on legacy 11-15
        event["timestamp"] = "2026-11-15T20:00:00+00:00"
    sandbox.add_events(late)
    old = Window(datetime(2026, 11, 14, 18, tzinfo=UTC), datetime(2026, 11, 14, 19, tzinfo=UTC))
    second = Window(WINDOW.end, WINDOW.end + timedelta(hours=1))
    run(conn, sandbox.url, WINDOW, CFG, scheduled(WINDOW))  # the stream starts here
    run(conn, sandbox.url, old, CFG, manual(old))  # someone reloads an old hour by hand
    result = run(conn, sandbox.url, second, CFG, scheduled(second))
    assert date(2026, 11, 15) in result.dates  # the late purchases touched the legacy day ...
    rows = dict(
        conn.execute(
            "SELECT metric_date, sessions FROM analytics.daily_metrics WHERE metric_date < %s",
            (date(2026, 11, 17),),
        ).fetchall()
    )
    assert rows == legacy  # ... and no legacy row was overwritten
    assert conn.execute("SELECT started_at FROM ops.stream_starts").fetchone() == (WINDOW.start,)


def test_a_failed_first_window_keeps_the_watermark_before_it(conn, sandbox):
    second = Window(WINDOW.end, WINDOW.end + timedelta(hours=1))
    sandbox.set_faults(posthog_status_sequence=[400])  # the first window fails at once
    with make_client(sandbox.url) as client, pytest.raises(PostHogFatalError):
        ingest_window(conn, client, WINDOW, CFG, key=scheduled(WINDOW))
    result = run(conn, sandbox.url, second, CFG, scheduled(second))
    assert result.watermark is None or result.watermark <= WINDOW.start
    # An old manual window completed meanwhile does not anchor the watermark either.
    old = Window(datetime(2026, 11, 14, 18, tzinfo=UTC), datetime(2026, 11, 14, 19, tzinfo=UTC))
    run(conn, sandbox.url, old, CFG, manual(old))
    # Once the first window is retried and done, the watermark runs through both.
    assert run(conn, sandbox.url, WINDOW, CFG, scheduled(WINDOW, 2)).watermark == second.end
    statuses = conn.execute(
        "SELECT window_start, status FROM ops.job_runs WHERE run_id LIKE 'scheduled__%%'"
        " ORDER BY id"
    ).fetchall()
    assert statuses == [(WINDOW.start, "failed"), (second.start, "completed"),
                        (WINDOW.start, "completed")]  # fmt: skip


def late_rows(window: Window, n: int, visible_after: timedelta) -> list[dict]:
    """Events captured in ``window`` that reach ClickHouse ``visible_after`` its end."""
    out = purchases(window, n)
    for i, event in enumerate(out):
        event["uuid"] = f"01930000-0000-7000-a000-{i:012x}"
        event["visible_at"] = (window.end + visible_after).isoformat()
    return out


def test_rows_visible_after_the_first_read_are_loaded_exactly_once_by_reconciliation(conn, sandbox):
    from include.analytics_ops.ingest.reconcile import reconcile
    from include.analytics_ops.nightly.freshness import evaluate_freshness

    late = late_rows(WINDOW, 3, timedelta(minutes=40))
    sandbox.add_events(late)
    cfg = replace(CFG, reconcile_alert_events=2)
    sandbox.set_faults(posthog_now=(WINDOW.end + cfg.settle).isoformat())  # the one read
    run(conn, sandbox.url, WINDOW, cfg, scheduled(WINDOW))
    assert not {e["uuid"] for e in late} & set(loaded_uuids(conn, WINDOW))
    key = store.RunKey("analytics_hourly", "reconcile_late_arrivals", "scheduled__r")
    for hours in (1, 24, 25):  # +1 h finds them, +24 h and a later run find nothing new
        now = WINDOW.end + timedelta(hours=hours)
        sandbox.set_faults(posthog_now=now.isoformat())
        with make_client(sandbox.url) as client:
            reconcile(conn, client, cfg, now, key=replace(key, run_id=f"r{hours}"))
    loaded = loaded_uuids(conn, WINDOW)
    assert sorted(loaded) == sorted(source_uuids(WINDOW, late))  # each exactly once
    checks = conn.execute(
        "SELECT extract(epoch FROM check_offset) / 3600, posthog_count - held_count, loaded"
        " FROM ops.posthog_reconciliations WHERE kind = 'window' ORDER BY check_offset"
    ).fetchall()
    assert [(int(h), gained, n) for h, gained, n in checks] == [(1, 3, 3), (24, 0, 0)]
    runs = conn.execute(
        "SELECT run_id, status, records_out FROM ops.job_runs"
        " WHERE task_id = 'reconcile_late_arrivals' ORDER BY id"
    ).fetchall()
    assert runs == [("r1", "completed", 3), ("r24", "completed", 0), ("r25", "completed", 0)]
    # The late purchases are in the rollups of their day, and an alert said so (3 > 2).
    orders = conn.execute(
        "SELECT count(*) FROM analytics.user_daily_stats WHERE user_id LIKE 'seeker-buyer-%%'"
    ).fetchone()
    assert orders == (3,)
    alert = conn.execute("SELECT title, state FROM ops.alerts").fetchall()
    assert len(alert) == 1 and "late events: 3" in alert[0][0] and alert[0][1] == "open"
    # complete_until promises "read once"; the gate reads the reconciled watermark.
    reconciled = store.read_watermark(conn, "posthog_reconciled")
    assert reconciled == WINDOW.end == store.read_watermark(conn, STREAM)
    assert evaluate_freshness(conn, date(2026, 11, 17)).stream == "posthog_reconciled"


def test_an_event_30_days_older_than_its_arrival_is_loaded_or_reported_never_absent(conn, sandbox):
    from include.analytics_ops.ingest.reconcile import reconcile

    old, ancient = purchases(WINDOW, 2)
    old["timestamp"] = (datetime.fromisoformat(old["created_at"]) - timedelta(days=30)).isoformat()
    ancient["timestamp"] = "2026-01-02T12:00:00+00:00"  # beyond the 90-day horizon
    sandbox.add_events([old, ancient])
    run(conn, sandbox.url, WINDOW, CFG, scheduled(WINDOW))
    assert old["uuid"] not in loaded_uuids(conn, WINDOW)  # the window's bound cannot see it
    day_end = datetime(2026, 11, 18, tzinfo=UTC)
    with make_client(sandbox.url) as client:
        result = reconcile(conn, client, replace(CFG, reconcile_offsets=()), day_end + CFG.settle)
    assert old["uuid"] in loaded_uuids(conn, WINDOW)
    sweep = [c for c in result.checks if c.kind == "old_events" and c.window.end == day_end]
    assert [(c.loaded, c.beyond_horizon) for c in sweep] == [(1, 1)]
    # Its old day's rollups include it; the older one was reported, not dropped silently.
    assert conn.execute(
        "SELECT purchases FROM analytics.user_daily_stats WHERE user_id = %s AND stat_date = %s",
        (old["distinct_id"], date(2026, 10, 18)),
    ).fetchone() == (1,)
    assert conn.execute(
        "SELECT beyond_horizon FROM ops.posthog_reconciliations WHERE kind = 'old_events'"
        " AND window_end = %s",
        (day_end,),
    ).fetchone() == (1,)
    assert (
        "older than the sweep horizon" in conn.execute("SELECT title FROM ops.alerts").fetchone()[0]
    )
