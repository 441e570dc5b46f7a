"""``archive_old_records``: trim the ops tables and old artifacts, archiving everything removed.

Rules (cut-offs come from the run's report date, never the wall clock, so a rerun of the same
week decides the same way):

- ``ops.job_events``: keep the newest ``keep_job_events`` (10,000) rows;
- ``ops.job_runs``: keep the newest ``keep_job_runs`` (1,000) rows (rows still ``running`` are
  never removed);
- ``ops.ledger_entries`` with ``ts`` and ``ops.dead_letters`` *resolved* before the cut-off
  (report date − ``max_age_days``, 90);
- files the project itself wrote under ``ARTIFACTS_DIR`` dated before the cut-off — only the
  direct, regular (not symlinked) files of its own subfolders whose whole name matches its own
  pattern (:data:`OWN_ARTIFACTS`: ``sampling-proofs/sampling-proof-YYYYMMDD.json``,
  ``snapshots/YYYY-MM-DD.json``, ``reports/cto-report-YYYYMMDD.html|eml``,
  ``exports/metrics|projects-weekly-YYYYMMDD.csv``). Anything else — another tool's dated
  files, ``archive/`` — is never touched. An ``ARTIFACTS_DIR`` that is ``/``, a home directory,
  the repository root or one of its parents is refused before anything is removed.

Nothing disappears without trace: rows are removed with ``DELETE … RETURNING`` in chunks, each
chunk is appended to ``archive/archive-YYYYMMDD.jsonl.gz`` (one gzip member per chunk; readers see
one JSONL stream of ``{"source", "report_date", "row"}``) and fsync'ed before the transaction
commits, together with a row in ``ops.archive_batches``. Removed files go into
``archive/artifacts-YYYYMMDD[-N].tar.gz`` (and are listed in the JSONL with size and sha256)
before they are unlinked. If a commit fails after the write, the rows stay in the table and are
archived again next time (a duplicate in the archive, never a loss). A rerun that finds nothing
beyond the limits removes nothing and writes nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg

from include.analytics_ops.dates import pt_day_bounds

CHUNK = 5000
ARCHIVE_DIR = "archive"
_FILE_DATE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")
#: The files the project writes (subfolder → whole-name pattern); retention touches no others.
OWN_ARTIFACTS: dict[str, re.Pattern[str]] = {
    "sampling-proofs": re.compile(r"sampling-proof-\d{8}\.json"),
    "snapshots": re.compile(r"\d{4}-\d{2}-\d{2}\.json"),
    "reports": re.compile(r"cto-report-\d{8}\.(?:html|eml)"),
    "exports": re.compile(r"(?:metrics|projects)-weekly-\d{8}\.csv"),
}
REPO_ROOT = Path(__file__).resolve().parents[3]


class UnsafeArtifactsDir(ValueError):
    """ARTIFACTS_DIR points at a place retention must never clean."""


def check_artifacts_dir(artifacts: str | os.PathLike[str]) -> Path:
    """The resolved artifacts directory, or UnsafeArtifactsDir when it is ``/``, a home
    directory (the current user's, ``/root``, any ``/home/<name>``, any account's from the
    password database), the repository root or an ancestor of it."""
    path = Path(artifacts).expanduser().resolve()
    homes = {Path("/root"), Path.home().resolve()}
    try:
        import pwd

        homes |= {Path(e.pw_dir).resolve() for e in pwd.getpwall() if e.pw_dir}
    except (ImportError, OSError):
        pass
    if path == Path(path.anchor):
        raise UnsafeArtifactsDir(f"ARTIFACTS_DIR {artifacts!r} is the filesystem root")
    if path in homes or path.parent == Path("/home"):
        raise UnsafeArtifactsDir(f"ARTIFACTS_DIR {artifacts!r} is a home directory ({path})")
    if path == REPO_ROOT or path in REPO_ROOT.parents:
        raise UnsafeArtifactsDir(
            f"ARTIFACTS_DIR {artifacts!r} is the repository root or above it ({path})"
        )
    return path


@dataclass(frozen=True)
class RetentionPolicy:
    keep_job_events: int = 10_000
    keep_job_runs: int = 1_000
    max_age_days: int = 90

    def __post_init__(self) -> None:
        for name in ("keep_job_events", "keep_job_runs", "max_age_days"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"retention {name} must be >= 1, got {getattr(self, name)}")


@dataclass
class RetentionResult:
    cutoff: date
    removed: dict[str, int] = field(default_factory=dict)
    archive_file: Path | None = None
    artifact_archives: list[Path] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.removed.values())


def _json_default(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def archive_path(artifacts: str | os.PathLike[str], report_date: date) -> Path:
    return Path(artifacts) / ARCHIVE_DIR / f"archive-{report_date:%Y%m%d}.jsonl.gz"


def read_archive(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record of an archive file (all its gzip members)."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _append_records(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(
        json.dumps(r, default=_json_default, sort_keys=True) + "\n" for r in records
    ).encode("utf-8")
    with open(path, "ab") as raw:
        raw.write(gzip.compress(payload))
        raw.flush()
        os.fsync(raw.fileno())


def _newest_kept_boundary(conn: psycopg.Connection, table: str, keep: int) -> int | None:
    """Largest id to remove so that the newest ``keep`` rows stay (None: nothing to remove)."""
    row = conn.execute(
        f"SELECT id FROM {table} ORDER BY id DESC OFFSET %s LIMIT 1", (keep,)
    ).fetchone()
    return None if row is None else int(row[0])


def _drain(
    conn: psycopg.Connection,
    table: str,
    where: str,
    params: tuple[Any, ...],
    *,
    rule: str,
    archive: Path,
    artifacts: Path,
    report_date: date,
    run_id: str,
) -> int:
    """Delete matching rows chunk by chunk, archiving each chunk before its commit."""
    removed = 0
    while True:
        with conn.transaction():
            rows = conn.execute(
                f"""
                DELETE FROM {table} t WHERE t.id IN (
                    SELECT id FROM {table} WHERE {where} ORDER BY id LIMIT {CHUNK})
                RETURNING t.id, to_jsonb(t)
                """,
                params,
            ).fetchall()
            if not rows:
                return removed
            rows.sort(key=lambda r: r[0])
            _append_records(
                archive,
                [
                    {"source": table, "report_date": report_date, "rule": rule, "row": r[1]}
                    for r in rows
                ],
            )
            conn.execute(
                """
                INSERT INTO ops.archive_batches (run_id, report_date, source, rule, row_count,
                                                 min_key, max_key, archive_file)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                """,
                (
                    run_id,
                    report_date,
                    table,
                    rule,
                    len(rows),
                    str(rows[0][0]),
                    str(rows[-1][0]),
                    str(archive.relative_to(artifacts)),
                ),
            )
            removed += len(rows)


def file_date(name: str) -> date | None:
    """The date a file name carries (``...-20261123.csv``, ``2026-11-20.json``), if any."""
    for m in _FILE_DATE.finditer(name):
        try:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            continue
    return None


def old_artifacts(artifacts: Path, cutoff: date) -> list[Path]:
    """The project's own files (:data:`OWN_ARTIFACTS`) under ``artifacts`` dated before
    ``cutoff``: direct regular files of its subfolders, never a symlink, never another name."""
    found = []
    for sub, pattern in OWN_ARTIFACTS.items():
        folder = artifacts / sub
        if folder.is_symlink() or not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_symlink() or not path.is_file() or not pattern.fullmatch(path.name):
                continue
            day = file_date(path.name)
            if day is not None and day < cutoff:
                found.append(path)
    return found


def _archive_artifacts(
    conn: psycopg.Connection,
    files: list[Path],
    artifacts: Path,
    archive: Path,
    report_date: date,
    run_id: str,
    rule: str,
) -> Path:
    n = 1
    while True:
        suffix = "" if n == 1 else f"-{n}"
        tar_path = artifacts / ARCHIVE_DIR / f"artifacts-{report_date:%Y%m%d}{suffix}.tar.gz"
        if not tar_path.exists():
            break
        n += 1
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tar_path.with_name(f".{tar_path.name}.tmp")
    records = []
    with tarfile.open(tmp, "w:gz") as tar:
        for path in files:
            rel = path.relative_to(artifacts).as_posix()
            tar.add(path, arcname=rel)
            data = path.read_bytes()
            records.append(
                {
                    "source": "artifacts",
                    "report_date": report_date,
                    "rule": rule,
                    "row": {
                        "path": rel,
                        "bytes": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "tar": tar_path.relative_to(artifacts).as_posix(),
                    },
                }
            )
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, tar_path)
    with conn.transaction():
        _append_records(archive, records)
        conn.execute(
            """
            INSERT INTO ops.archive_batches (run_id, report_date, source, rule, row_count,
                                             min_key, max_key, archive_file)
            VALUES (%s, %s, 'artifacts', %s, %s, %s, %s, %s)
            """,
            (
                run_id,
                report_date,
                rule,
                len(files),
                records[0]["row"]["path"],
                records[-1]["row"]["path"],
                tar_path.relative_to(artifacts).as_posix(),
            ),
        )
    for path in files:
        path.unlink()
    return tar_path


def apply_retention(
    conn: psycopg.Connection,
    report_date: date,
    artifacts: str | os.PathLike[str],
    policy: RetentionPolicy | None = None,
    *,
    run_id: str = "manual",
) -> RetentionResult:
    """Apply the rules for the week whose report date is ``report_date``."""
    if not conn.autocommit:
        raise ValueError("apply_retention needs an autocommit connection (it commits per chunk)")
    policy = policy or RetentionPolicy()
    artifacts = check_artifacts_dir(artifacts)
    cutoff = report_date - timedelta(days=policy.max_age_days)
    cutoff_ts = pt_day_bounds(cutoff)[0]
    archive = archive_path(artifacts, report_date)
    result = RetentionResult(cutoff)
    common = {
        "archive": archive,
        "artifacts": artifacts,
        "report_date": report_date,
        "run_id": run_id,
    }

    for table, where, keep in (
        ("ops.job_events", "id <= %s", policy.keep_job_events),
        ("ops.job_runs", "id <= %s AND status <> 'running'", policy.keep_job_runs),
    ):
        boundary = _newest_kept_boundary(conn, table, keep)
        result.removed[table] = (
            0
            if boundary is None
            else _drain(conn, table, where, (boundary,), rule=f"keep newest {keep}", **common)
        )
    age_rule = f"older than {cutoff.isoformat()}"
    for table, where, rule in (
        ("ops.ledger_entries", "ts < %s", age_rule),
        (
            "ops.dead_letters",
            "resolved_at IS NOT NULL AND resolved_at < %s",
            f"resolved {age_rule}",
        ),
    ):
        result.removed[table] = _drain(conn, table, where, (cutoff_ts,), rule=rule, **common)
    files = old_artifacts(artifacts, cutoff)
    result.removed["artifacts"] = len(files)
    if files:
        result.artifact_archives.append(
            _archive_artifacts(conn, files, artifacts, archive, report_date, run_id, age_rule)
        )
    if result.total:
        result.archive_file = archive
    return result
