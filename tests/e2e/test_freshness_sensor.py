"""The freshness gate as a reschedule-mode sensor under the real ``airflow dags test`` runtime
(probe DAGs ``freshness_probe`` / ``freshness_probe_timeout``, poke interval 1 s): while the
watermark is behind, the task is rescheduled — no failed attempt, no retry, one ``running`` row
in ``ops.job_runs`` — and it succeeds once the watermark catches up; at its timeout it fails with
the STALE message, without retrying."""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta

import psycopg
import pytest

from include.analytics_ops import store
from include.analytics_ops.dates import pt_day_bounds
from include.sandbox.constants import DEMO_DAY
from include.sandbox.generator import load_sample_data
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.e2e

PROBE_ENV = {
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "tests" / "e2e" / "probe_dags_freshness")
}
WHEN = "2026-11-21T10:00:00+00:00"  # 02:00 PST: the target day is DEMO_DAY (2026-11-20)


@pytest.fixture
def sample(db, pg_dsn):
    load_sample_data(pg_dsn)
    return db


def behind(db, day: date) -> None:
    """The ingest is an hour short of the end of ``day``."""
    store.advance_watermark(db, "posthog", pt_day_bounds(day)[1] - timedelta(hours=1))


def airflow_attempts(devenv, dag_id: str) -> tuple[list[tuple], int]:
    """(state, try_number) of the probe's check_freshness instances and its reschedule count."""
    with psycopg.connect(devenv.dsn_for(devenv.airflow_db)) as meta:
        tis = meta.execute(
            "SELECT state, try_number FROM task_instance WHERE dag_id = %s"
            " AND task_id = 'check_freshness'",
            (dag_id,),
        ).fetchall()
        (reschedules,) = meta.execute(
            "SELECT count(*) FROM task_reschedule r JOIN task_instance t ON t.id = r.ti_id"
            " WHERE t.dag_id = %s AND t.task_id = 'check_freshness'",
            (dag_id,),
        ).fetchone()
    return tis, reschedules


def job_runs(db, dag_id: str) -> list[tuple]:
    return db.execute(
        "SELECT try_number, status, status_message, last_error FROM ops.job_runs"
        " WHERE dag_id = %s AND task_id = 'check_freshness' ORDER BY id",
        (dag_id,),
    ).fetchall()


def test_late_data_is_waited_for_by_rescheduling_then_the_gate_passes(sample, dag_test, devenv):
    db = sample
    behind(db, DEMO_DAY)
    results = []
    runner = threading.Thread(
        target=lambda: results.append(dag_test("freshness_probe", WHEN, env=PROBE_ENV)),
        daemon=True,
    )
    runner.start()
    bound = time.monotonic() + 300
    while airflow_attempts(devenv, "freshness_probe")[1] < 2:  # poked, rescheduled, poked again
        assert runner.is_alive(), f"the run ended before waiting: {results[0].stderr[-3000:]}"
        assert time.monotonic() < bound, "the sensor was not rescheduled twice within 300 s"
        time.sleep(0.2)
    tis, _ = airflow_attempts(devenv, "freshness_probe")
    assert [t[1] for t in tis] == [1]  # still the first try: waiting spends no retry
    waiting = job_runs(db, "freshness_probe")
    assert [(r[0], r[1]) for r in waiting] == [(1, "running")]  # no failed attempt
    assert waiting[0][2].startswith("STALE DATA: 2026-11-20")

    store.advance_watermark(db, "posthog", pt_day_bounds(DEMO_DAY)[1])  # the ingest caught up
    runner.join(timeout=300)
    assert not runner.is_alive(), "airflow dags test did not finish within 300 s"
    result = results[0]
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    tis, reschedules = airflow_attempts(devenv, "freshness_probe")
    assert tis == [("success", 1)] and reschedules >= 2
    rows = job_runs(db, "freshness_probe")
    assert [(r[0], r[1]) for r in rows] == [(1, "completed")]
    assert rows[0][2].startswith("data for 2026-11-20 is complete") and rows[0][3] is None


def test_the_timeout_fails_the_gate_with_the_stale_message_and_no_retry(sample, dag_test, devenv):
    db = sample
    behind(db, DEMO_DAY)
    result = dag_test("freshness_probe_timeout", WHEN, env=PROBE_ENV)
    text = result.stdout + result.stderr
    assert result.returncode != 0, text[-4000:]
    assert "AirflowSensorTimeout: STALE DATA: 2026-11-20 is not complete" in text, text[-4000:]
    tis, reschedules = airflow_attempts(devenv, "freshness_probe_timeout")
    assert tis == [("failed", 1)] and reschedules >= 1  # it waited, then failed: not retried
    rows = job_runs(db, "freshness_probe_timeout")
    assert [(r[0], r[1], r[2]) for r in rows] == [(1, "failed", "stale")]
    assert rows[0][3].startswith("STALE DATA: 2026-11-20") and "Timed out after" in rows[0][3]
