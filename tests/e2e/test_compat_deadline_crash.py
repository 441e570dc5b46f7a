"""``airflow dags test`` of a DAG with a deadline: the 3.3.2 crash (#73428) and our fix.

When upstream ships the fix, the first test fails (the unpatched run no longer crashes): delete
``include/analytics_ops/compat.py``'s fix and this test then.
"""

from __future__ import annotations

import pytest

from include.analytics_ops import compat
from tests.conftest import REPO_ROOT

PROBE_DIR = str(REPO_ROOT / "tests" / "e2e" / "probe_dags")
pytestmark = pytest.mark.e2e


def test_unpatched_airflow_still_crashes_on_a_successful_deadline_dag(dag_test):
    result = dag_test(
        "deadline_probe", env={"AIRFLOW__CORE__DAGS_FOLDER": PROBE_DIR, compat.DISABLE_ENV: "1"}
    )
    assert result.returncode != 0, (
        "airflow dags test no longer crashes without our fix: upstream fixed #73428 — remove "
        "the AIRFLOW_73428 fix from include/analytics_ops/compat.py"
    )
    output = result.stdout + result.stderr
    # SQLite says "'dict' object has no attribute 'hex'", psycopg2 "can't adapt type 'dict'":
    # either way the encoded alert dict reaches DeadlineAlertModel.get_by_id.
    assert "in get_by_id" in output and "FROM deadline_alert" in output, output[-3000:]


def test_with_the_fix_the_run_succeeds_and_exits_zero(dag_test):
    result = dag_test("deadline_probe", env={"AIRFLOW__CORE__DAGS_FOLDER": PROBE_DIR})
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "state=success" in result.stdout + result.stderr
