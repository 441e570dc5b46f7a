"""``make demo`` step for ``cron_ledger``: a legacy ledger file with failures (and one malformed
line) is collected, the non-zero exits become alerts in ``ops.alerts``, and every job's health is
evaluated.

Wire it into ``include/sandbox/demo_steps/__init__.py``::

    from include.sandbox.demo_steps import ledger as ledger_demo
    DemoStep("Cron ledger: legacy cron results, alerts, job health", "cron_ledger", None,
             ledger_demo.summarize, prepare=ledger_demo.prepare, env=ledger_demo.ENV)

The ledger is written to end *now* (not on the demo day) so the ledger jobs' health is judged
against the real clock: ``sitemap_build``'s latest run failed, the others are up.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from include.analytics_ops.ledger.stats import ledger_stats

# Under `airflow dags test` no Airflow API runs: read run history from ops.job_runs directly
# (deterministic, and never another Airflow that happens to listen on localhost:8080).
ENV = {"HEALTH_RUN_SOURCE": "job_runs"}


def ledger_path(env: Any) -> Path:
    return Path(env.workdir) / "ledger" / "ladder.jsonl"  # matches DevEnv's LEDGER_PATHS glob


def prepare(conn: psycopg.Connection, env: Any) -> None:
    from include.sandbox.generator import write_ladder_file

    write_ladder_file(ledger_path(env), lines=60, end=datetime.now(UTC))


def summarize(conn: psycopg.Connection, env: Any) -> list[str]:
    lines = []
    for path, read, malformed, offset in conn.execute(
        "SELECT path, lines_read, malformed, byte_offset FROM ops.ledger_files ORDER BY path"
    ):
        lines.append(f"{path}: {read} lines read, {malformed} malformed (dead letters),"
                     f" offset {offset}")  # fmt: skip
    for s in ledger_stats(conn):
        rate = "n/a" if s.success_rate_24h is None else f"{s.success_rate_24h:.0f}%"
        last = f", last failure {s.last_failure:%H:%M} UTC" if s.last_failure else ""
        lines.append(f"job {s.job}: {s.runs_24h} runs in 24 h, {rate} ok{last}")
    for key, severity, state, title, body in conn.execute(
        "SELECT dedup_key, severity, state, title, body FROM ops.alerts"
        " WHERE source = 'ledger' ORDER BY id"
    ):
        lines.append(f"ALERT {key} [{severity}, {state}] {title} — {body[:90]}")
    states: dict[str, list[str]] = {}
    for key, state in conn.execute("SELECT job_key, state FROM ops.job_health ORDER BY job_key"):
        states.setdefault(state, []).append(key)
    lines.append(
        "job health: "
        + "; ".join(f"{st}: {', '.join(keys)}" for st, keys in sorted(states.items()))
    )
    lines.append(
        "more: python -m include.analytics_ops.ledger stats |"
        " python -m include.analytics_ops.monitoring status |"
        " SELECT * FROM ops.alerts WHERE state = 'open'"
    )
    return lines
