"""Replay PostHog dead letters after a fix (a changed validation setting, or a payload corrected
in ``ops.dead_letters``): rows that now pass are loaded exactly once (``ON CONFLICT (uuid) DO
NOTHING``) and marked resolved, and the rollups of their dates (and lead pairs) are recomputed;
rows that still fail keep their (refreshed) reason and get one more attempt counted.
Everything runs in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from include.analytics_ops import store
from include.analytics_ops.dates import pt_date
from include.analytics_ops.ingest import STREAM
from include.analytics_ops.ingest.config import IngestConfig
from include.analytics_ops.ingest.loader import insert_one
from include.analytics_ops.ingest.rollups import RollupResult, refresh
from include.analytics_ops.ingest.validation import COLUMNS, Rules, check_row, uuid_text


@dataclass
class ReplayResult:
    examined: int = 0
    loaded: int = 0
    already_present: int = 0
    still_failing: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    rollups: RollupResult | None = None


def replay_dead_letters(
    conn: psycopg.Connection,
    cfg: IngestConfig,
    *,
    ids: Sequence[int] | None = None,
    limit: int = 10_000,
) -> ReplayResult:
    """Replay open PostHog dead letters (all, or just ``ids``)."""
    result = ReplayResult()
    rules = Rules(cfg.required, cfg.numeric, ranges=cfg.ranges)
    idx = {c: i for i, c in enumerate(COLUMNS)}
    with conn.transaction():
        rows = conn.execute(
            """
            SELECT id, payload FROM ops.dead_letters
             WHERE stream = %s AND resolved_at IS NULL AND (%s::bigint[] IS NULL OR id = ANY(%s))
             ORDER BY id LIMIT %s FOR UPDATE
            """,
            (STREAM, list(ids) if ids else None, list(ids) if ids else None, limit),
        ).fetchall()
        loaded_uuids: list[str] = []
        dates = set()
        for dl_id, payload in rows:
            result.examined += 1
            data = payload if isinstance(payload, dict) else {}
            row = [data.get(c) for c in COLUMNS]
            row[idx["created_ms"]] = None
            good, reason = check_row(row, idx, rules)
            if good is not None:
                inserted, reason = insert_one(conn, good)
            if good is None or reason is not None:
                store.retry_failed_dead_letter(conn, dl_id, reason or "invalid")
                result.still_failing += 1
                result.failures.append({"id": dl_id, "reason": reason})
                continue
            store.resolve_dead_letter(
                conn, dl_id, "replayed: loaded" if inserted else "replayed: already present"
            )
            if inserted:
                result.loaded += 1
                loaded_uuids.append(uuid_text(good[0]))
                dates.add(pt_date(good[3]))
            else:
                result.already_present += 1
        if loaded_uuids:
            result.rollups = refresh(
                conn,
                cfg,
                dates,
                sql.SQL("uuid = ANY(%(uuids)s::uuid[])"),
                {"uuids": loaded_uuids},
            )
    return result
