"""The data flow as Airflow Assets: after ``airflow dags reserialize`` the metadata DB names every
asset with the tasks that produce and read it (what the UI's asset graph and lineage tools read)."""

from __future__ import annotations

import json

import pytest

from include.analytics_ops import assets

pytestmark = pytest.mark.e2e

EXPECTED = {
    assets.POSTHOG_EVENTS.name: (
        {("analytics_hourly", "ingest_events"), ("analytics_hourly", "reconcile_late_arrivals")},
        {("analytics_hourly", "update_rollups"), ("analytics_nightly", "check_freshness")},
    ),
    assets.DAILY_METRICS.name: (
        {("analytics_hourly", "update_rollups"), ("analytics_hourly", "reconcile_late_arrivals")},
        {("analytics_nightly", "revenue_range"), ("analytics_weekly", "export_metrics_csv")},
    ),
    "analytics_db.analytics.sampling_proofs": (
        {("analytics_nightly", "write_proof")},
        {("analytics_weekly", "export_metrics_csv"), ("analytics_weekly", "build_cto_report")},
    ),
    assets.PROJECT_HEALTH.name: (
        {("analytics_nightly", "score_project_health")},
        {("analytics_weekly", "check_project_health")},
    ),
    assets.INVENTORY_RESULTS.name: ({("inventory_refresh", "refresh_client")}, set()),
    assets.LEDGER_ENTRIES.name: (
        {("cron_ledger", "collect_ledger")},
        {("cron_ledger", "evaluate_job_health")},
    ),
}


def _json(result) -> list[dict]:
    out = result.stdout
    return json.loads(out[out.find("[") :])


def test_assets_name_their_producing_and_consuming_tasks(devenv):
    devenv.airflow("dags", "reserialize")
    names = {a["name"] for a in _json(devenv.airflow("assets", "list", "-o", "json"))}
    assert set(EXPECTED) <= names
    assert {"artifacts.snapshots", "artifacts.exports", "artifacts.reports"} <= names
    for name, (producers, consumers) in EXPECTED.items():
        (detail,) = _json(devenv.airflow("assets", "details", "--name", name, "-o", "json"))
        produced = {(t["dag_id"], t["task_id"]) for t in detail["producing_tasks"]}
        consumed = {(t["dag_id"], t["task_id"]) for t in detail["consuming_tasks"]}
        assert producers <= produced, (name, produced)
        assert consumers <= consumed, (name, consumed)
        assert detail["scheduled_dags"] == []  # lineage only: nothing runs on an asset
