"""The Postgres state store: job runs, job events, checkpoints, watermarks and dead letters.

Plain functions over a psycopg 3 connection, callable with or without the Airflow runtime. Each
function runs on the caller's connection and does not commit, so a caller can put a checkpoint
and the rows it covers in one transaction (``with conn.transaction(): ...``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

RUN_STATUSES = ("running", "completed", "failed", "partial", "timeout", "cancelled")


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps=lambda v: json.dumps(v, default=_json_default))


def dict_rows(conn: psycopg.Connection, query: Any, params: Any = None) -> list[dict[str, Any]]:
    """The rows of ``query`` as dicts keyed by column name."""
    return conn.cursor(row_factory=dict_row).execute(query, params).fetchall()


# --------------------------------------------------------------------------- job runs
@dataclass(frozen=True)
class RunKey:
    """Identifies one task attempt: what Airflow calls a task instance try."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    try_number: int = 1
    run_type: str = "manual"

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> RunKey:
        ti = context["ti"]
        dag_run = context.get("dag_run")
        run_type = str(getattr(dag_run, "run_type", "manual") or "manual").lower()
        run_type = run_type.split(".")[-1]
        if run_type not in ("scheduled", "manual", "backfill", "asset_triggered"):
            run_type = "manual"
        map_index = getattr(ti, "map_index", None)
        return cls(
            ti.dag_id,
            ti.task_id,
            ti.run_id,
            -1 if map_index is None else int(map_index),
            int(getattr(ti, "try_number", 1) or 1),
            run_type,
        )


def start_job_run(
    conn: psycopg.Connection,
    key: RunKey,
    *,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    target_date: date | None = None,
    status_message: str | None = None,
    resume: bool = False,
) -> int:
    """Record the start of an attempt; idempotent for the same attempt. Returns the row id.
    ``resume``: a row of the attempt still ``running`` keeps its ``started_at``."""
    row = conn.execute(
        """
        INSERT INTO ops.job_runs (dag_id, task_id, run_id, map_index, try_number, run_type,
                                  status, window_start, window_end, target_date, status_message)
        VALUES (%s, %s, %s, %s, %s, %s, 'running', %s, %s, %s, %s)
        ON CONFLICT ON CONSTRAINT job_runs_attempt_key DO UPDATE
           SET status = 'running', finished_at = NULL,
               started_at = CASE WHEN %s AND job_runs.status = 'running'
                                 THEN job_runs.started_at ELSE now() END,
               window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end,
               target_date = EXCLUDED.target_date, updated_at = now()
        RETURNING id
        """,
        (
            key.dag_id,
            key.task_id,
            key.run_id,
            key.map_index,
            key.try_number,
            key.run_type,
            window_start,
            window_end,
            target_date,
            status_message,
            resume,
        ),
    ).fetchone()
    return int(row[0])


def update_job_run(
    conn: psycopg.Connection,
    job_run_id: int,
    *,
    records_in: int | None = None,
    records_out: int | None = None,
    error_count: int | None = None,
    stats: Mapping[str, Any] | None = None,
    status_message: str | None = None,
) -> None:
    """Progress update (counters are absolute values; ``stats`` keys are merged)."""
    conn.execute(
        """
        UPDATE ops.job_runs
           SET records_in = COALESCE(%s, records_in), records_out = COALESCE(%s, records_out),
               error_count = COALESCE(%s, error_count),
               stats = stats || COALESCE(%s, '{}'::jsonb),
               status_message = COALESCE(%s, status_message), updated_at = now()
         WHERE id = %s
        """,
        (
            records_in,
            records_out,
            error_count,
            jsonb(dict(stats)) if stats else None,
            status_message,
            job_run_id,
        ),
    )


def finish_job_run(
    conn: psycopg.Connection,
    job_run_id: int,
    status: str,
    *,
    records_in: int | None = None,
    records_out: int | None = None,
    error_count: int | None = None,
    last_error: str | None = None,
    error_details: Mapping[str, Any] | None = None,
    stats: Mapping[str, Any] | None = None,
    status_message: str | None = None,
) -> None:
    if status not in RUN_STATUSES or status == "running":
        raise ValueError(f"finish status must be one of {RUN_STATUSES[1:]}, got {status!r}")
    conn.execute(
        """
        UPDATE ops.job_runs
           SET status = %s, finished_at = now(),
               duration_seconds = EXTRACT(EPOCH FROM (now() - started_at)),
               records_in = COALESCE(%s, records_in), records_out = COALESCE(%s, records_out),
               error_count = COALESCE(%s, error_count), last_error = COALESCE(%s, last_error),
               error_details = COALESCE(%s, error_details),
               stats = stats || COALESCE(%s, '{}'::jsonb),
               status_message = COALESCE(%s, status_message), updated_at = now()
         WHERE id = %s
        """,
        (
            status,
            records_in,
            records_out,
            error_count,
            last_error,
            jsonb(dict(error_details)) if error_details else None,
            jsonb(dict(stats)) if stats else None,
            status_message,
            job_run_id,
        ),
    )


def log_event(
    conn: psycopg.Connection,
    event_type: str,
    message: str,
    *,
    level: str = "info",
    job_run_id: int | None = None,
    key: RunKey | None = None,
    entity_id: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    conn.execute(
        """
        INSERT INTO ops.job_events (job_run_id, dag_id, task_id, run_id, level, event_type,
                                    message, entity_id, details)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            job_run_id,
            key.dag_id if key else None,
            key.task_id if key else None,
            key.run_id if key else None,
            level,
            event_type,
            message,
            entity_id,
            jsonb(dict(details or {})),
        ),
    )


# --------------------------------------------------------------------------- checkpoints
@dataclass(frozen=True)
class Checkpoint:
    stream: str
    window_start: datetime
    window_end: datetime
    cursor: Any
    rows_loaded: int
    status: str


def read_checkpoint(
    conn: psycopg.Connection,
    stream: str,
    window_start: datetime,
    window_end: datetime,
    *,
    for_update: bool = False,
) -> Checkpoint | None:
    row = conn.execute(
        "SELECT cursor, rows_loaded, status FROM ops.checkpoints"
        " WHERE stream = %s AND window_start = %s AND window_end = %s"
        + (" FOR UPDATE" if for_update else ""),
        (stream, window_start, window_end),
    ).fetchone()
    if row is None:
        return None
    return Checkpoint(stream, window_start, window_end, row[0], int(row[1]), row[2])


def write_checkpoint(
    conn: psycopg.Connection,
    stream: str,
    window_start: datetime,
    window_end: datetime,
    cursor: Any,
    rows_loaded: int,
    *,
    complete: bool = False,
) -> None:
    """Upsert the cursor. Call inside the transaction that wrote the rows it covers."""
    conn.execute(
        """
        INSERT INTO ops.checkpoints (stream, window_start, window_end, cursor, rows_loaded, status)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (stream, window_start, window_end) DO UPDATE
           SET cursor = EXCLUDED.cursor, rows_loaded = EXCLUDED.rows_loaded,
               status = EXCLUDED.status, updated_at = now()
        """,
        (
            stream,
            window_start,
            window_end,
            jsonb(cursor),
            rows_loaded,
            "complete" if complete else "in_progress",
        ),
    )


def advance_watermark(conn: psycopg.Connection, stream: str, complete_until: datetime) -> None:
    """Move ``complete_until`` forward (never backwards)."""
    conn.execute(
        """
        INSERT INTO ops.watermarks (stream, complete_until) VALUES (%s, %s)
        ON CONFLICT (stream) DO UPDATE
           SET complete_until = GREATEST(ops.watermarks.complete_until, EXCLUDED.complete_until),
               updated_at = now()
        """,
        (stream, complete_until),
    )


def read_watermark(conn: psycopg.Connection, stream: str) -> datetime | None:
    row = conn.execute(
        "SELECT complete_until FROM ops.watermarks WHERE stream = %s", (stream,)
    ).fetchone()
    return row[0] if row else None


# --------------------------------------------------------------------------- dead letters
def payload_fingerprint(payload: Any) -> str:
    text = (
        payload
        if isinstance(payload, str)
        else json.dumps(payload, sort_keys=True, default=_json_default)
    )
    return hashlib.md5(text.encode("utf-8", "surrogatepass")).hexdigest()


def add_dead_letters(
    conn: psycopg.Connection,
    stream: str,
    records: Sequence[tuple[Any, str] | tuple[Any, str, str | None]],
    *,
    job_run_id: int | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> int:
    """Store (payload, reason[, source_key]) records; a record already stored is not added twice
    (its reason and last_seen are refreshed). Returns how many were new."""
    new = 0
    with conn.cursor() as cur:
        for record in records:
            payload, reason = record[0], record[1]
            source_key = record[2] if len(record) > 2 else None
            cur.execute(
                """
                INSERT INTO ops.dead_letters (stream, fingerprint, source_key, reason, payload,
                                              job_run_id, window_start, window_end)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT ON CONSTRAINT dead_letters_fingerprint_key DO UPDATE
                   SET reason = EXCLUDED.reason, last_seen = now()
                RETURNING (xmax = 0)
                """,
                (
                    stream,
                    payload_fingerprint(payload),
                    source_key,
                    reason,
                    jsonb(payload),
                    job_run_id,
                    window_start,
                    window_end,
                ),
            )
            new += bool(cur.fetchone()[0])
    return new


def open_dead_letters(
    conn: psycopg.Connection, stream: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    return dict_rows(
        conn,
        """
        SELECT id, stream, source_key, reason, payload, attempts, first_seen, last_seen
          FROM ops.dead_letters
         WHERE resolved_at IS NULL AND (%s::text IS NULL OR stream = %s)
         ORDER BY id LIMIT %s
        """,
        (stream, stream, limit),
    )


def resolve_dead_letter(conn: psycopg.Connection, dead_letter_id: int, resolution: str) -> None:
    conn.execute(
        "UPDATE ops.dead_letters SET resolved_at = now(), resolution = %s,"
        " attempts = attempts + 1, last_seen = now() WHERE id = %s",
        (resolution, dead_letter_id),
    )


def retry_failed_dead_letter(conn: psycopg.Connection, dead_letter_id: int, reason: str) -> None:
    conn.execute(
        "UPDATE ops.dead_letters SET reason = %s, attempts = attempts + 1, last_seen = now()"
        " WHERE id = %s",
        (reason, dead_letter_id),
    )
