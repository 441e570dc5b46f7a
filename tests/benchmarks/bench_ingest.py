"""Benchmark: end-to-end PostHog ingest vs a raw binary COPY of the same rows, same Postgres.

    .venv/bin/python tests/benchmarks/bench_ingest.py [--events 500000] [--page-size 10000]
                                                        [--sizes 125000,250000]

A small server on loopback HTTP answers the Query API with **pre-built pages** of exactly N
synthetic events (the sandbox's benchmark generator, ``events.SyntheticHour``), encoded before the
clock starts and looked up by the keyset cursor of each request: the benchmark measures our side
(HTTP, decode, validate, COPY, merge, checkpoint), not the sandbox's ClickHouse engine. Each
ingest runs in a fresh child process (``ingest_window``: keyset pages →
validate → binary COPY into a temp staging table → INSERT … ON CONFLICT (uuid) DO NOTHING →
checkpoint, with page k+1 prefetched in a thread) so its peak RSS is its own. The baseline then
COPYs the very rows the ingest loaded (pre-materialised in memory, jsonb pre-encoded) in binary
straight into a copy of ``analytics.posthog_events`` (same indexes). Prints events/s, the ratio
to the baseline (target >= 0.5) and the ingest's peak RSS per window size (target <= 300 MB and
flat as the window grows). Uses ``PG_DSN`` if set, else an embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

WINDOW_START = datetime(2026, 11, 20, 10, tzinfo=UTC)


class PrebuiltPages:
    """Query API pages of ``n`` synthetic events for one page size, keyed by the cursor the client
    sends (``None`` for the first page), as ready-to-send response bodies."""

    def __init__(self, n: int, page_size: int, seed: int = 7) -> None:
        import msgspec

        from include.analytics_ops.ingest.validation import COLUMNS
        from include.sandbox.events import SyntheticHour
        from include.sandbox.timeutil import dt_to_us

        encode = msgspec.json.encode
        head = encode(
            {
                "columns": list(COLUMNS),
                "types": [[c, "String"] for c in COLUMNS],
                "hasMore": None,
                "limit": page_size,
                "offset": 0,
                "is_cached": False,
                "error": None,
            }
        )[:-1]
        self.page_size = page_size
        self.pages: dict[tuple[int, str] | None, bytes] = {}
        key, buf = None, []
        for r in SyntheticHour(dt_to_us(WINDOW_START), n, seed).rows(0, n):
            buf.append((r[1], r[4], r[5], r[7], r[8], r[6], r[0]))
            if len(buf) == page_size:
                self.pages[key] = head + b',"results":' + encode(buf) + b"}"
                key, buf = (r[0], r[1]), []
        self.pages[key] = head + b',"results":' + encode(buf) + b"}"

    def serve(self):
        """Start a threaded loopback server; returns (server, url)."""
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import msgspec

        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = msgspec.json.decode(self.rfile.read(int(self.headers["Content-Length"])))
                values = body["query"]["values"]
                key = (values["c_ms"], values["c_uuid"]) if "c_ms" in values else None
                page = pages.get(key)
                status = 200 if page is not None else 400
                page = page if page is not None else b'{"detail":"unknown cursor"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}"


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: per address space, so not inherited across fork/exec
    like ``ru_maxrss``); falls back to ``ru_maxrss`` off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(dsn: str, url: str, hour: int, page_size: int, prefetch: bool) -> None:
    import psycopg

    from include.analytics_ops.ingest.config import IngestConfig
    from include.analytics_ops.ingest.loader import Window, ingest_window
    from include.analytics_ops.ingest.posthog import PostHogClient
    from include.sandbox.constants import POSTHOG_API_KEY, POSTHOG_PROJECT_ID

    start = WINDOW_START + timedelta(hours=hour)
    window = Window(start, start + timedelta(hours=1))
    cfg = IngestConfig(page_size=page_size, prefetch=prefetch)
    with (
        psycopg.connect(dsn, autocommit=True) as conn,
        PostHogClient(url, POSTHOG_API_KEY, POSTHOG_PROJECT_ID) as client,
    ):
        t0 = time.perf_counter()
        result = ingest_window(conn, client, window, cfg)
        seconds = time.perf_counter() - t0
    rss_mb = peak_rss_mb()
    print(
        json.dumps(
            {
                "rows": result.inserted,
                "fetched": result.fetched,
                "pages": result.pages,
                "seconds": seconds,
                "peak_rss_mb": rss_mb,
            }
        )
    )


def run_child(dsn: str, url: str, hour: int, page_size: int, prefetch: bool) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            dsn,
            url,
            str(hour),
            str(page_size),
            "1" if prefetch else "0",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def baseline_copy(dsn: str, hour: int) -> tuple[int, float]:
    """Raw binary COPY of the rows of window ``hour`` into a fresh copy of posthog_events."""
    import psycopg

    start = WINDOW_START + timedelta(hours=hour)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = [
            (r[0], r[1], r[2], r[3], r[4], b"\x01" + r[5].encode())
            for r in conn.execute(
                "SELECT uuid, event, distinct_id, timestamp, created_at, properties::text"
                " FROM analytics.posthog_events WHERE created_at >= %s AND created_at < %s",
                (start, start + timedelta(hours=1)),
            )
        ]
        conn.execute("DROP TABLE IF EXISTS public.bench_copy")
        conn.execute("CREATE TABLE public.bench_copy (LIKE analytics.posthog_events INCLUDING ALL)")
        t0 = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(
                "COPY public.bench_copy (uuid, event, distinct_id, timestamp, created_at,"
                " properties) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["uuid", "text", "text", "timestamptz", "timestamptz", "bytea"])
            for row in rows:
                copy.write_row(row)
        seconds = time.perf_counter() - t0
        conn.execute("DROP TABLE public.bench_copy")
    return len(rows), seconds


def _empty(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE analytics.posthog_events, ops.checkpoints, ops.dead_letters")
        conn.execute("VACUUM ANALYZE analytics.posthog_events")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        dsn, url, hour, page_size, prefetch = sys.argv[2:7]
        child(dsn, url, int(hour), int(page_size), prefetch == "1")
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000, help="events in the main window")
    parser.add_argument("--page-size", type=int, default=10_000)
    parser.add_argument(
        "--sizes", default="125000,250000", help="smaller windows for the RSS-flatness check"
    )
    parser.add_argument("--no-prefetch", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="ingest/COPY rounds, alternating")
    args = parser.parse_args()

    from include.analytics_ops.migrate import apply_migrations
    from include.sandbox.devenv import DevEnv

    env = DevEnv(name="benchingest")
    try:
        env.start_postgres()
        dsn = env.analytics_dsn
        apply_migrations(dsn)
        # Main window, several rounds, alternating with the baseline so both see the same
        # machine load; each round starts from an empty table (both load into empty tables
        # with the same indexes).
        n = args.events
        ingest_rates, copy_rates, main = [], [], None
        t0 = time.perf_counter()
        server, url = PrebuiltPages(n, args.page_size).serve()
        print(f"pre-built {n:,} events in {time.perf_counter() - t0:.1f}s (not timed)")
        try:
            for _ in range(args.rounds):
                _empty(dsn)
                res = run_child(dsn, url, 0, args.page_size, not args.no_prefetch)
                assert res["rows"] == n == res["fetched"], res
                base_rows, base_seconds = baseline_copy(dsn, 0)
                assert base_rows == n
                ingest_rates.append(n / res["seconds"])
                copy_rates.append(base_rows / base_seconds)
                main = res
        finally:
            server.shutdown()
        # RSS flatness: smaller windows, each in its own process.
        results = []
        for size in [int(s) for s in args.sizes.split(",") if s]:
            _empty(dsn)
            server, url = PrebuiltPages(size, args.page_size).serve()
            try:
                res = run_child(dsn, url, 0, args.page_size, not args.no_prefetch)
            finally:
                server.shutdown()
            assert res["rows"] == size == res["fetched"], res
            results.append((size, res))
        results.append((n, main))
        ratios = [i / c for i, c in zip(ingest_rates, copy_rates, strict=True)]
        print(
            f"window: {n:,} events, page size {args.page_size:,}, prefetch {not args.no_prefetch}"
        )
        for k, (i, c, r) in enumerate(zip(ingest_rates, copy_rates, ratios, strict=True), 1):
            print(
                f"round {k}: ingest end-to-end {i:>9,.0f} events/s | raw binary COPY"
                f" {c:>9,.0f} rows/s | ratio {r:.2f}"
            )
        print(
            f"ratio ingest/COPY : best {max(ratios):.2f}, median {statistics.median(ratios):.2f}"
            "  (target >= 0.5)"
        )
        print("peak RSS of the ingest process by window size (target <= 300 MB, flat):")
        for size, res in results:
            print(
                f"  {size:>9,} events: {res['peak_rss_mb']:6.0f} MB"
                f"  ({size / res['seconds']:,.0f} events/s, {res['pages']} pages)"
            )
    finally:
        env.stop()


if __name__ == "__main__":
    main()
