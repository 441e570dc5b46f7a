"""GitHub project sync, project metrics and health scores, and the hourly bug-risk monitor.

Modules: ``client`` (httpx client for the GitHub REST API), ``sync`` (incremental issue/PR sync
into ``analytics.issues``), ``metrics`` (daily per-project metrics), ``health`` (the 0-100 health
score), ``risk`` (revenue at risk, velocity, SLA breaches and the bug-risk alerts). Everything is
plain functions over a psycopg connection; the Airflow operators live in
``include.analytics_ops.operators.github``.
"""

from __future__ import annotations

from include.analytics_ops.config import pairs

CONN_ID = "github_api"
SEVERITIES = ("critical", "high", "medium", "low")

#: How long a bug of each severity may stay open before it breaches its SLA (hours).
DEFAULT_SLA_HOURS: dict[str, float] = {"critical": 24, "high": 72, "medium": 7 * 24, "low": 30 * 24}


def parse_sla_hours(value: str) -> dict[str, float]:
    """SLA hours per severity from ``"critical=24,high=72,medium=168,low=720"``; severities not
    named keep their default. Raises ValueError on anything else."""
    out = dict(DEFAULT_SLA_HOURS)
    for sev, hours in pairs(value).items():
        if sev not in SEVERITIES:
            raise ValueError(f"unknown severity {sev!r} in SLA setting (use {SEVERITIES})")
        h = float(hours)
        if h <= 0:
            raise ValueError(f"SLA hours for {sev} must be positive, got {hours!r}")
        out[sev] = h
    return out
