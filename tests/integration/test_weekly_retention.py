"""Retention: rows and files beyond the limits are removed, every removed row/file is in the
archive, and a rerun removes and writes nothing."""

from __future__ import annotations

import tarfile
from datetime import UTC, date, datetime, timedelta

import pytest

from include.analytics_ops.reports.retention import (
    RetentionPolicy,
    apply_retention,
    archive_path,
    read_archive,
)

REPORT_DATE = date(2026, 11, 23)
POLICY = RetentionPolicy(keep_job_events=50, keep_job_runs=10, max_age_days=90)
OLD = datetime(2026, 8, 1, 12, tzinfo=UTC)  # > 90 days before the report date
RECENT = datetime(2026, 11, 1, 12, tzinfo=UTC)


@pytest.fixture
def filled(db, tmp_path):
    for i in range(30):
        db.execute(
            "INSERT INTO ops.job_runs (dag_id, task_id, run_id, status, started_at)"
            " VALUES ('d', 't', %s, %s, %s)",
            (f"run{i}", "running" if i == 2 else "completed", RECENT + timedelta(minutes=i)),
        )
    for i in range(120):
        db.execute(
            "INSERT INTO ops.job_events (job_run_id, event_type, message)"
            " VALUES (%s, 'progress', %s)",
            (1 + i % 30, f"event {i}"),
        )
    for i, ts in enumerate((OLD, OLD + timedelta(days=1), RECENT)):
        db.execute(
            "INSERT INTO ops.ledger_entries (source, job, ts, exit_code, message)"
            " VALUES ('cron.jsonl', 'export', %s, 0, %s)",
            (ts, f"line {i}"),
        )
    for fp, resolved in (("a", OLD), ("b", RECENT), ("c", None)):
        db.execute(
            "INSERT INTO ops.dead_letters (stream, fingerprint, reason, payload, first_seen,"
            " resolved_at) VALUES ('posthog', %s, 'bad', '{}', %s, %s)",
            (fp, OLD, resolved),
        )
    art = tmp_path / "artifacts"
    files = {
        "exports/metrics-weekly-20260803.csv": True,  # old → removed
        "snapshots/2026-08-20.json": True,
        "snapshots/2026-08-25.json": False,  # exactly the cut-off day: kept
        "reports/cto-report-20261116.html": False,
        "README.txt": False,  # no date: kept
        "archive/archive-20200101.jsonl.gz": False,  # the archive is never touched
    }
    for rel in files:
        (art / rel).parent.mkdir(parents=True, exist_ok=True)
        (art / rel).write_text(f"content of {rel}")
    return art, files


def _ids(db, table):
    return {r[0] for r in db.execute(f"SELECT id FROM {table}").fetchall()}


def test_retention_removes_beyond_limits_archives_everything_and_reruns_as_noop(db, filled):
    art, files = filled
    before = {t: _ids(db, t) for t in ("ops.job_events", "ops.job_runs", "ops.ledger_entries",
                                       "ops.dead_letters")}  # fmt: skip
    result = apply_retention(db, REPORT_DATE, art, POLICY, run_id="r1")

    assert result.cutoff == date(2026, 8, 25)
    assert result.removed == {
        "ops.job_events": 70,
        "ops.job_runs": 19,  # 20 beyond the limit, one of them still running → kept
        "ops.ledger_entries": 2,
        "ops.dead_letters": 1,  # resolved and old; the open one stays whatever its age
        "artifacts": 2,
    }
    after = {t: _ids(db, t) for t in before}
    assert after["ops.job_events"] == set(range(71, 121))
    assert after["ops.job_runs"] == {3} | set(range(21, 31))
    assert len(after["ops.ledger_entries"]) == 1
    assert db.execute("SELECT fingerprint FROM ops.dead_letters ORDER BY 1").fetchall() == [
        ("b",),
        ("c",),
    ]

    # everything removed is in the archive, row for row
    records = read_archive(archive_path(art, REPORT_DATE))
    assert result.archive_file == archive_path(art, REPORT_DATE)
    for table in before:
        archived = {r["row"]["id"] for r in records if r["source"] == table}
        assert archived == before[table] - after[table], table
    archived_event = next(r for r in records if r["source"] == "ops.job_events")
    assert archived_event["row"]["message"].startswith("event ")
    for rel, removed in files.items():
        assert (art / rel).exists() != removed, rel
    with tarfile.open(result.artifact_archives[0]) as tar:
        assert sorted(tar.getnames()) == ["exports/metrics-weekly-20260803.csv",
                                          "snapshots/2026-08-20.json"]  # fmt: skip
        content = tar.extractfile("snapshots/2026-08-20.json").read().decode()
        assert content == "content of snapshots/2026-08-20.json"
    batches = db.execute(
        "SELECT source, sum(row_count) FROM ops.archive_batches GROUP BY source"
    ).fetchall()
    assert dict(batches) == {k: v for k, v in result.removed.items() if v}

    # rerun: nothing more to remove, nothing written
    archive_bytes = archive_path(art, REPORT_DATE).read_bytes()
    again = apply_retention(db, REPORT_DATE, art, POLICY, run_id="r2")
    assert again.total == 0 and again.archive_file is None
    assert archive_path(art, REPORT_DATE).read_bytes() == archive_bytes
    assert (
        db.execute("SELECT count(*) FROM ops.archive_batches WHERE run_id = 'r2'").fetchone()[0]
        == 0
    )
    assert {t: _ids(db, t) for t in before} == after
    assert len(list((art / "archive").glob("artifacts-*.tar.gz"))) == 1


def test_retention_needs_autocommit(pg_dsn, tmp_path):
    import psycopg

    with psycopg.connect(pg_dsn) as conn, pytest.raises(ValueError, match="autocommit"):
        apply_retention(conn, REPORT_DATE, tmp_path)
