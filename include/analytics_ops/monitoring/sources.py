"""Where run history comes from — pluggable, because task code cannot open metadata-DB sessions
in Airflow 3 and the monitor must keep working when Airflow's API does not answer.

- ``AirflowApiSource``: ``GET /api/v2/dags/{dag_id}/dagRuns`` and ``GET /api/v2/dags/{dag_id}``
  (``is_paused``) with a bearer token from ``POST /auth/token`` (connection ``airflow_api``:
  host = API base URL, login/password; or ``extra.token``; without credentials ``GET
  /auth/token``, which SimpleAuthManager's all-admins mode answers). The default.
- ``AirflowCliSource``: ``airflow dags list-runs <dag_id> -o json`` (needs the metadata DB
  configured where it runs; slower, a few seconds per DAG).
- ``JobRunsSource``: ``ops.job_runs`` (what our tasks recorded) — the fallback, marked as such in
  each state's details; it cannot tell whether a DAG is paused.
- ``ledger_runs``: a ledger job's entries as runs (exit 0 = success).

``HEALTH_RUN_SOURCE`` picks the primary: ``api`` (default), ``cli`` or ``job_runs``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

import psycopg

from include.analytics_ops.monitoring.health import FAILED, QUEUED, RUNNING, SUCCESS, RunRecord

log = logging.getLogger(__name__)
API_CONN_ID = "airflow_api"
_STATE_MAP = {
    "success": SUCCESS,
    "failed": FAILED,
    "running": RUNNING,
    "queued": QUEUED,
}


class SourceUnavailable(RuntimeError):
    """The source cannot answer right now (network, auth, CLI failure)."""


class RunSource(Protocol):
    name: str

    def dag_runs(self, dag_id: str, limit: int = 100) -> list[RunRecord]: ...

    def is_paused(self, dag_id: str) -> bool | None: ...


def _ts(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    return datetime.fromisoformat(text)


def _record(row: dict[str, Any], id_key: str) -> RunRecord:
    return RunRecord(
        run_id=str(row.get(id_key) or row.get("run_id") or ""),
        state=_STATE_MAP.get(str(row.get("state") or "").lower(), QUEUED),
        scheduled_for=_ts(row.get("run_after")) or _ts(row.get("logical_date")),
        start=_ts(row.get("start_date")),
        end=_ts(row.get("end_date")),
    )


class AirflowApiSource:
    name = "airflow_api"

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.username, self.password, self.timeout = username, password, timeout
        self._client = None

    @classmethod
    def from_settings(cls) -> AirflowApiSource:
        """From the ``airflow_api`` connection. The scheme is the connection's: a ``host`` with
        its own scheme (``https://airflow.example.com``), else the schema field, else the
        connection type of a URI (``https://user:pw@host``), else https — credentials never go
        to ``/auth/token`` in clear because a scheme was assumed."""
        from include.analytics_ops.connections import connection_fields, http_base_url

        fields = connection_fields(API_CONN_ID) or {}
        host = (fields.get("host") or "").strip()
        if host:
            schemes = [fields.get("schema"), fields.get("conn_type")]
            scheme = next((s for s in schemes if s in ("http", "https")), None)
            base = http_base_url(API_CONN_ID, host, fields.get("port"), scheme)
        else:
            base = os.environ.get("AIRFLOW__API__BASE_URL") or "http://localhost:8080"
        extra = fields.get("extra") or {}
        return cls(
            base,
            token=extra.get("token"),
            username=fields.get("login"),
            password=fields.get("password"),
        )

    def _http(self):
        import httpx

        if self._client is None:
            self._client = httpx.Client(base_url=self.base_url, timeout=self.timeout)
        return self._client

    def _bearer(self) -> str:
        if self._token:
            return self._token
        import httpx

        try:
            if self.username:
                resp = self._http().post(
                    "/auth/token", json={"username": self.username, "password": self.password}
                )
            else:
                resp = self._http().get("/auth/token")
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"Airflow API at {self.base_url} unreachable: {exc}") from exc
        if resp.status_code >= 300:
            raise SourceUnavailable(f"Airflow API token request answered {resp.status_code}")
        token = _json_object(resp, "/auth/token").get("access_token")
        if not isinstance(token, str) or not token:
            raise SourceUnavailable("Airflow API /auth/token answered without an access_token")
        self._token = token
        return self._token

    def _get(self, path: str, **params: Any) -> dict[str, Any] | None:
        import httpx

        try:
            resp = self._http().get(
                path, params=params, headers={"Authorization": f"Bearer {self._bearer()}"}
            )
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"Airflow API at {self.base_url} unreachable: {exc}") from exc
        if resp.status_code == 404:
            return None
        if resp.status_code >= 300:
            raise SourceUnavailable(f"Airflow API {path} answered {resp.status_code}")
        return _json_object(resp, path)

    def dag_runs(self, dag_id: str, limit: int = 100) -> list[RunRecord]:
        path = f"/api/v2/dags/{quote(dag_id)}/dagRuns"
        data = self._get(path, limit=limit, order_by="-run_after")
        rows = (data or {}).get("dag_runs", [])
        try:
            return [_record(r, "dag_run_id") for r in rows]
        except (AttributeError, TypeError, ValueError) as exc:  # not the documented shape
            raise SourceUnavailable(f"Airflow API {path} answered unexpected runs: {exc}") from exc

    def is_paused(self, dag_id: str) -> bool | None:
        data = self._get(f"/api/v2/dags/{quote(dag_id)}")
        return None if data is None else bool(data.get("is_paused"))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def pools(self) -> dict[str, int]:
        """name -> slots of every pool Airflow knows."""
        data = self._get("/api/v2/pools", limit=1000) or {}
        return {p["name"]: int(p["slots"]) for p in data.get("pools", [])}

    def waiting_tasks(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Task instances in ``scheduled`` state (waiting for a slot), every DAG and run."""
        data = self._get("/api/v2/dags/~/dagRuns/~/taskInstances", state="scheduled", limit=limit)
        return list((data or {}).get("task_instances", []))


class AirflowCliSource:
    name = "airflow_cli"

    def __init__(self, airflow_bin: str | None = None, timeout: float = 60.0) -> None:
        from include.analytics_ops.pools import airflow_bin as venv_airflow

        self.airflow_bin = airflow_bin or venv_airflow()
        self.timeout = timeout

    def dag_runs(self, dag_id: str, limit: int = 100) -> list[RunRecord]:
        try:
            result = subprocess.run(
                [self.airflow_bin, "dags", "list-runs", dag_id, "-o", "json"],
                capture_output=True,
                text=True,
                timeout=self.timeout,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SourceUnavailable(f"airflow dags list-runs failed: {exc}") from exc
        if result.returncode != 0:
            if "not found" in result.stderr.lower():
                return []
            raise SourceUnavailable(f"airflow dags list-runs: {result.stderr.strip()[-300:]}")
        out = result.stdout
        start = out.find("[")
        rows = json.loads(out[start:]) if start >= 0 else []
        return [_record(r, "run_id") for r in rows[:limit]]

    def is_paused(self, dag_id: str) -> bool | None:
        return None

    def pools(self) -> dict[str, int]:
        from include.analytics_ops.pools import existing_pools

        try:
            return existing_pools()
        except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as exc:
            raise SourceUnavailable(f"airflow pools list failed: {exc}") from exc

    def waiting_tasks(self, limit: int = 1000) -> list[dict[str, Any]]:
        return []  # the CLI has no cheap cross-DAG listing; missing pools are still found


def _json_object(resp: Any, path: str) -> dict[str, Any]:
    """The answer's JSON object; anything else (an HTML login page from a proxy, a list, a
    truncated body) means the API is not usable right now — the caller falls back."""
    try:
        data = resp.json()
    except ValueError as exc:
        kind = resp.headers.get("content-type", "?")
        raise SourceUnavailable(f"Airflow API {path} answered non-JSON ({kind})") from exc
    if not isinstance(data, dict):
        raise SourceUnavailable(f"Airflow API {path} answered {type(data).__name__}, not an object")
    return data


_SCHEDULED_ID = re.compile(r"^scheduled__(.+)$")


class JobRunsSource:
    """Runs reconstructed from ``ops.job_runs``: per run, the latest attempt of each task."""

    name = "ops.job_runs"

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def dag_runs(self, dag_id: str, limit: int = 100) -> list[RunRecord]:
        rows = self.conn.execute(
            """
            WITH latest AS (
                SELECT DISTINCT ON (run_id, task_id, map_index) run_id, status, started_at,
                       finished_at, window_end
                  FROM ops.job_runs WHERE dag_id = %s
                 ORDER BY run_id, task_id, map_index, try_number DESC
            )
            SELECT run_id, min(started_at), max(finished_at), max(window_end),
                   bool_or(status = 'running'),
                   bool_or(status IN ('failed', 'timeout', 'cancelled'))
              FROM latest GROUP BY run_id ORDER BY min(started_at) DESC LIMIT %s
            """,
            (dag_id, limit),
        ).fetchall()
        out = []
        for run_id, start, end, window_end, running, failed in rows:
            scheduled = window_end
            m = _SCHEDULED_ID.match(run_id)
            if scheduled is None and m:
                try:
                    scheduled = datetime.fromisoformat(m.group(1))
                except ValueError:
                    scheduled = None
            state = RUNNING if running else FAILED if failed else SUCCESS
            out.append(RunRecord(run_id, state, scheduled, start, None if running else end))
        return out

    def is_paused(self, dag_id: str) -> bool | None:
        return None


def primary_source(kind: str | None = None) -> RunSource | None:
    """The configured primary source (None = ops.job_runs only)."""
    from include.analytics_ops.config import setting

    kind = (kind or setting("HEALTH_RUN_SOURCE", "api")).strip().lower()
    if kind == "api":
        return AirflowApiSource.from_settings()
    if kind == "cli":
        return AirflowCliSource()
    if kind == "job_runs":
        return None
    raise ValueError(f"HEALTH_RUN_SOURCE must be api, cli or job_runs, got {kind!r}")


def ledger_runs(
    conn: psycopg.Connection, job: str, now: datetime, days: int = 7, limit: int = 5000
) -> list[RunRecord]:
    """A ledger job's entries as runs: the last ``days`` days plus its last success ever."""
    rows = conn.execute(
        """
        (SELECT ts, exit_code FROM ops.ledger_entries
          WHERE job = %(job)s AND ts > %(since)s AND ts <= %(now)s ORDER BY ts DESC LIMIT %(lim)s)
        UNION
        (SELECT ts, exit_code FROM ops.ledger_entries
          WHERE job = %(job)s AND exit_code = 0 AND ts <= %(now)s ORDER BY ts DESC LIMIT 1)
        """,
        {"job": job, "since": now - timedelta(days=days), "now": now, "lim": limit},
    ).fetchall()
    return [
        RunRecord(ts.isoformat(), SUCCESS if code == 0 else FAILED, ts, ts, ts) for ts, code in rows
    ]
