"""Deterministic sample data for the demo, the tests and the benchmarks.

``load_sample_data(dsn)`` loads (idempotently: upsert + reload of the sample rows) into the V002
tables: ``analytics.daily_metrics`` for ``days`` PT days ending at ``end_day``,
``analytics.ideas``, ``analytics.clients`` + ``analytics.client_api_credentials`` and
``analytics.projects``. The numbers come from ``data.daily_metrics_for`` — the same function the
PostHog stand-in builds its events from, so the events of a day aggregate to that day's row.

``write_ladder_file(path)`` writes a legacy-cron ledger (JSONL) for ``cron_ledger``.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import psycopg

from include.sandbox.constants import DEFAULT_SEED, DEMO_DAY, SAMPLE_REPOS
from include.sandbox.data import daily_metrics_for, ideas_until, rng_for, sample_clients
from include.sandbox.timeutil import PT

SAMPLE_IDEA_PREFIX = "idea-"


def daily_metrics_rows(seed: int, days: int, end_day: date) -> list[tuple]:
    """(metric_date, revenue, orders, sessions, conversions, ideas_total, ideas_added)."""
    rows = []
    for k in range(days - 1, -1, -1):
        m = daily_metrics_for(end_day - timedelta(days=k), seed)
        rows.append(
            (
                m.day,
                f"{m.revenue_cents // 100}.{m.revenue_cents % 100:02d}",
                m.orders,
                m.sessions,
                m.conversions,
                m.ideas_total,
                m.ideas_added,
            )
        )
    return rows


def load_sample_data(
    dsn: str,
    *,
    seed: int = DEFAULT_SEED,
    days: int = 180,
    end_day: date = DEMO_DAY,
    clients: int = 12,
) -> dict[str, int | str]:
    """Load the sample rows; running it twice leaves the same rows. Returns row counts."""
    if days < 1:
        raise ValueError("days must be >= 1")
    metrics = daily_metrics_rows(seed, days, end_day)
    ideas = ideas_until(end_day, seed)
    client_rows = sample_clients(clients)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        # daily_metrics: COPY into a temp table, then upsert (conversion_rate is generated).
        cur.execute(
            "CREATE TEMP TABLE _sample_dm (metric_date date, revenue numeric(14,2), orders int,"
            " sessions int, conversions int, ideas_total int, ideas_added int) ON COMMIT DROP"
        )
        with cur.copy(
            "COPY _sample_dm (metric_date, revenue, orders, sessions, conversions, ideas_total,"
            " ideas_added) FROM STDIN"
        ) as copy:
            for row in metrics:
                copy.write_row(row)
        cur.execute(
            "INSERT INTO analytics.daily_metrics AS d (metric_date, revenue, orders, sessions,"
            " conversions, ideas_total, ideas_added, traffic_updated_at, updated_at)"
            " SELECT metric_date, revenue, orders, sessions, conversions, ideas_total,"
            " ideas_added, now(), now() FROM _sample_dm"
            " ON CONFLICT (metric_date) DO UPDATE SET revenue = EXCLUDED.revenue,"
            " orders = EXCLUDED.orders, sessions = EXCLUDED.sessions,"
            " conversions = EXCLUDED.conversions, ideas_total = EXCLUDED.ideas_total,"
            " ideas_added = EXCLUDED.ideas_added, traffic_updated_at = now(), updated_at = now()"
        )
        # ideas: the sample pool is reloaded as a whole.
        cur.execute(
            "DELETE FROM analytics.ideas WHERE idea_id LIKE %s", (SAMPLE_IDEA_PREFIX + "%",)
        )
        with cur.copy("COPY analytics.ideas (idea_id, title, status, created_at) FROM STDIN") as cp:
            for row in ideas:
                cp.write_row(row)
        # clients + credentials: exactly client-001 .. client-<clients> of the sample remain.
        keep = [cid for cid, _, _ in client_rows]
        cur.execute(
            "DELETE FROM analytics.client_api_credentials"
            " WHERE client_id ~ '^client-[0-9]{3}$' AND NOT (client_id = ANY(%s))",
            (keep,),
        )
        cur.execute(
            "DELETE FROM analytics.clients"
            " WHERE client_id ~ '^client-[0-9]{3}$' AND NOT (client_id = ANY(%s))",
            (keep,),
        )
        cur.executemany(
            "INSERT INTO analytics.clients (client_id, name) VALUES (%s, %s)"
            " ON CONFLICT (client_id) DO UPDATE SET name = EXCLUDED.name",
            [(cid, name) for cid, name, _ in client_rows],
        )
        cur.executemany(
            "INSERT INTO analytics.client_api_credentials (client_id, provider, status)"
            " VALUES (%s, 'default', %s) ON CONFLICT (client_id, provider)"
            " DO UPDATE SET status = EXCLUDED.status, updated_at = now()",
            [(cid, status) for cid, _, status in client_rows],
        )
        # projects (GitHub repos)
        cur.executemany(
            "INSERT INTO analytics.projects (repo, name, active) VALUES (%s, %s, %s)"
            " ON CONFLICT (repo) DO UPDATE SET name = EXCLUDED.name, active = EXCLUDED.active",
            list(SAMPLE_REPOS),
        )
    return {
        "daily_metrics": len(metrics),
        "ideas": len(ideas),
        "clients": len(client_rows),
        "client_api_credentials": len(client_rows),
        "connected_clients": sum(1 for c in client_rows if c[2] == "connected"),
        "projects": len(SAMPLE_REPOS),
        "first_day": metrics[0][0].isoformat(),
        "last_day": metrics[-1][0].isoformat(),
    }


# ----------------------------------------------------------------------------- ledger
LADDER_JOBS = (
    # job, interval minutes, failure probability, messages
    ("backup_db", 60, 0.05, "pg_dump finished", "pg_dump failed: connection refused"),
    ("sitemap_build", 30, 0.1, "sitemap.xml rebuilt", "sitemap build failed: S3 403"),
    ("ideas_sync", 15, 0.0, "ideas synced", "ideas sync failed"),
)


def write_ladder_file(
    path: str | Path,
    *,
    seed: int = DEFAULT_SEED,
    lines: int = 60,
    end: datetime | None = None,
    append: bool = False,
) -> dict[str, int]:
    """Write a legacy cron ledger: one JSON object per line ``{"ts", "exit", "msg", "job"?}``.

    Three jobs (``backup_db``, ``sitemap_build``, ``ideas_sync``) ending at ``end`` (default
    DEMO_DAY 12:00 PT); a few non-zero exits, ``sitemap_build``'s latest run fails, some lines
    carry no ``job`` (legacy scripts), and exactly one line is malformed (not JSON).
    Returns counts: lines, malformed, failures.
    """
    end = end or datetime.combine(DEMO_DAY, time(12, 0), tzinfo=PT)
    end = end.astimezone(UTC)
    rng = rng_for(seed, "ladder")
    entries: list[tuple[datetime, dict]] = []
    per_job = max(1, (lines - 1) // len(LADDER_JOBS))
    for job, every, p_fail, ok_msg, fail_msg in LADDER_JOBS:
        for k in range(per_job):
            ts = end - timedelta(minutes=every * (per_job - 1 - k), seconds=rng.randrange(0, 50))
            latest = k == per_job - 1
            failed = (job == "sitemap_build" and latest) or (not latest and rng.random() < p_fail)
            entry: dict = {
                "ts": ts.isoformat().replace("+00:00", "Z"),
                "exit": (rng.choice((1, 2, 127)) if failed else 0),
                "msg": fail_msg if failed else ok_msg,
            }
            if not (job == "ideas_sync" and k % 5 == 0):
                entry["job"] = job
            entries.append((ts, entry))
    entries.sort(key=lambda e: e[0])
    text_lines = [json.dumps(e) for _, e in entries]
    text_lines.insert(len(text_lines) // 2, '{"ts": "2026-11-20T09:00:00Z", "exit": 0, "msg": ')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w", encoding="utf-8") as fh:
        fh.write("\n".join(text_lines) + "\n")
    return {
        "lines": len(text_lines),
        "malformed": 1,
        "failures": sum(1 for _, e in entries if e["exit"] != 0),
    }
