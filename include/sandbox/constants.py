"""Credentials, fixed dates and Airflow connections of the sandbox upstreams.

Nothing here is a secret: these values only open the local stand-ins in ``include/sandbox``.
"""

from __future__ import annotations

import json
from datetime import date

POSTHOG_API_KEY = "phx_sandbox_personal_key"
POSTHOG_PROJECT_ID = 4242
INVENTORY_TOKEN = "sandbox-inventory-token"
GITHUB_TOKEN = "ghp_sandbox_token"

DEFAULT_PORT = 8811
DEFAULT_SEED = 7

#: The Pacific-time calendar day the demo runs for (its nightly run checks this day). No planted
#: anomaly falls on it or in the seven days before it, so its checks come out clean.
DEMO_DAY = date(2026, 11, 20)

#: Days of ``analytics.daily_metrics`` (and of the served PostHog events) that deviate on purpose.
PLANTED_ANOMALIES: dict[date, str] = {
    date(2026, 10, 15): "conversion-rate spike: conversions ×1.8 on normal sessions (promo email)",
    date(2026, 10, 29): "revenue −35% on normal orders (pricing bug: discount applied twice)",
    date(2026, 11, 6): "sessions −20% (CDN outage in one region); orders and revenue follow",
    date(2026, 11, 11): (
        "tracking break: zero sessions (web snippet not loaded); server-side purchases still "
        "arrive without $session_id, so orders and revenue are normal but conversions are 0"
    ),
}

#: Project timezone of the sandbox PostHog project (HogQL compares DateTime columns with naive
#: strings in this zone).
POSTHOG_PROJECT_TIMEZONE = "UTC"

#: Sample GitHub repositories: (repo, display name, active in analytics.projects).
SAMPLE_REPOS: tuple[tuple[str, str, bool], ...] = (
    ("acme/storefront", "Storefront", True),
    ("acme/checkout", "Checkout", True),
    ("acme/mobile-app", "Mobile app", True),
    ("acme/data-pipeline", "Data pipeline", True),
    ("acme/legacy-admin", "Legacy admin", False),
)

PLATFORMS = ("shopify", "amazon", "all")


def airflow_connections(url: str) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` environment variables (Airflow's JSON form) pointing at a sandbox."""
    url = url.rstrip("/")
    return {
        "AIRFLOW_CONN_POSTHOG_API": json.dumps(
            {
                "conn_type": "http",
                "host": url,
                "password": POSTHOG_API_KEY,
                "extra": {"project_id": POSTHOG_PROJECT_ID},
            }
        ),
        "AIRFLOW_CONN_INVENTORY_API": json.dumps(
            {"conn_type": "http", "host": url, "password": INVENTORY_TOKEN}
        ),
        "AIRFLOW_CONN_GITHUB_API": json.dumps(
            {"conn_type": "http", "host": url, "password": GITHUB_TOKEN}
        ),
    }
