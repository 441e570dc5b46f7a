"""``airflow dags test cron_ledger`` for real: collect a ledger file with failures, evaluate job
health (Airflow's API is unreachable under ``dags test``: the fallback is used and marked), and
the deadline-Variable CLI."""

from __future__ import annotations

import json
import socket

import pytest

pytestmark = pytest.mark.e2e


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cron_ledger_collects_alerts_and_evaluates_health(dag_test, db, tmp_path):
    ledger = tmp_path / "ladder.jsonl"
    ledger.write_text(
        '{"ts": "2026-11-20T04:30:00Z", "exit": 0, "msg": "Monitor started successfully"}\n'
        '{"ts": "2026-11-20T04:31:00Z", "exit": 1, "msg": "Connection failed - API timeout"}\n'
        "this line is not JSON\n"
        '{"ts": "2026-11-20T04:32:00Z", "exit": 2, "msg": "Authentication failed", "job": "auth"}\n'
        '{"ts": "2026-11-20T04:33:00Z", "exit": 0, "msg": "half-writ'
    )
    env = {
        "LEDGER_PATHS": str(tmp_path / "*.jsonl"),
        "AIRFLOW_CONN_AIRFLOW_API": json.dumps(
            {"conn_type": "http", "host": f"http://127.0.0.1:{_closed_port()}"}
        ),
    }
    result = dag_test("cron_ledger", env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    rows = db.execute(
        "SELECT job, exit_code, message FROM ops.ledger_entries ORDER BY ts"
    ).fetchall()
    assert rows == [
        ("ladder", 0, "Monitor started successfully"),
        ("ladder", 1, "Connection failed - API timeout"),
        ("auth", 2, "Authentication failed"),
    ]
    assert (
        db.execute("SELECT count(*) FROM ops.dead_letters WHERE stream = 'ledger'").fetchone()[0]
        == 1
    )
    open_alerts = dict(
        db.execute(
            "SELECT dedup_key, body FROM ops.alerts WHERE state = 'open' AND source = 'ledger'"
        ).fetchall()
    )
    assert set(open_alerts) == {"ledger_failed:ladder", "ledger_failed:auth"}
    assert "exit code 2" in open_alerts["ledger_failed:auth"]
    assert "Authentication failed" in open_alerts["ledger_failed:auth"]

    health = {
        r[0]: (r[1], r[2])
        for r in db.execute("SELECT job_key, state, source FROM ops.job_health").fetchall()
    }
    dags = ("analytics_nightly", "analytics_hourly", "inventory_refresh", "analytics_weekly",
            "cron_ledger")  # fmt: skip
    dag_keys = {f"dag:{d}" for d in dags}
    assert dag_keys | {"ledger:ladder", "ledger:auth", "artifact:sampling_proof",
                       "artifact:dashboard_snapshot"} <= set(health)  # fmt: skip
    assert all(health[k][1].startswith("ops.job_runs (fallback:") for k in dag_keys)
    # both tasks recorded their attempt; the malformed line makes the collection 'partial'
    runs = dict(db.execute("SELECT task_id, status FROM ops.job_runs WHERE dag_id = 'cron_ledger'"))
    assert runs == {"collect_ledger": "partial", "evaluate_job_health": "completed"}

    # a second run picks up the completed last line only
    with ledger.open("a") as fh:
        fh.write('ok"}\n')
    result = dag_test("cron_ledger", env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert db.execute("SELECT count(*) FROM ops.ledger_entries").fetchone()[0] == 4
    # ladder succeeded again: its alert resolved
    state = db.execute(
        "SELECT state FROM ops.alerts WHERE dedup_key = 'ledger_failed:ladder'"
    ).fetchone()[0]
    assert state == "resolved"


def test_bad_params_are_refused_before_any_work(dag_test, db):
    result = dag_test("cron_ledger", conf={"ledger_paths": 42})
    assert result.returncode != 0
    assert db.execute("SELECT count(*) FROM ops.ledger_files").fetchone()[0] == 0


def test_a_failing_run_alerts_through_task_and_dag_callbacks(dag_test, db):
    # A bad setting is a non-retryable error: the task fails at once, the run fails.
    result = dag_test(
        "cron_ledger", env={"HEALTH_RUN_SOURCE": "carrier-pigeon", "LEDGER_PATHS": ""}
    )
    assert result.returncode != 0
    alerts = dict(db.execute("SELECT dedup_key, body FROM ops.alerts WHERE state = 'open'"))
    assert (
        "HEALTH_RUN_SOURCE must be api, cli or job_runs"
        in alerts["task_failed:cron_ledger:evaluate_job_health"]
    )
    # the DAG-level callback recorded the run's failure, without a second message
    assert "dag_failed:cron_ledger" in alerts
    notified = db.execute(
        "SELECT last_notified_at IS NOT NULL FROM ops.alerts WHERE dedup_key = %s",
        ("dag_failed:cron_ledger",),
    ).fetchone()[0]
    assert notified is False
