"""``make up``: Airflow itself on http://localhost:8080 for clicking around.

``airflow standalone`` (scheduler, dag-processor, api-server, triggerer; LocalExecutor) with this
repo's DAGs and plugins, its metadata DB and the analytics DB on an embedded PostgreSQL, the sandbox
upstreams and the sample data. Before Airflow starts, the demo's DAG runs for the demo day run for
real (``airflow dags test``, as in ``make demo``), so the health page and the UI show run history
that actually happened; ``HEALTH_DEMO_HISTORY=0`` starts empty. Ctrl-C stops everything. The
admin password is printed once it exists.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from urllib.parse import quote

from include.analytics_ops import pools
from include.sandbox.devenv import REPO_ROOT, DevEnv

UP_DIR = REPO_ROOT / ".demo" / "up"


def main() -> int:
    from include.sandbox.generator import load_sample_data
    from include.sandbox.server import SandboxProcess

    port = os.environ.get("AIRFLOW_PORT", "8080")
    env = DevEnv(name="up", workdir=UP_DIR)
    sandbox = SandboxProcess(port=int(os.environ.get("SANDBOX_PORT", "8811")))
    proc = None
    try:
        env.start_postgres()
        env.migrate()
        sandbox.start()
        env.sandbox_url = sandbox.url
        load_sample_data(env.analytics_dsn)
        at = ""
        if os.environ.get("HEALTH_DEMO_HISTORY", "1") == "1":
            # Real run history for the health page: the demo's DAG runs for the demo day, with
            # the real `airflow dags test` into this Airflow's metadata DB (HEALTH_DEMO_HISTORY=0
            # to start empty). Nothing on the page is fabricated.
            import psycopg

            from include.sandbox.demo import run_steps
            from include.sandbox.demo_steps import DEMO_NOW

            print("running the demo's DAG runs for the demo day (real runs, ~2 min) ...")
            with psycopg.connect(env.analytics_dsn, autocommit=True) as conn:
                run_steps(
                    conn,
                    env,
                    UP_DIR / "demo-logs",
                    extra_env={"AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"},
                    verbose=False,
                )
            at = "?at=" + quote(DEMO_NOW, safe="")
        airflow_env = env.env(
            AIRFLOW__API__PORT=port,
            AIRFLOW__API__BASE_URL=f"http://localhost:{port}",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
        )
        proc = subprocess.Popen(
            [pools.airflow_bin(), "standalone"],
            env=airflow_env,
            cwd=str(REPO_ROOT),
            start_new_session=True,
        )
        password_file = env.airflow_home / "simple_auth_manager_passwords.json.generated"
        for _ in range(120):
            if password_file.exists() or proc.poll() is not None:
                break
            time.sleep(1)
        print(f"\nAirflow UI: http://localhost:{port}  (user admin; password in {password_file})")
        print(f"sandbox upstreams: {sandbox.url}; DAGs start paused — unpause them in the UI.")
        print(f"health page: http://localhost:{port}/analytics-health/ (Browse → Analytics health)")
        if at:
            print(
                "  (the demo's DAG runs were recorded just now; the ledger, proofs and job health"
                f" belong to the demo day: http://localhost:{port}/analytics-health/{at})"
            )
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        sandbox.stop()
        env.stop()


if __name__ == "__main__":
    sys.exit(main())
