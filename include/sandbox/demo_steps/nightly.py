"""``make demo`` steps for ``analytics_nightly`` (the lead appends ``demo_steps()`` to
``include/analytics_ops/demo_steps.STEPS``).

Two runs, in this order so the alerts show their flips: the planted revenue anomaly of
2026-10-29 (run fails by design: proof critical, snapshot still written, alerts opened), then
the clean demo day 2026-11-20 (proof passed, the alerts resolve).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from include.analytics_ops.dates import pt_day_bounds
from include.analytics_ops.nightly.artifacts import proof_path, snapshot_path
from include.sandbox.constants import DEMO_DAY

ANOMALY_DAY = date(2026, 10, 29)


def _mark_ingested(day: date):
    """The demo ingests a single hourly window; mark the whole day as ingested (what 24 hourly
    runs would do) so the freshness gate lets the checks judge it."""

    def prepare(conn, env) -> None:
        from include.analytics_ops import store

        store.advance_watermark(conn, "posthog", pt_day_bounds(day)[1])

    return prepare


def summarize(day: date):
    def lines(conn, env) -> list[str]:
        out: list[str] = []
        proof = conn.execute(
            "SELECT status, exit_code, anomalies FROM analytics.sampling_proofs"
            " WHERE target_date = %s",
            (day,),
        ).fetchone()
        if proof is None:
            out.append(f"no sampling proof for {day}")
        else:
            out.append(f"sampling proof {day}: {proof[0].upper()} (exit code {proof[1]})")
            for a in proof[2]:
                out.append(f"  anomaly [{a['severity']}] {a['check']}: {a['message']}")
        rows = conn.execute(
            "SELECT check_name, severity FROM analytics.check_results WHERE target_date = %s"
            " ORDER BY check_name",
            (day,),
        ).fetchall()
        out.append("checks: " + ", ".join(f"{n}={s}" for n, s in rows))
        snap = conn.execute(
            "SELECT status, proof_status, summary FROM analytics.dashboard_snapshots"
            " WHERE snapshot_date = %s",
            (day,),
        ).fetchone()
        if snap:
            s = snap[2]
            out.append(
                f"snapshot {day}: {snap[0]} (proof {snap[1]}): revenue {s.get('revenue')},"
                f" orders {s.get('orders')}, sessions {s.get('sessions')},"
                f" conversion rate {s.get('conversion_rate')}, ideas {s.get('ideas_total')}"
            )
        artifacts = Path(env.artifacts_dir)
        for path in (proof_path(artifacts, day), snapshot_path(artifacts, day)):
            if path.exists():
                status = json.loads(path.read_text()).get("status")
                out.append(f"file {path} (status {status})")
        alerts = conn.execute(
            "SELECT dedup_key, severity, state FROM ops.alerts WHERE source = 'metric_check'"
            " ORDER BY dedup_key"
        ).fetchall()
        if alerts:
            out.append("metric alerts: " + ", ".join(f"{k} {sv} {st}" for k, sv, st in alerts))
        return out

    return lines


def demo_steps() -> list:
    from include.sandbox.devenv import DemoStep

    return [
        DemoStep(
            title="nightly checks on a planted anomaly day (revenue −35 %)",
            dag_id="analytics_nightly",
            when="2026-10-30T09:00:00+00:00",  # 02:00 PDT Oct 30 → checks Oct 29
            summarize=summarize(ANOMALY_DAY),
            expect_success=False,
            prepare=_mark_ingested(ANOMALY_DAY),
        ),
        DemoStep(
            title="nightly checks, proof and snapshot for the demo day",
            dag_id="analytics_nightly",
            when="2026-11-21T10:00:00+00:00",  # 02:00 PST Nov 21 → checks Nov 20
            summarize=summarize(DEMO_DAY),
            prepare=_mark_ingested(DEMO_DAY),
        ),
    ]
