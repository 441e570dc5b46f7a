"""Canary: Airflow 3.3.2's ``VariableInterval`` aborts DagRun creation when its Variable is
missing (the scheduler process exits on it; apache/airflow PR #68917 is open), which is why every
deadline here is a plain ``timedelta`` (config.deadline_seconds).

This test fails the day upstream stops aborting run creation on a missing Variable — the signal
to reconsider a UI-editable deadline (and to check the DB-stored case too: the scheduler's locked
session commit, "UNEXPECTED COMMIT - THIS WILL BREAK HA LOCKS!").
"""

from __future__ import annotations

import pytest

from tests.conftest import REPO_ROOT

PROBE_DIR = str(REPO_ROOT / "tests" / "e2e" / "probe_dags_variable")
pytestmark = pytest.mark.e2e


def test_a_missing_variable_interval_still_aborts_run_creation(dag_test):
    result = dag_test("variable_interval_probe", env={"AIRFLOW__CORE__DAGS_FOLDER": PROBE_DIR})
    output = result.stdout + result.stderr
    assert result.returncode != 0, (
        "a run of a DAG whose VariableInterval names a missing Variable was created: upstream "
        "fixed run creation (apache/airflow PR #68917) — VariableInterval may be usable again"
    )
    assert "VariableInterval 'analytics_ops_canary_missing_seconds' not found" in output, output[
        -3000:
    ]
