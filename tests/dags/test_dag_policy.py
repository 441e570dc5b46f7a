"""Policies every DAG must follow (STYLE.md §3, §5, §8)."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import pytest

from include.analytics_ops import config
from include.analytics_ops.callbacks import on_dag_failure, on_task_failure
from include.analytics_ops.deadlines import on_deadline_missed


@pytest.fixture(scope="module")
def dags(dagbag):
    assert dagbag.dags, "no DAGs loaded"
    return dagbag.dags


def test_tags_owner_and_docs(dags):
    for dag_id, dag in dags.items():
        assert dag.tags and set(dag.tags) <= config.ALLOWED_TAGS, (dag_id, dag.tags)
        assert dag.doc_md and len(dag.doc_md) > 200, f"{dag_id} needs a doc_md runbook"
        doc = dag.doc_md.lower()
        assert "owner" in doc and "when it fails" in doc, f"{dag_id} doc_md lacks owner/runbook"


def test_schedule_start_date_and_catchup_are_explicit(dags):
    for dag_id, dag in dags.items():
        tree = ast.parse(Path(dag.fileloc).read_text())
        keywords = {
            kw.arg for node in ast.walk(tree) if isinstance(node, ast.Call) for kw in node.keywords
        }
        assert {"schedule", "catchup", "start_date"} <= keywords, dag_id
        assert dag.start_date is not None and dag.start_date.tzinfo is not None, dag_id


def test_every_task_has_owner_retries_backoff_timeout_and_failure_callback(dags):
    for dag_id, dag in dags.items():
        for task in dag.tasks:
            where = f"{dag_id}.{task.task_id}"
            assert task.owner == config.OWNER, where
            assert task.retries >= 2 or getattr(task, "retries_policy_reason", None), where
            assert task.retry_exponential_backoff, where
            assert isinstance(task.execution_timeout, timedelta), where
            callbacks = task.on_failure_callback
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            assert on_task_failure in callbacks, where


def test_every_dag_has_a_deadline_through_the_alert_path(dags):
    for dag_id, dag in dags.items():
        alerts = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
        assert alerts and alerts[0] is not None, f"{dag_id} has no deadline"
        alert = alerts[0]
        # A plain timedelta: no Variable (or other state) is resolved when a run is created.
        assert alert.interval == timedelta(seconds=config.DEADLINE_DEFAULT_SECONDS[dag_id])
        assert alert.callback.path.endswith(on_deadline_missed.__name__), dag_id
        assert alert.callback.path.startswith("include.analytics_ops."), dag_id


def test_every_dag_reports_run_failures_through_the_alert_path(dags):
    # A plain function, not a BaseNotifier: DAG-level notifiers crash under dag.test() (#64649).
    for dag_id, dag in dags.items():
        callbacks = dag.on_failure_callback
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        assert on_dag_failure in callbacks, dag_id


def test_cron_ledger_judges_health_after_collecting_and_even_if_collection_fails(dags):
    # Side by side, `dags test` (and the scheduler) could evaluate before the new lines exist.
    dag = dags["cron_ledger"]
    evaluate = dag.get_task("evaluate_job_health")
    assert evaluate.upstream_task_ids == {"collect_ledger"}
    assert evaluate.trigger_rule == "all_done"
    # ...and a leaf that needs the collection to succeed, so a failed one fails the run.
    leaves = {t.task_id: t for t in dag.tasks if not t.downstream_task_ids}
    assert set(leaves) == {"evaluate_job_health", "ledger_collected"}
    assert leaves["ledger_collected"].trigger_rule == "all_success"
    assert leaves["ledger_collected"].upstream_task_ids == {"collect_ledger"}
