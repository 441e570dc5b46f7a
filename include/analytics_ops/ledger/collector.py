"""Collect the result lines legacy cron scripts append to JSONL files into ``ops.ledger_entries``.

One line per cron run: ``{"ts": ISO-8601, "exit": int, "msg": str}`` plus an optional ``"job"``
(default: the file name without its extension, e.g. ``ladder`` for ``ladder.jsonl``).

- **Incremental**: ``ops.ledger_files`` keeps each file's byte offset; only complete lines after
  it are read. A last line without its newline is a write in progress and is left for next time.
- **Rotation and truncation**: a new inode means the file was rotated — the rest of the old file is
  read first when it is still next to the new one (``ladder.jsonl.1``), then the new file from 0;
  a file shorter than the offset, or whose first bytes changed, was truncated/rewritten and is read
  again from 0. Re-reading is safe: duplicates are dropped by the unique key
  ``(source, ts, exit_code, message)``.
- **Bulk**: lines are parsed in Python, ``COPY``'d into a temp staging table and moved with
  ``INSERT ... ON CONFLICT DO NOTHING``; the file's new offset is written in the same transaction,
  so a crash never skips or doubles lines.
- **Bad lines** are counted (``ops.ledger_files.malformed``) and kept as dead letters (stream
  ``ledger``) with the reason, path and byte offset.
- **Alerts**: a non-zero exit raises ``ledger_failed:<job>`` (exit code and message in it; warning,
  critical from 3 failures in a row); a later exit 0 resolves it with a recovery message.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from include.analytics_ops import store

log = logging.getLogger(__name__)
STREAM = "ledger"
CHUNK_BYTES = 8 * 1024 * 1024
HEAD_BYTES = 1024
CONSECUTIVE_FAILURES_CRITICAL = 3
MAX_MESSAGE_CHARS = 10_000


@dataclass
class FileResult:
    path: str
    lines: int = 0
    inserted: int = 0
    duplicates: int = 0
    malformed: int = 0
    bytes_read: int = 0
    rotated: bool = False
    truncated: bool = False
    missing: bool = False
    offset: int = 0


@dataclass
class JobActivity:
    """What one collection added for a job: drives its failure/recovery alert."""

    new: int = 0
    new_failures: int = 0
    last_failure: tuple[datetime, int, str] | None = None


@dataclass
class CollectResult:
    files: list[FileResult] = field(default_factory=list)
    jobs: dict[str, JobActivity] = field(default_factory=dict)
    alerts: list[Any] = field(default_factory=list)

    @property
    def lines(self) -> int:
        return sum(f.lines for f in self.files)

    @property
    def inserted(self) -> int:
        return sum(f.inserted for f in self.files)

    @property
    def duplicates(self) -> int:
        return sum(f.duplicates for f in self.files)

    @property
    def malformed(self) -> int:
        return sum(f.malformed for f in self.files)

    def summary(self) -> dict[str, Any]:
        return {
            "files": len(self.files),
            "lines": self.lines,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "malformed": self.malformed,
            "rotated": [f.path for f in self.files if f.rotated],
            "truncated": [f.path for f in self.files if f.truncated],
            "missing": [f.path for f in self.files if f.missing],
            "new_failures": {j: a.new_failures for j, a in self.jobs.items() if a.new_failures},
        }


# --------------------------------------------------------------------------- paths
def expand_paths(spec: str | Sequence[str]) -> list[str]:
    """``LEDGER_PATHS``: comma-separated files or globs → absolute paths (sorted, unique).
    A plain path that does not exist (yet) is kept, so it is reported as missing."""
    items = [p.strip() for p in spec.split(",")] if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in items:
        if not item:
            continue
        item = os.path.expanduser(item)
        if glob.has_magic(item):
            out.extend(sorted(glob.glob(item)))
        else:
            out.append(item)
    seen: dict[str, None] = {}
    for p in out:
        seen.setdefault(os.path.abspath(p), None)
    return list(seen)


def default_job(path: str) -> str:
    name = Path(path).name
    return name.split(".", 1)[0] or name


# --------------------------------------------------------------------------- parsing
def parse_line(raw: bytes, job: str) -> tuple[tuple[str, datetime, int, str] | None, str | None]:
    """(job, ts, exit_code, message) or (None, reason)."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"invalid JSON: {exc}"
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    ts, code, msg = obj.get("ts"), obj.get("exit"), obj.get("msg")
    if not isinstance(ts, str):
        return None, "missing or non-string 'ts'"
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:
        return None, f"'ts' is not ISO-8601: {ts[:40]!r}"
    if when.tzinfo is None:  # legacy scripts wrote UTC without an offset
        when = when.replace(tzinfo=UTC)
    if isinstance(code, bool) or not isinstance(code, int):
        if isinstance(code, float) and code.is_integer():
            code = int(code)
        else:
            return None, "missing or non-integer 'exit'"
    if not -(2**31) <= code < 2**31:
        return None, "'exit' out of range"
    if msg is None:
        msg = ""
    elif not isinstance(msg, str):
        return None, "non-string 'msg'"
    entry_job = obj.get("job")
    if entry_job is not None and not isinstance(entry_job, str):
        return None, "non-string 'job'"
    if "\x00" in msg or (entry_job and "\x00" in entry_job):
        return None, "NUL character in 'msg' or 'job'"
    return (entry_job or job, when, code, msg[:MAX_MESSAGE_CHARS]), None


# --------------------------------------------------------------------------- storage
_STAGE_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS ledger_stage"
    " (job text, ts timestamptz, exit_code integer, message text) ON COMMIT DELETE ROWS"
)
_MOVE_SQL = """
WITH ins AS (
    INSERT INTO ops.ledger_entries (source, job, ts, exit_code, message)
    SELECT %s, job, ts, exit_code, message FROM ledger_stage
    ON CONFLICT ON CONSTRAINT ledger_entries_key DO NOTHING
    RETURNING job, exit_code <> 0 AS failed
), per_job AS (
    SELECT job, count(*) AS n, count(*) FILTER (WHERE failed) AS n_failed FROM ins GROUP BY job
), last_failure AS (  -- from staging (small: failures only); the new ones are checked by count
    SELECT DISTINCT ON (job) job, ts, exit_code, message FROM ledger_stage
     WHERE exit_code <> 0 ORDER BY job, ts DESC
)
SELECT p.job, p.n, p.n_failed, f.ts, f.exit_code, f.message
  FROM per_job p LEFT JOIN last_failure f ON f.job = p.job AND p.n_failed > 0
"""


def _head_fingerprint(fh, size: int) -> str:
    fh.seek(0)
    head = fh.read(min(size, HEAD_BYTES))
    return f"{len(head)}:{hashlib.md5(head).hexdigest()}"


def _head_matches(fh, stored: str | None) -> bool:
    if not stored:
        return True
    length, _, digest = stored.partition(":")
    fh.seek(0)
    head = fh.read(int(length))
    return len(head) == int(length) and hashlib.md5(head).hexdigest() == digest


def _find_rotated(path: str, inode: int, dev: int) -> str | None:
    """The old file (same inode) renamed next to ``path``, e.g. ``ladder.jsonl.1``."""
    directory = os.path.dirname(path) or "."
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    for name in names:
        candidate = os.path.join(directory, name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if st.st_ino == inode and st.st_dev == dev and candidate != path:
            return candidate
    return None


class _Loader:
    """Loads complete lines of one source into the ledger, chunk by chunk."""

    def __init__(self, conn: psycopg.Connection, source: str, result: CollectResult) -> None:
        self.conn, self.source, self.result = conn, source, result
        self.job = default_job(source)

    def load_range(
        self,
        read_path: str,
        start: int,
        *,
        final: bool,
        file_state: dict[str, Any],
        fres: FileResult,
    ) -> int:
        """Read ``read_path`` from ``start``; return the offset after the last line taken.

        ``final`` (a rotated-away file that will not grow): a last line without newline is taken
        too. ``file_state`` is what to store in ops.ledger_files with each chunk's offset."""
        offset = start
        with open(read_path, "rb") as fh:
            fh.seek(start)
            carry = b""
            while True:
                block = fh.read(CHUNK_BYTES)
                eof = not block
                data = carry + block
                if eof:
                    if final and data.strip():
                        data += b"\n"
                    else:
                        break
                cut = data.rfind(b"\n")
                if cut < 0:  # a line longer than a chunk: keep reading
                    carry = data
                    continue
                complete, carry = data[: cut + 1], data[cut + 1 :]
                self._load_chunk(complete, offset, file_state, fres)
                offset += len(complete) - (1 if eof else 0)  # the added newline is not in the file
                if eof:
                    break
        return offset

    def _load_chunk(
        self, chunk: bytes, base_offset: int, file_state: dict[str, Any], fres: FileResult
    ) -> None:
        bad: list[tuple[Any, str, str]] = []
        lines = 0
        with self.conn.transaction():
            self.conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (self.source,)
            )
            self.conn.execute(_STAGE_DDL)
            with self.conn.cursor() as cur:
                with cur.copy("COPY ledger_stage (job, ts, exit_code, message) FROM STDIN") as cp:
                    pos = 0
                    job = self.job
                    for raw in chunk.split(b"\n")[:-1]:
                        line_offset = base_offset + pos
                        pos += len(raw) + 1
                        if not raw.strip():
                            continue
                        lines += 1
                        row, reason = parse_line(raw, job)
                        if row is None:
                            text = raw.decode("utf-8", "replace")[:MAX_MESSAGE_CHARS]
                            bad.append(
                                (
                                    {"path": self.source, "offset": line_offset, "line": text},
                                    str(reason),
                                    f"{self.source}@{line_offset}",
                                )
                            )
                            continue
                        cp.write_row(row)
                activity = cur.execute(_MOVE_SQL, (self.source,)).fetchall()
            if bad:
                store.add_dead_letters(self.conn, STREAM, bad)
            end_offset = base_offset + len(chunk)
            inserted = sum(int(a[1]) for a in activity)
            self._save_offset(file_state, end_offset, lines, len(bad))
        # the transaction committed: account for it
        fres.lines += lines
        fres.malformed += len(bad)
        fres.inserted += inserted
        fres.duplicates += lines - len(bad) - inserted
        fres.bytes_read += len(chunk)
        for job, new, new_fail, fail_ts, fail_code, fail_msg in activity:
            act = self.result.jobs.setdefault(job, JobActivity())
            act.new += int(new)
            act.new_failures += int(new_fail)
            if fail_ts is not None and (act.last_failure is None or fail_ts >= act.last_failure[0]):
                act.last_failure = (fail_ts, int(fail_code), fail_msg)

    def _save_offset(self, state: dict[str, Any], offset: int, lines: int, malformed: int) -> None:
        self.conn.execute(
            """
            INSERT INTO ops.ledger_files AS f (path, inode, byte_offset, file_size, lines_read,
                                               malformed, head_fingerprint, rotations,
                                               last_collected_at, updated_at)
            VALUES (%(path)s, %(inode)s, %(offset)s, %(size)s, %(lines)s, %(malformed)s,
                    %(head)s, %(rotations)s, now(), now())
            ON CONFLICT (path) DO UPDATE
               SET inode = EXCLUDED.inode, byte_offset = EXCLUDED.byte_offset,
                   file_size = EXCLUDED.file_size, lines_read = f.lines_read + %(lines)s,
                   malformed = f.malformed + %(malformed)s,
                   head_fingerprint = EXCLUDED.head_fingerprint,
                   rotations = f.rotations + %(rotated)s,
                   last_collected_at = now(), updated_at = now()
            """,
            {
                "inode": state["inode"],
                "size": state["size"],
                "head": state["head"],
                "path": self.source,
                "offset": offset,
                "lines": lines,
                "malformed": malformed,
                "rotated": state.get("rotated", 0),
                "rotations": state.get("rotated", 0),
            },
        )
        state["rotated"] = 0  # count a rotation once


def collect_file(conn: psycopg.Connection, path: str, result: CollectResult) -> FileResult:
    """Collect the new complete lines of one file (see the module docstring)."""
    fres = FileResult(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        fres.missing = True
        result.files.append(fres)
        return fres
    row = conn.execute(
        "SELECT inode, byte_offset, head_fingerprint FROM ops.ledger_files WHERE path = %s",
        (path,),
    ).fetchone()
    loader = _Loader(conn, path, result)
    start = 0
    rotated = 0
    if row is not None:
        old_inode, old_offset, old_head = row
        if old_inode is not None and old_inode != st.st_ino:
            fres.rotated, rotated = True, 1
            old_path = _find_rotated(path, old_inode, st.st_dev)
            if old_path is not None:
                old_size = os.stat(old_path).st_size
                if old_size >= old_offset:
                    log.info("%s rotated: finishing %s from byte %d", path, old_path, old_offset)
                    old_state = {"inode": old_inode, "size": old_size, "head": old_head}
                    loader.load_range(
                        old_path, old_offset, final=True, file_state=old_state, fres=fres
                    )
        elif st.st_size < old_offset:
            fres.truncated = True
        else:
            with open(path, "rb") as fh:
                if _head_matches(fh, old_head):
                    start = old_offset
                else:
                    fres.truncated = True
        if fres.truncated:
            log.warning("%s was truncated or rewritten: reading it again from the start", path)
    with open(path, "rb") as fh:
        head = _head_fingerprint(fh, st.st_size)
    state = {"inode": st.st_ino, "size": st.st_size, "head": head, "rotated": rotated}
    if start == 0 and row is not None:
        # Record the reset (new inode / truncation) even if no complete line follows yet.
        with conn.transaction():
            loader._save_offset(state, 0, 0, 0)
    fres.offset = loader.load_range(path, start, final=False, file_state=state, fres=fres)
    if start == 0 and row is None and fres.offset == 0:
        with conn.transaction():  # remember the file even when it has no complete line yet
            loader._save_offset(state, 0, 0, 0)
    result.files.append(fres)
    return fres


# --------------------------------------------------------------------------- alerts
def _failure_streak(conn: psycopg.Connection, job: str) -> tuple[int, tuple | None]:
    """(failures in a row at the end of the job's ledger, latest entry)."""
    rows = conn.execute(
        "SELECT ts, exit_code, message FROM ops.ledger_entries WHERE job = %s"
        " ORDER BY ts DESC, id DESC LIMIT 50",
        (job,),
    ).fetchall()
    streak = 0
    for _, code, _ in rows:
        if code == 0:
            break
        streak += 1
    return streak, (rows[0] if rows else None)


def ledger_alert_key(job: str) -> str:
    return f"ledger_failed:{job}"


def alert_on_activity(
    conn: psycopg.Connection, result: CollectResult, channels: Sequence[Any] | None = None
) -> list[Any]:
    """Flip-based alerts for the jobs this collection touched."""
    from include.analytics_ops import alerts

    outcomes = []
    for job, act in sorted(result.jobs.items()):
        key = ledger_alert_key(job)
        streak, latest = _failure_streak(conn, job)
        if act.new_failures and act.last_failure is not None:
            fail_ts, code, msg = act.last_failure
            shown = streak if latest is not None and latest[1] != 0 else 1
            suffix = f" ({shown} consecutive failures)" if shown > 1 else ""
            outcomes.append(
                alerts.raise_alert(
                    conn,
                    key,
                    "critical" if shown >= CONSECUTIVE_FAILURES_CRITICAL else "warning",
                    "ledger",
                    f"cron job {job} exited {code}{suffix}",
                    f"exit code {code} at {fail_ts.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC: {msg}"
                    + (f" ({act.new_failures} new failed runs)" if act.new_failures > 1 else ""),
                    details={
                        "job": job,
                        "exit_code": code,
                        "message": msg,
                        "ts": fail_ts,
                        "new_failures": act.new_failures,
                        "consecutive_failures": shown,
                    },
                    channels=channels,
                )
            )
        if latest is not None and latest[1] == 0:
            resolved = alerts.resolve_alert(
                conn,
                key,
                f"cron job {job} succeeded again at "
                f"{latest[0].astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC: {latest[2]}",
                channels=channels,
            )
            if resolved is not None:
                outcomes.append(resolved)
    return outcomes


def collect(
    conn: psycopg.Connection,
    paths: str | Iterable[str],
    *,
    alert: bool = True,
    channels: Sequence[Any] | None = None,
) -> CollectResult:
    """Collect every configured file, then raise/resolve the ledger failure alerts.

    ``conn`` must be in autocommit mode: each chunk (rows + the file's new offset) commits in its
    own transaction, so a crash half-way keeps what was loaded and never loads it twice."""
    if not conn.autocommit:
        raise ValueError("ledger.collect needs an autocommit connection (one commit per chunk)")
    result = CollectResult()
    for path in expand_paths(paths if isinstance(paths, str) else list(paths)):
        collect_file(conn, path, result)
    if alert and result.jobs:
        with conn.transaction():
            result.alerts = alert_on_activity(conn, result, channels)
    return result
