"""Collect the result lines legacy cron scripts append to JSONL files into ``ops.ledger_entries``.

One line per cron run: ``{"ts": ISO-8601, "exit": int, "msg": str}`` plus an optional ``"job"``
(default: the file name without its extension, e.g. ``ladder`` for ``ladder.jsonl``).

- **Incremental**: ``ops.ledger_files`` keeps each file's byte offset; only complete lines after
  it are read. A last line without its newline is a write in progress and is left for next time.
- **Rotation and truncation**: a new inode means the file was rotated — the rest of the old file is
  read first when it is still next to the new one (``ladder.jsonl.1``), then the new file from 0;
  a file shorter than the offset, or whose first bytes changed, was truncated/rewritten and is read
  again from 0. Re-reading is safe: duplicates are dropped by the unique key
  ``(source, ts, exit_code, sha256(message))`` (V012; the database computes the hash, so a
  10,000-character message never meets btree's row limit).
- **Bulk**: lines are parsed in Python, ``COPY``'d into a temp staging table and moved with
  ``INSERT ... ON CONFLICT DO NOTHING``; the file's new offset is written in the same transaction,
  so a crash never skips or doubles lines.
- **Bad lines** are counted (``ops.ledger_files.malformed``) and kept as dead letters (stream
  ``ledger``) with the reason, path and byte offset: lines that do not parse, and lines the
  database refuses (the chunk is then stored line by line, so one line never blocks the others).
  A line longer than ``LEDGER_MAX_LINE_BYTES`` is a dead letter with its first bytes; it is never
  held in memory whole.
- **Only files under the roots**: every path (a ``LEDGER_PATHS`` entry, a glob match, a run's
  ``ledger_paths`` param) is resolved to its real path (symlinks, ``..``, ``//``), which is also
  its source name, and must be a regular file under one of ``LEDGER_ROOTS`` (default: the
  directories of the ``LEDGER_PATHS`` entries). Anything else is refused and reported, never read.
- **Bounded**: at most ``LEDGER_MAX_BYTES_PER_RUN`` bytes are read per collection; the rest
  waits for the next run (``capped`` in the summary).
- **Failures are per file**: a file that cannot be read or stored is reported with its error and
  the other files are still collected; only a lost database connection stops the collection.
- **Alerts**: a non-zero exit raises ``ledger_failed:<job>`` (exit code and message in it; warning,
  critical from 3 failures in a row); a later exit 0 resolves it with a recovery message.

Settings (Airflow Variable > env > default): ``LEDGER_PATHS`` (none), ``LEDGER_ROOTS``
(comma-separated directories; default: the directories of ``LEDGER_PATHS``),
``LEDGER_MAX_LINE_BYTES`` (65536), ``LEDGER_MAX_BYTES_PER_RUN`` (268435456 = 256 MiB).
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from include.analytics_ops import store
from include.analytics_ops.alerts import log_text
from include.analytics_ops.config import FromSettings, from_setting, setting
from include.analytics_ops.textsafe import unstorable

log = logging.getLogger(__name__)
STREAM = "ledger"
CHUNK_BYTES = 8 * 1024 * 1024
HEAD_BYTES = 1024
CONSECUTIVE_FAILURES_CRITICAL = 3
MAX_MESSAGE_CHARS = 10_000
MAX_JOB_CHARS = 200  # the job names an alert key (ops.alerts.dedup_key is a btree key too)
MAX_SOURCE_BYTES = 1024  # the source is part of the unique key: a real path, not a payload
DEFAULT_MAX_LINE_BYTES = 64 * 1024
DEFAULT_MAX_BYTES_PER_RUN = 256 * 1024 * 1024
_PREVIEW_BYTES = 2048  # what a dead letter keeps of an over-long line
_SKIP_BYTES = 1024 * 1024


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
    refused: str | None = None  # why the path was not read (outside the roots, not a file, ...)
    error: str | None = None  # what stopped this file's collection (the others went on)
    capped: bool = False  # the run's byte budget ran out: the rest waits for the next run


@dataclass
class JobActivity:
    """What one collection added for a job: drives its failure/recovery alert."""

    new: int = 0
    new_failures: int = 0
    last_failure: tuple[datetime, int, str] | None = None


def _total(counter: str) -> property:
    """The sum of one ``FileResult`` counter over the collection's files."""
    return property(lambda self: sum(getattr(f, counter) for f in self.files))


@dataclass
class CollectResult:
    files: list[FileResult] = field(default_factory=list)
    jobs: dict[str, JobActivity] = field(default_factory=dict)
    alerts: list[Any] = field(default_factory=list)

    lines = _total("lines")
    inserted = _total("inserted")
    duplicates = _total("duplicates")
    malformed = _total("malformed")

    @property
    def refused(self) -> dict[str, str]:
        return {f.path: f.refused for f in self.files if f.refused}

    @property
    def errors(self) -> dict[str, str]:
        return {f.path: f.error for f in self.files if f.error}

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
            "refused": self.refused,
            "errors": self.errors,
            "capped": [f.path for f in self.files if f.capped],
            "new_failures": {j: a.new_failures for j, a in self.jobs.items() if a.new_failures},
        }


@dataclass(frozen=True)
class Limits(FromSettings):
    """How much one collection may read (settings ``LEDGER_MAX_LINE_BYTES``,
    ``LEDGER_MAX_BYTES_PER_RUN``)."""

    max_line_bytes: int = from_setting("LEDGER_MAX_LINE_BYTES", DEFAULT_MAX_LINE_BYTES)
    max_bytes_per_run: int = from_setting("LEDGER_MAX_BYTES_PER_RUN", DEFAULT_MAX_BYTES_PER_RUN)

    def __post_init__(self) -> None:
        if self.max_line_bytes < 1024 or self.max_bytes_per_run < self.max_line_bytes:
            raise ValueError(
                "LEDGER_MAX_LINE_BYTES must be >= 1024 and LEDGER_MAX_BYTES_PER_RUN >= it,"
                f" got {self.max_line_bytes} and {self.max_bytes_per_run}"
            )


class LedgerPathError(ValueError):
    """A requested ledger path is refused (outside the roots, not a regular file, ...)."""


# --------------------------------------------------------------------------- paths
def _items(spec: str | Sequence[str]) -> list[str]:
    items = [p.strip() for p in spec.split(",")] if isinstance(spec, str) else list(spec)
    return [i for i in items if i and i.strip()]


def _static_dir(item: str) -> str:
    """The directory a path or glob is in: its leading part without glob characters."""
    parts = Path(item).parts
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            return str(Path(*parts[:i])) if i else "."
    return str(Path(item).parent)


def ledger_roots(spec: str | Sequence[str] = "") -> list[str]:
    """The directories ledger files may be read from: ``LEDGER_ROOTS`` when set, else the
    directories of ``spec`` (the trusted ``LEDGER_PATHS`` entries). Real paths, unique."""
    usable = [os.path.expanduser(i) for i in _items(spec) if unstorable(i, "path") is None]
    configured = [os.path.expanduser(i) for i in setting("LEDGER_ROOTS", [])]
    dirs = configured or [_static_dir(i) for i in usable]
    return list(dict.fromkeys(os.path.realpath(d) for d in dirs))


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(os.path.commonpath([path, root]) == root for root in roots)


def _refusal(real: str, roots: Sequence[str]) -> str | None:
    """Why the resolved path ``real`` may not be read, or None."""
    try:
        encoded = real.encode("utf-8")
    except UnicodeEncodeError:
        return "path is not valid UTF-8 (it cannot be a source name)"
    if len(encoded) > MAX_SOURCE_BYTES:
        return f"path longer than {MAX_SOURCE_BYTES} bytes"
    if not roots:
        return "no LEDGER_ROOTS configured"
    if not _under(real, roots):
        return f"outside LEDGER_ROOTS ({', '.join(roots)})"
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return None  # reported as missing
    except OSError as exc:
        return f"cannot stat: {exc.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return None


def resolve_paths(
    spec: str | Sequence[str], roots: Sequence[str]
) -> list[tuple[str, str, str | None]]:
    """``LEDGER_PATHS``-style files or globs → ``(real path, as given, refusal or None)``,
    unique by real path. A plain path that does not exist (yet) is kept, so it is reported as
    missing."""
    out: dict[str, tuple[str, str, str | None]] = {}
    for item in _items(spec):
        unusable = unstorable(item, "path")
        if unusable:
            out.setdefault(item, (item, item, unusable))
            continue
        item = os.path.expanduser(item)
        for candidate in sorted(glob.glob(item)) if glob.has_magic(item) else [item]:
            real = os.path.realpath(candidate)
            out.setdefault(real, (real, os.path.abspath(candidate), _refusal(real, roots)))
    return list(out.values())


def check_requested_paths(spec: str, roots: Sequence[str]) -> list[str]:
    """Validate paths a user asked for (the ``ledger_paths`` param): their real paths, or
    ``LedgerPathError`` naming every refused one — before anything is read."""
    resolved = resolve_paths(spec, roots)
    refused = [f"{given}: {why}" for _, given, why in resolved if why]
    if refused:
        raise LedgerPathError("; ".join(refused))
    if not resolved:
        raise LedgerPathError(f"no file matches {spec!r}")
    return [real for real, _, _ in resolved]


def expand_paths(spec: str | Sequence[str]) -> list[str]:
    """``LEDGER_PATHS``: comma-separated files or globs → real paths (sorted by the spec's
    order, unique)."""
    return [real for real, _, _ in resolve_paths(spec, roots=["/"])]


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
    except RecursionError:
        return None, "invalid JSON: nested too deeply"
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
    try:
        when = when.astimezone(UTC)  # what the database will hand back must be a datetime too
    except (OverflowError, ValueError):
        return None, f"'ts' out of range: {ts[:40]!r}"
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
    msg = msg[:MAX_MESSAGE_CHARS]
    for value, name in ((msg, "msg"), (entry_job or "", "job")):
        reason = unstorable(value, name)
        if reason:
            return None, reason
    if entry_job and len(entry_job) > MAX_JOB_CHARS:
        return None, f"'job' longer than {MAX_JOB_CHARS} characters"
    return (entry_job or job, when, code, msg), None


def _line_text(raw: bytes) -> str:
    """A line as dead-letter text: undecodable bytes and NUL escaped (jsonb refuses NUL)."""
    return raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")[:MAX_MESSAGE_CHARS]


# --------------------------------------------------------------------------- storage
_STAGE_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS ledger_stage"
    " (job text, ts timestamptz, exit_code integer, message text) ON COMMIT DELETE ROWS"
)
_CONFLICT = "ON CONFLICT (source, ts, exit_code, message_sha256) DO NOTHING"
_MOVE_SQL = f"""
WITH ins AS (
    INSERT INTO ops.ledger_entries (source, job, ts, exit_code, message)
    SELECT %s, job, ts, exit_code, message FROM ledger_stage
    {_CONFLICT}
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
_INSERT_ONE = (
    "INSERT INTO ops.ledger_entries (source, job, ts, exit_code, message)"
    f" VALUES (%s, %s, %s, %s, %s) {_CONFLICT} RETURNING 1"
)


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


def _open_regular(path: str):
    """Open ``path`` for reading only if it is (still) a regular file: never blocks on a FIFO,
    never follows a symlink swapped in after the path was resolved."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LedgerPathError(f"{path} is not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


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
            st = os.lstat(candidate)  # a symlink is not the renamed file
        except OSError:
            continue
        if st.st_ino == inode and st.st_dev == dev and candidate != path:
            return candidate if stat.S_ISREG(st.st_mode) else None
    return None


def _connection_lost(conn: psycopg.Connection) -> bool:
    return conn.closed or conn.broken


class _Budget:
    """Bytes one collection may still read."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.left = limits.max_bytes_per_run

    @property
    def exhausted(self) -> bool:
        return self.left <= 0


# A line as read: (byte offset, content without newline, over-long: its length so far else 0)
_Line = tuple[int, bytes, int]


class _Loader:
    """Loads complete lines of one source into the ledger, chunk by chunk."""

    def __init__(
        self, conn: psycopg.Connection, source: str, result: CollectResult, budget: _Budget
    ) -> None:
        self.conn, self.source, self.result, self.budget = conn, source, result, budget
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
        max_line = self.budget.limits.max_line_bytes
        offset = pos = start
        batch: list[_Line] = []
        batch_bytes = 0
        with _open_regular(read_path) as fh:
            fh.seek(start)
            while True:
                if self.budget.exhausted:
                    fres.capped = True
                    break
                raw = fh.readline(max_line + 1)
                if not raw:
                    break
                consumed, too_long = len(raw), 0
                if raw.endswith(b"\n"):
                    raw = raw[:-1]
                elif len(raw) > max_line:  # over-long: skip to its end, keep only its start
                    raw = raw[:_PREVIEW_BYTES]
                    while consumed < self.budget.left:  # ... within the run's byte budget
                        more = fh.readline(_SKIP_BYTES)
                        consumed += len(more)
                        if not more or more.endswith(b"\n"):
                            break
                    too_long = consumed
                elif not (final and raw.strip()):
                    break  # a write in progress: next time
                batch.append((pos, raw, too_long))
                pos += consumed
                batch_bytes += consumed
                self.budget.left -= consumed
                if batch_bytes >= CHUNK_BYTES:
                    self._load_chunk(batch, pos, file_state, fres)
                    offset, batch, batch_bytes = pos, [], 0
        if batch:
            self._load_chunk(batch, pos, file_state, fres)
            offset = pos
        return offset

    def _parse(self, batch: Sequence[_Line]):
        """(lines counted, rows to store as (offset, raw, row), bad as dead-letter records)."""
        rows: list[tuple[int, bytes, tuple[str, datetime, int, str]]] = []
        bad: list[tuple[Any, str, str]] = []
        lines = 0
        max_line = self.budget.limits.max_line_bytes
        for line_offset, raw, too_long in batch:
            if not too_long and not raw.strip():
                continue
            lines += 1
            if too_long:
                row, reason = None, f"line longer than {max_line} bytes ({too_long} bytes read)"
            else:
                row, reason = parse_line(raw, self.job)
            if row is None:
                bad.append(self._dead_letter(line_offset, raw, str(reason)))
            else:
                rows.append((line_offset, raw, row))
        return lines, rows, bad

    def _dead_letter(self, line_offset: int, raw: bytes, reason: str) -> tuple[Any, str, str]:
        payload = {"path": self.source, "offset": line_offset, "line": _line_text(raw)}
        return payload, reason, f"{self.source}@{line_offset}"

    def _load_chunk(
        self, batch: Sequence[_Line], end_offset: int, file_state: dict[str, Any], fres: FileResult
    ) -> None:
        lines, rows, bad = self._parse(batch)
        try:
            activity = self._store_bulk(rows, bad, end_offset, file_state, lines)
        except Exception as exc:
            if _connection_lost(self.conn):
                raise
            # One row the database refuses must not block the others: store line by line.
            log.warning(
                "%s: bulk load refused (%s); storing line by line",
                log_text(self.source), log_text(str(exc)),
            )  # fmt: skip
            activity, refused = self._store_each(rows, bad, end_offset, file_state, lines)
            bad = bad + refused
        # the transaction committed: account for it
        inserted = sum(a[1] for a in activity)
        fres.lines += lines
        fres.malformed += len(bad)
        fres.inserted += inserted
        fres.duplicates += lines - len(bad) - inserted
        fres.bytes_read += end_offset - batch[0][0]
        for job, new, new_fail, fail_ts, fail_code, fail_msg in activity:
            act = self.result.jobs.setdefault(job, JobActivity())
            act.new += int(new)
            act.new_failures += int(new_fail)
            if fail_ts is not None and (act.last_failure is None or fail_ts >= act.last_failure[0]):
                act.last_failure = (fail_ts, int(fail_code), fail_msg)

    def _lock(self) -> None:
        self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (self.source,))

    def _store_bulk(self, rows, bad, end_offset, file_state, lines) -> list[tuple]:
        with self.conn.transaction():
            self._lock()
            self.conn.execute(_STAGE_DDL)
            with self.conn.cursor() as cur:
                with cur.copy("COPY ledger_stage (job, ts, exit_code, message) FROM STDIN") as cp:
                    for _, _, row in rows:
                        cp.write_row(row)
                activity = cur.execute(_MOVE_SQL, (self.source,)).fetchall()
            if bad:
                store.add_dead_letters(self.conn, STREAM, bad)
            self._save_offset(file_state, end_offset, lines, len(bad))
        return [(job, int(n), int(nf), ts, code, msg) for job, n, nf, ts, code, msg in activity]

    def _store_each(self, rows, bad, end_offset, file_state, lines):
        """The slow path: each row in its own savepoint; a refused row is a dead letter."""
        refused: list[tuple[Any, str, str]] = []
        per_job: dict[str, list[int]] = {}
        last_fail: dict[str, tuple[datetime, int, str]] = {}
        with self.conn.transaction():
            self._lock()
            for line_offset, raw, (job, ts, code, msg) in rows:
                try:
                    with self.conn.transaction():
                        new = self.conn.execute(
                            _INSERT_ONE, (self.source, job, ts, code, msg)
                        ).fetchone()
                except Exception as exc:
                    if _connection_lost(self.conn):
                        raise
                    reason = f"cannot be stored: {type(exc).__name__}: {exc}"[:2000]
                    refused.append(self._dead_letter(line_offset, raw, reason))
                    continue
                if code != 0 and (job not in last_fail or ts >= last_fail[job][0]):
                    last_fail[job] = (ts, code, msg)
                if new:
                    counts = per_job.setdefault(job, [0, 0])
                    counts[0] += 1
                    counts[1] += code != 0
            if bad or refused:
                store.add_dead_letters(self.conn, STREAM, [*bad, *refused])
            self._save_offset(file_state, end_offset, lines, len(bad) + len(refused))
        activity = [
            (job, n, nf, *(last_fail[job] if nf else (None, None, None)))
            for job, (n, nf) in per_job.items()
        ]
        return activity, refused

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


def _adopt_alias(conn: psycopg.Connection, source: str, alias: str) -> None:
    """A file collected before sources were real paths (e.g. through a symlinked directory)
    keeps its offset and history under its real path instead of being read again as new."""
    with conn.transaction():
        moved = conn.execute(
            "UPDATE ops.ledger_files SET path = %s WHERE path = %s"
            " AND NOT EXISTS (SELECT 1 FROM ops.ledger_files WHERE path = %s)",
            (source, alias, source),
        ).rowcount
        if moved:
            conn.execute(
                "UPDATE ops.ledger_entries SET source = %s WHERE source = %s", (source, alias)
            )
            log.info(
                "ledger source %s is now known by its real path %s",
                log_text(alias), log_text(source),
            )  # fmt: skip


def collect_file(
    conn: psycopg.Connection,
    path: str,
    result: CollectResult,
    *,
    budget: _Budget | None = None,
    alias: str | None = None,
) -> FileResult:
    """Collect the new complete lines of one file (see the module docstring). ``path`` is the
    file's real path (its source name); ``alias`` a name it may have been collected under
    before."""
    fres = FileResult(path)
    result.files.append(fres)
    budget = budget or _Budget(Limits())
    try:
        st = os.stat(path)
    except FileNotFoundError:
        fres.missing = True
        return fres
    if alias and alias != path:
        _adopt_alias(conn, path, alias)
    row = conn.execute(
        "SELECT inode, byte_offset, head_fingerprint FROM ops.ledger_files WHERE path = %s",
        (path,),
    ).fetchone()
    loader = _Loader(conn, path, result, budget)
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
                    log.info(
                        "%s rotated: finishing %s from byte %d",
                        log_text(path), log_text(old_path), old_offset,
                    )  # fmt: skip
                    old_state = {"inode": old_inode, "size": old_size, "head": old_head}
                    loader.load_range(
                        old_path, old_offset, final=True, file_state=old_state, fres=fres
                    )
        elif st.st_size < old_offset:
            fres.truncated = True
        else:
            with _open_regular(path) as fh:
                if _head_matches(fh, old_head):
                    start = old_offset
                else:
                    fres.truncated = True
        if fres.truncated:
            log.warning(
                "%s was truncated or rewritten: reading it again from the start", log_text(path)
            )
    with _open_regular(path) as fh:
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
    roots: Sequence[str] | None = None,
    limits: Limits | None = None,
    alert: bool = True,
    channels: Sequence[Any] | None = None,
) -> CollectResult:
    """Collect every configured file, then raise/resolve the ledger failure alerts.

    ``roots``: the directories files may be read from (default: ``ledger_roots(paths)``, i.e.
    ``LEDGER_ROOTS`` or the directories of ``paths``); a path outside them, or not a regular
    file, is reported as refused and not read. ``limits`` default to the settings.

    ``conn`` must be in autocommit mode: each chunk (rows + the file's new offset) commits in its
    own transaction, so a crash half-way keeps what was loaded and never loads it twice. A file
    that fails is reported (``FileResult.error``) and the next one is still collected; a lost
    database connection stops the collection (retrying is the fix)."""
    if not conn.autocommit:
        raise ValueError("ledger.collect needs an autocommit connection (one commit per chunk)")
    spec = paths if isinstance(paths, str) else list(paths)
    roots = ledger_roots(spec) if roots is None else [os.path.realpath(r) for r in roots]
    budget = _Budget(limits or Limits.from_settings())
    result = CollectResult()
    for real, given, refused in resolve_paths(spec, roots):
        if refused:
            log.warning("ledger path %s refused: %s", log_text(given), refused)
            result.files.append(FileResult(real, refused=refused))
            continue
        try:
            collect_file(conn, real, result, budget=budget, alias=given)
        except Exception as exc:
            if _connection_lost(conn):
                raise
            log.exception("ledger file %s could not be collected", log_text(real))
            fres = next((f for f in result.files if f.path == real), None)
            if fres is None:
                fres = FileResult(real)
                result.files.append(fres)
            fres.error = f"{type(exc).__name__}: {exc}"[:2000]
    if alert and result.jobs:
        with conn.transaction():
            result.alerts = alert_on_activity(conn, result, channels)
    return result
