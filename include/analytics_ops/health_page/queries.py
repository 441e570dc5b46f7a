"""The health page's data: one read-only pass over ``ops`` and ``analytics``.

``collect_health(conn, now=...)`` returns a JSON-ready dict (datetimes as ``datetime``; the app
serialises them as ISO 8601). Every query is bounded by time or served by an index
(include/sql/V009__health_page_indexes.sql), so the page stays fast on a year of history:

* run statistics read only the last 7 days of ``ops.job_runs`` / ``ops.ledger_entries``;
* "last run" and "last failure" are ``LIMIT 1`` index scans per job (LATERAL);
* the set of DAGs ever recorded comes from a loose index scan (recursive CTE), not a DISTINCT
  over the whole table.

Every DAG of the monitoring registry (``expected_dags``) is listed from the first minute, also
when it never recorded a run: ``never_ran``, or — from Airflow's metadata (``airflow_dags``, read
by the app inside the API server) — ``import_error`` (the file does not parse; the last line of
the error is the reason; always shown) or ``paused`` (where ``ops.job_health`` has no verdict).

Job state (up/late/down/stuck/paused) comes from ``ops.job_health`` (written by the health
evaluation in ``cron_ledger``) when that table exists and has a row for the job; otherwise a
fallback derived from run history is shown and marked ``state_source = "run history"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from include.analytics_ops.config import FromSettings, from_setting, seconds

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
KIND_RANK = {"dag": 0, "ledger": 1, "artifact": 2}
STATE_RANK = {
    "import_error": 0,
    "down": 1,
    "stuck": 2,
    "late": 3,
    "never_ran": 4,
    "unknown": 5,
    "paused": 6,
    "up": 7,
}
INGEST_DAG = "analytics_hourly"


@dataclass(frozen=True)
class HealthSettings(FromSettings):
    """Thresholds of the page: runtime settings (read per request), else these defaults."""

    stuck_after: timedelta = from_setting("HEALTH_STUCK_AFTER_SECONDS", timedelta(hours=2), seconds)
    slow_seconds: float = from_setting("HEALTH_SLOW_SECONDS", 300.0)  # slow = longer than this
    slow_factor: float = from_setting("HEALTH_SLOW_FACTOR", 2.0)  # ... and > factor x 7-day avg
    ingest_lag_warning: timedelta = from_setting(
        "HEALTH_INGEST_LAG_WARNING_SECONDS", timedelta(hours=3), seconds
    )
    max_alerts: int = from_setting("HEALTH_MAX_ALERTS", 50)  # open alerts listed (counts: all)
    ledger_window: timedelta = timedelta(days=7)


# ----------------------------------------------------------------------------------- SQL
_DAG_IDS = """
WITH RECURSIVE d AS (
    (SELECT dag_id FROM ops.job_runs ORDER BY dag_id LIMIT 1)
    UNION ALL
    SELECT (SELECT j.dag_id FROM ops.job_runs j WHERE j.dag_id > d.dag_id
            ORDER BY j.dag_id LIMIT 1)
      FROM d WHERE d.dag_id IS NOT NULL
)
SELECT dag_id FROM d WHERE dag_id IS NOT NULL
"""

# One row per DAG run of the last 7 days: outcome from the final attempt of each task instance.
_DAG_RUN_STATS = """
WITH attempts AS (
    SELECT DISTINCT ON (dag_id, run_id, task_id, map_index)
           dag_id, run_id, status, started_at, finished_at
      FROM ops.job_runs
     WHERE started_at >= %(week_ago)s AND started_at <= %(now)s
     ORDER BY dag_id, run_id, task_id, map_index, try_number DESC
), runs AS (
    SELECT dag_id, run_id, min(started_at) AS started_at, max(finished_at) AS finished_at,
           CASE WHEN bool_or(status IN ('failed', 'timeout', 'cancelled')) THEN 'failed'
                WHEN bool_or(status = 'running') THEN 'running'
                WHEN bool_or(status = 'partial') THEN 'partial'
                ELSE 'completed' END AS outcome
      FROM attempts
     GROUP BY dag_id, run_id
), finished AS (
    SELECT *, extract(epoch FROM finished_at - started_at) AS duration
      FROM runs WHERE outcome <> 'running'
), days AS (
    SELECT dag_id, date_trunc('day', %(now)s - started_at) AS age,
           count(*) AS n, count(*) FILTER (WHERE outcome = 'completed') AS ok
      FROM finished GROUP BY 1, 2
)
SELECT f.dag_id,
       count(*) FILTER (WHERE f.started_at >= %(day_ago)s) AS runs_24h,
       count(*) FILTER (WHERE f.started_at >= %(day_ago)s AND f.outcome = 'completed') AS ok_24h,
       count(*) AS runs_7d,
       count(*) FILTER (WHERE f.outcome = 'completed') AS ok_7d,
       count(*) FILTER (WHERE f.outcome = 'failed') AS failed_7d,
       count(*) FILTER (WHERE f.outcome = 'partial') AS partial_7d,
       avg(f.duration) AS avg_duration_7d,
       max(f.duration) AS max_duration_7d,
       (SELECT jsonb_object_agg(extract(day FROM d.age)::int, jsonb_build_array(d.n, d.ok))
          FROM days d WHERE d.dag_id = f.dag_id) AS daily
  FROM finished f
 GROUP BY f.dag_id
"""

# The latest run of each DAG (any age) and its outcome, plus the last failed attempt.
_DAG_LATEST = """
SELECT d.dag_id, lr.run_id AS last_run_id, lr.started_at AS last_run_started,
       lro.finished_at AS last_run_finished, lro.outcome AS last_run_outcome,
       lf.task_id AS fail_task_id, lf.run_id AS fail_run_id, lf.status AS fail_status,
       lf.started_at AS fail_started, coalesce(lf.finished_at, lf.started_at) AS fail_at,
       coalesce(lf.last_error, lf.status_message) AS fail_message,
       ls.finished_at AS last_success
  FROM unnest(%(dag_ids)s::text[]) AS d(dag_id)
  LEFT JOIN LATERAL (
        SELECT run_id, started_at FROM ops.job_runs j
         WHERE j.dag_id = d.dag_id AND j.started_at <= %(now)s
         ORDER BY j.started_at DESC LIMIT 1) lr ON true
  LEFT JOIN LATERAL (
        SELECT max(a.finished_at) AS finished_at,
               CASE WHEN bool_or(a.status IN ('failed', 'timeout', 'cancelled')) THEN 'failed'
                    WHEN bool_or(a.status = 'running') THEN 'running'
                    WHEN bool_or(a.status = 'partial') THEN 'partial'
                    ELSE 'completed' END AS outcome
          FROM (SELECT DISTINCT ON (task_id, map_index) status, finished_at
                  FROM ops.job_runs j
                 WHERE j.dag_id = d.dag_id AND j.run_id = lr.run_id
                 ORDER BY task_id, map_index, try_number DESC) a) lro ON true
  LEFT JOIN LATERAL (
        SELECT task_id, run_id, status, started_at, finished_at, last_error, status_message
          FROM ops.job_runs j
         WHERE j.dag_id = d.dag_id AND j.status IN ('failed', 'partial', 'timeout')
           AND j.started_at <= %(now)s
         ORDER BY j.started_at DESC LIMIT 1) lf ON true
  LEFT JOIN LATERAL (
        SELECT finished_at FROM ops.job_runs j
         WHERE j.dag_id = d.dag_id AND j.status = 'completed' AND j.started_at <= %(now)s
         ORDER BY j.started_at DESC LIMIT 1) ls ON true
"""

# Attempts still 'running' past the stuck threshold with no later attempt of the same instance.
_STUCK = """
SELECT j.dag_id, j.task_id, j.run_id, j.map_index, j.started_at
  FROM ops.job_runs j
 WHERE j.status = 'running' AND j.started_at < %(stuck_before)s AND j.started_at >= %(week_ago)s
   AND NOT EXISTS (
        SELECT 1 FROM ops.job_runs k
         WHERE k.dag_id = j.dag_id AND k.task_id = j.task_id AND k.run_id = j.run_id
           AND k.map_index = j.map_index AND k.try_number > j.try_number)
 ORDER BY j.started_at
"""

_RUNNING = """
SELECT dag_id, count(*) AS running, min(started_at) AS oldest
  FROM ops.job_runs
 WHERE status = 'running' AND started_at >= %(week_ago)s AND started_at <= %(now)s
 GROUP BY dag_id
"""

_RECENT_FAILURES = """
SELECT count(*) FROM ops.job_runs
 WHERE status IN ('failed', 'partial', 'timeout') AND started_at >= %(day_ago)s
   AND started_at <= %(now)s
"""

_LEDGER_STATS = """
WITH e AS (
    SELECT coalesce(job, source) AS name, source, ts, exit_code
      FROM ops.ledger_entries
     WHERE ts >= %(ledger_since)s AND ts <= %(now)s
), days AS (
    SELECT name, date_trunc('day', %(now)s - ts) AS age,
           count(*) AS n, count(*) FILTER (WHERE exit_code = 0) AS ok
      FROM e GROUP BY 1, 2
)
SELECT e.name, array_agg(DISTINCT e.source) AS sources,
       count(*) FILTER (WHERE e.ts >= %(day_ago)s) AS runs_24h,
       count(*) FILTER (WHERE e.ts >= %(day_ago)s AND e.exit_code = 0) AS ok_24h,
       count(*) FILTER (WHERE e.ts >= %(week_ago)s) AS runs_7d,
       count(*) FILTER (WHERE e.ts >= %(week_ago)s AND e.exit_code = 0) AS ok_7d,
       count(*) FILTER (WHERE e.ts >= %(week_ago)s AND e.exit_code <> 0) AS failed_7d,
       (SELECT jsonb_object_agg(extract(day FROM d.age)::int, jsonb_build_array(d.n, d.ok))
          FROM days d WHERE d.name = e.name) AS daily
  FROM e
 GROUP BY e.name
"""

_LEDGER_LATEST = """
SELECT k.name, lr.ts AS last_run, lr.exit_code AS last_exit, lr.message AS last_message,
       lf.ts AS fail_at, lf.exit_code AS fail_exit, lf.message AS fail_message,
       ls.ts AS last_success
  FROM unnest(%(names)s::text[]) AS k(name)
  LEFT JOIN LATERAL (
        SELECT ts, exit_code, message FROM ops.ledger_entries l
         WHERE coalesce(l.job, l.source) = k.name AND l.ts <= %(now)s
         ORDER BY l.ts DESC LIMIT 1) lr ON true
  LEFT JOIN LATERAL (
        SELECT ts, exit_code, message FROM ops.ledger_entries l
         WHERE coalesce(l.job, l.source) = k.name AND l.exit_code <> 0
           AND l.ts <= %(now)s
         ORDER BY l.ts DESC LIMIT 1) lf ON true
  LEFT JOIN LATERAL (
        SELECT ts FROM ops.ledger_entries l
         WHERE coalesce(l.job, l.source) = k.name AND l.exit_code = 0
           AND l.ts <= %(now)s
         ORDER BY l.ts DESC LIMIT 1) ls ON true
"""

_JOB_HEALTH = """
SELECT job_key, kind, state, since, last_success, last_run, next_expected, reason, source,
       details, evaluated_at
  FROM ops.job_health
"""

_LAST_PROOF = """
SELECT target_date, status, anomalies, checks, artifact_path, run_id, created_at
  FROM analytics.sampling_proofs ORDER BY target_date DESC LIMIT 1
"""

_LAST_SNAPSHOT = """
SELECT snapshot_date, status, proof_status, errors, summary, artifact_path, run_id, created_at
  FROM analytics.dashboard_snapshots ORDER BY snapshot_date DESC LIMIT 1
"""

_WATERMARK = "SELECT complete_until, updated_at FROM ops.watermarks WHERE stream = 'posthog'"

_EVENTS_24H = """
SELECT count(*) AS events_24h,
       count(*) FILTER (WHERE created_at >= %(hour_ago)s) AS events_1h
  FROM analytics.posthog_events
 WHERE created_at >= %(day_ago)s AND created_at <= %(now)s
"""

_EVENTS_HOURLY = """
SELECT date_trunc('hour', created_at) AS hour, count(*) AS events
  FROM analytics.posthog_events
 WHERE created_at >= %(since)s AND created_at <= %(now)s
 GROUP BY 1 ORDER BY 1
"""

_DEAD_LETTERS = """
SELECT stream, count(*) AS waiting, min(first_seen) AS oldest, max(last_seen) AS newest
  FROM ops.dead_letters WHERE resolved_at IS NULL
 GROUP BY stream ORDER BY stream
"""

# The ingest records its PostHog client counters as ``posthog_<counter>`` in ops.job_runs.stats
# (include/analytics_ops/ingest/loader.py); older/other writers may use the bare names. Values
# that are not numbers (or digit strings) are ignored rather than failing the page.
_INGEST_API_STATS = """
WITH a AS (
    SELECT coalesce(stats -> 'posthog_rate_limit_hits', stats -> 'rate_limit_hits') AS hits,
           coalesce(stats -> 'posthog_api_calls', stats -> 'api_calls') AS calls,
           coalesce(stats -> 'posthog_api_errors', stats -> 'api_errors') AS errors
      FROM ops.job_runs
     WHERE dag_id = %(dag_id)s AND started_at >= %(day_ago)s AND started_at <= %(now)s
)
SELECT count(*) AS attempts,
       coalesce(sum(CASE WHEN (hits #>> '{}') ~ '^[0-9]+(\\.[0-9]+)?$'
                         THEN (hits #>> '{}')::numeric END), 0) AS rate_limit_hits,
       coalesce(sum(CASE WHEN (calls #>> '{}') ~ '^[0-9]+(\\.[0-9]+)?$'
                         THEN (calls #>> '{}')::numeric END), 0) AS api_calls,
       coalesce(sum(CASE WHEN (errors #>> '{}') ~ '^[0-9]+(\\.[0-9]+)?$'
                         THEN (errors #>> '{}')::numeric END), 0) AS api_errors
  FROM a
"""

_INVENTORY_LAST = """
SELECT r.run_id, max(r.refreshed_at) AS refreshed_at,
       count(*) FILTER (WHERE r.status = 'success') AS successful,
       count(*) FILTER (WHERE r.status = 'failed') AS failed,
       count(*) AS recorded, coalesce(sum(r.skus), 0) AS skus
  FROM analytics.inventory_refresh_results r
 WHERE r.run_id = (SELECT run_id FROM analytics.inventory_refresh_results
                    WHERE refreshed_at <= %(now)s ORDER BY refreshed_at DESC LIMIT 1)
 GROUP BY r.run_id
"""

_INVENTORY_FAILING = """
SELECT f.client_id, f.platform, f.http_status, f.error, f.refreshed_at, s.last_success,
       (SELECT min(x.refreshed_at) FROM analytics.inventory_refresh_results x
         WHERE x.client_id = f.client_id AND x.platform = f.platform AND x.status = 'failed'
           AND x.refreshed_at > coalesce(s.last_success, '-infinity')
           AND x.refreshed_at <= %(now)s) AS failing_since
  FROM analytics.inventory_refresh_results f
  LEFT JOIN LATERAL (
        SELECT max(y.refreshed_at) AS last_success FROM analytics.inventory_refresh_results y
         WHERE y.client_id = f.client_id AND y.platform = f.platform AND y.status = 'success'
           AND y.refreshed_at <= %(now)s) s ON true
 WHERE f.run_id = %(run_id)s AND f.status = 'failed'
 ORDER BY f.client_id, f.platform
 LIMIT 200
"""

_ALERT_COUNTS = """
SELECT severity, count(*) AS n, min(first_seen) AS oldest
  FROM ops.alerts WHERE state = 'open' GROUP BY severity
"""

_OPEN_ALERTS = """
SELECT a.*,
       (SELECT s.id FROM ops.alert_silences s
         WHERE s.cancelled_at IS NULL AND s.starts_at <= %(now)s AND s.ends_at > %(now)s
           AND a.dedup_key LIKE s.like_pattern
         ORDER BY s.ends_at DESC, s.id LIMIT 1) AS silenced_by
  FROM (
    (SELECT id, dedup_key, severity, source, title, body, dag_id, task_id, run_id, url,
            first_seen, last_seen, count, flapping_since
       FROM ops.alerts WHERE state = 'open' AND severity = 'critical'
      ORDER BY last_seen DESC LIMIT %(limit)s)
    UNION ALL
    (SELECT id, dedup_key, severity, source, title, body, dag_id, task_id, run_id, url,
            first_seen, last_seen, count, flapping_since
       FROM ops.alerts WHERE state = 'open' AND severity = 'warning'
      ORDER BY last_seen DESC LIMIT %(limit)s)
    UNION ALL
    (SELECT id, dedup_key, severity, source, title, body, dag_id, task_id, run_id, url,
            first_seen, last_seen, count, flapping_since
       FROM ops.alerts WHERE state = 'open' AND severity = 'info'
      ORDER BY last_seen DESC LIMIT %(limit)s)
) a
"""

# Silences live at `now` or later (active first, then scheduled).
_SILENCES = """
SELECT id, pattern, starts_at, ends_at, reason, created_by,
       (starts_at <= %(now)s) AS active
  FROM ops.alert_silences
 WHERE cancelled_at IS NULL AND ends_at > %(now)s
 ORDER BY starts_at <= %(now)s DESC, starts_at, id
 LIMIT 50
"""


# ----------------------------------------------------------------------------------- helpers


def _rate(ok: int | None, total: int | None) -> float | None:
    return round(100.0 * ok / total, 1) if total else None


def _job_row(key: str, kind: str, name: str, dag_id: str | None, s: Mapping) -> dict[str, Any]:
    """A job's row on the page with the run counts of stats row ``s`` ({}: none) and nothing
    else known yet; each kind of job fills in what it has."""
    return {
        "key": key,
        "kind": kind,
        "name": name,
        "dag_id": dag_id,
        "runs_24h": int(s.get("runs_24h") or 0),
        "success_rate_24h": _rate(s.get("ok_24h"), s.get("runs_24h")),
        "runs_7d": int(s.get("runs_7d") or 0),
        "success_rate_7d": _rate(s.get("ok_7d"), s.get("runs_7d")),
        "failed_7d": int(s.get("failed_7d") or 0),
        "partial_7d": int(s.get("partial_7d") or 0),
        "avg_duration_seconds": _round(s.get("avg_duration_7d")),
        "max_duration_seconds": _round(s.get("max_duration_7d")),
        "last_duration_seconds": None,
        "slow": False,
        "daily_success_rate": _daily_series(s.get("daily")),
        "last_run": None,
        "last_run_id": None,
        "last_outcome": None,
        "last_run_finished": None,
        "last_success": None,
        "last_failure": None,
        "running": 0,
        "stuck": [],
    }


def _daily_series(daily: dict | None) -> list[float | None]:
    """Success rate per day, oldest first: index 0 = 6 days ago ... 6 = the last 24 h."""
    daily = daily or {}
    series: list[float | None] = []
    for age in range(6, -1, -1):
        n, ok = daily.get(str(age), (0, 0))
        series.append(_rate(ok, n))
    return series


def _table_exists(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value]
    return [value]


def _health_lookup(rows: list[dict]) -> dict[tuple[str, str], dict]:
    """Index ``ops.job_health`` rows by (kind, job name).

    The evaluation in include/analytics_ops/monitoring keys jobs ``dag:<dag_id>``,
    ``ledger:<job>`` and ``artifact:<name>``; bare names and ``details.dag_id`` / ``details.job``
    are accepted too. (``details.source`` there names the run source, not a ledger source.)
    """
    index: dict[tuple[str, str], dict] = {}
    for row in rows:
        details = row.get("details") or {}
        key, kind = row["job_key"], row["kind"]
        names = [key.removeprefix(f"{kind}:"), key]
        names += [details[k] for k in ("dag_id", "job") if isinstance(details.get(k), str)]
        for name in names:
            index.setdefault((kind, name), row)
    return index


def _fallback_state(job: dict, now: datetime) -> tuple[str, datetime | None, str]:
    """State from run history alone (when ops.job_health has no row for the job)."""
    if job.get("stuck"):
        first = job["stuck"][0]
        return "stuck", first["started_at"], f"{first['task_id']} running since start"
    outcome = job.get("last_outcome")
    if outcome in ("failed",):
        since = job.get("last_failure", {}).get("at") if job.get("last_failure") else None
        return "down", since or job.get("last_run"), "last run failed"
    if job.get("last_run") is None:
        return "unknown", None, "no runs recorded"
    return "up", job.get("last_success"), "last run succeeded"


# ----------------------------------------------------------------------------------- main
def registry_dag_ids() -> list[str]:
    """The DAGs the monitoring registry watches (include/analytics_ops/monitoring/jobs.py)."""
    from include.analytics_ops.monitoring.jobs import DAG_JOBS

    return [j.name for j in DAG_JOBS if j.enabled]


def _airflow_state(job: dict, status: Mapping[str, Any] | None) -> None:
    """Overlay what Airflow says about the DAG and "never ran": an import error always wins;
    paused only where no evaluation (``ops.job_health``) judged the DAG yet."""
    status = status or {}
    error = status.get("import_error")
    if error:
        first = next((ln.strip() for ln in str(error).splitlines()[::-1] if ln.strip()), "")
        job.update(
            state="import_error",
            state_reason=f"import error: {first}"[:500],
            state_since=status.get("import_error_at"),
            state_source="airflow",
        )
    elif status.get("paused") and job["state_source"] != "job_health":
        # The evaluation's verdict (ops.job_health) stands when there is one; before the first
        # evaluation, Airflow's paused flag is what explains why nothing runs.
        job.update(
            state="paused",
            state_reason="paused in Airflow: no run is expected",
            state_since=None,
            state_source="airflow",
        )
    elif job.get("last_run") is None and job["state"] == "unknown":
        job.update(state="never_ran", state_reason="never ran: no run recorded yet")


def collect_health(
    conn: psycopg.Connection,
    now: datetime | None = None,
    settings: HealthSettings | None = None,
    *,
    expected_dags: Sequence[str] = (),
    airflow_dags: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Everything the page shows, as one dict (see README in the package docstring).

    ``expected_dags``: DAG ids listed even without any run (the app passes the registry);
    ``airflow_dags``: ``{dag_id: {"paused": bool, "import_error": str | None, ...}}`` from
    Airflow's metadata, when known."""
    settings = settings or HealthSettings.from_settings()
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    params = {
        "now": now,
        "hour_ago": now - timedelta(hours=1),
        "day_ago": now - timedelta(days=1),
        "week_ago": now - timedelta(days=7),
        "ledger_since": now - settings.ledger_window,
        "stuck_before": now - settings.stuck_after,
    }
    cur = conn.cursor(row_factory=dict_row)

    def q(sql: str, extra: dict | None = None) -> list[dict]:
        return cur.execute(sql, {**params, **(extra or {})}).fetchall()

    # ---------------------------------------------------------------- DAG jobs
    recorded = [r["dag_id"] for r in q(_DAG_IDS)]
    dag_ids = recorded + sorted(set(expected_dags) - set(recorded))
    airflow_dags = airflow_dags or {}
    stats = {r["dag_id"]: r for r in q(_DAG_RUN_STATS)}
    latest = {r["dag_id"]: r for r in q(_DAG_LATEST, {"dag_ids": dag_ids})} if dag_ids else {}
    stuck_rows = q(_STUCK)
    running = {r["dag_id"]: r for r in q(_RUNNING)}
    has_job_health = _table_exists(conn, "ops.job_health")
    health_rows = q(_JOB_HEALTH) if has_job_health else []
    health = _health_lookup(health_rows)
    used_health_keys: set[str] = set()

    jobs: list[dict[str, Any]] = []
    for dag_id in dag_ids:
        s = stats.get(dag_id, {})
        lt = latest.get(dag_id, {})
        job = _job_row(f"dag:{dag_id}", "dag", dag_id, dag_id, s)
        job |= {
            "last_run": lt.get("last_run_started"),
            "last_run_id": lt.get("last_run_id"),
            "last_outcome": lt.get("last_run_outcome") if lt.get("last_run_id") else None,
            "last_run_finished": lt.get("last_run_finished"),
            "last_success": lt.get("last_success"),
            "last_failure": (
                {
                    "at": lt["fail_at"],
                    "task_id": lt["fail_task_id"],
                    "run_id": lt["fail_run_id"],
                    "status": lt["fail_status"],
                    "message": lt["fail_message"],
                }
                if lt.get("fail_run_id")
                else None
            ),
            "running": int(running.get(dag_id, {}).get("running") or 0),
            "stuck": [
                {k: r[k] for k in ("task_id", "run_id", "map_index", "started_at")}
                for r in stuck_rows
                if r["dag_id"] == dag_id
            ],
        }
        last_duration = None
        if job["last_run_finished"] and job["last_run"] and job["last_outcome"] != "running":
            last_duration = (job["last_run_finished"] - job["last_run"]).total_seconds()
        job["last_duration_seconds"] = _round(last_duration)
        avg = job["avg_duration_seconds"]
        job["slow"] = bool(
            last_duration is not None
            and last_duration > settings.slow_seconds
            and (avg is None or last_duration > settings.slow_factor * avg)
        )
        _apply_state(job, health.get(("dag", dag_id)), now, used_health_keys)
        _airflow_state(job, airflow_dags.get(dag_id))
        jobs.append(job)

    # ---------------------------------------------------------------- ledger jobs
    # A ledger job is its ``job`` (lines without one: their ``source``), as in the evaluation.
    ledger_stats = {r["name"]: r for r in q(_LEDGER_STATS)}
    ledger_names = sorted(ledger_stats)
    latest_rows = q(_LEDGER_LATEST, {"names": ledger_names}) if ledger_names else []
    ledger_latest = {r["name"]: r for r in latest_rows}
    for name in ledger_names:
        s = ledger_stats[name]
        lt = ledger_latest.get(name, {})
        job = _job_row(f"ledger:{name}", "ledger", name, None, s)  # lines carry no duration
        job |= {
            "sources": sorted(s.get("sources") or []),
            "last_run": lt.get("last_run"),
            "last_outcome": (
                None
                if lt.get("last_run") is None
                else ("completed" if lt.get("last_exit") == 0 else "failed")
            ),
            "last_run_finished": lt.get("last_run"),
            "last_success": lt.get("last_success"),
            "last_failure": (
                {
                    "at": lt["fail_at"],
                    "task_id": None,
                    "run_id": None,
                    "status": f"exit {lt['fail_exit']}",
                    "message": lt["fail_message"],
                }
                if lt.get("fail_at")
                else None
            ),
        }
        _apply_state(job, health.get(("ledger", name)), now, used_health_keys)
        jobs.append(job)

    # ---------------------------------------------------------------- job_health rows we did not
    # match to run history (e.g. an 'artifact' check or a DAG that never recorded an attempt)
    for row in health_rows:
        if row["job_key"] in used_health_keys:
            continue
        details = row.get("details") or {}
        dag_id = details.get("dag_id") if row["kind"] == "dag" else None
        if row["kind"] == "dag" and not dag_id:
            dag_id = row["job_key"].removeprefix("dag:")
        name = row["job_key"].removeprefix(f"{row['kind']}:")
        job = _job_row(row["job_key"], row["kind"], name, dag_id, {})
        job |= {"last_run": row.get("last_run"), "last_success": row.get("last_success")}
        _apply_state(job, row, now, used_health_keys)
        jobs.append(job)

    jobs.sort(key=lambda j: (STATE_RANK.get(j["state"], 9), KIND_RANK.get(j["kind"], 9), j["name"]))
    state_counts: dict[str, int] = {}
    for j in jobs:
        state_counts[j["state"]] = state_counts.get(j["state"], 0) + 1

    # ---------------------------------------------------------------- proof / snapshot
    proof_rows = q(_LAST_PROOF)
    proof = None
    if proof_rows:
        p = proof_rows[0]
        anomalies = _as_list(p["anomalies"])
        proof = {**p, "anomalies": anomalies, "anomaly_count": len(anomalies)}
        proof.pop("checks", None)
    snap_rows = q(_LAST_SNAPSHOT)
    snapshot = None
    if snap_rows:
        s = snap_rows[0]
        errors = _as_list(s["errors"])
        snapshot = {**s, "errors": errors, "error_count": len(errors)}
        snapshot.pop("summary", None)

    # ---------------------------------------------------------------- ingest
    wm = q(_WATERMARK)
    complete_until = wm[0]["complete_until"] if wm else None
    lag = (now - complete_until).total_seconds() if complete_until else None
    ev = q(_EVENTS_24H)[0]
    hourly_since = (now - timedelta(hours=47)).replace(minute=0, second=0, microsecond=0)
    hourly_rows = {r["hour"]: int(r["events"]) for r in q(_EVENTS_HOURLY, {"since": hourly_since})}
    hourly = []
    for i in range(48):
        hour = hourly_since + timedelta(hours=i)
        if hour > now:
            break
        hourly.append({"hour": hour, "events": hourly_rows.get(hour, 0)})
    dead = q(_DEAD_LETTERS)
    api = q(_INGEST_API_STATS, {"dag_id": INGEST_DAG})[0]
    ingest_job = next((j for j in jobs if j["kind"] == "dag" and j["dag_id"] == INGEST_DAG), None)
    ingest = {
        "watermark": complete_until,
        "lag_seconds": _round(lag),
        "lagging": bool(lag is not None and lag > settings.ingest_lag_warning.total_seconds()),
        "events_24h": int(ev["events_24h"]),
        "events_1h": int(ev["events_1h"]),
        "hourly_events": hourly,
        "dead_letters_waiting": sum(int(r["waiting"]) for r in dead),
        "dead_letters_by_stream": [{**r, "waiting": int(r["waiting"])} for r in dead],
        "rate_limit_hits_24h": int(api["rate_limit_hits"]),
        "api_calls_24h": int(api["api_calls"]),
        "api_errors_24h": int(api["api_errors"]),
        "ingest_attempts_24h": int(api["attempts"]),
        "last_ingest_run": ingest_job["last_run"] if ingest_job else None,
        "last_ingest_outcome": ingest_job["last_outcome"] if ingest_job else None,
    }

    # ---------------------------------------------------------------- inventory refresh
    inventory: dict[str, Any] = {"last_run": None, "failing_clients": []}
    inv_rows = q(_INVENTORY_LAST)
    if inv_rows:
        inv = inv_rows[0]
        total = int(inv["recorded"])
        if _table_exists(conn, "analytics.inventory_refresh_runs"):
            listed = q(
                "SELECT job_count FROM analytics.inventory_refresh_runs WHERE run_id = %(r)s",
                {"r": inv["run_id"]},
            )
            if listed:
                total = max(total, int(listed[0]["job_count"]))
        successful = int(inv["successful"])
        failed = total - successful
        inventory["last_run"] = {
            "run_id": inv["run_id"],
            "refreshed_at": inv["refreshed_at"],
            "successful": successful,
            "failed": failed,
            "total": total,
            "skus": int(inv["skus"]),
            "summary": f"{successful} successful, {failed} failed out of {total}",
        }
        inventory["failing_clients"] = q(_INVENTORY_FAILING, {"run_id": inv["run_id"]})

    # ---------------------------------------------------------------- alerts
    counts = {r["severity"]: int(r["n"]) for r in q(_ALERT_COUNTS)}
    open_alerts = q(_OPEN_ALERTS, {"limit": settings.max_alerts})
    open_alerts.sort(
        key=lambda a: (SEVERITY_RANK.get(a["severity"], 9), -a["last_seen"].timestamp())
    )
    open_alerts = open_alerts[: settings.max_alerts]
    alerts = {
        "open_by_severity": {sev: counts.get(sev, 0) for sev in ("critical", "warning", "info")},
        "open_total": sum(counts.values()),
        "open": open_alerts,
        "silences": q(_SILENCES),
    }

    recent_failures = int(q(_RECENT_FAILURES)[0]["count"])
    data = {
        "generated_at": now,
        "job_health_table": has_job_health,
        "jobs": jobs,
        "job_state_counts": state_counts,
        "summary": {
            "running_jobs": sum(j["running"] for j in jobs),
            "failed_attempts_24h": recent_failures,
            "slow_jobs": sum(1 for j in jobs if j["slow"]),
            "stuck_jobs": sum(1 for j in jobs if j["state"] == "stuck"),
        },
        "sampling_proof": proof,
        "snapshot": snapshot,
        "ingest": ingest,
        "inventory": inventory,
        "alerts": alerts,
    }
    data["overall"] = overall_status(data)
    return data


def _round(value: Any, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def _apply_state(job: dict, hrow: dict | None, now: datetime, used: set[str]) -> None:
    if hrow is not None:
        used.add(hrow["job_key"])
        job["state"] = hrow["state"]
        job["state_since"] = hrow["since"]
        job["state_reason"] = hrow.get("reason") or ""
        job["next_expected"] = hrow.get("next_expected")
        job["state_source"] = "job_health"
        job["evaluated_at"] = hrow.get("evaluated_at")
        job["health_key"] = hrow["job_key"]
        if job.get("last_success") is None:
            job["last_success"] = hrow.get("last_success")
        if job.get("last_run") is None:
            job["last_run"] = hrow.get("last_run")
        return
    state, since, reason = _fallback_state(job, now)
    job.update(
        state=state,
        state_since=since,
        state_reason=reason,
        next_expected=None,
        state_source="run history",
        evaluated_at=None,
        health_key=None,
    )


def overall_status(data: dict[str, Any]) -> dict[str, Any]:
    """'ok' / 'warning' / 'critical' plus one line per problem, worst first."""
    problems: list[dict[str, Any]] = []

    def add(level: str, text: str, since: datetime | None = None) -> None:
        problems.append({"level": level, "text": text, "since": since})

    for j in data["jobs"]:
        if j["state"] == "import_error":
            add("critical", f"{j['name']} does not import: {j['state_reason']}", j["state_since"])
        elif j["state"] == "never_ran":
            add("warning", f"{j['name']} never ran", None)
        elif j["state"] in ("down", "stuck"):
            add("critical", f"{j['name']} is {j['state']}", j["state_since"])
        elif j["state"] == "late":
            add("warning", f"{j['name']} is late", j["state_since"])
        elif j["slow"]:
            add("warning", f"{j['name']} last run was slow", j["last_run"])
    alerts = data["alerts"]["open_by_severity"]
    if alerts["critical"]:
        add("critical", f"{alerts['critical']} open critical alert(s)")
    if alerts["warning"]:
        add("warning", f"{alerts['warning']} open warning alert(s)")
    proof = data["sampling_proof"]
    if proof and proof["status"] in ("warning", "critical"):
        add(proof["status"], f"sampling proof {proof['target_date']} is {proof['status']}")
    snap = data["snapshot"]
    if snap and snap["status"] != "complete":
        add("warning", f"snapshot {snap['snapshot_date']} is {snap['status']}")
    ingest = data["ingest"]
    if ingest["lagging"]:
        add("warning", "PostHog ingest is behind", ingest["watermark"])
    if ingest["dead_letters_waiting"]:
        add("warning", f"{ingest['dead_letters_waiting']} dead letter(s) waiting")
    inv = data["inventory"]["last_run"]
    if inv and inv["failed"]:
        add("warning", f"inventory refresh: {inv['summary']}", inv["refreshed_at"])
    problems.sort(key=lambda p: 0 if p["level"] == "critical" else 1)
    level = "ok"
    if problems:
        level = "critical" if problems[0]["level"] == "critical" else "warning"
    return {"status": level, "problems": problems}
