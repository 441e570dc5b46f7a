"""State-store round trips against a live PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from include.analytics_ops import alerts, store

W0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
W1 = W0 + timedelta(hours=1)
KEY = store.RunKey(
    "analytics_hourly",
    "ingest_events",
    "scheduled__2026-11-20T10:00:00+00:00",
    try_number=1,
    run_type="scheduled",
)


def test_job_run_lifecycle_records_counters_stats_and_duration(db):
    run_id = store.start_job_run(db, KEY, window_start=W0, window_end=W1)
    store.update_job_run(db, run_id, records_in=10, stats={"api_calls": 2})
    store.log_event(
        db, "page_loaded", "page 1 loaded", job_run_id=run_id, key=KEY, details={"rows": 10}
    )
    store.finish_job_run(
        db,
        run_id,
        "partial",
        records_out=8,
        error_count=2,
        last_error="2 rows dead-lettered",
        stats={"rate_limit_hits": 1},
    )
    row = db.execute(
        "SELECT status, records_in, records_out, error_count, last_error, stats, window_start,"
        " finished_at IS NOT NULL, duration_seconds >= 0 FROM ops.job_runs WHERE id = %s",
        (run_id,),
    ).fetchone()
    assert row[:5] == ("partial", 10, 8, 2, "2 rows dead-lettered")
    assert row[5] == {"api_calls": 2, "rate_limit_hits": 1}  # stats merge, not overwrite
    assert row[6] == W0 and row[7] and row[8]
    assert (
        db.execute(
            "SELECT count(*) FROM ops.job_events WHERE job_run_id = %s", (run_id,)
        ).fetchone()[0]
        == 1
    )


def test_each_attempt_is_its_own_row_and_restarting_one_is_idempotent(db):
    first = store.start_job_run(db, KEY)
    assert store.start_job_run(db, KEY) == first
    second = store.start_job_run(db, store.RunKey(**{**KEY.__dict__, "try_number": 2}))
    assert second != first
    assert db.execute("SELECT count(*) FROM ops.job_runs").fetchone()[0] == 2


def test_finish_rejects_unknown_status(db):
    run_id = store.start_job_run(db, KEY)
    with pytest.raises(ValueError):
        store.finish_job_run(db, run_id, "done")


def test_checkpoint_and_data_commit_or_roll_back_together(pg_dsn, db):
    with psycopg.connect(pg_dsn) as conn:
        with conn.transaction():
            conn.execute(
                "INSERT INTO analytics.daily_metrics (metric_date, sessions)"
                " VALUES ('2026-11-19', 1)"
            )
            store.write_checkpoint(conn, "posthog", W0, W1, {"ms": 1, "uuid": "a"}, 1)
        with pytest.raises(RuntimeError), conn.transaction():
            conn.execute(
                "INSERT INTO analytics.daily_metrics (metric_date, sessions)"
                " VALUES ('2026-11-20', 2)"
            )
            store.write_checkpoint(conn, "posthog", W0, W1, {"ms": 2, "uuid": "b"}, 2)
            raise RuntimeError("crash between page load and commit")
    cp = store.read_checkpoint(db, "posthog", W0, W1)
    assert cp is not None and cp.cursor == {"ms": 1, "uuid": "a"} and cp.rows_loaded == 1
    days = [
        r[0].isoformat()
        for r in db.execute("SELECT metric_date FROM analytics.daily_metrics ORDER BY 1")
    ]
    assert days == ["2026-11-19"]  # the rolled-back page left no rows behind


def test_watermark_only_moves_forward(db):
    store.advance_watermark(db, "posthog", W1)
    store.advance_watermark(db, "posthog", W0)
    assert store.read_watermark(db, "posthog") == W1


def test_dead_letters_are_deduplicated_listed_and_resolved(db):
    bad = [({"uuid": None, "event": "x"}, "missing uuid"), ("{not json", "unparseable row")]
    assert store.add_dead_letters(db, "posthog", bad, window_start=W0, window_end=W1) == 2
    assert store.add_dead_letters(db, "posthog", bad) == 0  # a rerun adds nothing
    waiting = store.open_dead_letters(db, "posthog")
    assert [d["reason"] for d in waiting] == ["missing uuid", "unparseable row"]
    store.retry_failed_dead_letter(db, waiting[0]["id"], "still missing uuid")
    store.resolve_dead_letter(db, waiting[1]["id"], "replayed")
    left = store.open_dead_letters(db, "posthog")
    assert len(left) == 1 and left[0]["attempts"] == 2 and left[0]["reason"] == "still missing uuid"


def test_raise_alert_dedups_counts_resolves_and_reopens(db):
    first = alerts.raise_alert(db, "k1", "critical", "test", "thing broke", "details")
    again = alerts.raise_alert(db, "k1", "critical", "test", "thing broke", "details")
    assert (first.transition, again.transition, again.count) == ("opened", "repeated", 2)
    assert db.execute("SELECT count(*) FROM ops.alerts").fetchone()[0] == 1
    assert alerts.resolve_alert(db, "k1").transition == "resolved"
    assert alerts.resolve_alert(db, "k1") is None  # nothing open any more
    reopened = alerts.raise_alert(db, "k1", "warning", "test", "thing broke again")
    assert (reopened.transition, reopened.count) == ("reopened", 1)
    kinds = [r[0] for r in db.execute("SELECT kind FROM ops.alert_events ORDER BY id")]
    assert kinds == ["opened", "repeated", "resolved", "reopened"]
    with pytest.raises(ValueError):
        alerts.raise_alert(db, "k2", "urgent", "test", "bad severity")
