"""``python -m include.analytics_ops.monitoring {evaluate,status}``

- ``evaluate [--now ISO] [--source api|cli|job_runs] [--no-alert]``: one health pass — what
  ``cron_ledger.evaluate_job_health`` does. Run it from system cron (or a Kubernetes CronJob) too,
  as the watchdog that still alerts when Airflow's scheduler itself is dead.
- ``status [--json]``: the stored states (what the health page shows).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from include.analytics_ops import db
from include.analytics_ops.monitoring.evaluate import evaluate_all
from include.analytics_ops.monitoring.sources import primary_source
from include.analytics_ops.monitoring.store import job_states


def _print_states(rows: list[dict]) -> None:
    print(f"{'JOB':34} {'STATE':8} {'SINCE (UTC)':17} {'LAST SUCCESS (UTC)':19} REASON")
    for r in rows:
        since = r["since"].astimezone(UTC).strftime("%Y-%m-%d %H:%M") if r["since"] else "-"
        last = (
            r["last_success"].astimezone(UTC).strftime("%Y-%m-%d %H:%M")
            if r["last_success"]
            else "never"
        )
        print(f"{r['job_key']:34} {r['state']:8} {since:17} {last:19} {r['reason']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.analytics_ops.monitoring")
    db.add_database_arguments(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="evaluate every monitored job and alert on flips")
    ev.add_argument("--now", help="evaluate as of this ISO-8601 time (default: now)")
    ev.add_argument("--source", choices=("api", "cli", "job_runs"), default=None)
    ev.add_argument("--no-alert", action="store_true")
    st = sub.add_parser("status", help="print the stored job states")
    st.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        conn = db.cli_connect(args)
    except db.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with conn:
        if args.command == "evaluate":
            now = datetime.fromisoformat(args.now) if args.now else None
            if now is not None and now.tzinfo is None:
                now = now.replace(tzinfo=UTC)
            source = primary_source(args.source) if args.source else "settings"
            result = evaluate_all(conn, now, source=source, alert=not args.no_alert)
            print(json.dumps(result.summary(), indent=2, default=str))
            return 0
        rows = job_states(conn)
        if args.json:
            print(json.dumps(rows, indent=2, default=str))
        else:
            _print_states(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
