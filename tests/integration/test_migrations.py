"""Migrations against a live PostgreSQL: idempotent, complete, and strict about edits."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from include.analytics_ops import migrate
from tests.conftest import REPO_ROOT

# DESIGN §3: every table and the columns other parts rely on.
FIXED_COLUMNS = {
    "analytics.daily_metrics": {
        "metric_date",
        "revenue",
        "orders",
        "sessions",
        "conversions",
        "conversion_rate",
        "ideas_total",
        "ideas_added",
    },
    "analytics.posthog_events": {
        "uuid",
        "event",
        "distinct_id",
        "timestamp",
        "created_at",
        "properties",
    },
    "analytics.client_api_credentials": {"client_id", "status"},
    "analytics.inventory_refresh_results": {
        "run_id",
        "client_id",
        "platform",
        "status",
        "http_status",
        "skus",
    },
    "analytics.check_results": {"target_date", "check_name", "severity"},
    "analytics.sampling_proofs": {"target_date", "status"},
    "analytics.dashboard_snapshots": {"snapshot_date", "metrics", "summary", "errors"},
    "analytics.projects": {"project_id", "repo", "active"},
    "analytics.issues": {
        "project_id",
        "number",
        "is_pull_request",
        "state",
        "title",
        "assignee",
        "opened_at",
        "closed_at",
    },
    "analytics.project_health": {"project_id", "score", "status"},
    "analytics.listing_daily_stats": {"listing_id", "stat_date"},
    "analytics.user_daily_stats": {"user_id", "user_type", "stat_date"},
    "analytics.development_daily_stats": {"development_id", "stat_date"},
    "analytics.leads": {"listing_id", "seeker_id"},
    "analytics.clients": {"client_id"},
    "ops.job_runs": {
        "dag_id",
        "task_id",
        "run_id",
        "map_index",
        "try_number",
        "run_type",
        "status",
        "window_start",
        "window_end",
        "target_date",
        "started_at",
        "finished_at",
        "duration_seconds",
        "records_in",
        "records_out",
        "error_count",
        "last_error",
        "stats",
    },
    "ops.job_events": {"job_run_id", "event_type", "message", "occurred_at"},
    "ops.checkpoints": {"stream", "window_start", "window_end", "cursor"},
    "ops.dead_letters": {"stream", "reason", "payload", "attempts", "resolved_at"},
    "ops.alerts": {
        "dedup_key",
        "severity",
        "state",
        "source",
        "title",
        "body",
        "first_seen",
        "last_seen",
        "count",
        "channels",
    },
    "ops.ledger_entries": {"source", "ts", "exit_code", "message"},
    "ops.ledger_files": {"path", "byte_offset", "inode"},
    "ops.watermarks": {"stream", "complete_until"},
}

# The idempotency rules carried by keys (DESIGN §3 / issue 2).
UNIQUE_KEYS = {
    "analytics.posthog_events": ("uuid",),
    "analytics.listing_daily_stats": ("listing_id", "stat_date"),
    "analytics.user_daily_stats": ("user_id", "user_type", "stat_date"),
    "analytics.development_daily_stats": ("development_id", "stat_date"),
    "analytics.leads": ("listing_id", "seeker_id"),
    # (source, ts, exit_code, message) through the message's hash (V012: btree's row limit)
    "ops.ledger_entries": ("source", "ts", "exit_code", "message_sha256"),
    "analytics.daily_metrics": ("metric_date",),
    "analytics.inventory_refresh_results": ("run_id", "client_id", "platform"),
    "analytics.check_results": ("target_date", "check_name"),
    "ops.alerts": ("dedup_key",),
    "ops.job_runs": ("dag_id", "task_id", "run_id", "map_index", "try_number"),
}


def _columns(conn: psycopg.Connection, table: str) -> set[str]:
    schema, name = table.split(".")
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = %s",
        (schema, name),
    ).fetchall()
    return {r[0] for r in rows}


def _unique_keys(conn: psycopg.Connection, table: str) -> set[tuple[str, ...]]:
    rows = conn.execute(
        """
        SELECT array_agg(a.attname ORDER BY k.ord)
          FROM pg_index i
          CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = %s::regclass AND i.indisunique
         GROUP BY i.indexrelid
        """,
        (table,),
    ).fetchall()
    return {tuple(r[0]) for r in rows}


def test_every_design_table_exists_with_its_fixed_columns(db):
    for table, columns in FIXED_COLUMNS.items():
        missing = columns - _columns(db, table)
        assert not missing, f"{table} lacks {sorted(missing)}"


def test_idempotency_rules_are_unique_keys(db):
    for table, key in UNIQUE_KEYS.items():
        assert key in _unique_keys(db, table), f"{table} has no unique key on {key}"


def test_applying_twice_changes_nothing(pg_dsn):
    def snapshot():
        with psycopg.connect(pg_dsn) as conn:
            return conn.execute(
                "SELECT table_schema, table_name, column_name, data_type"
                " FROM information_schema.columns WHERE table_schema IN ('ops', 'analytics')"
                " ORDER BY 1, 2, 3"
            ).fetchall()

    before = snapshot()
    assert migrate.apply_migrations(pg_dsn) == []
    assert snapshot() == before
    assert all(done for _, _, done in migrate.status(pg_dsn))


def test_migrations_keep_existing_rows(db, pg_dsn):
    db.execute(
        "INSERT INTO analytics.daily_metrics (metric_date, sessions, conversions)"
        " VALUES ('2026-11-01', 200, 10)"
    )
    migrate.apply_migrations(pg_dsn)
    rate = db.execute("SELECT conversion_rate FROM analytics.daily_metrics").fetchone()[0]
    assert rate == pytest.approx(0.05)  # conversions / sessions, generated by the schema


def test_an_edited_applied_migration_is_refused(pg_dsn, tmp_path):
    for mig in migrate.discover():
        (tmp_path / mig.path.name).write_text(mig.sql)
    first = migrate.discover()[0]
    (tmp_path / first.path.name).write_text(first.sql + "\n-- edited\n")
    with pytest.raises(migrate.ConfigError, match="changed after it was"):
        migrate.apply_migrations(pg_dsn, sql_dir=tmp_path)


def test_unreachable_dsn_fails_with_one_clear_line():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "include.analytics_ops.migrate",
            "--dsn",
            "postgresql://nobody:secret-pw@127.0.0.1:1/nowhere?connect_timeout=2",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("migrate: cannot apply migrations to")
    assert "secret-pw" not in result.stderr  # the password never reaches the output
    assert "Traceback" not in result.stderr
