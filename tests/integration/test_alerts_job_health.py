"""The health evaluation pass against real PostgreSQL: states stored with history, flips alert
and recover, recovered failures are resolved, the API source falls back to ops.job_runs."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from include.analytics_ops import alerts, callbacks
from include.analytics_ops.monitoring import jobs
from include.analytics_ops.monitoring.evaluate import evaluate_all
from include.analytics_ops.monitoring.sources import AirflowApiSource
from include.analytics_ops.monitoring.store import job_health_history, job_states
from include.analytics_ops.store import RunKey, finish_job_run, start_job_run

HOURLY = [j for j in jobs.DAG_JOBS if j.name == "analytics_hourly"]
NOW = datetime(2026, 11, 20, 11, 10, tzinfo=UTC)


def record_run(db, dag_id: str, run_id: str, status: str, window_end: datetime | None = None):
    jr = start_job_run(db, RunKey(dag_id, "ingest_events", run_id), window_end=window_end)
    finish_job_run(db, jr, status)
    return jr


def states(db) -> dict[str, str]:
    return {r["job_key"]: r["state"] for r in job_states(db)}


def test_flips_alert_recover_and_are_kept_in_history(db, tmp_path):
    record_run(db, "analytics_hourly", "scheduled__2026-11-20T10:00:00+00:00", "completed",
               window_end=datetime(2026, 11, 20, 11, tzinfo=UTC))  # fmt: skip
    kw = {"source": None, "dag_jobs": HOURLY, "check_artifacts": False, "channels": []}
    first = evaluate_all(db, NOW, **kw)
    assert states(db)["dag:analytics_hourly"] == "up"
    assert first.source == "ops.job_runs"
    late = evaluate_all(db, NOW + timedelta(hours=1, minutes=25), **kw)  # 12:35: tick 12:00+30
    assert states(db)["dag:analytics_hourly"] == "late"
    assert [a.transition for a in late.alerts if a.dedup_key.startswith("health:")] == ["opened"]
    evaluate_all(db, NOW + timedelta(hours=2, minutes=25), **kw)  # 13:35: two ticks missed
    row = db.execute(
        "SELECT severity, title, state FROM ops.alerts WHERE dedup_key = %s",
        ("health:dag:analytics_hourly",),
    ).fetchone()
    assert row == ("critical", "dag:analytics_hourly is DOWN", "open")
    # the job catches up: back to up, the alert resolves
    record_run(db, "analytics_hourly", "scheduled__2026-11-20T12:00:00+00:00", "completed",
               window_end=datetime(2026, 11, 20, 13, tzinfo=UTC))  # fmt: skip
    evaluate_all(db, NOW + timedelta(hours=2, minutes=30), **kw)
    assert states(db)["dag:analytics_hourly"] == "up"
    assert (
        db.execute(
            "SELECT state FROM ops.alerts WHERE dedup_key = 'health:dag:analytics_hourly'"
        ).fetchone()[0]
        == "resolved"
    )
    history = [
        (h["from_state"], h["to_state"]) for h in job_health_history(db, "dag:analytics_hourly")
    ]
    assert history == [("down", "up"), ("late", "down"), ("up", "late"), (None, "up")]


def test_missing_artifacts_alert_even_without_any_run(db, tmp_path):
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)  # 04:00 PST: yesterday = 2026-11-20
    kw = {"source": None, "dag_jobs": [], "artifacts_dir": str(tmp_path), "channels": []}
    evaluate_all(db, now, **kw)
    assert states(db)["artifact:sampling_proof"] == "down"
    assert states(db)["artifact:dashboard_snapshot"] == "down"
    body = db.execute(
        "SELECT body FROM ops.alerts WHERE dedup_key = 'health:artifact:sampling_proof'"
    ).fetchone()[0]
    assert "2026-11-20" in body
    proof = Path(tmp_path) / "sampling-proofs" / "sampling-proof-20261120.json"
    proof.parent.mkdir(parents=True)
    proof.write_text(json.dumps({"status": "passed"}))
    db.execute(
        "INSERT INTO analytics.dashboard_snapshots (snapshot_date, status) VALUES (%s, 'complete')",
        (datetime(2026, 11, 20).date(),),
    )
    evaluate_all(db, now + timedelta(minutes=5), **kw)
    assert states(db)["artifact:sampling_proof"] == "up"
    assert states(db)["artifact:dashboard_snapshot"] == "up"
    assert db.execute("SELECT count(*) FROM ops.alerts WHERE state = 'open'").fetchone()[0] == 0


def test_failure_alerts_resolve_after_a_later_success(db, tmp_path):
    run1 = "scheduled__2026-11-20T10:00:00+00:00"
    record_run(db, "analytics_hourly", run1, "failed")
    alerts.raise_alert(db, callbacks.task_failure_key("analytics_hourly", "ingest_events"),
                       "warning", "task_failure", "ingest failed", run_id=run1)  # fmt: skip
    alerts.raise_alert(db, "deadline_missed:analytics_hourly:" + run1, "critical", "deadline",
                       "missed", run_id=run1)  # fmt: skip
    kw = {"source": None, "dag_jobs": HOURLY, "check_artifacts": False, "channels": []}
    evaluate_all(db, NOW, **kw)
    # the failed run has finished: its deadline alert resolves; the failure stays open
    open_keys = {r[0] for r in db.execute("SELECT dedup_key FROM ops.alerts WHERE state='open'")}
    assert open_keys == {"task_failed:analytics_hourly:ingest_events"}
    record_run(db, "analytics_hourly", "manual__retry", "completed")
    evaluate_all(db, NOW, **kw)
    assert db.execute("SELECT count(*) FROM ops.alerts WHERE state = 'open'").fetchone()[0] == 0


def test_an_unreachable_airflow_api_falls_back_to_job_runs(db, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    record_run(db, "analytics_hourly", "scheduled__2026-11-20T10:00:00+00:00", "completed",
               window_end=datetime(2026, 11, 20, 11, tzinfo=UTC))  # fmt: skip
    source = AirflowApiSource(f"http://127.0.0.1:{port}", timeout=2)
    result = evaluate_all(db, NOW, source=source, dag_jobs=HOURLY,
                          check_artifacts=False, channels=[])  # fmt: skip
    assert "unreachable" in result.fallback_reason
    row = next(r for r in job_states(db) if r["job_key"] == "dag:analytics_hourly")
    assert row["state"] == "up" and row["source"].startswith("ops.job_runs (fallback:")
