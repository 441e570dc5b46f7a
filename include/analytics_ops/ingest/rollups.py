"""Rollups of ``analytics.posthog_events``, recomputed (never incremented) so reruns are exact.

For a loaded window, every PT date (of event ``timestamp``) its events touch is recomputed from all
events of that date — a late event (arrived now, happened days ago) changes its own old date:

- ``analytics.listing_daily_stats (listing_id, stat_date)``, ``analytics.user_daily_stats
  (user_id, user_type, stat_date)``, ``analytics.development_daily_stats (development_id,
  stat_date)``: the date's rows are deleted and rebuilt;
- ``analytics.leads (listing_id, seeker_id)``: every pair with a lead event in the window is
  rebuilt from all lead events of the pair;
- ``analytics.daily_metrics`` traffic columns (sessions, conversions, orders, revenue): upserted
  for dates of the *ingest era* only — dates whose whole PT day starts at or after the stream's
  ingest start (``POSTHOG_INGEST_START``, default: the stream start stored in
  ``ops.stream_starts`` by the first scheduled window; manual windows never move it). Days
  before it were loaded by the legacy import and would be clobbered by partial event counts;
  their late events still reach ``posthog_events`` and the entity rollups. Other columns of
  ``daily_metrics`` (ideas) are never touched.

The event → column mapping is ``IngestConfig.mapping`` (see ``config.EventMapping``). Everything of
one call runs in one transaction under an advisory lock, together with the window's
``rolled_up_at`` mark and the watermark advance.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import sql

from include.analytics_ops import store
from include.analytics_ops.dates import pt_day_bounds
from include.analytics_ops.ingest import STREAM
from include.analytics_ops.ingest.config import EventMapping, IngestConfig

_LOCK = "analytics_hourly.posthog_rollups"
PT_DATE = sql.SQL("""(("timestamp" AT TIME ZONE 'America/Los_Angeles')::date)""")


class RollupNotReady(RuntimeError):
    """The window is not fully loaded yet (its checkpoint is not complete)."""


def _lit_list(values: Iterable[str]) -> sql.Composable:
    items = [sql.Literal(v) for v in values]
    return sql.SQL("({})").format(sql.SQL(", ").join(items)) if items else sql.SQL("(NULL)")


def _prop(name: str, alias: str = "") -> sql.Composable:
    col = sql.SQL(f"{alias}.properties" if alias else "properties")
    return sql.SQL("({} ->> {})").format(col, sql.Literal(name))


@dataclass
class RollupResult:
    dates: list[date] = field(default_factory=list)
    era_dates: list[date] = field(default_factory=list)
    processed: dict[str, int] = field(default_factory=dict)
    inserted: dict[str, int] = field(default_factory=dict)
    watermark: datetime | None = None
    seconds: float = 0.0

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dates": [d.isoformat() for d in self.dates],
            "daily_metrics_dates": [d.isoformat() for d in self.era_dates],
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "seconds": round(self.seconds, 3),
        }
        for entity in ("listings", "users", "developments", "leads"):
            out[f"{entity}_processed"] = self.processed.get(entity, 0)
            out[f"{entity}_inserted"] = self.inserted.get(entity, 0)
        out["daily_metrics_written"] = self.inserted.get("daily_metrics", 0)
        return out


# ----------------------------------------------------------------------------- era + watermark
def stored_stream_start(conn: psycopg.Connection) -> datetime | None:
    row = conn.execute(
        "SELECT started_at FROM ops.stream_starts WHERE stream = %s", (STREAM,)
    ).fetchone()
    return row[0] if row else None


def record_stream_start(conn: psycopg.Connection, start: datetime, recorded_by: str) -> None:
    """Store the stream start once: the first scheduled window ever attempted. Until one exists,
    the first window of any run stands in (``recorded_by`` says which); the first scheduled
    window replaces such a stand-in once, and nothing moves it after that — so a manual run of
    an old window never moves the era or the watermark's anchor."""
    conn.execute(
        """
        INSERT INTO ops.stream_starts AS s (stream, started_at, recorded_by) VALUES (%s, %s, %s)
        ON CONFLICT (stream) DO UPDATE
           SET started_at = EXCLUDED.started_at, recorded_by = EXCLUDED.recorded_by,
               recorded_at = now()
         WHERE s.recorded_by <> 'scheduled' AND EXCLUDED.recorded_by = 'scheduled'
        """,
        (STREAM, start, recorded_by),
    )


def era_start(conn: psycopg.Connection, cfg: IngestConfig) -> datetime | None:
    """Start of the ingest era: the setting, else the stored stream start (``ops.stream_starts``:
    the first scheduled window ever attempted). Manual windows never move it."""
    if cfg.ingest_start is not None:
        return cfg.ingest_start
    return stored_stream_start(conn)


def in_era(day: date, start: datetime | None) -> bool:
    return start is not None and pt_day_bounds(day)[0] >= start


#: ``ops.watermarks`` stream: windows before it were read once AND recounted at the first
#: reconciliation offset (late arrivals fetched). See ``reconcile``.
RECONCILED_STREAM = "posthog_reconciled"


def advance_contiguous_watermark(
    conn: psycopg.Connection, cfg: IngestConfig, *, recounted_at: Any = None
) -> datetime | None:
    """Move ``ops.watermarks['posthog'].complete_until`` over every contiguous window that is
    loaded and rolled up, starting at the current watermark (or, without one, the stream start).
    With ``recounted_at`` (an offset), move ``RECONCILED_STREAM`` instead, over windows that were
    also recounted at that offset. Returns the watermark."""
    name = STREAM if recounted_at is None else RECONCILED_STREAM
    current = store.read_watermark(conn, name)
    # Start from the watermark; without one, from the stream start (recorded when the first
    # scheduled window was attempted, so a first window that failed before writing a checkpoint
    # is not skipped, and an old manual window cannot anchor it). An explicit
    # POSTHOG_INGEST_START declares everything before it covered (legacy import).
    pos = current
    start = era_start(conn, cfg)  # nothing before the stream start is this stream's to wait for
    if start is not None and (pos is None or start > pos):
        pos = start
    if pos is None:
        return None
    while True:
        row = conn.execute(
            """
            SELECT max(c.window_end) FROM ops.checkpoints c
             WHERE c.stream = %s AND c.status = 'complete' AND c.rolled_up_at IS NOT NULL
               AND c.window_start <= %s AND c.window_end > %s
               AND (%s::interval IS NULL OR EXISTS (
                    SELECT 1 FROM ops.posthog_reconciliations r
                     WHERE r.kind = 'window' AND r.check_offset = %s::interval
                       AND r.window_start = c.window_start AND r.window_end = c.window_end))
            """,
            (STREAM, pos, pos, recounted_at, recounted_at),
        ).fetchone()
        if row is None or row[0] is None:
            break
        pos = row[0]
    if current is None or pos > current:
        store.advance_watermark(conn, name, pos)
        return pos
    return current


# ----------------------------------------------------------------------------- recompute
def _extra_dates(cursor: Any) -> list[date]:
    """PT dates the window's load changed outside its own events (a replaced or removed
    version of a uuid), kept in the checkpoint."""
    data = cursor if isinstance(cursor, dict) else {}
    return [date.fromisoformat(d) for d in data.get("extra_dates") or []]


def window_dates(conn: psycopg.Connection, start: datetime, end: datetime) -> list[date]:
    rows = conn.execute(
        sql.SQL(
            "SELECT DISTINCT {} FROM analytics.posthog_events"
            " WHERE created_at >= %s AND created_at < %s ORDER BY 1"
        ).format(PT_DATE),
        (start, end),
    ).fetchall()
    return [r[0] for r in rows]


def _fragments(m: EventMapping) -> dict[str, sql.Composable]:
    """The SQL pieces of the mapping every rollup statement below is built from."""
    return {
        "views": _lit_list(m.view_events),
        "saves": _lit_list(m.save_events),
        "leads": _lit_list(m.lead_events),
        "listing_events": _lit_list({*m.view_events, *m.save_events, *m.lead_events}),
        "pageviews": _lit_list(m.pageview_events),
        "purchases": _lit_list(m.purchase_events),
        "listing": _prop(m.listing_property),
        "dev": _prop(m.development_property),
        "session": _prop(m.session_property),
        "user_type": _prop(m.user_type_property),
        "seeker": _prop(m.seeker_property),
        "e_dev": _prop(m.development_property, "e"),
        "e_listing": _prop(m.listing_property, "e"),
        "e_seeker": _prop(m.seeker_property, "e"),
        "revenue": sql.SQL(
            "CASE WHEN jsonb_typeof(properties -> {r}) = 'number'"
            " THEN (properties ->> {r})::numeric END"
        ).format(r=sql.Literal(m.revenue_property)),
    }


#: One PT date's rows of each entity table, rebuilt from all events of the date.
_DATE_SQL = {
    "listings": """
        INSERT INTO analytics.listing_daily_stats
               (listing_id, stat_date, development_id, views, unique_viewers, saves, leads)
        SELECT {listing}, %(day)s, max({dev}),
               count(*) FILTER (WHERE event IN {views}),
               count(DISTINCT distinct_id) FILTER (WHERE event IN {views}),
               count(*) FILTER (WHERE event IN {saves}),
               count(*) FILTER (WHERE event IN {leads})
          FROM analytics.posthog_events
         WHERE "timestamp" >= %(lo)s AND "timestamp" < %(hi)s
           AND event IN {listing_events} AND {listing} IS NOT NULL AND {listing} <> ''
         GROUP BY {listing}
        """,
    "users": """
        INSERT INTO analytics.user_daily_stats
               (user_id, user_type, stat_date, events, page_views, sessions, listings_viewed,
                leads, purchases)
        SELECT distinct_id, COALESCE(NULLIF({user_type}, ''), 'unknown'), %(day)s, count(*),
               count(*) FILTER (WHERE event IN {pageviews}),
               count(DISTINCT {session}),
               count(DISTINCT {listing}) FILTER (WHERE event IN {views}),
               count(*) FILTER (WHERE event IN {leads}),
               count(*) FILTER (WHERE event IN {purchases})
          FROM analytics.posthog_events
         WHERE "timestamp" >= %(lo)s AND "timestamp" < %(hi)s
         GROUP BY 1, 2
        """,
    "developments": """
        INSERT INTO analytics.development_daily_stats
               (development_id, stat_date, views, unique_viewers, leads)
        SELECT {dev}, %(day)s,
               count(*) FILTER (WHERE event IN {views}),
               count(DISTINCT distinct_id) FILTER (WHERE event IN {views}),
               count(*) FILTER (WHERE event IN {leads})
          FROM analytics.posthog_events
         WHERE "timestamp" >= %(lo)s AND "timestamp" < %(hi)s
           AND event IN {listing_events} AND {dev} IS NOT NULL AND {dev} <> ''
         GROUP BY {dev}
        """,
}
#: The date's traffic columns of ``daily_metrics`` (ingest era only).
_DAILY_METRICS_SQL = """
    INSERT INTO analytics.daily_metrics
           (metric_date, revenue, orders, sessions, conversions, traffic_updated_at)
    SELECT %(day)s,
           COALESCE(sum({revenue}) FILTER (WHERE event IN {purchases}), 0),
           count(*) FILTER (WHERE event IN {purchases}),
           count(DISTINCT {session}),
           count(DISTINCT {session}) FILTER (WHERE event IN {purchases}),
           now()
      FROM analytics.posthog_events
     WHERE "timestamp" >= %(lo)s AND "timestamp" < %(hi)s
    ON CONFLICT (metric_date) DO UPDATE
       SET revenue = EXCLUDED.revenue, orders = EXCLUDED.orders,
           sessions = EXCLUDED.sessions, conversions = EXCLUDED.conversions,
           traffic_updated_at = now(), updated_at = now()
"""
_LEADS_SQL = """
WITH pairs AS (
    SELECT DISTINCT {listing} AS listing_id, COALESCE({seeker}, distinct_id) AS seeker_id
      FROM analytics.posthog_events
     WHERE {scope} AND event IN {leads} AND {listing} IS NOT NULL
)
INSERT INTO analytics.leads
       (listing_id, seeker_id, development_id, first_seen_at, last_seen_at, lead_count)
SELECT p.listing_id, p.seeker_id, max({e_dev}), min(e."timestamp"), max(e."timestamp"), count(*)
  FROM pairs p
  JOIN analytics.posthog_events e
    ON e.event IN {leads} AND {e_listing} = p.listing_id
   AND COALESCE({e_seeker}, e.distinct_id) = p.seeker_id
 GROUP BY p.listing_id, p.seeker_id
ON CONFLICT (listing_id, seeker_id) DO UPDATE
   SET development_id = EXCLUDED.development_id, first_seen_at = EXCLUDED.first_seen_at,
       last_seen_at = EXCLUDED.last_seen_at, lead_count = EXCLUDED.lead_count, updated_at = now()
"""
_PROCESSED_SQL = """
    SELECT count(DISTINCT {listing}), count(DISTINCT distinct_id),
           count(DISTINCT {dev}),
           count(DISTINCT ({listing}, COALESCE({seeker}, distinct_id)))
               FILTER (WHERE event IN {leads} AND {listing} IS NOT NULL)
      FROM analytics.posthog_events WHERE {scope}
"""


def _run(conn: psycopg.Connection, template: str, fragments: dict, params) -> psycopg.Cursor:
    return conn.execute(sql.SQL(template).format(**fragments), params)


def refresh(
    conn: psycopg.Connection,
    cfg: IngestConfig,
    dates: Iterable[date],
    scope: sql.Composable,
    params: dict[str, Any],
) -> RollupResult:
    """Recompute ``dates`` and the lead pairs of the events in ``scope`` (a WHERE fragment over
    ``analytics.posthog_events``). Call inside a transaction."""
    started = time.monotonic()
    f = {**_fragments(cfg.mapping), "scope": scope}
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK,))
    result = RollupResult(dates=sorted(set(dates)))
    row = _run(conn, _PROCESSED_SQL, f, params).fetchone()
    result.processed = dict(zip(("listings", "users", "developments", "leads"), row, strict=True))
    totals = dict.fromkeys(_DATE_SQL, 0)
    start = era_start(conn, cfg)
    for day in result.dates:
        lo, hi = pt_day_bounds(day)
        day_params = {"day": day, "lo": lo, "hi": hi}
        for table in ("listing_daily_stats", "user_daily_stats", "development_daily_stats"):
            conn.execute(
                sql.SQL("DELETE FROM analytics.{} WHERE stat_date = %s").format(
                    sql.Identifier(table)
                ),
                (day,),
            )
        for entity, template in _DATE_SQL.items():
            totals[entity] += _run(conn, template, f, day_params).rowcount
        if in_era(day, start):
            written = _run(conn, _DAILY_METRICS_SQL, f, day_params).rowcount
            totals["daily_metrics"] = totals.get("daily_metrics", 0) + written
            result.era_dates.append(day)
    totals["leads"] = _run(conn, _LEADS_SQL, f, params).rowcount
    result.inserted = totals
    result.seconds = time.monotonic() - started
    return result


def rollup_window(
    conn: psycopg.Connection,
    start: datetime,
    end: datetime,
    cfg: IngestConfig,
    *,
    key: store.RunKey | None = None,
) -> RollupResult:
    """Recompute everything the window's events touch, mark the window rolled up and advance the
    watermark — one transaction. ``conn`` in autocommit mode. Raises ``RollupNotReady`` when the
    window's checkpoint is not complete."""
    job_run_id = store.start_job_run(conn, key, window_start=start, window_end=end) if key else None
    try:
        with conn.transaction():
            cp = store.read_checkpoint(conn, STREAM, start, end, for_update=True)
            if cp is None or cp.status != "complete":
                raise RollupNotReady(
                    f"window [{start.isoformat()}, {end.isoformat()}) is not fully ingested "
                    f"(checkpoint: {cp.status if cp else 'none'}); run ingest_events first"
                )
            dates = {*window_dates(conn, start, end), *_extra_dates(cp.cursor)}
            scope = sql.SQL("created_at >= %(w_start)s AND created_at < %(w_end)s")
            result = refresh(conn, cfg, dates, scope, {"w_start": start, "w_end": end})
            conn.execute(
                "UPDATE ops.checkpoints SET rolled_up_at = now()"
                " WHERE stream = %s AND window_start = %s AND window_end = %s",
                (STREAM, start, end),
            )
            result.watermark = advance_contiguous_watermark(conn, cfg)
    except Exception as exc:
        if job_run_id is not None:
            store.finish_job_run(
                conn,
                job_run_id,
                "failed",
                last_error=f"{type(exc).__name__}: {exc}"[:2000],
                error_details={"type": type(exc).__name__, "message": str(exc)[:4000]},
            )
            store.log_event(
                conn,
                "rollup_failed",
                f"{type(exc).__name__}: {exc}"[:2000],
                level="error",
                job_run_id=job_run_id,
                key=key,
            )
        raise
    if job_run_id is not None:
        store.finish_job_run(
            conn,
            job_run_id,
            "completed",
            records_in=sum(result.processed.values()),
            records_out=sum(result.inserted.values()),
            stats=result.stats(),
            status_message=f"recomputed {len(result.dates)} PT date(s): "
            + ", ".join(d.isoformat() for d in result.dates),
        )
    return result
