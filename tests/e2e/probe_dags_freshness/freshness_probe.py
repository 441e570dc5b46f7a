"""Test fixture DAGs: the nightly freshness gate alone, with a poke interval of a second, so a
test can watch it reschedule under ``airflow dags test``: ``freshness_probe`` waits up to 10
minutes, ``freshness_probe_timeout`` gives up after 3 seconds.

Owner: data-platform (tests only; not deployed). When it fails: see
tests/e2e/test_freshness_sensor.py.
"""

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG

from include.analytics_ops import callbacks
from include.analytics_ops.operators.checks import FreshnessGateOperator

for dag_id, timeout in (("freshness_probe", 600), ("freshness_probe_timeout", 3)):
    with DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        default_args=callbacks.default_args(),
        tags=["nightly"],
        doc_md=__doc__,
    ):
        FreshnessGateOperator(
            task_id="check_freshness", poke_interval=1, timeout=timedelta(seconds=timeout)
        )
