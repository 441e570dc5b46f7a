"""The dashboard snapshot of a day: four metric categories, a summary and an error list.

Categories (``metrics`` keys, always all four; a category that could not be read is ``null`` and
has an entry in ``errors``):

- ``revenue``: revenue, orders, average order value (``daily_metrics``);
- ``conversion``: conversions, sessions, conversion rate (conversions ÷ sessions);
- ``traffic``: sessions (``daily_metrics``) plus the PostHog-derived counts when the hourly ingest
  has loaded events for the day (events, distinct users, page views, listing views, leads);
- ``idea_pool``: ``ideas_total`` / ``ideas_added`` (``daily_metrics``; from ``analytics.ideas``
  when not set there) and the pool by status from ``analytics.ideas``.

Each category is read in its own savepoint, so one failing (a missing value, a missing table, a
permission error) leaves the others intact: the snapshot is then ``partial`` (the legacy exit
code 1), with the reason in ``errors``. ``summary`` holds the day's totals that could be read,
the counts of captured/failed categories and the proof status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from include.analytics_ops.dates import pt_day_bounds
from include.analytics_ops.nightly.artifacts import snapshot_path, write_json_atomic
from include.analytics_ops.store import jsonb


class CategoryUnavailable(RuntimeError):
    """The category's data is not there for the day."""


def _num(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return value


def _daily_row(conn, day: date, columns: tuple[str, ...]) -> dict[str, Any]:
    row = conn.execute(
        f"SELECT {', '.join(columns)} FROM analytics.daily_metrics WHERE metric_date = %s",
        (day,),
    ).fetchone()
    if row is None:
        raise CategoryUnavailable(f"analytics.daily_metrics has no row for {day.isoformat()}")
    return {c: _num(v) for c, v in zip(columns, row, strict=True)}


def _require(values: dict[str, Any], day: date, *names: str) -> None:
    missing = [n for n in names if values.get(n) is None]
    if missing:
        raise CategoryUnavailable(
            f"analytics.daily_metrics has no {', '.join(missing)} for {day.isoformat()}"
        )


def read_revenue(conn, day: date) -> dict[str, Any]:
    v = _daily_row(conn, day, ("revenue", "orders"))
    _require(v, day, "revenue", "orders")
    aov = round(v["revenue"] / v["orders"], 2) if v["orders"] else None
    return {"revenue": v["revenue"], "orders": v["orders"], "average_order_value": aov}


def read_conversion(conn, day: date) -> dict[str, Any]:
    v = _daily_row(conn, day, ("conversions", "sessions", "conversion_rate"))
    _require(v, day, "conversions", "sessions")
    rate = v["conversion_rate"]
    return {
        "conversions": v["conversions"],
        "sessions": v["sessions"],
        "conversion_rate": None if rate is None else round(rate, 6),
    }


def read_traffic(conn, day: date) -> dict[str, Any]:
    v = _daily_row(conn, day, ("sessions",))
    _require(v, day, "sessions")
    out: dict[str, Any] = {"sessions": v["sessions"]}
    start, end = pt_day_bounds(day)
    events, users = conn.execute(
        "SELECT count(*), count(DISTINCT distinct_id) FROM analytics.posthog_events"
        ' WHERE "timestamp" >= %s AND "timestamp" < %s',
        (start, end),
    ).fetchone()
    if events:
        out["posthog_events"] = int(events)
        out["posthog_distinct_users"] = int(users)
    page_views = conn.execute(
        "SELECT sum(page_views) FROM analytics.user_daily_stats WHERE stat_date = %s", (day,)
    ).fetchone()[0]
    if page_views is not None:
        out["page_views"] = int(page_views)
    listing = conn.execute(
        "SELECT sum(views), sum(leads), count(*) FROM analytics.listing_daily_stats"
        " WHERE stat_date = %s",
        (day,),
    ).fetchone()
    if listing[2]:
        out["listing_views"] = int(listing[0] or 0)
        out["leads"] = int(listing[1] or 0)
        out["listings_viewed"] = int(listing[2])
    return out


def read_idea_pool(conn, day: date) -> dict[str, Any]:
    v = _daily_row(conn, day, ("ideas_total", "ideas_added"))
    _, end = pt_day_bounds(day)
    start = pt_day_bounds(day)[0]
    pool = conn.execute(
        "SELECT status, count(*), count(*) FILTER (WHERE created_at >= %s)"
        " FROM analytics.ideas WHERE created_at < %s GROUP BY status ORDER BY status",
        (start, end),
    ).fetchall()
    by_status = {r[0]: int(r[1]) for r in pool}
    pool_total = sum(by_status.values())
    pool_added = sum(int(r[2]) for r in pool)
    total = v["ideas_total"] if v["ideas_total"] is not None else (pool_total or None)
    added = v["ideas_added"] if v["ideas_added"] is not None else (pool_added if pool else None)
    if total is None:
        raise CategoryUnavailable(
            f"no idea-pool figures for {day.isoformat()} (daily_metrics.ideas_total is empty and"
            " analytics.ideas has no ideas created by then)"
        )
    return {
        "ideas_total": total,
        "ideas_added": added,
        "pool_by_status": by_status,
    }


READERS: dict[str, Callable[[Any, date], dict[str, Any]]] = {
    "revenue": read_revenue,
    "conversion": read_conversion,
    "traffic": read_traffic,
    "idea_pool": read_idea_pool,
}

SUMMARY_FIELDS = (
    ("revenue", "revenue"),
    ("revenue", "orders"),
    ("revenue", "average_order_value"),
    ("traffic", "sessions"),
    ("conversion", "conversions"),
    ("conversion", "conversion_rate"),
    ("idea_pool", "ideas_total"),
    ("idea_pool", "ideas_added"),
)


@dataclass(frozen=True)
class Snapshot:
    snapshot_date: date
    metrics: dict[str, dict[str, Any] | None]
    errors: list[dict[str, str]]
    summary: dict[str, Any]
    proof_status: str | None
    run_id: str | None
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def status(self) -> str:
        """``complete`` or ``partial`` (some category missing; legacy exit code 1)."""
        return "partial" if self.errors else "complete"

    @property
    def captured(self) -> list[str]:
        return [c for c, v in self.metrics.items() if v is not None]

    def as_json(self) -> dict[str, Any]:
        return {
            "snapshot_date": self.snapshot_date.isoformat(),
            "status": self.status,
            "proof_status": self.proof_status,
            "metrics": self.metrics,
            "summary": self.summary,
            "errors": self.errors,
            "generated_at": self.generated_at.isoformat(),
            "run_id": self.run_id,
        }


def capture(
    conn,
    day: date,
    *,
    proof_status: str | None,
    run_id: str | None = None,
    readers: dict[str, Callable[[Any, date], dict[str, Any]]] | None = None,
) -> Snapshot:
    """Read every category (each in its own savepoint); never raises for a category's failure."""
    metrics: dict[str, dict[str, Any] | None] = {}
    errors: list[dict[str, str]] = []
    for category, reader in (readers or READERS).items():
        try:
            with conn.transaction():
                metrics[category] = reader(conn, day)
        except Exception as exc:  # one category's failure is data, not a crash
            metrics[category] = None
            kind = "missing" if isinstance(exc, CategoryUnavailable) else "error"
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            errors.append(
                {"category": category, "kind": kind, "error": f"{type(exc).__name__}: {message}"}
            )
    summary: dict[str, Any] = {}
    for category, name in SUMMARY_FIELDS:
        values = metrics.get(category)
        if values is not None and name in values:
            summary[name] = values[name]
    summary.update(
        {
            "categories_captured": sum(1 for v in metrics.values() if v is not None),
            "categories_failed": len(errors),
            "proof_status": proof_status,
        }
    )
    return Snapshot(day, metrics, errors, summary, proof_status, run_id)


def store_snapshot(conn, snap: Snapshot, artifacts: str) -> Path:
    """Write the snapshot file (atomically) and upsert its ``analytics.dashboard_snapshots`` row."""
    path = write_json_atomic(snapshot_path(artifacts, snap.snapshot_date), snap.as_json())
    conn.execute(
        """
        INSERT INTO analytics.dashboard_snapshots AS s
               (snapshot_date, status, proof_status, metrics, summary, errors, artifact_path,
                run_id, created_at, updated_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now(), now())
        ON CONFLICT (snapshot_date) DO UPDATE
           SET status = EXCLUDED.status, proof_status = EXCLUDED.proof_status,
               metrics = EXCLUDED.metrics, summary = EXCLUDED.summary, errors = EXCLUDED.errors,
               artifact_path = EXCLUDED.artifact_path, run_id = EXCLUDED.run_id,
               updated_at = now()
        """,
        (
            snap.snapshot_date,
            snap.status,
            snap.proof_status,
            jsonb(snap.metrics),
            jsonb(snap.summary),
            jsonb(snap.errors),
            str(path),
            snap.run_id,
        ),
    )
    return path


def snapshot_alert_key(day: date) -> str:
    return f"dashboard_snapshot_partial:{day.isoformat()}"


def sync_snapshot_alert(conn, snap: Snapshot, day: date, **where: Any):
    """A partial snapshot raises a warning through the one alert path (a rerun that is still
    partial counts as a repeat, not news); a complete capture of that day resolves it."""
    from include.analytics_ops import alerts

    key = snapshot_alert_key(day)
    if snap.status == "complete":
        return alerts.resolve_alert(conn, key, f"snapshot of {day} captured complete")
    failed = ", ".join(f"{e['category']} ({e['error']})" for e in snap.errors)
    return alerts.raise_alert(
        conn,
        key,
        "warning",
        "dashboard_snapshot",
        f"Dashboard snapshot {day} is partial",
        f"{len(snap.errors)} of {len(snap.metrics)} categories could not be read: {failed}",
        details={"errors": snap.errors},
        **where,
    )
