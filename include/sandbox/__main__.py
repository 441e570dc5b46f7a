"""``python -m include.sandbox serve|load|ladder``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

from include.sandbox.constants import DEFAULT_PORT, DEFAULT_SEED, DEMO_DAY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.sandbox")
    sub = parser.add_subparsers(dest="command", required=True)

    p_serve = sub.add_parser("serve", help="run the PostHog, inventory and GitHub stand-ins")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 = any free port")
    p_serve.add_argument("--seed", type=int, default=DEFAULT_SEED)

    p_load = sub.add_parser("load", help="load the sample data into a migrated database")
    p_load.add_argument("--dsn", required=True)
    p_load.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p_load.add_argument("--days", type=int, default=180)
    p_load.add_argument("--end-day", type=date.fromisoformat, default=DEMO_DAY)
    p_load.add_argument("--clients", type=int, default=12)

    p_ladder = sub.add_parser("ladder", help="write a sample cron ledger (JSONL) file")
    p_ladder.add_argument("path")
    p_ladder.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p_ladder.add_argument("--lines", type=int, default=60)

    args = parser.parse_args(argv)
    if args.command == "serve":
        from include.sandbox.server import serve

        serve(args.host, args.port, args.seed)
        return 0
    if args.command == "load":
        from include.sandbox.generator import load_sample_data

        counts = load_sample_data(
            args.dsn, seed=args.seed, days=args.days, end_day=args.end_day, clients=args.clients
        )
        print(json.dumps(counts))
        return 0
    from include.sandbox.generator import write_ladder_file

    print(json.dumps(write_ladder_file(args.path, seed=args.seed, lines=args.lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
