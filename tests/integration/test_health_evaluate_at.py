"""``HEALTH_EVALUATE_AT``: a demo (or a replay) evaluates job health as of its own day, so a
fixed-day run is not reported DOWN against today's clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from include.analytics_ops.monitoring import jobs
from include.analytics_ops.monitoring.evaluate import evaluate_all
from include.analytics_ops.store import RunKey, finish_job_run, start_job_run

HOURLY = [j for j in jobs.DAG_JOBS if j.name == "analytics_hourly"]
KW = {"source": None, "dag_jobs": HOURLY, "check_artifacts": False, "channels": []}


def hourly_run_for(db, window_end: datetime) -> None:
    run_id = f"scheduled__{window_end.isoformat()}"
    finish_job_run(db, start_job_run(db, RunKey("analytics_hourly", "ingest_events", run_id),
                                     window_end=window_end), "completed")  # fmt: skip


def test_the_demo_instant_judges_the_demo_days_runs(db, monkeypatch):
    hourly_run_for(db, datetime(2026, 11, 21, 11, tzinfo=UTC))
    against_clock = evaluate_all(db, **KW)  # today: that run is days old
    assert against_clock.summary()["problems"] == {"dag:analytics_hourly": "down"}

    monkeypatch.setenv("HEALTH_EVALUATE_AT", "2026-11-21T11:45:00+00:00")
    as_of_demo = evaluate_all(db, **KW)
    assert as_of_demo.now == datetime(2026, 11, 21, 11, 45, tzinfo=UTC)
    assert as_of_demo.summary()["problems"] == {}
    assert db.execute(
        "SELECT state FROM ops.alerts WHERE dedup_key = 'health:dag:analytics_hourly'"
    ).fetchone() == ("resolved",)


@pytest.mark.parametrize("bad", ["yesterday", "2026-11-21T11:45:00"])
def test_a_bad_health_evaluate_at_is_refused(db, monkeypatch, bad):
    monkeypatch.setenv("HEALTH_EVALUATE_AT", bad)
    with pytest.raises(ValueError, match="HEALTH_EVALUATE_AT"):
        evaluate_all(db, **KW)
