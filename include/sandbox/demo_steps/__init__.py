"""The demo's steps, one per DAG run, with the lines each prints (see demo.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from include.sandbox.demo_steps import hourly as hourly_demo
from include.sandbox.demo_steps import inventory as inventory_demo
from include.sandbox.demo_steps import ledger as ledger_demo
from include.sandbox.demo_steps import weekly as weekly_demo
from include.sandbox.demo_steps.nightly import demo_steps as nightly_steps
from include.sandbox.devenv import DemoStep

#: The instant the demo's job health is evaluated at: 03:45 PST on the morning after the demo
#: day, when its nightly artifacts are due (03:30 PT) and the hourly windows up to 11:00 UTC are
#: ingested. Judging the fixed-day runs against the real clock would report every DAG DOWN.
DEMO_NOW = "2026-11-21T11:45:00+00:00"


def _ledger_prepare(conn: psycopg.Connection, env: Any) -> None:
    """The legacy ledger ends at the demo instant, like every other run of the demo."""
    from include.sandbox.generator import write_ladder_file

    write_ladder_file(ledger_demo.ledger_path(env), lines=60, end=datetime.fromisoformat(DEMO_NOW))


def _ledger_summary(conn: psycopg.Connection, env: Any) -> list[str]:
    """The ledger step's lines, with the per-job stats taken as of the demo instant."""
    from include.analytics_ops.ledger.stats import ledger_stats

    now = datetime.fromisoformat(DEMO_NOW)
    stats = []
    for st in ledger_stats(conn, now=now):
        rate = "n/a" if st.success_rate_24h is None else f"{st.success_rate_24h:.0f}%"
        last = f", last failure {st.last_failure:%H:%M} UTC" if st.last_failure else ""
        stats.append(
            f"job {st.job}: {st.runs_24h} runs in the 24 h before {DEMO_NOW}, {rate} ok{last}"
        )
    lines = ledger_demo.summarize(conn, env)
    health = [i for i, line in enumerate(lines) if line.startswith("job health: ")]
    at = health[0] if health else len(lines)
    kept = [line for line in lines[:at] if not line.startswith("job ")]
    tail = [
        line.replace("job health: ", f"job health as of {DEMO_NOW}: ", 1) for line in lines[at:]
    ]
    return [*kept, *stats, *tail]


def _hourly(hour: int, title: str) -> DemoStep:
    return DemoStep(
        title,
        "analytics_hourly",
        hourly_demo.when(hour),
        hourly_demo.summarize,
        env=hourly_demo.ENV,
        prepare=hourly_demo.prepare,
    )


STEPS: list[DemoStep] = [
    _hourly(0, "Hourly PostHog ingest, first window after the preloaded history"),
    _hourly(1, "Hourly PostHog ingest, next window"),
    *nightly_steps(),
    _hourly(2, "Hourly ingest + bug-risk monitor (after the nightly GitHub sync)"),
    DemoStep(
        "Inventory refresh, client-005 failing",
        "inventory_refresh",
        inventory_demo.WHEN,
        inventory_demo.summarize,
        expect_success=False,
        prepare=inventory_demo.prepare_failing_client,
    ),
    DemoStep(
        "Inventory refresh of client-005 after recovery",
        "inventory_refresh",
        None,
        inventory_demo.summarize,
        conf={"client_ids": [inventory_demo.FAILING_CLIENT]},
        prepare=inventory_demo.prepare_recovered,
    ),
]
STEPS.append(
    DemoStep(
        "Weekly CSV export + CTO report",
        "analytics_weekly",
        weekly_demo.DEMO_WHEN,
        weekly_demo.summary_lines,
        conf=weekly_demo.DEMO_CONF,
    )
)
STEPS.append(
    DemoStep(
        "Cron ledger: legacy cron results, alerts, job health",
        "cron_ledger",
        None,
        _ledger_summary,
        prepare=_ledger_prepare,
        env={**ledger_demo.ENV, "HEALTH_EVALUATE_AT": DEMO_NOW},
    )
)
