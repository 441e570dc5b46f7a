"""Benchmark: the health page's JSON on a year of history.

Loads (with COPY) a year of generated history into a fresh PostgreSQL (embedded via DevEnv, or
the server in PG_DSN): >= 500k ops.job_runs attempts over five DAGs, >= 100k ops.alerts, a year
of ledger lines, PostHog events, inventory results, dead letters, proofs and snapshots. Then
times, in the same run:

* baseline: ``SELECT count(*) FROM ops.job_runs`` (one full scan of the biggest table);
* ``collect_health(conn)`` called directly on an open connection;
* ``GET /api/health.json`` through the FastAPI app (TestClient; a new DB connection per request,
  exactly as in the API server; Airflow's auth dependency left out - it is not what we measure).

Prints p50/p95 of each and the ratio health p50 / baseline p50. Target: JSON under 300 ms.
Run: ``.venv/bin/python tests/benchmarks/bench_health_page.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import psycopg

from include.analytics_ops.health_page.app import create_app
from include.analytics_ops.health_page.queries import HealthSettings, collect_health
from include.analytics_ops.migrate import apply_migrations
from include.sandbox.devenv import DevEnv

END = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
START = END - timedelta(days=365)
RNG = random.Random(7)


def _job_runs(copy) -> int:
    n = 0

    def row(dag, task, run_id, start, secs, status, *, try_number=1, map_index=-1, stats="{}"):
        nonlocal n
        n += 1
        err = "upstream HTTP 503" if status in ("failed", "partial") else None
        fin = start + timedelta(seconds=secs)
        copy.write_row(
            (
                dag,
                task,
                run_id,
                map_index,
                try_number,
                "scheduled",
                status,
                start,
                fin,
                secs,
                err,
                stats,
            )
        )

    t = START
    while t < END:  # analytics_hourly: 3 tasks, ~2% failed attempts retried
        run_id = f"scheduled__{t:%Y%m%dT%H}"
        for i, task in enumerate(("ingest_events", "roll_up_stats", "monitor_bug_risk")):
            start = t + timedelta(minutes=5 + i)
            stats = json.dumps({"api_calls": 4, "rate_limit_hits": RNG.randint(0, 2)})
            if RNG.random() < 0.02:
                row("analytics_hourly", task, run_id, start, 20, "failed", stats=stats)
                row("analytics_hourly", task, run_id, start, 30, "completed", try_number=2)
            else:
                row(
                    "analytics_hourly",
                    task,
                    run_id,
                    start,
                    RNG.uniform(10, 60),
                    "completed",
                    stats=stats,
                )
        t += timedelta(hours=1)
    t = START
    while t < END:  # inventory_refresh: list + 34 mapped batches + summary every 2 h
        run_id = f"scheduled__{t:%Y%m%dT%H}"
        row("inventory_refresh", "list_refresh_jobs", run_id, t, 3, "completed")
        for b in range(34):
            row(
                "inventory_refresh",
                "refresh_client",
                run_id,
                t + timedelta(seconds=5),
                RNG.uniform(5, 40),
                "completed",
                map_index=b,
            )
        status = "partial" if RNG.random() < 0.1 else "completed"
        row("inventory_refresh", "summarize_refresh", run_id, t + timedelta(minutes=1), 2, status)
        t += timedelta(hours=2)
    t = START
    while t < END:  # cron_ledger every 5 min: collect + evaluate + alert
        run_id = f"scheduled__{t:%Y%m%dT%H%M}"
        for i, task in enumerate(("collect_ledger", "evaluate_health", "send_alerts")):
            row("cron_ledger", task, run_id, t + timedelta(seconds=10 * i), 4, "completed")
        t += timedelta(minutes=5)
    t = START
    while t < END:  # analytics_nightly: 12 tasks
        run_id = f"scheduled__{t:%Y%m%d}"
        for i in range(12):
            status = "failed" if RNG.random() < 0.01 else "completed"
            row("analytics_nightly", f"task_{i}", run_id, t + timedelta(minutes=i), 60, status)
        t += timedelta(days=1)
    return n


def load_year(dsn: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY ops.job_runs (dag_id, task_id, run_id, map_index, try_number, run_type, status,"
            " started_at, finished_at, duration_seconds, last_error, stats) FROM STDIN"
        ) as copy:
            counts["job_runs"] = _job_runs(copy)

        with cur.copy(
            "COPY ops.alerts (dedup_key, severity, source, title, state, dag_id, first_seen,"
            " last_seen, count, resolved_at) FROM STDIN"
        ) as copy:
            n = 0
            for i in range(120_000):
                first = START + timedelta(seconds=RNG.uniform(0, 365 * 86400))
                open_ = i % 600 == 0
                sev = RNG.choice(("info", "warning", "warning", "critical"))
                copy.write_row(
                    (
                        f"alert:{i}",
                        sev,
                        "task_failure",
                        f"alert {i}",
                        "open" if open_ else "resolved",
                        "analytics_hourly",
                        first,
                        first + timedelta(minutes=30),
                        RNG.randint(1, 5),
                        None if open_ else first + timedelta(hours=1),
                    )
                )
                n += 1
            counts["alerts"] = n

        with cur.copy(
            "COPY ops.ledger_entries (source, job, ts, exit_code, message) FROM STDIN"
        ) as copy:
            n = 0
            t = START
            while t < END:
                code = 1 if RNG.random() < 0.05 else 0
                copy.write_row(("ladder", "order_check", t, code, f"run {n}"))
                if n % 2 == 0:
                    copy.write_row(("ladder", None, t + timedelta(seconds=1), 0, f"bare {n}"))
                n += 1
                t += timedelta(minutes=5)
            counts["ledger_entries"] = n + n // 2

        with cur.copy(
            'COPY analytics.posthog_events (uuid, event, distinct_id, "timestamp", created_at)'
            " FROM STDIN"
        ) as copy:
            n = 0
            t = START
            while t < END:
                for _ in range(50):
                    ts = t + timedelta(seconds=RNG.uniform(0, 3600))
                    copy.write_row((f"{RNG.getrandbits(128):032x}", "$pageview", "u", ts, ts))
                    n += 1
                t += timedelta(hours=1)
            counts["posthog_events"] = n

        with cur.copy(
            "COPY analytics.inventory_refresh_results (run_id, client_id, platform, status,"
            " http_status, skus, refreshed_at) FROM STDIN"
        ) as copy:
            n = 0
            t = START
            while t < END:
                run_id = f"scheduled__{t:%Y%m%dT%H}"
                for c in range(30):
                    for p in ("shopify", "amazon"):
                        failed = RNG.random() < 0.03
                        copy.write_row(
                            (
                                run_id,
                                f"c{c}",
                                p,
                                "failed" if failed else "success",
                                502 if failed else 200,
                                None if failed else 100,
                                t,
                            )
                        )
                        n += 1
                t += timedelta(hours=2)
            counts["inventory_refresh_results"] = n

        with cur.copy(
            "COPY ops.dead_letters (stream, fingerprint, reason, payload, first_seen, resolved_at)"
            " FROM STDIN"
        ) as copy:
            for i in range(5000):
                seen = START + timedelta(hours=i * 1.7)
                resolved = None if i % 50 == 0 else seen + timedelta(hours=1)
                copy.write_row(("posthog", f"fp{i}", "malformed", '{"i": 1}', seen, resolved))
            counts["dead_letters"] = 5000

        days = [(START + timedelta(days=d)).date() for d in range(365)]
        cur.executemany(
            "INSERT INTO analytics.sampling_proofs (target_date, status) VALUES (%s, 'passed')",
            [(d,) for d in days],
        )
        cur.executemany(
            "INSERT INTO analytics.dashboard_snapshots (snapshot_date, status)"
            " VALUES (%s, 'complete')",
            [(d,) for d in days],
        )
        cur.execute(
            "INSERT INTO ops.watermarks (stream, complete_until) VALUES ('posthog', %s)",
            (END - timedelta(hours=1),),
        )
        cur.execute("SELECT to_regclass('ops.job_health') IS NOT NULL")
        if cur.fetchone()[0]:
            for dag in ("analytics_hourly", "analytics_nightly", "inventory_refresh"):
                cur.execute(
                    "INSERT INTO ops.job_health (job_key, kind, state, since, details)"
                    " VALUES (%s, 'dag', 'up', %s, %s)",
                    (dag, END - timedelta(days=2), json.dumps({"dag_id": dag})),
                )
        cur.execute("VACUUM ANALYZE")
    return counts


def per_query_times(conn: psycopg.Connection, settings: HealthSettings) -> list[tuple]:
    """Median time of each SQL statement collect_health runs (5 passes), slowest first."""
    seen: dict[str, list[float]] = {}
    original = psycopg.Cursor.execute

    def execute(self, query, params=None, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(self, query, params, **kwargs)
        finally:
            key = " ".join(str(query).split())[:70]
            seen.setdefault(key, []).append((time.perf_counter() - t0) * 1000)

    psycopg.Cursor.execute = execute
    try:
        for _ in range(5):
            collect_health(conn, now=END, settings=settings)
    finally:
        psycopg.Cursor.execute = original
    return sorted(((statistics.median(v), k) for k, v in seen.items()), reverse=True)


def timed(fn, runs: int) -> list[float]:
    fn()  # warm-up (plans, caches)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    env = DevEnv(name="benchhealth")
    try:
        env.start_postgres()
        apply_migrations(env.analytics_dsn)
        dsn = env.analytics_dsn
        t0 = time.perf_counter()
        counts = load_year(dsn)
        print(f"loaded a year of history in {time.perf_counter() - t0:.1f} s:")
        for table, n in counts.items():
            print(f"  {table:<28} {n:>9,}")
        assert counts["job_runs"] >= 500_000 and counts["alerts"] >= 100_000, counts

        settings = HealthSettings()
        with psycopg.connect(dsn) as conn:
            baseline = timed(
                lambda: conn.execute("SELECT count(*) FROM ops.job_runs").fetchone(), args.runs
            )
            direct = timed(lambda: collect_health(conn, now=END, settings=settings), args.runs)
            data = collect_health(conn, now=END, settings=settings)
            breakdown = per_query_times(conn, settings)

        from fastapi.testclient import TestClient

        client = TestClient(create_app(dsn, auth_dependency=None))
        at = END.isoformat()

        def via_app() -> None:
            resp = client.get("/api/health.json", params={"at": at})
            assert resp.status_code == 200, resp.text

        http = timed(via_app, args.runs)
        html = timed(lambda: client.get("/", params={"at": at}).raise_for_status(), args.runs)

        print(f"\njobs on the page: {[j['key'] for j in data['jobs']]}")
        print(f"open alerts: {data['alerts']['open_by_severity']}")
        print(f"\n{'measurement':<44}{'p50 ms':>9}{'p95 ms':>9}")
        rows = [
            ("baseline SELECT count(*) FROM ops.job_runs", baseline),
            ("collect_health() direct", direct),
            ("GET /api/health.json (FastAPI, new conn)", http),
            ("GET / (HTML page, FastAPI, new conn)", html),
        ]
        for name, values in rows:
            print(f"{name:<44}{pct(values, 50):>9.1f}{pct(values, 95):>9.1f}")
        print("\nper statement (median of 5 passes, ms):")
        for ms, sql in breakdown[:8]:
            print(f"  {ms:7.1f}  {sql}")
        base = pct(baseline, 50)
        print(
            f"\nratio vs baseline (p50): direct {pct(direct, 50) / base:.2f}x, "
            f"JSON endpoint {pct(http, 50) / base:.2f}x, HTML {pct(html, 50) / base:.2f}x"
        )
        verdict = "OK" if pct(http, 95) < 300 else "TOO SLOW"
        print(f"JSON endpoint p95 {pct(http, 95):.1f} ms vs 300 ms target: {verdict}")
        return 0 if verdict == "OK" else 1
    finally:
        env.stop()


if __name__ == "__main__":
    sys.exit(main())
