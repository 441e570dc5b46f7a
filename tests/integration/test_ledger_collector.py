"""The cron ledger collector against a real PostgreSQL and real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.analytics_ops.ledger import collect, ledger_alert_key, ledger_stats
from tests.conftest import REPO_ROOT

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def line(minute: int, code: int = 0, msg: str = "ok", job: str | None = None) -> str:
    entry = {"ts": (T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z"),
             "exit": code, "msg": msg}  # fmt: skip
    if job:
        entry["job"] = job
    return json.dumps(entry) + "\n"


def append(path: Path, text: str) -> None:
    with path.open("a") as fh:
        fh.write(text)


def entries(db) -> list[tuple]:
    return db.execute(
        "SELECT job, ts, exit_code, message FROM ops.ledger_entries ORDER BY ts, id"
    ).fetchall()


def offset(db, path: Path) -> tuple[int, int, int, int]:
    return db.execute(
        "SELECT byte_offset, lines_read, malformed, rotations FROM ops.ledger_files"
        " WHERE path = %s",
        (str(path),),
    ).fetchone()


def test_appends_across_runs_are_read_incrementally(db, tmp_path):
    path = tmp_path / "ladder.jsonl"
    path.write_text(line(0) + line(1))
    first = collect(db, str(path), channels=[])
    assert (first.lines, first.inserted) == (2, 2)
    append(path, line(2) + line(3, msg="three"))
    second = collect(db, str(tmp_path / "*.jsonl"), channels=[])  # a glob finds the same file
    assert (second.lines, second.inserted, second.duplicates) == (2, 2, 0)  # only the new lines
    assert [e[3] for e in entries(db)] == ["ok", "ok", "ok", "three"]
    assert {e[0] for e in entries(db)} == {"ladder"}  # job defaults to the file's stem
    assert offset(db, path)[:2] == (path.stat().st_size, 4)
    assert collect(db, str(path), channels=[]).lines == 0  # nothing new: nothing read


def test_a_partial_last_line_waits_for_the_next_run(db, tmp_path):
    path = tmp_path / "ladder.jsonl"
    full = line(0)
    half = line(1, msg="finished later")
    path.write_text(full + half[:20])  # the writer is mid-line
    result = collect(db, str(path), channels=[])
    assert (result.lines, result.malformed) == (1, 0)
    assert offset(db, path)[0] == len(full.encode())
    append(path, half[20:])
    result = collect(db, str(path), channels=[])
    assert (result.lines, result.inserted, result.malformed) == (1, 1, 0)
    assert [e[3] for e in entries(db)] == ["ok", "finished later"]


def test_rotation_reads_the_rest_of_the_old_file_then_the_new_one(db, tmp_path):
    path = tmp_path / "ladder.jsonl"
    path.write_text(line(0) + line(1))
    collect(db, str(path), channels=[])
    append(path, line(2, msg="written just before rotation"))  # not collected yet
    os.rename(path, tmp_path / "ladder.jsonl.1")  # logrotate: rename + new file
    path.write_text(line(3, msg="first in new file"))
    result = collect(db, str(path), channels=[])
    assert result.files[0].rotated
    assert [e[3] for e in entries(db)] == [
        "ok", "ok", "written just before rotation", "first in new file",
    ]  # fmt: skip
    byte_offset, _, _, rotations = offset(db, path)
    assert (byte_offset, rotations) == (path.stat().st_size, 1)
    append(path, line(4, msg="later"))
    assert collect(db, str(path), channels=[]).inserted == 1


def test_truncation_and_rewrite_are_detected_without_duplicates(db, tmp_path):
    path = tmp_path / "ladder.jsonl"
    path.write_text(line(0) + line(1) + line(2))
    collect(db, str(path), channels=[])
    inode = path.stat().st_ino
    with path.open("w") as fh:  # copytruncate: same inode, shorter
        fh.write(line(5, msg="after truncate"))
    assert path.stat().st_ino == inode
    result = collect(db, str(path), channels=[])
    assert result.files[0].truncated and result.inserted == 1
    # Rewritten in place with *more* bytes than before: caught by the head fingerprint.
    with path.open("w") as fh:
        fh.write(line(6, msg="rewritten") + line(5, msg="after truncate") + line(7) + line(8))
    result = collect(db, str(path), channels=[])
    assert result.files[0].truncated
    assert (result.inserted, result.duplicates) == (3, 1)
    assert len(entries(db)) == 3 + 1 + 3


def test_duplicate_lines_are_ignored(db, tmp_path):
    path = tmp_path / "ladder.jsonl"
    path.write_text(line(0) + line(0) + line(1, 2, "boom") + line(1, 2, "boom") + line(1, 3, "x"))
    result = collect(db, str(path), channels=[])
    assert (result.lines, result.inserted, result.duplicates) == (5, 3, 2)
    assert db.execute("SELECT count(*) FROM ops.ledger_entries").fetchone()[0] == 3


def test_malformed_lines_are_counted_and_kept_as_dead_letters(db, tmp_path):
    path = tmp_path / "ladder.jsonl"
    bad = [
        "{not json}\n",
        '["a", "list"]\n',
        json.dumps({"ts": "yesterday", "exit": 0, "msg": "x"}) + "\n",
        json.dumps({"ts": "2026-11-20T08:00:00Z", "exit": "1", "msg": "x"}) + "\n",
        json.dumps({"ts": "2026-11-20T08:00:00Z", "msg": "no exit"}) + "\n",
    ]
    content = line(0) + "".join(bad) + "\n" + line(1)
    path.write_text(content)
    result = collect(db, str(path), channels=[])
    assert (result.lines, result.inserted, result.malformed) == (7, 2, 5)
    assert offset(db, path)[2] == 5
    rows = db.execute(
        "SELECT reason, payload FROM ops.dead_letters WHERE stream = 'ledger' ORDER BY id"
    ).fetchall()
    assert len(rows) == 5
    reasons = [r[0] for r in rows]
    assert reasons[0].startswith("invalid JSON") and "ISO-8601" in reasons[2]
    assert "'exit'" in reasons[3] and "'exit'" in reasons[4]
    assert rows[0][1]["line"] == "{not json}" and rows[0][1]["path"] == str(path)
    # re-reading the same bytes (truncated, then written again) adds nothing twice
    path.write_text(line(0))
    collect(db, str(path), channels=[])
    path.write_text(content)
    again = collect(db, str(path), channels=[])
    assert (again.lines, again.inserted, again.malformed) == (6, 0, 5)
    assert db.execute("SELECT count(*) FROM ops.dead_letters").fetchone()[0] == 5
    assert db.execute("SELECT count(*) FROM ops.ledger_entries").fetchone()[0] == 2


def test_nonzero_exits_alert_with_code_and_message_and_recover(db, tmp_path):
    path = tmp_path / "backup.jsonl"
    path.write_text(line(0) + line(5, 2, "Authentication failed - invalid credentials"))
    result = collect(db, str(path), channels=[])
    assert [a.transition for a in result.alerts] == ["opened"]
    alert = db.execute(
        "SELECT severity, state, title, body, details FROM ops.alerts WHERE dedup_key = %s",
        (ledger_alert_key("backup"),),
    ).fetchone()
    severity, state, title, body, details = alert
    assert (severity, state) == ("warning", "open")
    assert "exited 2" in title and "Authentication failed" in body
    assert (details["exit_code"], details["job"]) == (2, "backup")
    append(path, line(10, 1, "again") + line(15, 1, "and again"))
    collect(db, str(path), channels=[])
    severity, title = db.execute(
        "SELECT severity, title FROM ops.alerts WHERE dedup_key = %s",
        (ledger_alert_key("backup"),),
    ).fetchone()
    assert severity == "critical" and "3 consecutive failures" in title
    append(path, line(20, 0, "Backup completed"))
    result = collect(db, str(path), channels=[])
    assert [a.transition for a in result.alerts] == ["resolved"]
    assert db.execute("SELECT state FROM ops.alerts").fetchone()[0] == "resolved"


def test_jobs_named_in_lines_and_legacy_stats(db, tmp_path):
    path = tmp_path / "ladder.jsonl"
    path.write_text(
        line(0, job="orders") + line(1, job="orders") + line(2, 1, "API timeout", job="orders")
        + line(3, job="orders") + line(0, msg="synced", job="sync")
    )  # fmt: skip
    collect(db, str(path), channels=[])
    stats = {s.job: s for s in ledger_stats(db, now=T0 + timedelta(hours=1))}
    orders = stats["orders"]
    assert (orders.runs_24h, orders.failed_24h, orders.runs_7d) == (4, 1, 4)
    assert orders.success_rate_24h == pytest.approx(75.0)
    assert orders.avg_interval_seconds == pytest.approx(60.0)
    assert orders.last_failure == T0 + timedelta(minutes=2)
    assert orders.last_failure_message == "API timeout"
    assert stats["sync"].last_failure is None
    # two days later the 24 h window is empty, the 7-day one is not
    later = {s.job: s for s in ledger_stats(db, now=T0 + timedelta(days=2))}["orders"]
    assert (later.runs_24h, later.runs_7d, later.success_rate_24h) == (0, 4, None)

    cli = subprocess.run(
        [sys.executable, "-m", "include.analytics_ops.ledger", "stats",
         "--now", (T0 + timedelta(hours=1)).isoformat()],
        capture_output=True, text=True, cwd=REPO_ROOT, env=os.environ.copy(), timeout=120,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-2000:]
    out = cli.stdout
    assert "Job: orders" in out and "Success rate: 75.0%" in out
    assert "Average interval: 1.0 minutes" in out and "Message: API timeout" in out
    assert "Database: 5 total entries" in out


def test_a_million_line_file(db, tmp_path):
    path = tmp_path / "big.jsonl"
    n = 1_000_000
    with path.open("w") as fh:
        for i in range(n):
            ts = (T0 + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            fh.write(f'{{"ts": "{ts}", "exit": {1 if i == n - 1 else 0}, "msg": "run {i % 7}"}}\n')
        fh.write('{"ts": "2026-11-20T08:00:00Z", "exit"')  # a partial line at the end
    result = collect(db, str(path), channels=[])
    assert (result.lines, result.inserted, result.malformed) == (n, n, 0)
    assert db.execute("SELECT count(*) FROM ops.ledger_entries").fetchone()[0] == n
    assert offset(db, path)[0] == path.stat().st_size - len('{"ts": "2026-11-20T08:00:00Z", "exit"')
    # the last line was a failure: one alert for the whole file, not one per line
    assert db.execute("SELECT count(*), max(state) FROM ops.alerts").fetchone() == (1, "open")
    assert collect(db, str(path), channels=[]).lines == 0
