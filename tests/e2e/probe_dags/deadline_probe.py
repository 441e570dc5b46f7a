"""A one-task DAG with a Deadline Alert, used to check the 3.3.2 ``dags test`` crash (#73428)."""

from datetime import UTC, datetime

from airflow.sdk import dag, task

from include.analytics_ops import deadlines


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    deadline=deadlines.deadline("analytics_hourly"),
    tags=["monitoring"],
)
def deadline_probe():
    @task
    def say_hello() -> None:
        print("hello")

    say_hello()


deadline_probe()
