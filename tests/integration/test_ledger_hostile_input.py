"""The ledger collector against hostile lines and paths (issue 15): one line never stops the
collection, a line that cannot be stored is a dead letter with its reason, a failing file never
blocks the others, and only regular files under ``LEDGER_ROOTS`` are ever read."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import psycopg
import pytest

from include.analytics_ops import migrate
from include.analytics_ops.ledger import collect
from include.analytics_ops.ledger.collector import Limits
from tests.integration.test_ledger_collector import entries, line, offset


def dead_letters(db) -> list[tuple[str, dict]]:
    return db.execute(
        "SELECT reason, payload FROM ops.dead_letters WHERE stream = 'ledger' ORDER BY id"
    ).fetchall()


def incompressible(n: int, seed: int = 15) -> str:
    rng = random.Random(seed)
    return "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(n))  # 3 UTF-8 bytes each


def test_a_long_message_that_compresses_badly_is_stored_once(db, tmp_path):
    path = tmp_path / "ladder.jsonl"
    big = incompressible(10_000)  # ~30 kB: far past btree's 2,704-byte row limit
    path.write_text(line(0, 0, big) + line(1, 0, "after"))
    result = collect(db, str(path), channels=[])
    assert (result.lines, result.inserted, result.malformed) == (2, 2, 0)
    assert [e[3] for e in entries(db)] == [big, "after"]
    new = tmp_path / "ladder.new"  # replaced by a new file with the same lines and one more
    new.write_text(line(0, 0, big) + line(1, 0, "after") + line(2))
    os.replace(new, path)
    again = collect(db, str(path), channels=[])
    assert (again.inserted, again.duplicates) == (1, 2)  # the long one is still a duplicate


def test_the_unique_key_is_the_message_hash_computed_by_the_database(db):
    for _ in range(2):
        db.execute(
            "INSERT INTO ops.ledger_entries (source, job, ts, exit_code, message)"
            " VALUES ('s', 'j', '2026-11-20T08:00Z', 0, %s) ON CONFLICT DO NOTHING",
            ("a\\b é",),
        )
    rows = db.execute(
        "SELECT count(*), bool_and(message_sha256 = sha256(convert_to(message, 'UTF8')))"
        " FROM ops.ledger_entries"
    ).fetchone()
    assert rows == (1, True)


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ('{"ts": "2026-11-20T08:00:00Z", "exit": 1, "msg": "bad \\ud800 text"}', "lone surrogate"),
        ('{"ts": "2026-11-20T08:00:00Z", "exit": 1, "msg": "x", "job": "\\udfff"}', "'job'"),
        ('{"ts": "0001-01-01T00:00:00+01:00", "exit": 1, "msg": "year 0"}', "'ts' out of range"),
        ('{"ts": "9999-12-31T23:00:00-05:00", "exit": 1, "msg": "year 10000"}', "out of range"),
        ("[" * 50_000, "nested too deeply"),
        ('{"ts": \x00 "not json with a NUL byte"}', "invalid JSON"),
        (json.dumps({"ts": "2026-11-20T08:00:00Z", "exit": 1, "job": "j" * 300}), "'job' longer"),
    ],
    ids=["surrogate-msg", "surrogate-job", "year-0", "year-10000", "deep", "nul-byte", "long-job"],
)
def test_a_line_that_cannot_be_stored_is_a_dead_letter_and_never_blocks_later_lines(
    db, tmp_path, bad_line, reason
):
    path = tmp_path / "ladder.jsonl"
    other = tmp_path / "other.jsonl"
    path.write_text(line(0) + bad_line + "\n" + line(1, msg="after the bad line"))
    other.write_text(line(2, msg="next file"))
    result = collect(db, f"{path},{other}", channels=[])
    assert (result.lines, result.inserted, result.malformed) == (4, 3, 1)
    assert [e[3] for e in entries(db)] == ["ok", "after the bad line", "next file"]
    ((why, payload),) = dead_letters(db)
    assert reason in why
    assert payload["path"] == str(path) and payload["offset"] == len(line(0).encode())
    assert offset(db, path)[0] == path.stat().st_size  # the offset moved past it
    assert collect(db, f"{path},{other}", channels=[]).lines == 0


def test_a_line_the_database_refuses_is_dead_lettered_with_the_database_reason(db, tmp_path):
    path = tmp_path / "ladder.jsonl"
    path.write_text(line(0) + line(1, 3, "refused by a rule") + line(2, msg="later"))
    db.execute(
        "ALTER TABLE ops.ledger_entries ADD CONSTRAINT test_refuse"
        " CHECK (message <> 'refused by a rule')"
    )
    try:
        result = collect(db, str(path), channels=[])
    finally:
        db.execute("ALTER TABLE ops.ledger_entries DROP CONSTRAINT test_refuse")
    assert (result.lines, result.inserted, result.malformed) == (3, 2, 1)
    assert [e[3] for e in entries(db)] == ["ok", "later"]
    ((why, payload),) = dead_letters(db)
    assert why.startswith("cannot be stored: CheckViolation") and "test_refuse" in why
    assert "refused by a rule" in payload["line"]
    assert offset(db, path)[:3] == (path.stat().st_size, 3, 1)


def test_a_failing_file_is_reported_and_the_other_files_are_still_collected(db, tmp_path):
    broken, good = tmp_path / "a-broken.jsonl", tmp_path / "b-good.jsonl"
    broken.write_text(line(0, msg="in the broken file"))
    good.write_text(line(1, msg="in the good file"))
    db.execute(
        "ALTER TABLE ops.ledger_files ADD CONSTRAINT test_refuse CHECK (path NOT LIKE '%broken%')"
    )
    try:
        result = collect(db, str(tmp_path / "*.jsonl"), channels=[])
    finally:
        db.execute("ALTER TABLE ops.ledger_files DROP CONSTRAINT test_refuse")
    assert [e[3] for e in entries(db)] == ["in the good file"]
    assert list(result.errors) == [str(broken)]
    assert "CheckViolation" in result.errors[str(broken)]
    assert result.summary()["errors"] == result.errors
    # once the cause is gone the broken file is collected from where it stood
    assert collect(db, str(tmp_path / "*.jsonl"), channels=[]).inserted == 1


def test_a_file_with_a_non_utf8_name_is_refused_not_fatal(db, tmp_path):
    bad_name = os.fsdecode(bytes(tmp_path) + b"/a\xff.jsonl")
    Path(bad_name).write_text(line(0))
    (tmp_path / "b.jsonl").write_text(line(1, msg="good"))
    result = collect(db, str(tmp_path / "*.jsonl"), channels=[])
    assert [e[3] for e in entries(db)] == ["good"]
    assert "not valid UTF-8" in result.refused[bad_name]


@pytest.fixture
def roots(tmp_path):
    logs = tmp_path / "logs"
    outside = tmp_path / "elsewhere"
    logs.mkdir()
    outside.mkdir()
    (outside / "secret.jsonl").write_text(line(0, msg="someone else's log"))
    os.symlink(outside / "secret.jsonl", logs / "link.jsonl")
    os.mkfifo(logs / "pipe.jsonl")
    (logs / "ladder.jsonl").write_text(line(1, msg="ours"))
    return logs, outside


def test_only_regular_files_under_the_roots_are_read(db, roots):
    logs, outside = roots
    spec = ",".join([
        "/dev/zero", "/dev/urandom", str(outside / "secret.jsonl"), str(logs / "link.jsonl"),
        str(logs / "pipe.jsonl"), str(logs / ".." / "elsewhere" / "*.jsonl"), str(logs),
        str(logs / "ladder.jsonl"),
    ])  # fmt: skip
    result = collect(db, spec, roots=[str(logs)], channels=[])
    assert [e[3] for e in entries(db)] == ["ours"]
    refused = result.refused
    assert refused["/dev/zero"].startswith("outside LEDGER_ROOTS")
    assert refused[str(outside / "secret.jsonl")].startswith("outside LEDGER_ROOTS")  # via link
    assert refused[str(logs / "pipe.jsonl")] == "not a regular file"
    assert refused[str(logs)] == "not a regular file"
    assert len(refused) == 5  # /dev/zero, /dev/urandom, secret (3 ways, one real path), pipe, dir
    paths = [r[0] for r in db.execute("SELECT path FROM ops.ledger_files")]
    assert paths == [str(logs / "ladder.jsonl")]
    # a device inside a root is refused too
    assert collect(db, "/dev/zero", roots=["/dev"], channels=[]).refused == {
        "/dev/zero": "not a regular file"
    }


def test_the_source_name_is_the_real_path(db, roots):
    logs, _ = roots
    collect(db, str(logs / "ladder.jsonl"), channels=[])
    for alias in (
        "/" + str(logs / "ladder.jsonl"),
        str(logs / "." / ".." / "logs" / "ladder.jsonl"),
    ):
        again = collect(db, alias, roots=[str(logs)], channels=[])
        assert (again.lines, [f.path for f in again.files]) == (0, [str(logs / "ladder.jsonl")])
    assert db.execute("SELECT count(*) FROM ops.ledger_files").fetchone()[0] == 1
    assert len(entries(db)) == 1


def test_a_file_collected_under_a_symlinked_name_keeps_its_history(db, tmp_path):
    real_dir = tmp_path / "data"
    real_dir.mkdir()
    os.symlink(real_dir, tmp_path / "current")
    alias = tmp_path / "current" / "ladder.jsonl"
    (real_dir / "ladder.jsonl").write_text(line(0, 1, "old failure"))
    # what the previous version stored: the path as configured, through the symlink
    db.execute(
        "INSERT INTO ops.ledger_entries (source, job, ts, exit_code, message)"
        " SELECT %s, 'ladder', %s, 1, 'old failure'",
        (str(alias), json.loads(line(0))["ts"]),
    )
    size = (real_dir / "ladder.jsonl").stat().st_size
    ino = (real_dir / "ladder.jsonl").stat().st_ino
    db.execute(
        "INSERT INTO ops.ledger_files (path, inode, byte_offset, file_size)"
        " VALUES (%s, %s, %s, %s)",
        (str(alias), ino, size, size),
    )
    with (real_dir / "ladder.jsonl").open("a") as fh:
        fh.write(line(1, msg="new"))
    result = collect(db, str(alias), channels=[])
    assert (result.lines, result.inserted) == (1, 1)  # the old line is not read again
    assert result.alerts == []  # nor its failure re-alerted
    sources = db.execute("SELECT DISTINCT source FROM ops.ledger_entries").fetchall()
    assert sources == [(str(real_dir / "ladder.jsonl"),)]


def test_an_over_long_line_is_a_dead_letter_and_never_held_whole(db, tmp_path):
    path = tmp_path / "ladder.jsonl"
    huge = '{"ts": "2026-11-20T08:00:00Z", "exit": 0, "msg": "' + "x" * 50_000 + '"}'
    path.write_text(line(0) + huge + "\n" + line(1, msg="after"))
    limits = Limits(max_line_bytes=4096, max_bytes_per_run=10**9)
    result = collect(db, str(path), limits=limits, channels=[])
    assert (result.lines, result.inserted, result.malformed) == (3, 2, 1)
    ((why, payload),) = dead_letters(db)
    assert why.startswith("line longer than 4096 bytes")
    assert payload["line"].startswith('{"ts"') and len(payload["line"]) <= 2048


def test_bytes_per_run_are_capped_and_the_rest_waits_for_the_next_run(db, tmp_path):
    path = tmp_path / "ladder.jsonl"
    path.write_text("".join(line(i, msg=f"run {i}") for i in range(100)))
    limits = Limits(max_line_bytes=1024, max_bytes_per_run=2048)
    first = collect(db, str(path), limits=limits, channels=[])
    assert 0 < first.inserted < 100 and first.summary()["capped"] == [str(path)]
    runs = 1
    while len(entries(db)) < 100 and runs < 100:
        collect(db, str(path), limits=limits, channels=[])
        runs += 1
    assert [e[3] for e in entries(db)] == [f"run {i}" for i in range(100)]
    assert runs > 2 and offset(db, path)[0] == path.stat().st_size
    assert collect(db, str(path), limits=limits, channels=[]).summary()["capped"] == []


def test_a_ledger_paths_param_outside_the_roots_fails_before_any_work(db, roots, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from include.analytics_ops.operators.monitoring import _paths_param

    logs, outside = roots
    monkeypatch.setenv("LEDGER_PATHS", str(logs / "*.jsonl"))
    monkeypatch.delenv("LEDGER_ROOTS", raising=False)
    for bad in ("/dev/zero", "/dev/urandom", str(outside / "secret.jsonl"),
                str(logs / "link.jsonl"), f"{logs}/../elsewhere/*.jsonl", str(logs / "pipe.jsonl"),
                "/opt/airflow/logs/dag_id=analytics_nightly/*/*.log"):  # fmt: skip
        with pytest.raises(AirflowFailException, match=r"params\.ledger_paths refused"):
            _paths_param({"params": {"ledger_paths": bad}}, None)
    # inside the roots (also spelled with // and ..): accepted
    ok = f"/{logs}/../logs/ladder.jsonl"
    assert _paths_param({"params": {"ledger_paths": ok}}, None) == (ok, [str(logs)])
    # LEDGER_ROOTS widens what a run may name
    monkeypatch.setenv("LEDGER_ROOTS", f"{logs},{outside}")
    _, roots_ = _paths_param({"params": {"ledger_paths": str(outside / "secret.jsonl")}}, None)
    assert roots_ == [str(logs), str(outside)]
    # nothing configured: a param cannot name any path
    monkeypatch.delenv("LEDGER_ROOTS")
    monkeypatch.setenv("LEDGER_PATHS", "")
    with pytest.raises(AirflowFailException, match="no LEDGER_ROOTS"):
        _paths_param({"params": {"ledger_paths": str(logs / "ladder.jsonl")}}, None)
    assert db.execute("SELECT count(*) FROM ops.ledger_files").fetchone()[0] == 0


def test_v012_keeps_the_entries_already_stored_and_their_meaning(devenv, tmp_path):
    """Upgrade an 11-migration database holding entries: every row stays, gets its hash, and the
    rule "unique per (source, ts, exit, message)" holds on the new key."""
    name = f"{devenv.analytics_db}_v012"
    with psycopg.connect(devenv.server_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = devenv.dsn_for(name)
    try:
        old = tmp_path / "sql"
        old.mkdir()
        for mig in migrate.discover():
            if mig.version < 12:
                shutil.copy(mig.path, old / mig.path.name)
        migrate.apply_migrations(dsn, sql_dir=old)
        long_msg = incompressible(600)  # fits the old key (~1.8 kB), as stored rows must have
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO ops.ledger_entries (source, job, ts, exit_code, message) VALUES"
                " ('/l/a.jsonl', 'a', '2026-11-20T08:00Z', 0, 'ok'),"
                " ('/l/a.jsonl', 'a', '2026-11-20T08:01Z', 1, %s)",
                (long_msg,),
            )
            migrate.apply_migrations(dsn)
            rows = conn.execute(
                "SELECT message, message_sha256 = sha256(convert_to(message, 'UTF8'))"
                " FROM ops.ledger_entries ORDER BY ts"
            ).fetchall()
            assert rows == [("ok", True), (long_msg, True)]
            again = conn.execute(
                "INSERT INTO ops.ledger_entries (source, job, ts, exit_code, message)"
                " VALUES ('/l/a.jsonl', 'a', '2026-11-20T08:01Z', 1, %s)"
                " ON CONFLICT (source, ts, exit_code, message_sha256) DO NOTHING",
                (long_msg,),
            )
            assert again.rowcount == 0
    finally:
        with psycopg.connect(devenv.server_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
