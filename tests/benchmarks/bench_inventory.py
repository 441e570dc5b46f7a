"""inventory_refresh throughput: 300 clients × 3 platforms against the sandbox endpoint answering
after 100 ms, compared with the ideal time ``calls × latency ÷ concurrency`` (ratio = ideal ÷
measured; 1.0 = the concurrency is fully used, nothing else costs time).

Three measurements in one run:

A. call phase — ``api.refresh_many`` over all 900 jobs at the pool's concurrency (16);
B. the DAG's work without Airflow — listing + work list, then ``run_batch`` per batch one after
   another (as ``airflow dags test`` runs mapped instances) at the per-task concurrency (8),
   results upserted, summary read back;
C. ``airflow dags test inventory_refresh`` end to end; Airflow overhead = wall time − the call
   phases the refresh_client instances recorded in ``ops.job_runs``.

Target: ratio >= 0.7 for A and B. Run: ``.venv/bin/python tests/benchmarks/bench_inventory.py
[--clients N] [--latency-ms MS] [--concurrency C] [--no-dags-test]``. Uses ``PG_DSN`` when set,
else an embedded PostgreSQL (``DevEnv``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import psycopg

from include.analytics_ops.inventory import PLATFORMS
from include.analytics_ops.inventory.api import (
    InventoryApi,
    RetryPolicy,
    refresh_many,
)
from include.analytics_ops.inventory.jobs import (
    plan_batches,
    record_work_list,
    select_clients,
)
from include.analytics_ops.inventory.results import read_summary, run_batch
from include.sandbox.constants import INVENTORY_TOKEN
from include.sandbox.devenv import DevEnv
from include.sandbox.samples.inventory import insert_clients, numbered_clients
from include.sandbox.server import SandboxProcess

PER_TASK_CONCURRENCY = int(os.getenv("INVENTORY_CALLS_PER_TASK", "8"))


def ratio_line(label: str, calls: int, seconds: float, latency: float, concurrency: int) -> float:
    ideal = calls * latency / concurrency
    ratio = ideal / seconds
    print(
        f"{label}: {calls} calls in {seconds:.2f}s = {calls / seconds:.1f} calls/s; "
        f"ideal {ideal:.2f}s ({calls} × {latency * 1000:.0f} ms ÷ {concurrency}) "
        f"-> ratio {ratio:.2f}"
    )
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16, help="pool size (phase A)")
    parser.add_argument("--no-dags-test", action="store_true", help="skip phase C")
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    jobs_total = args.clients * len(PLATFORMS)

    env = DevEnv(name=f"benchinv{os.getpid()}")
    sandbox = SandboxProcess(port=0)
    try:
        t0 = time.perf_counter()
        env.start()
        sandbox.start()
        env.sandbox_url = sandbox.url
        print(
            f"setup (PostgreSQL, migrations, Airflow DB, sandbox): {time.perf_counter() - t0:.1f}s"
        )
        sandbox.set_faults(inventory_latency_ms=args.latency_ms)
        api = InventoryApi.from_connection_fields(sandbox.url, INVENTORY_TOKEN, timeout_seconds=30)
        policy = RetryPolicy(max_attempts=1)

        with psycopg.connect(env.analytics_dsn, autocommit=True) as conn:
            insert_clients(conn, numbered_clients(args.clients))
            clients = select_clients(conn, None)
            jobs = [(c, p) for c in clients for p in PLATFORMS]
            assert len(jobs) == jobs_total

            # Baseline, same run: what one call really costs (latency + HTTP + server).
            samples = []
            for c, p in jobs[:10]:
                s = time.perf_counter()
                (o,) = refresh_many(api, [(c, p)], concurrency=1, policy=policy)
                assert o.ok, o.error
                samples.append(time.perf_counter() - s)
            one_call = statistics.median(samples)
            print(
                f"baseline: one sequential call takes {one_call * 1000:.1f} ms "
                f"(configured latency {args.latency_ms} ms)"
            )

            # A. call phase only.
            sandbox.reset()
            sandbox.set_faults(inventory_latency_ms=args.latency_ms)
            s = time.perf_counter()
            outcomes = refresh_many(api, jobs, concurrency=args.concurrency, policy=policy)
            a_seconds = time.perf_counter() - s
            assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok][:3]
            assert len(sandbox.calls("inventory")) == jobs_total
            ratio_a = ratio_line(
                f"A call phase (concurrency {args.concurrency})",
                jobs_total,
                a_seconds,
                latency,
                args.concurrency,
            )

            # B. the DAG's work without Airflow: list + batches in sequence + summary.
            run_id = "bench__inventory"
            s = time.perf_counter()
            batches = plan_batches(select_clients(conn, None), PLATFORMS)
            record_work_list(conn, run_id, batches, platforms=PLATFORMS, requested_client_ids=None)
            list_seconds = time.perf_counter() - s
            call_seconds = 0.0
            for b in batches:
                report = run_batch(
                    conn, api, run_id, b.number, concurrency=PER_TASK_CONCURRENCY, policy=policy
                )
                assert report.failed == 0
                call_seconds += report.seconds
            summary = read_summary(conn, run_id)
            b_seconds = time.perf_counter() - s
            assert summary.successful == jobs_total, summary.headline
            print(
                f"B listing + work list of {len(batches)} batches: {list_seconds * 1000:.0f} ms; "
                f"{summary.headline}"
            )
            ratio_b = ratio_line(
                f"B {len(batches)} batches in sequence (concurrency {PER_TASK_CONCURRENCY}, "
                "upserts included)",
                jobs_total,
                call_seconds,
                latency,
                PER_TASK_CONCURRENCY,
            )
            print(f"B whole flow (list + batches + summary): {b_seconds:.2f}s")

        if not args.no_dags_test:
            # C. the real CLI: airflow dags test (mapped instances run one after another).
            sandbox.reset()
            sandbox.set_faults(inventory_latency_ms=args.latency_ms)
            airflow = str(Path(sys.executable).with_name("airflow"))
            s = time.perf_counter()
            result = subprocess.run(
                [airflow, "dags", "test", "inventory_refresh", "2026-11-20T10:00:00+00:00"],
                env=env.env(),
                capture_output=True,
                text=True,
                timeout=1800,
                cwd=str(Path(__file__).resolve().parents[2]),
            )
            c_seconds = time.perf_counter() - s
            if result.returncode != 0:
                print(result.stdout[-3000:], result.stderr[-3000:])
                raise SystemExit("airflow dags test failed")
            with psycopg.connect(env.analytics_dsn) as conn:
                row = conn.execute(
                    """
                    SELECT count(*), sum((stats->>'call_phase_seconds')::float)
                      FROM ops.job_runs
                     WHERE dag_id = 'inventory_refresh' AND task_id = 'refresh_client'
                       AND run_id LIKE 'manual__%%'
                    """
                ).fetchone()
            instances, c_calls = int(row[0]), float(row[1] or 0)
            overhead = c_seconds - c_calls
            print(
                f"C airflow dags test: {c_seconds:.2f}s wall, {instances} refresh_client "
                f"instances, call phases {c_calls:.2f}s -> Airflow overhead {overhead:.2f}s "
                f"(process start, DAG parse, 2 + {instances} task instances; "
                f"{overhead / (instances + 2):.2f}s per instance)"
            )
            ratio_line(
                "C call phases inside Airflow", jobs_total, c_calls, latency, PER_TASK_CONCURRENCY
            )
        verdict = "OK" if min(ratio_a, ratio_b) >= 0.7 else "BELOW TARGET"
        print(
            f"result: call-phase ratio A {ratio_a:.2f}, B {ratio_b:.2f} (target >= 0.7): {verdict}"
        )
        return 0 if verdict == "OK" else 1
    finally:
        sandbox.stop()
        env.stop()


if __name__ == "__main__":
    raise SystemExit(main())
