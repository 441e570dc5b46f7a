"""The demo's steps, one per DAG run, with the lines each prints (see demo.py)."""

from __future__ import annotations

from include.analytics_ops.demo import DemoStep
from include.analytics_ops.ingest import demo as hourly_demo
from include.analytics_ops.inventory import demo as inventory_demo
from include.analytics_ops.ledger import demo as ledger_demo
from include.analytics_ops.nightly.demo import demo_steps as nightly_steps
from include.analytics_ops.reports import demo as weekly_demo


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
        ledger_demo.summarize,
        prepare=ledger_demo.prepare,
        env=ledger_demo.ENV,
    )
)
