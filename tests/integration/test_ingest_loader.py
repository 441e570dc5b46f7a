"""The PostHog ingest against real PostgreSQL and the sandbox's Query API on loopback.

Ground truth comes from the sandbox's own deterministic event generator (``EventStore``), read in
this process — independent of the HTTP path and of the loader under test.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from include.analytics_ops import store
from include.analytics_ops.ingest import STREAM
from include.analytics_ops.ingest.config import IngestConfig
from include.analytics_ops.ingest.loader import Window, ingest_window
from include.analytics_ops.ingest.posthog import PostHogClient, PostHogFatalError
from include.analytics_ops.ingest.replay import replay_dead_letters
from include.sandbox import events as ev
from include.sandbox.constants import DEFAULT_SEED, POSTHOG_API_KEY, POSTHOG_PROJECT_ID
from include.sandbox.timeutil import dt_to_us

REPO_ROOT = Path(__file__).resolve().parents[2]
# 10:00–11:00 PT on 2026-11-17: a busy hour of the sandbox's generated traffic.
WINDOW = Window(datetime(2026, 11, 17, 18, tzinfo=UTC), datetime(2026, 11, 17, 19, tzinfo=UTC))
KEY = store.RunKey("analytics_hourly", "ingest_events", "manual__test", try_number=1)


def source_uuids(window: Window, extra: list[dict] = ()) -> list[str]:
    """Every uuid the sandbox serves for the window: generated rows + injected ones."""
    lo, hi = dt_to_us(window.start), dt_to_us(window.end)
    t_lo, t_hi = lo - 7 * 86_400_000_000, hi + 86_400_000_000
    rows = ev.EventStore(DEFAULT_SEED).candidates(
        (lo, hi), (t_lo, t_hi), now_us=hi + 10**12, events_per_hour=None
    )
    out = [r[ev.UUID] for r in rows if lo <= r[ev.CREATED_US] < hi and t_lo <= r[ev.TS_US] < t_hi]
    return out + [e["uuid"] for e in extra]


def tied_events(window: Window, n: int = 300) -> list[dict]:
    """``n`` events sharing one created_at AND one timestamp (a backlog flush), so any small page
    size puts a page boundary inside the tie."""
    at = window.start + timedelta(minutes=17, microseconds=123_000)
    return [
        {
            "uuid": f"01900000-0000-7000-8000-{i:012x}",
            "event": "listing_viewed",
            "distinct_id": f"seeker-tie-{i % 7}",
            "timestamp": at.isoformat(),
            "created_at": at.isoformat(),
            "properties": {"listing_id": f"lst-tie-{i % 5}", "$session_id": "s-tie"},
        }
        for i in range(n)
    ]


def make_client(url: str, **kwargs) -> PostHogClient:
    kwargs.setdefault("backoff_base", 0.01)
    kwargs.setdefault("backoff_cap", 0.05)
    return PostHogClient(url, POSTHOG_API_KEY, POSTHOG_PROJECT_ID, **kwargs)


def loaded_uuids(conn: psycopg.Connection, window: Window) -> list[str]:
    rows = conn.execute(
        "SELECT uuid::text FROM analytics.posthog_events"
        " WHERE created_at >= %s AND created_at < %s",
        (window.start, window.end),
    ).fetchall()
    return [r[0] for r in rows]


def table_digest(conn: psycopg.Connection) -> dict[str, str]:
    """md5 of each table's content (minus load-time columns) for exact before/after equality."""
    queries = {
        "posthog_events": "SELECT uuid, event, distinct_id, timestamp, created_at, properties"
        " FROM analytics.posthog_events",
        "dead_letters": "SELECT stream, fingerprint, reason, payload FROM ops.dead_letters",
        "checkpoints": "SELECT stream, window_start, window_end, status, rows_loaded"
        " FROM ops.checkpoints",
    }
    return {
        name: conn.execute(
            f"SELECT count(*) || ':' || COALESCE(md5(string_agg(t::text, '|' ORDER BY t::text)),"
            f" '') FROM ({q}) t"
        ).fetchone()[0]
        for name, q in queries.items()
    }


@pytest.fixture
def conn(db, pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        yield c


CFG = IngestConfig(page_size=97, min_page_size=10)


def test_every_event_lands_exactly_once_across_tied_page_boundaries(conn, sandbox):
    extra = tied_events(WINDOW)
    sandbox.add_events(extra)
    expected = source_uuids(WINDOW, extra)
    assert len(expected) > 500, "the window should hold a busy hour"
    with make_client(sandbox.url) as client:
        result = ingest_window(conn, client, WINDOW, CFG, key=KEY)

    got = loaded_uuids(conn, WINDOW)
    assert len(got) == len(expected) == len(set(expected))
    assert set(got) == set(expected)
    assert result.fetched == result.loaded == result.inserted == len(expected)
    assert result.dead_lettered == 0 and result.status == "completed"
    assert result.pages == len(expected) // CFG.page_size + 1
    # Pages were keyed on (ms, uuid): the tie of 300 identical instants spans >= 3 pages.
    calls = [c for c in sandbox.calls("posthog") if c["path"].endswith("/query/")]
    assert len(calls) == result.pages
    body = calls[1]["body"]
    assert body["refresh"] == "force_blocking"
    assert (
        "(toUnixTimestamp64Milli(created_at), uuid) > ({c_ms}, {c_uuid})" in body["query"]["query"]
    )
    assert "OFFSET" not in body["query"]["query"]
    assert set(body["query"]["values"]) >= {
        "w_start",
        "w_end",
        "t_start",
        "t_end",
        "c_ms",
        "c_uuid",
    }
    cp = store.read_checkpoint(conn, STREAM, WINDOW.start, WINDOW.end)
    assert cp.status == "complete" and cp.rows_loaded == len(expected)
    run = conn.execute(
        "SELECT status, records_in, records_out, error_count, stats FROM ops.job_runs"
    ).fetchone()
    assert run[:4] == ("completed", len(expected), len(expected), 0)
    assert run[4]["events_fetched"] == len(expected)
    assert run[4]["posthog_api_calls"] == result.pages


def test_rerun_and_reprocess_leave_every_table_as_one_clean_run(conn, sandbox):
    with make_client(sandbox.url) as client:
        ingest_window(conn, client, WINDOW, CFG)
        clean = table_digest(conn)
        again = ingest_window(conn, client, WINDOW, CFG)
        assert again.skipped and table_digest(conn) == clean
        calls_before = len(sandbox.calls("posthog"))
        redo = ingest_window(conn, client, WINDOW, replace(CFG, page_size=250), reprocess=True)
    assert not redo.skipped and redo.inserted == 0 and redo.loaded == again.loaded
    assert len(sandbox.calls("posthog")) > calls_before  # really re-read from PostHog
    assert table_digest(conn) == clean


CHILD = textwrap.dedent(
    """
    import sys, psycopg
    from datetime import datetime, UTC
    from include.analytics_ops import store
    from include.analytics_ops.ingest.config import IngestConfig
    from include.analytics_ops.ingest.loader import Window, ingest_window
    from include.analytics_ops.ingest.posthog import PostHogClient
    from include.sandbox.constants import POSTHOG_API_KEY, POSTHOG_PROJECT_ID

    dsn, url, start, end = sys.argv[1:5]
    window = Window(datetime.fromisoformat(start), datetime.fromisoformat(end))
    key = store.RunKey("analytics_hourly", "ingest_events", "manual__kill", try_number=1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        client = PostHogClient(url, POSTHOG_API_KEY, POSTHOG_PROJECT_ID)
        ingest_window(conn, client, window, IngestConfig(page_size=40), key=key)
    print("finished")
    """
)


@pytest.mark.parametrize("seed", [11, 29])
def test_sigkill_at_a_random_page_then_retry_resumes_exactly_once(conn, sandbox, pg_dsn, seed):
    extra = tied_events(WINDOW, 120)
    sandbox.add_events(extra)
    sandbox.set_faults(posthog_latency_ms=25)  # slow enough to be caught mid-window
    expected = set(source_uuids(WINDOW, extra))
    kill_after = random.Random(seed).randint(2, 8)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            pg_dsn,
            sandbox.url,
            *(t.isoformat() for t in (WINDOW.start, WINDOW.end)),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    pages = 0
    while time.monotonic() < deadline and child.poll() is None:
        cp = store.read_checkpoint(conn, STREAM, WINDOW.start, WINDOW.end)
        pages = (cp.cursor or {}).get("pages", 0) if cp else 0
        if pages >= kill_after:
            break
        time.sleep(0.005)
    assert child.poll() is None, f"child ended before the kill: {child.communicate()}"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert child.returncode == -signal.SIGKILL

    cp = store.read_checkpoint(conn, STREAM, WINDOW.start, WINDOW.end)
    assert cp.status == "in_progress" and cp.cursor["pages"] >= kill_after
    partial = set(loaded_uuids(conn, WINDOW))
    assert 0 < len(partial) < len(expected) and partial <= expected
    killed = conn.execute(
        "SELECT status FROM ops.job_runs WHERE run_id = 'manual__kill'"
    ).fetchone()
    assert killed == ("running",)  # what the stuck-run health rule finds later

    sandbox.set_faults(posthog_latency_ms=0)
    retry_key = replace(KEY, run_id="manual__kill", try_number=2)
    calls_before = len(sandbox.calls("posthog"))
    with make_client(sandbox.url) as client:
        result = ingest_window(conn, client, WINDOW, IngestConfig(page_size=40), key=retry_key)
    assert result.resumed_from_page == cp.cursor["pages"]
    got = loaded_uuids(conn, WINDOW)
    assert len(got) == len(expected) and set(got) == expected
    assert result.fetched == result.loaded == len(expected)  # window totals across attempts
    # The retry asked PostHog only for what came after the checkpoint.
    first = sandbox.calls("posthog")[calls_before]
    assert first["body"]["query"]["values"]["c_uuid"] == cp.cursor["uuid"]


def test_a_429_storm_without_retry_after_is_waited_out(conn, sandbox):
    sandbox.set_faults(posthog_429_burst=4, posthog_throttle_seconds=1)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    with make_client(sandbox.url, sleep=sleep) as client:
        result = ingest_window(conn, client, WINDOW, IngestConfig(page_size=5000), key=KEY)
    assert result.status == "completed" and result.loaded == len(source_uuids(WINDOW))
    # The wait came from the throttle detail ("Expected available in 1 seconds"), not backoff.
    assert len(sleeps) == 4 and all(1.0 <= s <= 1.2 for s in sleeps)
    stats = conn.execute("SELECT stats FROM ops.job_runs").fetchone()[0]
    assert stats["posthog_rate_limit_hits"] == 4 and stats["posthog_rate_limit_hit"] is True
    assert stats["posthog_api_errors"] == 4 and stats["posthog_api_calls"] == result.pages + 4
    events = conn.execute("SELECT event_type FROM ops.job_events").fetchall()
    assert ("rate_limited",) in events


def test_a_401_fails_at_once_with_a_clear_message(conn, sandbox):
    client = PostHogClient(sandbox.url, "phx_wrong_key", POSTHOG_PROJECT_ID, backoff_base=5)
    with client, pytest.raises(PostHogFatalError, match=r"401.*personal API key is invalid") as err:
        ingest_window(conn, client, WINDOW, CFG, key=KEY)
    assert "phx_wrong_key" not in str(err.value)
    assert client.stats.api_calls == 1 and client.stats.retries == 0
    run = conn.execute("SELECT status, last_error FROM ops.job_runs").fetchone()
    assert run[0] == "failed" and "401" in run[1]
    assert conn.execute("SELECT count(*) FROM ops.job_events WHERE level = 'error'").fetchone() == (
        1,
    )


def test_5xx_are_retried_and_504_512_shrink_the_page(conn, sandbox):
    sandbox.set_faults(posthog_status_sequence=[503, 524, 504, 512, 500])
    cfg = IngestConfig(page_size=400, min_page_size=50)
    with make_client(sandbox.url) as client:
        result = ingest_window(conn, client, WINDOW, cfg, key=KEY)
        assert client.stats.page_shrinks == 2
    assert result.loaded == len(source_uuids(WINDOW))
    assert result.api["api_errors"] == 5
    limits = [
        int(c["body"]["query"]["query"].rsplit("LIMIT", 1)[1])
        for c in sandbox.calls("posthog")
        if c["status"] == 200
    ]
    assert limits[0] == 100  # 400 -> 200 -> 100 after the 504 and the 512


def purchases(window: Window, n: int) -> list[dict]:
    return [
        {
            "uuid": f"01900000-0000-7000-9000-{i:012x}",
            "event": "purchase",
            "distinct_id": f"seeker-buyer-{i}",
            "timestamp": (window.start + timedelta(seconds=7 * i)).isoformat(),
            "created_at": (window.start + timedelta(seconds=7 * i + 2)).isoformat(),
            "properties": {"revenue": 10.5, "order_id": f"ord-x-{i}", "$session_id": f"s-{i}"},
        }
        for i in range(n)
    ]


def test_malformed_rows_go_to_dead_letters_and_replay_after_a_fix(conn, sandbox):
    extra = purchases(WINDOW, 200)
    sandbox.add_events(extra)
    sandbox.set_faults(posthog_malformed_rate=0.2)
    with make_client(sandbox.url) as client:
        result = ingest_window(conn, client, WINDOW, CFG, key=KEY)
    expected = source_uuids(WINDOW, extra)
    assert result.status == "partial"
    assert result.fetched == len(expected) == result.loaded + result.dead_lettered
    assert result.dead_lettered > 50
    dead = store.open_dead_letters(conn, STREAM)
    assert len(dead) == result.dead_lettered
    kinds = {d["reason"].split(":")[0].split(" '")[0] for d in dead}
    assert kinds == {
        "missing uuid",
        "unparseable timestamp",
        "unparseable properties JSON",
        "missing required property",
    }
    assert len(loaded_uuids(conn, WINDOW)) == result.loaded
    dead_uuids = {d["source_key"] for d in dead if d["source_key"]}
    assert not dead_uuids & set(loaded_uuids(conn, WINDOW))
    run = conn.execute("SELECT status, error_count, records_in FROM ops.job_runs").fetchone()
    assert run == ("partial", result.dead_lettered, len(expected))

    # A rerun re-reads the same malformed rows: no duplicate dead letters.
    with make_client(sandbox.url) as client:
        ingest_window(conn, client, WINDOW, CFG, reprocess=True)
    assert len(store.open_dead_letters(conn, STREAM)) == result.dead_lettered

    # Fix 1: purchases no longer need revenue -> those rows now load, exactly once.
    relaxed = replace(CFG, required={"purchase": ("order_id",)})
    no_revenue = [d for d in dead if d["reason"].startswith("missing required property 'revenue'")]
    replay = replay_dead_letters(conn, relaxed)
    assert replay.loaded == len(no_revenue) and replay.still_failing == len(dead) - len(no_revenue)
    again = replay_dead_letters(conn, relaxed)
    assert again.loaded == 0 and again.examined == len(dead) - len(no_revenue)
    attempts = {d["id"]: d["attempts"] for d in store.open_dead_letters(conn, STREAM)}
    assert set(attempts.values()) == {3}  # first seen + two failed replays
    # Fix 2: correct one bad timestamp by hand, replay just that one.
    bad_ts = next(d for d in store.open_dead_letters(conn, STREAM) if "timestamp" in d["reason"])
    conn.execute(
        "UPDATE ops.dead_letters SET payload = jsonb_set(payload, '{timestamp}', %s::jsonb)"
        " WHERE id = %s",
        ('"2026-11-17T18:05:00.000Z"', bad_ts["id"]),
    )
    fixed = replay_dead_letters(conn, relaxed, ids=[bad_ts["id"]])
    assert fixed.loaded == 1 and fixed.examined == 1
    row = conn.execute(
        "SELECT resolved_at IS NOT NULL, resolution FROM ops.dead_letters WHERE id = %s",
        (bad_ts["id"],),
    ).fetchone()
    assert row == (True, "replayed: loaded")
    assert conn.execute(
        "SELECT count(*) FROM analytics.posthog_events WHERE uuid = %s", (bad_ts["source_key"],)
    ).fetchone() == (1,)
