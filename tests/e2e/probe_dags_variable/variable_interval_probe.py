"""A DAG whose deadline is a ``VariableInterval`` on a Variable nobody sets: the canary of
tests/e2e/test_compat_variable_interval.py (never deployed; the project uses timedeltas)."""

from datetime import UTC, datetime

from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference, dag, task
from airflow.sdk.definitions.deadline import VariableInterval

from include.analytics_ops.deadlines import on_deadline_missed


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=VariableInterval("analytics_ops_canary_missing_seconds"),
        callback=AsyncCallback(on_deadline_missed, kwargs={"dag_id": "variable_interval_probe"}),
    ),
    tags=["monitoring"],
)
def variable_interval_probe():
    @task
    def say_hello() -> None:
        print("hello")

    say_hello()


variable_interval_probe()
