"""The ``topology`` tier: docker-compose.yaml's deployment as processes (see compose.py).

One module-scoped deployment: PostgreSQL (metadata + analytics, the compose init scripts), Redis,
the sandbox upstreams, ``airflow-init`` run as written, then api-server, scheduler,
dag-processor, triggerer and two Celery workers, each in its own home. The test's ``.env`` is
what a user writes: ``.env.example`` with every secret generated, ``docker/sandbox.env``'s
connections, and the few settings that make a scheduled hour and a killed worker observable in
minutes instead of hours (listed in TEST_SETTINGS).
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.e2e.airflow_services import wait_for
from tests.topology.compose import REPO_ROOT, ProcessTopology, parse_env_file
from tests.topology.servers import Redis, TcpPostgres, free_port

WORKERS = 2
# Settings a user could put in .env too; here they shorten what the test has to wait for.
TEST_SETTINGS = {
    "POSTHOG_SETTLE_MINUTES": "0",  # read the hour as soon as it ends
    "POSTHOG_PAGE_SIZE": "1000",
    # A dead worker's task is noticed after 20 s instead of 5 min.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    # Small batches, so one inventory run maps several instances over both workers.
    "INVENTORY_MIN_BATCH_CLIENTS": "3",
    # The hourly deadline is shorter than a run that loses its worker (heartbeat + retry).
    "DEADLINE_ANALYTICS_HOURLY_SECONDS": "45",
    "AIRFLOW__API__WORKERS": "1",  # a 2-core machine
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",  # one task per worker: mapped tasks must spread
}


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def write_dotenv(path: Path, work: Path, start: datetime) -> dict[str, str]:
    """``.env.example`` + ``docker/sandbox.env``, secrets generated as the README says."""
    values = parse_env_file(REPO_ROOT / ".env.example")
    values.update(parse_env_file(REPO_ROOT / "docker" / "sandbox.env"))
    admin_password = secrets.token_hex(12)
    values.update(
        {
            "AIRFLOW_JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW_FERNET_KEY": _fernet_key(),
            "AIRFLOW_API_SECRET_KEY": secrets.token_hex(32),
            "AIRFLOW_DB_PASSWORD": secrets.token_hex(16),
            "ANALYTICS_DB_PASSWORD": secrets.token_hex(16),
            "_AIRFLOW_WWW_USER_USERNAME": "admin",
            "_AIRFLOW_WWW_USER_PASSWORD": admin_password,
            "AIRFLOW_CONN_AIRFLOW_API": (
                '{"conn_type": "http", "host": "http://airflow-apiserver:8080",'
                f' "login": "admin", "password": "{admin_password}"}}'
            ),
            "AIRFLOW_LOGS_HOST_DIR": str(work / "mounts" / "logs"),
            "ARTIFACTS_HOST_DIR": str(work / "mounts" / "artifacts"),
            "LEDGER_HOST_DIR": str(work / "mounts" / "ledger"),
            "ANALYTICS_HOURLY_START": start.isoformat(),
            **TEST_SETTINGS,
        }
    )
    # What the example leaves to the user stays unset (REPORT_EMAILS: no SMTP here).
    for key in [k for k, v in values.items() if "CHANGE_ME" in v or "example.com" in v]:
        values.pop(key)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return values


class Deployment:
    def __init__(self, topo: ProcessTopology, pg: TcpPostgres, values: dict[str, str]) -> None:
        self.topo, self.pg, self.values = topo, pg, values
        self.base_url = f"http://127.0.0.1:{topo.ports['airflow-apiserver']}"
        self.sandbox_url = f"http://127.0.0.1:{topo.ports['sandbox']}"
        self.analytics_dsn = (
            f"postgresql://analytics:{values['ANALYTICS_DB_PASSWORD']}"
            f"@127.0.0.1:{pg.port}/analytics"
        )
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            resp = httpx.post(
                f"{self.base_url}/auth/token",
                json={
                    "username": self.values["_AIRFLOW_WWW_USER_USERNAME"],
                    "password": self.values["_AIRFLOW_WWW_USER_PASSWORD"],
                },
                timeout=30,
            )
            resp.raise_for_status()
            self._token = resp.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.base_url}/api/v2{path}",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
            **kwargs,
        )

    def sandbox(self, method: str, path: str, body=None):
        resp = httpx.request(method, f"{self.sandbox_url}{path}", json=body, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def db(self) -> psycopg.Connection:
        return psycopg.connect(self.analytics_dsn, autocommit=True)

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}\n{self.topo.tail(name, 25)}" for name in sorted(self.topo.procs)
        )

    def wait(self, what: str, check, timeout: float = 180, every: float = 2.0):
        return wait_for(what, check, timeout, every, context=self.logs)

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        resp = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        resp.raise_for_status()
        return resp.json()

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        resp = self.api(
            "POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}}
        )
        assert resp.status_code in (200, 201), resp.text
        return resp.json()["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict:
        def finished():
            run = self.dag_run(dag_id, run_id)
            return run if run["state"] in ("success", "failed") else None

        run = self.wait(f"{dag_id} {run_id} to finish", finished, timeout=timeout)
        if run["state"] != "success":
            tis = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()
            states = [(t["task_id"], t.get("map_index"), t["state"]) for t in tis["task_instances"]]
            raise AssertionError(f"{dag_id} {run_id} ended {run['state']}: {states}\n{self.logs()}")
        return run


def _healthy(dep: Deployment) -> bool:
    try:
        health = httpx.get(f"{dep.base_url}/api/v2/monitor/health", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return False
    return all(
        (health.get(part) or {}).get("status") == "healthy"
        for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
    )


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    work = tmp_path_factory.mktemp("topology")
    ports = {name: free_port() for name in ("postgres", "redis", "airflow-apiserver", "sandbox")}
    # The stream starts one hour before the current one: the scheduler itself creates the run
    # of the last complete hour (catchup) and nothing older.
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    values = write_dotenv(work / ".env", work, start)
    topo = ProcessTopology(work, work / ".env", ports)
    pg = TcpPostgres(
        topo.service("postgres")["environment"],
        REPO_ROOT / "docker" / "postgres-init",
        port=ports["postgres"],
    )
    redis = Redis(work / "redis", port=ports["redis"])
    dep = Deployment(topo, pg, values)
    try:
        pg.start()
        redis.start()
        topo.start(topo.spec("sandbox"))
        dep.wait("the sandbox", lambda: _sandbox_up(dep), timeout=60, every=0.5)
        init = topo.run(topo.spec("airflow-init"), timeout=600)
        assert init.returncode == 0, topo.tail("airflow-init", 80)
        # The container's port 8080 is published on a free loopback port here.
        api_port = {"AIRFLOW__API__PORT": str(ports["airflow-apiserver"]),
                    "AIRFLOW__API__HOST": "127.0.0.1"}  # fmt: skip
        topo.start(topo.spec("airflow-apiserver", extra_env=api_port))
        for name in ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
            topo.start(topo.spec(name))
        for i in range(1, WORKERS + 1):
            # Two containers would differ in hostname and network namespace; two processes on
            # one host need distinct celery node names and log-server ports.
            spec = topo.spec(
                "airflow-worker",
                replica=i,
                extra_env={"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())},
            )
            spec.argv += ["--celery-hostname", f"worker{i}@%h"]
            topo.start(spec)
        dep.wait("every Airflow service healthy", lambda: _healthy(dep), timeout=240, every=3)
        yield dep
    finally:
        topo.stop_all()
        redis.stop()
        pg.stop()


def _sandbox_up(dep: Deployment) -> bool:
    try:
        return dep.sandbox("GET", "/_sandbox/health").get("status") == "ok"
    except httpx.HTTPError:
        return False
