"""``make demo`` steps for inventory_refresh: a scheduled run with one failing client (the run
fails, the summary names it, an alert opens), then a manual run of just that client after the
backend recovered (exits 0, the alert resolves).

The lead wires these into ``include/sandbox/demo_steps/__init__.py`` as ``DemoStep``s; the sandbox
faults are set through its HTTP control endpoint (``/_sandbox/faults``).
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import psycopg

from include.analytics_ops.inventory import ALERT_KEY
from include.analytics_ops.inventory.results import read_summary

FAILING_CLIENT = "client-005"
FAILING_STATUS = 403  # permanent: not retried, so the demo does not wait for Airflow retries
WHEN = "2026-11-21T10:00:00+00:00"  # 02:00 PST on the day after the demo day


def _set_faults(env: Any, **knobs: Any) -> None:
    req = urllib.request.Request(
        f"{env.sandbox_url.rstrip('/')}/_sandbox/faults",
        data=json.dumps(knobs).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def prepare_failing_client(conn: psycopg.Connection, env: Any) -> None:
    _set_faults(env, inventory_fail_clients={FAILING_CLIENT: FAILING_STATUS})


def prepare_recovered(conn: psycopg.Connection, env: Any) -> None:
    _set_faults(env, inventory_fail_clients=None)


def summarize(conn: psycopg.Connection, env: Any) -> list[str]:
    """Lines for the demo output: the latest run's summary, failures, alert, where to look."""
    row = conn.execute(
        "SELECT run_id FROM analytics.inventory_refresh_runs ORDER BY listed_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return ["no inventory_refresh run recorded a work list"]
    summary = read_summary(conn, row[0])
    lines = [f"run {summary.run_id}: {summary.headline}"]
    lines += [r.line() for r in summary.failures[:5]]
    alert = conn.execute(
        "SELECT state, severity, title FROM ops.alerts WHERE dedup_key = %s", (ALERT_KEY,)
    ).fetchone()
    if alert:
        lines.append(f"alert {ALERT_KEY}: {alert[0]} [{alert[1]}] {alert[2]}")
    lines.append(
        "rows: SELECT client_id, platform, status, http_status, skus FROM "
        f"analytics.inventory_refresh_results WHERE run_id = '{summary.run_id}'"
    )
    return lines
