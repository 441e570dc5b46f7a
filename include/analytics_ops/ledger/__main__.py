"""``python -m include.analytics_ops.ledger {stats,collect}``

- ``stats [--job NAME] [--json] [--now ISO]``: the legacy dashboard (runs, success rate and
  failures over 24 h and 7 days, average interval, last failure) per job.
- ``collect [--paths SPEC] [--no-alert]``: one collection pass outside Airflow (``LEDGER_PATHS``
  by default), e.g. to backfill a file by hand; the summary names refused paths and failed files
  (exit status 1 when a file failed).

The database is ``--dsn``, ``$ANALYTICS_DSN`` or the connection ``--conn-id`` (default
``analytics_db``, e.g. ``AIRFLOW_CONN_ANALYTICS_DB``); ``--dsn`` is visible in ``ps``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime

from include.analytics_ops import db
from include.analytics_ops.ledger.collector import collect
from include.analytics_ops.ledger.stats import format_stats, ledger_stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.analytics_ops.ledger")
    db.add_database_arguments(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    st = sub.add_parser("stats", help="per-job statistics (legacy dashboard)")
    st.add_argument("--job")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--now", help="evaluate as of this ISO-8601 time (default: now)")
    co = sub.add_parser("collect", help="collect new ledger lines once")
    co.add_argument("--paths", default=None, help="files/globs (default: $LEDGER_PATHS)")
    co.add_argument("--no-alert", action="store_true", help="record only, raise no alerts")
    args = parser.parse_args(argv)

    try:
        conn = db.cli_connect(args)
    except db.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with conn:
        if args.command == "stats":
            now = datetime.fromisoformat(args.now) if args.now else datetime.now(UTC)
            if now.tzinfo is None:
                now = now.replace(tzinfo=UTC)
            stats = ledger_stats(conn, now=now, job=args.job)
            if args.json:
                print(json.dumps([s.as_dict() for s in stats], default=str, indent=2))
            else:
                total = conn.execute("SELECT count(*) FROM ops.ledger_entries").fetchone()[0]
                print(format_stats(stats, total_entries=total))
            return 0
        paths = args.paths if args.paths is not None else os.environ.get("LEDGER_PATHS", "")
        if not paths.strip():
            print("error: no paths (set LEDGER_PATHS or pass --paths)", file=sys.stderr)
            return 2
        result = collect(conn, paths, alert=not args.no_alert)
        print(json.dumps(result.summary(), indent=2, default=str))
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
