"""Per-job statistics over the collected ledger, as the legacy cron collector showed them:
runs, success rate and failures over 24 h and 7 days, average interval between runs, last
failure (time and message), total entries."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg


def _success_rate(runs: int, failed: int) -> float | None:
    return 100.0 * (runs - failed) / runs if runs else None


@dataclass(frozen=True)
class LedgerJobStats:
    job: str
    runs_24h: int
    failed_24h: int
    runs_7d: int
    failed_7d: int
    avg_interval_seconds: float | None
    last_run: datetime | None
    last_exit_code: int | None
    last_failure: datetime | None
    last_failure_exit_code: int | None
    last_failure_message: str | None
    total_entries: int

    @property
    def success_rate_24h(self) -> float | None:
        return _success_rate(self.runs_24h, self.failed_24h)

    @property
    def success_rate_7d(self) -> float | None:
        return _success_rate(self.runs_7d, self.failed_7d)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["success_rate_24h"] = self.success_rate_24h
        out["success_rate_7d"] = self.success_rate_7d
        return out


#: One row per job: the columns are the fields of LedgerJobStats, in their order.
_STATS_SQL = """
WITH e AS (
    SELECT job, ts, exit_code, message,
           ts - lag(ts) OVER (PARTITION BY job ORDER BY ts) AS gap
      FROM ops.ledger_entries
     WHERE (%(job)s::text IS NULL OR job = %(job)s) AND ts <= %(now)s
)
SELECT job,
       count(*) FILTER (WHERE ts > %(now)s - interval '24 hours'),
       count(*) FILTER (WHERE ts > %(now)s - interval '24 hours' AND exit_code <> 0),
       count(*) FILTER (WHERE ts > %(now)s - interval '7 days'),
       count(*) FILTER (WHERE ts > %(now)s - interval '7 days' AND exit_code <> 0),
       extract(epoch FROM avg(gap) FILTER (WHERE ts > %(now)s - interval '7 days'))::float8,
       max(ts),
       (array_agg(exit_code ORDER BY ts DESC))[1],
       max(ts) FILTER (WHERE exit_code <> 0),
       (array_agg(exit_code ORDER BY ts DESC) FILTER (WHERE exit_code <> 0))[1],
       (array_agg(message ORDER BY ts DESC) FILTER (WHERE exit_code <> 0))[1],
       count(*)
  FROM e
 GROUP BY job
 ORDER BY job
"""


def ledger_stats(
    conn: psycopg.Connection, now: datetime | None = None, job: str | None = None
) -> list[LedgerJobStats]:
    """Stats per ledger job as of ``now`` (default: the current time)."""
    now = now or datetime.now(UTC)
    return [LedgerJobStats(*r) for r in conn.execute(_STATS_SQL, {"now": now, "job": job})]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _interval(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 3600:
        return f"{seconds / 60:.1f} minutes"
    return f"{seconds / 3600:.1f} hours"


def format_stats(stats: list[LedgerJobStats], total_entries: int | None = None) -> str:
    """The legacy collector's dashboard, one block per job."""
    bar = "=" * 60
    out = [bar, "CRON LEDGER STATISTICS", bar]
    if not stats:
        out.append("\nno ledger entries collected yet (check LEDGER_PATHS)")
    for s in stats:
        out += [
            f"\nJob: {s.job}",
            "  Last 24 hours:",
            f"     Total runs: {s.runs_24h}",
            f"     Success rate: {_pct(s.success_rate_24h)}",
            f"     Failed runs: {s.failed_24h}",
            "  Last 7 days:",
            f"     Total runs: {s.runs_7d}",
            f"     Success rate: {_pct(s.success_rate_7d)}",
            f"     Failed runs: {s.failed_7d}",
            f"  Average interval: {_interval(s.avg_interval_seconds)}",
            f"  Last run: {s.last_run.astimezone(UTC).isoformat() if s.last_run else 'never'}"
            + (f" (exit {s.last_exit_code})" if s.last_exit_code is not None else ""),
        ]
        if s.last_failure is not None:
            out += [
                "  Last failure:",
                f"     Time: {s.last_failure.astimezone(UTC).isoformat()}",
                f"     Exit code: {s.last_failure_exit_code}",
                f"     Message: {(s.last_failure_message or '')[:200]}",
            ]
        else:
            out.append("  Last failure: none")
        out.append(f"  Entries: {s.total_entries}")
    total = total_entries if total_entries is not None else sum(s.total_entries for s in stats)
    out += [f"\nDatabase: {total} total entries", bar]
    return "\n".join(out)
