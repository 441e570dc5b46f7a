"""List and replay dead letters (``ops.dead_letters``).

Usage::

    python -m include.analytics_ops.dead_letters list   [--stream posthog] [--limit 50] [--json]
    python -m include.analytics_ops.dead_letters [--conn-id ID] replay [--stream posthog] [--id N]

``list`` shows open (unresolved) dead letters: id, stream, uuid/key, attempts, reason. ``replay``
re-validates them with the current settings (``POSTHOG_*``, see ``ingest.config``) and payloads
(fix a payload with SQL first if the data itself was wrong): rows that now pass are loaded exactly
once and marked resolved, the rollups of their dates are recomputed; rows that still fail keep
their (refreshed) reason and one more attempt is counted. The database is ``--dsn``,
``$ANALYTICS_DSN`` or the connection ``--conn-id`` (default ``analytics_db``, e.g.
``AIRFLOW_CONN_ANALYTICS_DB``); ``--dsn`` is visible in ``ps``. Exit status 0 when nothing is
left failing among the replayed rows, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from include.analytics_ops import db, store

REPLAYERS = ("posthog",)


def _print_table(rows: list[dict]) -> None:
    if not rows:
        print("no open dead letters")
        return
    print(f"{'id':>6}  {'stream':<8} {'key':<36}  {'tries':>5}  first seen            reason")
    for r in rows:
        print(
            f"{r['id']:>6}  {r['stream']:<8} {(r['source_key'] or '-')[:36]:<36}  "
            f"{r['attempts']:>5}  {r['first_seen']:%Y-%m-%d %H:%M:%S}  {r['reason']}"
        )
    print(f"{len(rows)} open dead letter(s)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m include.analytics_ops.dead_letters", description=__doc__.splitlines()[0]
    )
    db.add_database_arguments(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="show open dead letters")
    p_list.add_argument("--stream", default=None, help="only this stream (e.g. posthog)")
    p_list.add_argument("--limit", type=int, default=50)
    p_list.add_argument("--json", action="store_true", help="print JSON lines")
    p_replay = sub.add_parser("replay", help="re-validate and load open dead letters")
    p_replay.add_argument("--stream", default="posthog", choices=REPLAYERS)
    p_replay.add_argument("--id", dest="ids", type=int, action="append", help="only these ids")
    p_replay.add_argument("--limit", type=int, default=10_000)
    args = parser.parse_args(argv)

    try:
        conn = db.cli_connect(args)
    except Exception as exc:
        print(f"cannot connect to the analytics database: {exc}", file=sys.stderr)
        return 2
    with conn:
        if args.command == "list":
            rows = store.open_dead_letters(conn, args.stream, args.limit)
            if args.json:
                for r in rows:
                    print(json.dumps(r, default=str))
            else:
                _print_table(rows)
            return 0

        from include.analytics_ops.ingest.config import IngestConfig
        from include.analytics_ops.ingest.replay import replay_dead_letters

        result = replay_dead_letters(
            conn, IngestConfig.from_settings(), ids=args.ids, limit=args.limit
        )
        print(
            f"replayed {result.examined} dead letter(s): {result.loaded} loaded, "
            f"{result.already_present} already present, {result.still_failing} still failing"
        )
        if result.rollups is not None:
            print(
                "recomputed rollups for " + ", ".join(d.isoformat() for d in result.rollups.dates)
            )
        for failure in result.failures[:50]:
            print(f"  still failing: id {failure['id']}: {failure['reason']}")
        return 1 if result.still_failing else 0


if __name__ == "__main__":
    sys.exit(main())
