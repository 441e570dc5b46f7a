"""``airflow dags test analytics_nightly`` against the sandbox sample data (180 days of
``analytics.daily_metrics`` with planted anomalies; the GitHub branch talks to the sandbox).

Three scenarios, five runs: a clean day then its rerun without a logical date; the planted
revenue anomaly then its rerun (run fails, snapshot still written, alerts not re-sent); a day with
no data (freshness gate fails at once, nothing judged).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from include.analytics_ops import store
from include.analytics_ops.dates import pt_day_bounds
from include.analytics_ops.nightly import CHECK_TASK_IDS
from include.sandbox.constants import DEMO_DAY
from include.sandbox.generator import load_sample_data

pytestmark = pytest.mark.e2e

ANOMALY_DAY = date(2026, 10, 29)  # planted: revenue −35 %
MAIN_TASKS = {"check_freshness", *CHECK_TASK_IDS, "write_proof", "capture_snapshot"}


@pytest.fixture
def sample(db, pg_dsn, sandbox):
    load_sample_data(pg_dsn)
    return db


@pytest.fixture
def artifacts(tmp_path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def nightly(dag_test, artifacts):
    """``airflow dags test analytics_nightly`` writing its files under this test's directory."""

    def run(when=None, conf=None):
        return dag_test("analytics_nightly", when, conf=conf, env={"ARTIFACTS_DIR": str(artifacts)})

    return run


def output(result) -> str:
    return result.stdout + result.stderr


def ready(db, day: date) -> None:
    store.advance_watermark(db, "posthog", pt_day_bounds(day)[1])


def files(root: Path, day: date) -> tuple[Path, Path]:
    return (
        root / "sampling-proofs" / f"sampling-proof-{day:%Y%m%d}.json",
        root / "snapshots" / f"{day.isoformat()}.json",
    )


def task_statuses(db, run_id: str) -> dict[str, str]:
    rows = db.execute(
        "SELECT task_id, status FROM ops.job_runs WHERE dag_id = 'analytics_nightly'"
        " AND run_id = %s ORDER BY id",
        (run_id,),
    ).fetchall()
    return dict(rows)


def test_clean_day_then_rerun_without_logical_date(sample, nightly, artifacts):
    db = sample
    ready(db, DEMO_DAY)
    result = nightly("2026-11-21T10:00:00+00:00")  # 02:00 PST Nov 21
    assert result.returncode == 0, output(result)[-4000:]
    proof_file, snap_file = files(artifacts, DEMO_DAY)
    proof = json.loads(proof_file.read_text())
    assert proof["status"] == "passed" and proof["anomalies"] == []
    assert proof["target_date"] == "2026-11-20" and len(proof["checks"]) == 6
    snap = json.loads(snap_file.read_text())
    assert sorted(snap["metrics"]) == ["conversion", "idea_pool", "revenue", "traffic"]
    assert snap["errors"] == [] and snap["proof_status"] == "passed"
    first_run = proof["run_id"]
    assert snap["run_id"] == first_run
    statuses = task_statuses(db, first_run)
    assert {t: statuses[t] for t in MAIN_TASKS} == dict.fromkeys(MAIN_TASKS, "completed")
    assert statuses["sync_github"] == "completed"  # the parallel branch ran in the same run

    # Rerun the same day as a manual run without a logical date: everything is replaced.
    again = nightly(conf={"target_date": DEMO_DAY.isoformat()})
    assert again.returncode == 0, output(again)[-4000:]
    second_run = json.loads(proof_file.read_text())["run_id"]
    assert second_run != first_run
    assert json.loads(snap_file.read_text())["run_id"] == second_run
    results = db.execute(
        "SELECT check_name, run_id FROM analytics.check_results WHERE target_date = %s",
        (DEMO_DAY,),
    ).fetchall()
    assert sorted(results) == sorted((name, second_run) for name in CHECK_TASK_IDS)
    for table, key in (
        ("analytics.sampling_proofs", "target_date"),
        ("analytics.dashboard_snapshots", "snapshot_date"),
    ):
        rows = db.execute(f"SELECT status, run_id FROM {table} WHERE {key} = %s", (DEMO_DAY,))
        assert rows.fetchall() == [("passed" if "proof" in table else "complete", second_run)]
    assert len(list(proof_file.parent.iterdir())) == 1
    assert len(list(snap_file.parent.iterdir())) == 1


def test_anomaly_day_fails_the_run_keeps_the_snapshot_and_does_not_re_alert(
    sample, nightly, artifacts
):
    db = sample
    ready(db, ANOMALY_DAY)
    when = "2026-10-30T09:00:00+00:00"  # 02:00 PDT Oct 30 → checks Oct 29
    result = nightly(when)
    assert result.returncode != 0, output(result)[-4000:]
    assert "sampling proof for 2026-10-29 is CRITICAL" in output(result)

    proof_file, snap_file = files(artifacts, ANOMALY_DAY)
    proof = json.loads(proof_file.read_text())
    assert proof["status"] == "critical" and proof["exit_code"] == 2
    critical = {a["check_name"]: a["message"] for a in proof["anomalies"]}
    assert set(critical) == {"revenue_range", "revenue_trend"}
    assert critical["revenue_range"].startswith("revenue 2.8k, expected 3.6k–6.3k")
    snap = json.loads(snap_file.read_text())
    assert snap["proof_status"] == "critical" and snap["status"] == "complete"
    statuses = task_statuses(db, proof["run_id"])
    assert statuses["write_proof"] == "failed"
    assert statuses["capture_snapshot"] == "completed"
    assert all(statuses[name] == "completed" for name in CHECK_TASK_IDS)

    def metric_alert_events():
        return db.execute(
            "SELECT a.dedup_key, e.kind FROM ops.alert_events e JOIN ops.alerts a"
            " ON a.id = e.alert_id WHERE a.source = 'metric_check' ORDER BY e.id"
        ).fetchall()

    opened = metric_alert_events()
    assert sorted(opened) == [
        ("metric_check:revenue_range", "opened"),
        ("metric_check:revenue_trend", "opened"),
    ]
    rerun = nightly(when)
    assert rerun.returncode != 0
    later = metric_alert_events()[len(opened) :]
    assert sorted(k for _, k in later) == ["repeated", "repeated"]
    alerts = db.execute(
        "SELECT dedup_key, severity, state, notify_count FROM ops.alerts"
        " WHERE source = 'metric_check' ORDER BY dedup_key"
    ).fetchall()
    assert alerts == [
        ("metric_check:revenue_range", "critical", "open", 1),
        ("metric_check:revenue_trend", "critical", "open", 1),
    ]
    assert db.execute(
        "SELECT count(*) FROM analytics.check_results WHERE target_date = %s", (ANOMALY_DAY,)
    ).fetchone() == (6,)


def test_missing_day_fails_the_freshness_gate_and_judges_nothing(sample, nightly, artifacts):
    db = sample
    missing = date(2026, 11, 21)  # the sample data ends on DEMO_DAY
    ready(db, missing)  # the ingest claims completeness: waiting would not help
    result = nightly("2026-11-22T10:00:00+00:00")
    assert result.returncode != 0
    text = output(result)
    assert "MISSING DATA: 2026-11-21 is not complete although the ingest is done" in text
    assert "analytics.daily_metrics has no row for 2026-11-21" in text
    assert db.execute(
        "SELECT count(*) FROM analytics.check_results WHERE target_date = %s", (missing,)
    ).fetchone() == (0,)
    attempts = db.execute(
        "SELECT status, last_error FROM ops.job_runs WHERE task_id = 'check_freshness'"
    ).fetchall()
    assert len(attempts) == 1 and attempts[0][0] == "failed"  # not retried
    assert "MISSING DATA" in attempts[0][1]
    proof_file, snap_file = files(artifacts, missing)
    assert not proof_file.exists() and not snap_file.exists()
    assert db.execute("SELECT count(*) FROM analytics.sampling_proofs").fetchone() == (0,)
