"""``make demo``: the whole product end to end on a fresh machine, no Docker, no root.

Starts a throwaway PostgreSQL (pgserver) and the sandbox upstreams, applies the migrations, loads
the deterministic sample data, runs every DAG once with the real ``airflow dags test`` for the
fixed demo day, and prints where each result is. Everything lives under ``.demo/`` (recreated on
every run); the database server stops when the demo ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from include.analytics_ops import pools
from include.sandbox.devenv import REPO_ROOT, DemoStep, DevEnv

DEMO_DIR = REPO_ROOT / ".demo"


def _steps() -> list[DemoStep]:
    from include.sandbox import demo_steps

    return demo_steps.STEPS


def run_step(
    env: DevEnv, step: DemoStep, log_dir: Path, extra_env: dict[str, str] | None = None
) -> tuple[bool, float, Path]:
    args = [pools.airflow_bin(), "dags", "test", step.dag_id]
    if step.when:
        args.append(step.when)
    if step.conf is not None:
        import json

        args += ["-c", json.dumps(step.conf)]
    log_path = log_dir / f"{step.dag_id}-{len(list(log_dir.iterdir())):02d}.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        result = subprocess.run(
            args,
            env=env.env(**{**step.env, **(extra_env or {})}),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(REPO_ROOT),
            check=False,
        )
    return result.returncode == 0, time.monotonic() - started, log_path


def run_steps(
    conn: psycopg.Connection,
    env: DevEnv,
    log_dir: Path,
    *,
    extra_env: dict[str, str] | None = None,
    verbose: bool = True,
) -> list[str]:
    """Run every demo step (``airflow dags test`` for the fixed demo day) and print what each
    did; returns the titles of the steps that did not behave as designed. ``make demo`` and
    ``make up`` (real run history for the health page) both use it."""
    failures = []
    log_dir.mkdir(parents=True, exist_ok=True)
    for step in _steps():
        if step.prepare:
            step.prepare(conn, env)
        ok, seconds, log_path = run_step(env, step, log_dir, extra_env)
        as_expected = ok == step.expect_success
        verdict = (
            ("ok" if ok else "failed (as designed)")
            if as_expected
            else ("FAILED" if step.expect_success else "unexpectedly succeeded")
        )
        print(
            f"\n-- {step.title}: `airflow dags test {step.dag_id} {step.when or ''}`"
            f" {verdict} in {seconds:.0f}s  (log: {log_path.relative_to(REPO_ROOT)})"
        )
        if verbose:
            for line in step.summarize(conn, env):
                print(f"   {line}")
        if not as_expected:
            failures.append(step.title)
    return failures


def _alert_summary(conn: psycopg.Connection) -> list[str]:
    counts = conn.execute(
        "SELECT state, severity, count(*) FROM ops.alerts GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    lines = [", ".join(f"{n} {state} {severity}" for state, severity, n in counts) or "none"]
    for severity, key, title in conn.execute(
        "SELECT severity, dedup_key, title FROM ops.alerts WHERE state = 'open'"
        " ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,"
        " last_seen DESC LIMIT 10"
    ):
        lines.append(f"[{severity}] {title}  ({key})")
    return lines


def main() -> int:
    from include.sandbox.generator import load_sample_data
    from include.sandbox.server import SandboxProcess

    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    (DEMO_DIR / "logs").mkdir(parents=True)
    env = DevEnv(name="demo", workdir=DEMO_DIR)
    sandbox = SandboxProcess(port=0)
    failures: list[str] = []
    try:
        print("== analytics-ops demo ==")
        t0 = time.monotonic()
        env.start_postgres()
        env.migrate()
        print(f"PostgreSQL (embedded) ready, migrations applied      {time.monotonic() - t0:5.1f}s")
        sandbox.start()
        env.sandbox_url = sandbox.url
        os.environ.update(env.env())
        counts = load_sample_data(env.analytics_dsn)
        print(
            f"sandbox upstreams on {sandbox.url}; sample data: "
            + ", ".join(f"{k}={v}" for k, v in counts.items() if isinstance(v, int))
        )
        with psycopg.connect(env.analytics_dsn, autocommit=True) as conn:
            failures = run_steps(conn, env, DEMO_DIR / "logs")
            print("\n-- Alerts (ops.alerts, the one alert path):")
            for line in _alert_summary(conn):
                print(f"   {line}")
        print(
            f"\nartifacts: {env.artifacts_dir.relative_to(REPO_ROOT)}/   "
            f"database: {env.analytics_db} (stopped with the demo)"
        )
    finally:
        sandbox.stop()
        env.stop()
    if failures:
        print(
            f"\ndemo: {len(failures)} step(s) did not behave as expected: {', '.join(failures)}",
            file=sys.stderr,
        )
        return 1
    print("\ndemo finished: every step behaved as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
