"""``python -m include.analytics_ops.dead_letters list|replay`` as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from include.analytics_ops import store

REPO_ROOT = Path(__file__).resolve().parents[2]
NO_REVENUE = {
    "uuid": "0192f0c1-8a2b-7c3d-9e4f-00000000000a",
    "event": "purchase",
    "distinct_id": "seeker-9",
    "timestamp": "2026-11-20T10:01:00.000Z",
    "created_at": "2026-11-20T10:01:02.000Z",
    "properties": '{"order_id": "o-9", "$session_id": "s-9"}',
    "created_ms": 1795687262000,
}
BAD_TS = {**NO_REVENUE, "uuid": "0192f0c1-8a2b-7c3d-9e4f-00000000000b", "timestamp": "yesterday"}


def cli(pg_dsn: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "include.analytics_ops.dead_letters", "--dsn", pg_dsn, *args],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_list_then_replay_after_a_settings_fix(db, pg_dsn):
    store.add_dead_letters(
        db,
        "posthog",
        [
            (
                NO_REVENUE,
                "missing required property 'revenue' for event 'purchase'",
                NO_REVENUE["uuid"],
            ),
            (BAD_TS, "unparseable timestamp 'yesterday'", BAD_TS["uuid"]),
        ],
    )
    listed = cli(pg_dsn, "list")
    assert listed.returncode == 0, listed.stderr
    assert "2 open dead letter(s)" in listed.stdout and NO_REVENUE["uuid"] in listed.stdout

    # Without a fix nothing passes: exit 1, reasons kept, one more attempt counted.
    first = cli(pg_dsn, "replay")
    assert (
        first.returncode == 1 and "0 loaded" in first.stdout and "2 still failing" in first.stdout
    )
    # The fix: purchases no longer require revenue.
    fixed = cli(pg_dsn, "replay", POSTHOG_REQUIRED_PROPERTIES='{"purchase": ["order_id"]}')
    assert fixed.returncode == 1, fixed.stderr
    assert "1 loaded" in fixed.stdout and "1 still failing" in fixed.stdout
    assert "recomputed rollups for 2026-11-20" in fixed.stdout
    rows = db.execute(
        "SELECT source_key, attempts, resolution, reason FROM ops.dead_letters ORDER BY source_key"
    ).fetchall()
    assert rows == [
        (NO_REVENUE["uuid"], 3, "replayed: loaded", rows[0][3]),
        (BAD_TS["uuid"], 3, None, "unparseable timestamp 'yesterday'"),
    ]
    assert db.execute("SELECT count(*) FROM analytics.posthog_events").fetchone() == (1,)
    assert db.execute(
        "SELECT purchases FROM analytics.user_daily_stats WHERE user_id = 'seeker-9'"
    ).fetchone() == (1,)
    again = cli(pg_dsn, "replay", POSTHOG_REQUIRED_PROPERTIES='{"purchase": ["order_id"]}')
    assert "0 loaded" in again.stdout  # exactly once
    assert db.execute("SELECT count(*) FROM analytics.posthog_events").fetchone() == (1,)
