"""Start and stop real Airflow services (``airflow standalone``: scheduler, dag-processor,
api-server, triggerer; LocalExecutor) against the test session's PostgreSQL, for tests that need
the scheduler: catchup, backfills, triggers, deadlines."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

AIRFLOW_BIN = str(Path(sys.executable).with_name("airflow"))


def wait_for(what: str, check, timeout: float, every: float = 2.0, context=lambda: ""):
    """Poll ``check()`` until it returns something truthy (returned); fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{context()}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Standalone:
    """``airflow standalone`` in its own process group, logs in ``log_path``."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        defaults = {
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        }
        self.env = {
            **defaults,
            **env,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.base_url,
            # Workers must reach the execution API on this port (AIRFLOW3_NOTES).
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
        }
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self._token: str | None = None

    def start(self, timeout: float = 240) -> Standalone:
        log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [AIRFLOW_BIN, "standalone"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"airflow standalone exited:\n{self.tail()}")
            try:
                health = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=3).json()
                if (
                    health.get("scheduler", {}).get("status") == "healthy"
                    and health.get("triggerer", {}).get("status") == "healthy"
                ):
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(2)
        raise TimeoutError(f"airflow standalone not healthy in {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    # ------------------------------------------------------------------ CLI and REST API
    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [AIRFLOW_BIN, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def token(self) -> str:
        if self._token is None:
            if self.env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS") == "True":
                resp = httpx.get(f"{self.base_url}/auth/token", timeout=10)
            else:
                home = Path(self.env["AIRFLOW_HOME"])
                passwords = json.loads(
                    (home / "simple_auth_manager_passwords.json.generated").read_text()
                )
                user, password = next(iter(passwords.items()))
                resp = httpx.post(
                    f"{self.base_url}/auth/token",
                    json={"username": user, "password": password},
                    timeout=10,
                )
            resp.raise_for_status()
            self._token = resp.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        return httpx.request(
            method, f"{self.base_url}/api/v2{path}", headers=headers, timeout=30, **kwargs
        )

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.api("GET", f"/dags/{dag_id}").status_code == 200:
                return
            time.sleep(2)
        raise TimeoutError(f"{dag_id} was not parsed in {timeout}s:\n{self.tail()}")

    def dag_runs(self, dag_id: str) -> list[dict]:
        resp = self.api(
            "GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "logical_date"}
        )
        resp.raise_for_status()
        return resp.json()["dag_runs"]

    def wait_for_runs(
        self, dag_id: str, predicate, timeout: float = 300, what: str = "runs"
    ) -> list[dict]:
        deadline = time.monotonic() + timeout
        runs: list[dict] = []
        while time.monotonic() < deadline:
            runs = self.dag_runs(dag_id)
            if predicate(runs):
                return runs
            time.sleep(3)
        states = [(r["dag_run_id"], r["state"]) for r in runs]
        raise TimeoutError(f"{dag_id}: {what} not reached in {timeout}s: {states}\n{self.tail()}")
