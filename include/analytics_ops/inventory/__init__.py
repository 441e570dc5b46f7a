"""Inventory-analytics cache refresh (the ``inventory_refresh`` DAG's logic).

Plain functions, callable without the Airflow runtime:

- :mod:`.jobs` — which clients × platforms to refresh (connected clients, validated manual
  params), split into batches, recorded as the run's work list in Postgres;
- :mod:`.api` — the HTTP client for ``GET /api/dashboard/inventory-analytics`` (bearer token,
  timeouts, retries with backoff for 5xx/429/timeouts, none for other 4xx), running a batch's calls
  concurrently on one asyncio loop;
- :mod:`.results` — outcomes upserted into ``analytics.inventory_refresh_results``, one batch run
  end to end (:func:`.results.run_batch`) and the run summary read back from Postgres.

Nothing heavy is imported here, so the DAG file may import the operators freely.
"""

from __future__ import annotations

PLATFORMS: tuple[str, ...] = ("shopify", "amazon", "all")
CONN_ID = "inventory_api"
ENDPOINT_PATH = "/api/dashboard/inventory-analytics"
ALERT_KEY = "inventory_refresh:failed_refreshes"
