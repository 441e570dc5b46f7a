"""``airflow dags test analytics_hourly`` (the real CLI) against the sandbox and real PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from include.sandbox import events as ev
from include.sandbox.constants import DEFAULT_SEED, POSTHOG_PROJECT_ID
from include.sandbox.timeutil import dt_to_us

pytestmark = pytest.mark.e2e

START, END = datetime(2026, 11, 20, 10, tzinfo=UTC), datetime(2026, 11, 20, 11, tzinfo=UTC)


def expected_count() -> int:
    lo, hi = dt_to_us(START), dt_to_us(END)
    rows = ev.EventStore(DEFAULT_SEED).candidates(
        (lo, hi), (lo - 7 * 86_400 * 10**6, hi), now_us=hi + 10**12, events_per_hour=None
    )
    return sum(1 for r in rows if lo <= r[ev.CREATED_US] < hi)


def test_dags_test_ingests_the_window_ending_at_the_given_time(db, sandbox, dag_test):
    result = dag_test("analytics_hourly", "2026-11-20T11:00:00+00:00")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    n = expected_count()
    assert n > 0
    assert db.execute(
        "SELECT count(*) FROM analytics.posthog_events WHERE created_at >= %s AND created_at < %s",
        (START, END),
    ).fetchone() == (n,)
    runs = db.execute(
        "SELECT task_id, status, window_start, window_end, records_in FROM ops.job_runs"
        " WHERE dag_id = 'analytics_hourly' AND task_id IN ('ingest_events', 'update_rollups')"
        " ORDER BY id"
    ).fetchall()
    assert runs == [
        ("ingest_events", "completed", START, END, n),
        ("update_rollups", "completed", START, END, runs[1][4]),
    ]
    cp = db.execute("SELECT status, rolled_up_at IS NOT NULL FROM ops.checkpoints").fetchone()
    assert cp == ("complete", True)
    assert db.execute(
        "SELECT complete_until FROM ops.watermarks WHERE stream = 'posthog'"
    ).fetchone() == (END,)
    # Ran in the posthog_api pool with force_blocking queries.
    calls = sandbox.calls("posthog")
    assert calls and all(c["body"]["refresh"] == "force_blocking" for c in calls)


def test_a_401_fails_the_run_at_once_without_burning_retries(db, sandbox, dag_test):
    bad = json.dumps(
        {
            "conn_type": "http",
            "host": sandbox.url,
            "password": "phx_not_the_key",
            "extra": {"project_id": POSTHOG_PROJECT_ID},
        }
    )
    result = dag_test(
        "analytics_hourly", "2026-11-20T11:00:00+00:00", env={"AIRFLOW_CONN_POSTHOG_API": bad}
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "401" in output and "personal API key is invalid" in output
    assert "phx_not_the_key" not in output
    runs = db.execute(
        "SELECT task_id, try_number, status FROM ops.job_runs"
        " WHERE task_id IN ('ingest_events', 'update_rollups') ORDER BY id"
    ).fetchall()
    assert runs == [("ingest_events", 1, "failed")]  # one attempt; rollups never ran
    assert len(sandbox.calls("posthog")) == 1


def test_bad_params_are_refused_before_any_work(db, sandbox, dag_test):
    result = dag_test(
        "analytics_hourly",
        "2026-11-20T11:00:00+00:00",
        conf={"window_start": "2026-11-20T10:00:00Z"},
    )
    assert result.returncode != 0
    assert "window_start and window_end must be given together" in result.stdout + result.stderr
    # validate_params stopped every branch (ingest and bug risk) before any work.
    assert db.execute("SELECT count(*) FROM ops.job_runs").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM analytics.bug_risk_snapshots").fetchone() == (0,)
    assert sandbox.calls("posthog") == []


def test_a_long_throttle_is_waited_out_deferred_and_the_attempt_completes(db, sandbox, dag_test):
    # PostHog: "Expected available in 3 seconds." — longer than the inline-wait limit (set to 1 s
    # here; 120 s by default, the 1200 s of a real throttle far beyond): the task defers in the
    # triggerer instead of sleeping in a worker slot, then resumes the same try.
    sandbox.set_faults(posthog_429_burst=1, posthog_throttle_seconds=3)
    result = dag_test(
        "analytics_hourly",
        "2026-11-20T11:00:00+00:00",
        env={"POSTHOG_MAX_INLINE_WAIT_SECONDS": "1"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "waiting 3s deferred" in output and "deferring until" in output
    runs = db.execute(
        "SELECT try_number, status FROM ops.job_runs WHERE task_id = 'ingest_events'"
    ).fetchall()
    assert runs == [(1, "completed")]  # one attempt, never failed
    statuses = [c["status"] for c in sandbox.calls("posthog")]
    assert statuses[0] == 429 and set(statuses[1:]) == {200}
