"""The nightly branch's logic against a real PostgreSQL with the sandbox sample data: freshness,
check rows and history hygiene, proof + alerts, snapshot (complete and partial), and the
operators' mapping of outcomes to Airflow (called with a minimal task context)."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import (
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
)

from include.analytics_ops import store
from include.analytics_ops.checks import DEFAULT_CONFIG
from include.analytics_ops.dates import pt_day_bounds
from include.analytics_ops.nightly import CHECK_TASK_IDS, freshness, metric_checks, snapshot
from include.analytics_ops.nightly import proof as proof_mod
from include.analytics_ops.operators.checks import (
    CaptureSnapshotOperator,
    CriticalProofError,
    FreshnessGateOperator,
    MetricRangeCheckOperator,
    WriteProofOperator,
)
from include.sandbox.constants import DEMO_DAY
from include.sandbox.generator import load_sample_data

ANOMALY_DAY = date(2026, 10, 29)  # revenue −35 % (planted)


@pytest.fixture
def sample(db, pg_dsn, tmp_path, monkeypatch):
    load_sample_data(pg_dsn)
    monkeypatch.setenv("ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    return db


def set_watermark(conn, day: date) -> None:
    store.advance_watermark(conn, "posthog", pt_day_bounds(day)[1])


def run_all_checks(conn, day: date, run_id: str = "run-1") -> dict[str, object]:
    out = {}
    for name in CHECK_TASK_IDS:
        metric, kind = name.rsplit("_", 1)
        outcome, _ = metric_checks.run_check(conn, metric, kind, day, DEFAULT_CONFIG, run_id)
        out[name] = outcome
    return out


def context(day: date | None = None, run_id: str = "manual__test", task_id: str = "t") -> dict:
    return {
        "ti": SimpleNamespace(
            dag_id="analytics_nightly", task_id=task_id, run_id=run_id, map_index=-1, try_number=1
        ),
        "dag_run": SimpleNamespace(
            run_after=datetime(2026, 11, 23, 12, tzinfo=UTC), run_type="manual"
        ),
        "params": {"target_date": day.isoformat() if day else None},
    }


# --------------------------------------------------------------------------- freshness
def test_freshness_states(sample):
    db = sample
    assert freshness.evaluate_freshness(db, DEMO_DAY).retryable  # no watermark yet
    store.advance_watermark(db, "posthog", pt_day_bounds(DEMO_DAY)[1] - timedelta(minutes=30))
    stale = freshness.evaluate_freshness(db, DEMO_DAY)
    assert stale.row_present and not stale.fresh and stale.retryable
    assert "30 min before the end of 2026-11-20 PT" in stale.message()
    set_watermark(db, DEMO_DAY)
    assert freshness.evaluate_freshness(db, DEMO_DAY).fresh
    db.execute(
        "UPDATE analytics.daily_metrics SET revenue = NULL WHERE metric_date = %s", (DEMO_DAY,)
    )
    missing = freshness.evaluate_freshness(db, DEMO_DAY)
    assert missing.null_columns == ("revenue",) and not missing.retryable
    later = DEMO_DAY + timedelta(days=1)
    set_watermark(db, later)
    gone = freshness.evaluate_freshness(db, later)
    assert not gone.row_present and not gone.retryable
    assert "analytics.daily_metrics has no row for 2026-11-21" in gone.message()


def poke_context(day: date, run_id: str = "manual__test", waiting: timedelta | None = None):
    """A sensor attempt's context: first poke, or one that has waited ``waiting`` so far."""
    ctx = context(day, run_id=run_id, task_id="check_freshness")
    first = None if waiting is None else datetime.now(UTC) - waiting
    ctx["ti"].get_first_reschedule_date = lambda _ctx: first
    return ctx


def test_freshness_operator_waits_on_stale_and_fails_missing_for_good(sample):
    db = sample
    op = FreshnessGateOperator(task_id="check_freshness", timeout=timedelta(minutes=60))
    with pytest.raises(AirflowRescheduleException):  # stale: poke again later, no failure
        op.execute(poke_context(DEMO_DAY))
    set_watermark(db, DEMO_DAY + timedelta(days=1))
    op.execute(poke_context(DEMO_DAY, run_id="r2"))
    with pytest.raises(AirflowFailException, match="MISSING DATA: 2026-11-21"):
        op.execute(poke_context(DEMO_DAY + timedelta(days=1), run_id="r3"))
    runs = db.execute(
        "SELECT run_id, status, status_message FROM ops.job_runs ORDER BY run_id"
    ).fetchall()
    assert runs == [
        ("manual__test", "running", runs[0][2]),
        ("r2", "completed", runs[1][2]),
        ("r3", "failed", "missing"),
    ]
    assert runs[0][2].startswith("STALE DATA: 2026-11-20")


def test_freshness_sensor_fails_stale_at_its_timeout_keeping_the_first_poke(sample):
    db = sample
    op = FreshnessGateOperator(task_id="check_freshness", timeout=timedelta(minutes=60))
    with pytest.raises(AirflowRescheduleException):
        op.execute(poke_context(DEMO_DAY))
    started = db.execute("SELECT started_at FROM ops.job_runs").fetchone()[0]
    with pytest.raises(AirflowSensorTimeout, match=r"STALE DATA: 2026-11-20.*Timed out after"):
        op.execute(poke_context(DEMO_DAY, waiting=timedelta(minutes=61)))
    row = db.execute(
        "SELECT status, status_message, error_count, last_error, started_at, stats->>'fresh'"
        " FROM ops.job_runs"
    ).fetchall()
    assert len(row) == 1  # one attempt, one row: the pokes share it
    status, message, errors, last_error, started_at, fresh = row[0]
    assert (status, message, errors, fresh) == ("failed", "stale", 1, "false")
    assert last_error.startswith("STALE DATA: 2026-11-20") and "Timed out" in last_error
    assert started_at == started


@pytest.mark.parametrize("bad", ["2026-13-01", "yesterday", "2026-11-23"])
def test_bad_target_date_fails_before_any_work(sample, bad):
    ctx = context()
    ctx["params"] = {"target_date": bad}
    with pytest.raises(AirflowFailException, match="target_date"):
        FreshnessGateOperator(task_id="check_freshness").execute(ctx)
    assert sample.execute("SELECT count(*) FROM ops.job_runs").fetchone()[0] == 0


# --------------------------------------------------------------------------- checks
def test_check_rows_are_upserted_and_a_clean_day_passes(sample):
    db = sample
    first = run_all_checks(db, DEMO_DAY, "run-1")
    assert {o.severity for o in first.values()} == {"passed"}
    run_all_checks(db, DEMO_DAY, "run-2")
    rows = db.execute(
        "SELECT check_name, severity, run_id, config_version, expected_low < value"
        " AND value < expected_high FROM analytics.check_results WHERE target_date = %s",
        (DEMO_DAY,),
    ).fetchall()
    assert sorted(r[0] for r in rows) == sorted(CHECK_TASK_IDS)
    assert {r[2] for r in rows} == {"run-2"}
    assert {r[3] for r in rows} == {DEFAULT_CONFIG.version}
    range_rows = [r for r in rows if r[0].endswith("_range")]
    assert all(r[4] for r in range_rows)


def test_anomaly_day_is_critical_and_kept_out_of_later_baselines(sample):
    db = sample
    outcome, _ = metric_checks.run_check(db, "revenue", "range", ANOMALY_DAY, DEFAULT_CONFIG, "r")
    assert outcome.severity == "critical"
    assert outcome.explanation.startswith("revenue 2.8k, expected 3.6k–6.3k")
    later = ANOMALY_DAY + timedelta(days=7)
    _, stats = metric_checks.evaluate_check(db, "revenue", "range", later, DEFAULT_CONFIG)
    assert stats["excluded_days"] == [ANOMALY_DAY.isoformat()]
    # other metrics' flags do not exclude the day from revenue's baseline, and vice versa
    _, stats = metric_checks.evaluate_check(db, "sessions", "range", later, DEFAULT_CONFIG)
    assert stats["excluded_days"] == []
    # a person marks the day expected: back in the baselines, and a rerun keeps the mark
    db.execute(
        "UPDATE analytics.check_results SET expected = true WHERE target_date = %s", (ANOMALY_DAY,)
    )
    metric_checks.run_check(db, "revenue", "range", ANOMALY_DAY, DEFAULT_CONFIG, "r2")
    row = db.execute(
        "SELECT severity, expected, excluded FROM analytics.check_results WHERE target_date = %s",
        (ANOMALY_DAY,),
    ).fetchone()
    assert row == ("critical", True, False)
    _, stats = metric_checks.evaluate_check(db, "revenue", "range", later, DEFAULT_CONFIG)
    assert stats["excluded_days"] == []


def test_excluding_a_flagged_day_changes_the_baseline(sample):
    """The exclusion reaches the statistics: a flagged same-weekday day drops out of the centre."""
    db = sample
    target = DEMO_DAY
    before = metric_checks.evaluate_check(db, "revenue", "range", target, DEFAULT_CONFIG)[0]
    flagged = target - timedelta(days=7)
    db.execute(
        "INSERT INTO analytics.check_results (target_date, check_name, metric, kind, severity)"
        " VALUES (%s, 'revenue_range', 'revenue', 'range', 'critical')",
        (flagged,),
    )
    after = metric_checks.evaluate_check(db, "revenue", "range", target, DEFAULT_CONFIG)[0]
    assert before.details["same_weekday_points"] == 8
    assert after.details["same_weekday_points"] == 7
    assert after.centre != before.centre


def test_check_operator_rejects_bad_overrides_and_does_not_fail_on_critical(sample, monkeypatch):
    db = sample
    set_watermark(db, ANOMALY_DAY)
    op = MetricRangeCheckOperator(task_id="revenue_range", metric="revenue")
    monkeypatch.setenv("CHECK_CONFIG_OVERRIDES", '{"z_warnin": 3}')
    with pytest.raises(AirflowFailException, match="unknown CheckConfig fields"):
        op.execute(context(ANOMALY_DAY, task_id="revenue_range"))
    monkeypatch.setenv("CHECK_CONFIG_OVERRIDES", '{"revenue": {"min_effect_critical": 0.5}}')
    op.execute(context(ANOMALY_DAY, task_id="revenue_range"))  # critical → still succeeds
    row = db.execute(
        "SELECT severity, config_version FROM analytics.check_results WHERE target_date = %s",
        (ANOMALY_DAY,),
    ).fetchone()
    # −41 % is below the overridden 50 % minimum effect for critical → warning
    assert row[0] == "warning" and row[1] != DEFAULT_CONFIG.version
    job = db.execute(
        "SELECT status, records_in, stats->>'severity' FROM ops.job_runs"
        " WHERE task_id = 'revenue_range'"
    ).fetchone()
    assert job[0] == "completed" and job[1] > 100 and job[2] == "warning"


# --------------------------------------------------------------------------- proof + alerts
def alert_events(db) -> list[tuple]:
    return db.execute(
        "SELECT a.dedup_key, e.kind, e.severity FROM ops.alert_events e"
        " JOIN ops.alerts a ON a.id = e.alert_id ORDER BY e.id"
    ).fetchall()


def test_critical_proof_fails_the_task_writes_file_and_row_and_alerts_once(
    sample, devenv, monkeypatch
):
    db = sample
    monkeypatch.setenv("ALERT_CHANNELS", "log")
    run_all_checks(db, ANOMALY_DAY, "run-a")
    op = WriteProofOperator(task_id="write_proof")
    with pytest.raises(CriticalProofError, match=r"CRITICAL.*Revenue Range: revenue 2\.8k"):
        op.execute(context(ANOMALY_DAY, run_id="run-a", task_id="write_proof"))
    path = Path(os.environ["ARTIFACTS_DIR"]) / "sampling-proofs" / "sampling-proof-20261029.json"
    doc = json.loads(path.read_text())
    assert doc["status"] == "critical" and doc["exit_code"] == 2 and doc["run_id"] == "run-a"
    assert {a["check_name"] for a in doc["anomalies"]} == {"revenue_range", "revenue_trend"}
    assert len(doc["checks"]) == 6
    row = db.execute(
        "SELECT status, exit_code, jsonb_array_length(anomalies), artifact_path"
        " FROM analytics.sampling_proofs"
    ).fetchall()
    assert row == [("critical", 2, 2, str(path))]
    first = alert_events(db)
    assert sorted(first) == [
        ("metric_check:revenue_range", "opened", "critical"),
        ("metric_check:revenue_trend", "opened", "critical"),
    ]
    # rerun of the same day: the same results, no new 'opened' — only counted as repeated
    run_all_checks(db, ANOMALY_DAY, "run-b")
    with pytest.raises(CriticalProofError):
        op.execute(context(ANOMALY_DAY, run_id="run-b", task_id="write_proof"))
    new = alert_events(db)[len(first) :]
    assert sorted(e[1] for e in new) == ["repeated", "repeated"]
    notified = db.execute(
        "SELECT dedup_key, notify_count, count FROM ops.alerts ORDER BY dedup_key"
    ).fetchall()
    assert notified == [
        ("metric_check:revenue_range", 1, 2),
        ("metric_check:revenue_trend", 1, 2),
    ]
    assert db.execute("SELECT count(*) FROM analytics.sampling_proofs").fetchone()[0] == 1
    assert json.loads(path.read_text())["run_id"] == "run-b"
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_alerts_follow_the_newest_day_and_resolve_on_pass(sample, monkeypatch):
    db = sample
    monkeypatch.setenv("ALERT_CHANNELS", "log")
    run_all_checks(db, ANOMALY_DAY, "run-a")
    checks = proof_mod.build_proof(
        proof_mod.rows_of_run(proof_mod.load_check_rows(db, ANOMALY_DAY), "run-a")[0],
        ANOMALY_DAY,
        "run-a",
    ).checks
    proof_mod.sync_check_alerts(db, ANOMALY_DAY, checks)
    # the next day passes: the alerts resolve
    nxt = ANOMALY_DAY + timedelta(days=1)
    run_all_checks(db, nxt, "run-n")
    next_checks = proof_mod.build_proof(
        proof_mod.rows_of_run(proof_mod.load_check_rows(db, nxt), "run-n")[0], nxt, "run-n"
    ).checks
    changes = {c.check_name: c.action for c in proof_mod.sync_check_alerts(db, nxt, next_checks)}
    assert changes["revenue_range"] == "resolved" and changes["sessions_range"] == "unchanged"
    # backfilling the anomaly day again stores results but does not reopen the alerts
    run_all_checks(db, ANOMALY_DAY, "run-backfill")
    changes = proof_mod.sync_check_alerts(db, ANOMALY_DAY, checks)
    assert {c.action for c in changes} == {"skipped"}
    states = dict(db.execute("SELECT dedup_key, state FROM ops.alerts").fetchall())
    assert states == {
        "metric_check:revenue_range": "resolved",
        "metric_check:revenue_trend": "resolved",
    }


def test_proof_refuses_check_rows_of_another_run(sample):
    db = sample
    run_all_checks(db, DEMO_DAY, "run-old")
    with pytest.raises(AirflowFailException, match="no result of this run for revenue_range"):
        WriteProofOperator(task_id="write_proof").execute(
            context(DEMO_DAY, run_id="run-new", task_id="write_proof")
        )
    assert db.execute("SELECT count(*) FROM analytics.sampling_proofs").fetchone()[0] == 0


# --------------------------------------------------------------------------- snapshot
def test_snapshot_has_four_categories_and_totals(sample, devenv):
    db = sample
    set_watermark(db, DEMO_DAY)
    run_all_checks(db, DEMO_DAY, "run-s")
    CaptureSnapshotOperator(task_id="capture_snapshot").execute(
        context(DEMO_DAY, run_id="run-s", task_id="capture_snapshot")
    )
    path = Path(os.environ["ARTIFACTS_DIR"]) / "snapshots" / "2026-11-20.json"
    doc = json.loads(path.read_text())
    assert sorted(doc["metrics"]) == ["conversion", "idea_pool", "revenue", "traffic"]
    assert doc["errors"] == [] and doc["status"] == "complete" and doc["proof_status"] == "passed"
    dm = db.execute(
        "SELECT revenue, orders, sessions, conversions, ideas_total, ideas_added"
        " FROM analytics.daily_metrics WHERE metric_date = %s",
        (DEMO_DAY,),
    ).fetchone()
    summary = doc["summary"]
    assert summary["revenue"] == float(dm[0]) and summary["orders"] == dm[1]
    assert summary["sessions"] == dm[2] and summary["conversions"] == dm[3]
    assert summary["ideas_total"] == dm[4] and summary["ideas_added"] == dm[5]
    assert summary["average_order_value"] == round(float(dm[0]) / dm[1], 2)
    assert summary["conversion_rate"] == round(dm[3] / dm[2], 6)
    assert sum(doc["metrics"]["idea_pool"]["pool_by_status"].values()) == dm[4]
    row = db.execute(
        "SELECT status, proof_status, errors, artifact_path FROM analytics.dashboard_snapshots"
    ).fetchall()
    assert row == [("complete", "passed", [], str(path))]


def test_unreadable_category_gives_a_partial_snapshot(sample, devenv):
    db = sample
    set_watermark(db, DEMO_DAY)
    db.execute("ALTER TABLE analytics.ideas RENAME TO ideas_moved")
    try:
        CaptureSnapshotOperator(task_id="capture_snapshot").execute(
            context(DEMO_DAY, run_id="run-p", task_id="capture_snapshot")
        )
    finally:
        db.execute("ALTER TABLE analytics.ideas_moved RENAME TO ideas")
    doc = json.loads(
        (Path(os.environ["ARTIFACTS_DIR"]) / "snapshots" / "2026-11-20.json").read_text()
    )
    assert doc["status"] == "partial" and doc["metrics"]["idea_pool"] is None
    assert doc["metrics"]["revenue"]["orders"] > 0 and doc["metrics"]["traffic"]["sessions"] > 0
    assert [e["category"] for e in doc["errors"]] == ["idea_pool"]
    assert "analytics.ideas" in doc["errors"][0]["error"]
    # no check ran in this run: the proof status is recorded as incomplete
    assert doc["proof_status"] == "incomplete"
    job = db.execute(
        "SELECT status, error_count, records_out FROM ops.job_runs"
        " WHERE task_id = 'capture_snapshot'"
    ).fetchone()
    assert job == ("partial", 1, 3)
    snap = db.execute("SELECT status FROM analytics.dashboard_snapshots").fetchone()
    assert snap == ("partial",)
    alert = "SELECT state, severity, count FROM ops.alerts WHERE dedup_key = %s"
    key = "dashboard_snapshot_partial:2026-11-20"
    assert db.execute(alert, (key,)).fetchone() == ("open", "warning", 1)
    # Captured complete once the category is readable again: the alert resolves.
    CaptureSnapshotOperator(task_id="capture_snapshot").execute(
        context(DEMO_DAY, run_id="run-q", task_id="capture_snapshot")
    )
    assert db.execute("SELECT status FROM analytics.dashboard_snapshots").fetchone() == (
        "complete",
    )
    assert db.execute(alert, (key,)).fetchone()[0] == "resolved"


def test_snapshot_is_skipped_when_the_day_is_incomplete(sample, devenv):
    with pytest.raises(AirflowSkipException, match="snapshot not captured: STALE DATA"):
        CaptureSnapshotOperator(task_id="capture_snapshot").execute(
            context(DEMO_DAY, run_id="run-x", task_id="capture_snapshot")
        )
    assert sample.execute("SELECT count(*) FROM analytics.dashboard_snapshots").fetchone()[0] == 0


def test_traffic_includes_posthog_counts_when_loaded(sample):
    db = sample
    start, _ = pt_day_bounds(DEMO_DAY)
    for i, user in enumerate(["u1", "u2", "u1"]):
        db.execute(
            "INSERT INTO analytics.posthog_events (uuid, event, distinct_id, timestamp,"
            " created_at) VALUES (gen_random_uuid(), '$pageview', %s, %s, %s)",
            (user, start + timedelta(hours=i), start + timedelta(hours=i)),
        )
    db.execute(
        "INSERT INTO analytics.listing_daily_stats (listing_id, stat_date, views, leads)"
        " VALUES ('l1', %s, 10, 2), ('l2', %s, 5, 0)",
        (DEMO_DAY, DEMO_DAY),
    )
    traffic = snapshot.read_traffic(db, DEMO_DAY)
    assert traffic["posthog_events"] == 3 and traffic["posthog_distinct_users"] == 2
    assert (traffic["listing_views"], traffic["leads"], traffic["listings_viewed"]) == (15, 2, 2)
    assert "page_views" not in traffic  # no user rollup rows: not pretended to be 0


# --------------------------------------------------------------------------- demo
def test_demo_steps_prepare_and_summarize(sample):
    from include.sandbox.demo_steps.nightly import demo_steps

    db = sample
    anomaly, clean = demo_steps()
    assert (anomaly.expect_success, clean.expect_success) == (False, True)
    env = SimpleNamespace(artifacts_dir=os.environ["ARTIFACTS_DIR"])
    clean.prepare(db, env)
    assert freshness.evaluate_freshness(db, DEMO_DAY).fresh
    run_all_checks(db, DEMO_DAY, "run-d")
    WriteProofOperator(task_id="write_proof").execute(
        context(DEMO_DAY, run_id="run-d", task_id="write_proof")
    )
    lines = clean.summarize(db, env)
    assert lines[0] == "sampling proof 2026-11-20: PASSED (exit code 0)"
    assert any(
        line.startswith("file ") and "sampling-proof-20261120.json" in line for line in lines
    )
