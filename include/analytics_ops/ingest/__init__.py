"""PostHog ingest for ``analytics_hourly``: one arrival-time window of events, exactly once.

Modules: ``config`` (settings with defaults), ``posthog`` (Query API client), ``validation``
(row checks → dead-letter reasons), ``loader`` (keyset paging → COPY → merge → checkpoint, and
dead-letter replay), ``rollups`` (per-date rollups, daily_metrics traffic, watermark), ``health``
(the fail-safe plan's health rules as queries). All plain functions; no Airflow needed.
"""

from __future__ import annotations

STREAM = "posthog"
CONN_ID = "posthog_api"
DAG_ID = "analytics_hourly"
INGEST_TASK_ID = "ingest_events"
ROLLUP_TASK_ID = "update_rollups"
