"""The probe of ``tests/e2e/test_settings_in_tasks.py``: one task reads the PostHog ingest settings
and the health thresholds twice each, through the package's settings mechanism, and writes what it
saw to the file ``SETTINGS_PROBE_OUT`` names."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False)
def settings_probe():
    @task
    def read_settings() -> None:
        import json
        import os
        from pathlib import Path

        from include.analytics_ops.github.health import HealthThresholds
        from include.analytics_ops.ingest.config import IngestConfig

        seen = []
        for _ in range(2):
            ingest, health = IngestConfig.from_settings(), HealthThresholds.from_settings()
            seen.append({"page_size": ingest.page_size, "healthy_min": health.healthy_min})
        Path(os.environ["SETTINGS_PROBE_OUT"]).write_text(json.dumps(seen))

    read_settings()


settings_probe()
