"""The data the DAGs produce and read, declared as Airflow Assets: the UI's asset graph and
lineage tools show which task writes and which reads each table or artifact. Nothing is
scheduled on them (the nightly keeps its cron + freshness gate: an asset-or-time schedule is an
OR, and PT day partitions do not line up with UTC hours on DST days).

URIs use the project's own scheme (``analytics-ops://``): the real host of ``analytics_db`` is a
connection, which must not be read at parse time. Constants only — safe at DAG parse time.
"""

from __future__ import annotations

from airflow.sdk import Asset


def _table(table: str) -> Asset:
    return Asset(
        name=f"analytics_db.{table}", uri=f"analytics-ops://analytics_db/{table}", group="table"
    )


def _artifact(kind: str) -> Asset:
    return Asset(name=f"artifacts.{kind}", uri=f"analytics-ops://artifacts/{kind}", group="file")


POSTHOG_EVENTS = _table("analytics.posthog_events")
ROLLUPS = [
    _table("analytics.listing_daily_stats"),
    _table("analytics.user_daily_stats"),
    _table("analytics.development_daily_stats"),
    _table("analytics.leads"),
]
DAILY_METRICS = _table("analytics.daily_metrics")
CHECK_RESULTS = _table("analytics.check_results")
SAMPLING_PROOFS = [_table("analytics.sampling_proofs"), _artifact("sampling-proofs")]
DASHBOARD_SNAPSHOTS = [_table("analytics.dashboard_snapshots"), _artifact("snapshots")]
GITHUB_ISSUES = _table("analytics.issues")
PROJECT_HEALTH = _table("analytics.project_health")
INVENTORY_RESULTS = _table("analytics.inventory_refresh_results")
WEEKLY_EXPORTS = _artifact("exports")
CTO_REPORT = _artifact("reports")
LEDGER_ENTRIES = _table("ops.ledger_entries")
JOB_HEALTH = _table("ops.job_health")
