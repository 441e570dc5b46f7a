"""Logic of the ``analytics_nightly`` DAG's main branch, callable without Airflow.

- :mod:`.freshness` — is day D complete (``analytics.daily_metrics`` row + PostHog watermark)?
- :mod:`.metric_checks` — run one of the six checks for D: read history (flagged days excluded),
  judge with :mod:`include.analytics_ops.checks`, upsert the ``analytics.check_results`` row.
- :mod:`.proof` — fold the six rows into the sampling proof (status, checks, anomalies): file +
  ``analytics.sampling_proofs``; per-check alerts on state changes.
- :mod:`.snapshot` — the dashboard snapshot (revenue, conversion, traffic, idea pool): file +
  ``analytics.dashboard_snapshots``; a category that cannot be read is an error entry, not a crash.

Every function takes an explicit psycopg connection and target date; every write is an upsert
keyed by the target date, and every file is replaced atomically, so a rerun or backfill of a day
leaves exactly what one clean run leaves.
"""

from __future__ import annotations

DAG_ID = "analytics_nightly"
WATERMARK_STREAM = "posthog"
CHECK_TASK_IDS = (
    "revenue_range",
    "revenue_trend",
    "conversion_rate_range",
    "conversion_rate_trend",
    "sessions_range",
    "sessions_trend",
)
