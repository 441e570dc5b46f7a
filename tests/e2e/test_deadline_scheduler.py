"""Deadline Alerts under a real scheduler + triggerer (``airflow standalone``, LocalExecutor on the
devenv's PostgreSQL metadata DB), started and stopped by the test:

- a run that overruns its (5 s) deadline produces exactly one deadline alert in ``ops.alerts``;
- a run that fails before its (60 s) deadline produces a failure alert and no deadline alert,
  even after the deadline passed (Airflow 3.3.2 still fires it for failed runs, #60927);
- the health monitor's REST source reads the same runs from the live API.

Probe DAGs are written to a temp folder; their deadlines come from DEADLINE_<DAG_ID>_SECONDS.
Run alone: ``.venv/bin/python -m pytest -m scheduler tests/e2e/test_deadline_scheduler.py``.
"""

from __future__ import annotations

import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from include.analytics_ops.monitoring.sources import AirflowApiSource
from tests.e2e.airflow_services import Standalone, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.scheduler]

PROBES = textwrap.dedent(
    '''
    """Probe DAGs for tests/e2e/test_deadline_scheduler.py."""
    import time
    from datetime import UTC, datetime

    from airflow.sdk import dag, task

    from include.analytics_ops import callbacks, deadlines


    @dag(schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False,
         default_args=callbacks.default_args(retries=0),
         deadline=deadlines.deadline("deadline_sleepy"),
         tags=["monitoring"])
    def deadline_sleepy():
        @task
        def nap():
            time.sleep(60)

        nap()


    @dag(schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False,
         default_args=callbacks.default_args(retries=0),
         deadline=deadlines.deadline("deadline_failing"),
         tags=["monitoring"])
    def deadline_failing():
        @task
        def fail_fast():
            raise RuntimeError("probe failure before the deadline")

        fail_fast()


    deadline_sleepy()
    deadline_failing()
    '''
)
FAILING_DEADLINE_S = 60


@pytest.fixture
def standalone(devenv, tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "deadline_probes.py").write_text(PROBES)
    env = devenv.env(
        AIRFLOW_HOME=str(tmp_path / "home"),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__CORE__PARALLELISM="4",
        DEADLINE_DEADLINE_SLEEPY_SECONDS="5",
        DEADLINE_DEADLINE_FAILING_SECONDS=str(FAILING_DEADLINE_S),
    )
    services = Standalone(env, tmp_path / "standalone.log")
    try:
        yield services.start(timeout=150)
    finally:
        services.stop()


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:]


def test_deadline_alerts_under_a_real_scheduler(standalone, db):
    base, log_path = standalone.base_url, standalone.log_path
    client = httpx.Client(base_url=base, timeout=10)
    client.headers["Authorization"] = f"Bearer {standalone.token()}"
    for dag_id in ("deadline_sleepy", "deadline_failing"):
        wait_for(
            f"{dag_id} to be parsed",
            lambda d=dag_id: client.get(f"/api/v2/dags/{d}").status_code == 200,
            timeout=90,
        )
    runs = {}
    for dag_id in ("deadline_sleepy", "deadline_failing"):
        resp = client.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
        assert resp.status_code in (200, 201), resp.text
        runs[dag_id] = resp.json()["dag_run_id"]

    def alert_keys():
        return {r[0]: r[1] for r in db.execute("SELECT dedup_key, count FROM ops.alerts")}

    sleepy_key = f"deadline_missed:deadline_sleepy:{runs['deadline_sleepy']}"
    failure_key = "task_failed:deadline_failing:fail_fast"
    try:
        wait_for("the deadline alert of the overrunning run",
              lambda: sleepy_key in alert_keys(), timeout=120)  # fmt: skip
        wait_for("the failure alert", lambda: failure_key in alert_keys(), timeout=90)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_tail(log_path)}") from None

    # The failing run's deadline passes after it failed: still no deadline alert.
    failing = client.get(f"/api/v2/dags/deadline_failing/dagRuns/{runs['deadline_failing']}").json()
    assert failing["state"] == "failed"
    queued = datetime.fromisoformat(failing["queued_at"].replace("Z", "+00:00"))
    passed = queued + timedelta(seconds=FAILING_DEADLINE_S + 15)
    while datetime.now(passed.tzinfo) < passed:
        time.sleep(2)
    keys = alert_keys()
    assert keys[sleepy_key] == 1, keys  # exactly one, fired once
    assert [k for k in keys if k.startswith("deadline_missed:")] == [sleepy_key]
    body = db.execute(
        "SELECT body, url FROM ops.alerts WHERE dedup_key = %s", (failure_key,)
    ).fetchone()
    assert "probe failure before the deadline" in body[0]
    assert body[1].endswith("/tasks/fail_fast")

    # The health monitor's REST source sees the same runs on the live API.
    source = AirflowApiSource(base)
    sleepy_runs = source.dag_runs("deadline_sleepy")
    assert [r.run_id for r in sleepy_runs] == [runs["deadline_sleepy"]]
    assert sleepy_runs[0].state in ("running", "success") and sleepy_runs[0].start is not None
    assert [r.state for r in source.dag_runs("deadline_failing")] == ["failed"]
    assert source.is_paused("deadline_sleepy") is False
    assert source.pools()["posthog_api"] == 3  # created by every deployment path (pools ensure)
