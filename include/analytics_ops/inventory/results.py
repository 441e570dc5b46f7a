"""Outcomes of an ``inventory_refresh`` run in Postgres: one batch end to end, and the summary.

``analytics.inventory_refresh_results`` holds one row per (run_id, client_id, platform), upserted
as each call finishes, so a retried batch or a cleared mapped instance overwrites its own rows and
never duplicates them. The summary reads the run's work list left-joined to those rows: a job of
the list without a row (its batch crashed before recording it) counts as failed, never as absent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg

from include.analytics_ops.inventory import jobs as jobs_mod
from include.analytics_ops.inventory.api import (
    InventoryApi,
    RefreshOutcome,
    RetryPolicy,
    refresh_many,
)
from include.analytics_ops.store import jsonb

log = logging.getLogger(__name__)

_UPSERT = """
INSERT INTO analytics.inventory_refresh_results
       (run_id, client_id, platform, status, http_status, skus, platforms, duration_ms,
        attempts, error, batch, task_try, details, refreshed_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (run_id, client_id, platform) DO UPDATE
   SET status = EXCLUDED.status, http_status = EXCLUDED.http_status, skus = EXCLUDED.skus,
       platforms = EXCLUDED.platforms, duration_ms = EXCLUDED.duration_ms,
       attempts = EXCLUDED.attempts, error = EXCLUDED.error, batch = EXCLUDED.batch,
       task_try = EXCLUDED.task_try, details = EXCLUDED.details, refreshed_at = now()
"""


def upsert_outcomes(
    conn: psycopg.Connection,
    run_id: str,
    outcomes: Sequence[RefreshOutcome],
    *,
    batch: int | None = None,
    task_try: int | None = None,
) -> None:
    """Write outcomes (one transaction); the same (run, client, platform) is overwritten."""
    if not outcomes:
        return
    rows = [
        (
            run_id,
            o.client_id,
            o.platform,
            o.status,
            o.http_status,
            o.skus,
            o.platforms,
            o.duration_ms,
            max(o.attempts, 1),
            o.error,
            batch,
            task_try,
            jsonb({"retryable": o.retryable, **o.details}),
        )
        for o in outcomes
    ]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(_UPSERT, rows)


# --------------------------------------------------------------------------- one batch
@dataclass
class BatchReport:
    run_id: str
    batch: int
    jobs: int = 0
    skipped: int = 0  # already successful in this run (retry / clear)
    called: int = 0
    succeeded: int = 0
    failed: int = 0
    retryable_failed: int = 0
    api_attempts: int = 0
    seconds: float = 0.0
    failures: list[RefreshOutcome] = field(default_factory=list)

    @property
    def failed_clients(self) -> list[str]:
        return sorted({o.client_id for o in self.failures})

    def stats(self) -> dict[str, int | float]:
        return {
            "batch": self.batch,
            "jobs": self.jobs,
            "skipped_successful": self.skipped,
            "api_calls": self.api_attempts,
            "api_errors": self.failed,
            "refreshed": self.succeeded,
            "retryable_failures": self.retryable_failed,
            "call_phase_seconds": round(self.seconds, 3),
        }


def run_batch(
    conn: psycopg.Connection,
    api: InventoryApi,
    run_id: str,
    batch: int,
    *,
    concurrency: int = 8,
    policy: RetryPolicy | None = None,
    task_try: int = 1,
    skip_successful: bool = True,
    flush_every: int = 50,
) -> BatchReport:
    """Refresh the jobs of ``batch`` from the run's recorded work list and upsert each outcome.

    With ``skip_successful`` (the default) jobs that already succeeded in this run are not called
    again, so a retried batch or a cleared mapped instance re-refreshes only what failed (or was
    never reached). Failures are recorded, not raised: the caller decides what they mean.
    """
    import time

    report = BatchReport(run_id, batch)
    todo = jobs_mod.batch_jobs(conn, run_id, batch)
    report.jobs = len(todo)
    if skip_successful and todo:
        done = jobs_mod.successful_jobs(conn, run_id, todo)
        todo = [j for j in todo if j not in done]
        report.skipped = len(done)
    pending: list[RefreshOutcome] = []

    def flush() -> None:
        upsert_outcomes(conn, run_id, pending, batch=batch, task_try=task_try)
        pending.clear()

    def on_outcome(outcome: RefreshOutcome) -> None:
        report.api_attempts += outcome.attempts
        if outcome.ok:
            report.succeeded += 1
        else:
            report.failed += 1
            report.retryable_failed += int(outcome.retryable)
            report.failures.append(outcome)
            log.warning(
                "❌ FAILED - %s (%s): %s", outcome.client_id, outcome.platform, outcome.error
            )
        pending.append(outcome)
        if len(pending) >= flush_every:
            flush()

    started = time.perf_counter()
    if todo:
        refresh_many(api, todo, concurrency=concurrency, policy=policy, on_outcome=on_outcome)
    report.seconds = time.perf_counter() - started
    flush()
    report.called = len(todo)
    return report


# --------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class JobResult:
    client_id: str
    platform: str
    batch: int
    status: str  # 'success' | 'failed' | 'missing' (listed, no outcome recorded)
    http_status: int | None
    platforms: int | None
    skus: int | None
    duration_ms: int | None
    attempts: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def line(self) -> str:
        """One log line per job, in the legacy cron's format."""
        if self.ok:
            skus = "?" if self.skus is None else self.skus
            return (
                f"✅ SUCCESS - {self.client_id} ({self.platform}): "
                f"{self.platforms or 0} platforms, {skus} SKUs"
            )
        if self.status == "missing":
            return (
                f"❌ FAILED - {self.client_id} ({self.platform}): not refreshed "
                f"(no outcome recorded; refresh_client batch {self.batch} did not finish)"
            )
        return f"❌ FAILED - {self.client_id} ({self.platform}): {self.reason()}"

    def reason(self) -> str:
        """Why a job failed: its HTTP status and error text, without repeating the status."""
        if self.status == "missing":
            return "not refreshed (no outcome recorded)"
        error = self.error or ""
        if self.http_status is None:
            return error or "no HTTP response"
        status = f"HTTP {self.http_status}"
        return error if error.startswith(status) else f"{status} - {error}".rstrip(" -")


@dataclass
class RunSummary:
    run_id: str
    listed: bool  # list_refresh_jobs recorded a work list for this run
    results: list[JobResult] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def successful(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def failed(self) -> int:
        return self.total - self.successful

    @property
    def failures(self) -> list[JobResult]:
        return [r for r in self.results if not r.ok]

    @property
    def failed_clients(self) -> list[str]:
        return sorted({r.client_id for r in self.failures})

    @property
    def headline(self) -> str:
        return (
            f"Results: {self.successful} successful, {self.failed} failed out of "
            f"{self.total} total jobs"
        )


def read_summary(conn: psycopg.Connection, run_id: str) -> RunSummary:
    """The run's work list joined to its outcomes (from Postgres, not XCom)."""
    listed = (
        conn.execute(
            "SELECT 1 FROM analytics.inventory_refresh_runs WHERE run_id = %s", (run_id,)
        ).fetchone()
        is not None
    )
    rows = conn.execute(
        """
        SELECT j.client_id, j.platform, j.batch, COALESCE(r.status, 'missing'), r.http_status,
               r.platforms, r.skus, r.duration_ms, r.attempts, r.error
          FROM analytics.inventory_refresh_jobs j
          LEFT JOIN analytics.inventory_refresh_results r
            ON r.run_id = j.run_id AND r.client_id = j.client_id AND r.platform = j.platform
         WHERE j.run_id = %s
         ORDER BY j.client_id, array_position(ARRAY['shopify', 'amazon', 'all'], j.platform)
        """,
        (run_id,),
    ).fetchall()
    return RunSummary(run_id, listed, [JobResult(*r) for r in rows])


def failure_body(summary: RunSummary, max_clients: int = 50) -> str:
    """Alert body: which clients failed and why (first error per client)."""
    first_error: dict[str, str] = {}
    for r in summary.failures:
        if r.client_id not in first_error:
            first_error[r.client_id] = f"{r.platform}: {r.reason()}"
    lines = [f"- {c}: {e}" for c, e in list(first_error.items())[:max_clients]]
    if len(first_error) > max_clients:
        lines.append(f"- … and {len(first_error) - max_clients} more clients")
    return f"run {summary.run_id}: {summary.headline}\n" + "\n".join(lines)


def clients_still_alerting(conn: psycopg.Connection, run_id: str, alert_key: str) -> list[str]:
    """Clients named by the open failure alert that this run did not refresh (a manual run
    narrowed to other clients must not resolve an alert about clients it never called)."""
    row = conn.execute(
        "SELECT details -> 'failed_clients' FROM ops.alerts WHERE dedup_key = %s"
        " AND state = 'open'",
        (alert_key,),
    ).fetchone()
    if row is None or not isinstance(row[0], list):
        return []
    covered = {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT client_id FROM analytics.inventory_refresh_jobs WHERE run_id = %s",
            (run_id,),
        ).fetchall()
    }
    return sorted(str(c) for c in row[0] if str(c) not in covered)
