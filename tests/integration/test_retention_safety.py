"""Weekly retention only ever deletes files the project wrote, and refuses dangerous roots."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from include.analytics_ops.reports.retention import (
    REPO_ROOT,
    RetentionPolicy,
    UnsafeArtifactsDir,
    apply_retention,
    check_artifacts_dir,
)

REPORT_DATE = date(2026, 11, 23)
POLICY = RetentionPolicy(max_age_days=90)  # cut-off 2026-08-25


def test_only_the_projects_own_old_files_are_removed(db, tmp_path):
    art = tmp_path / "artifacts"
    files = {
        # ours and old → removed
        "exports/metrics-weekly-20260803.csv": True,
        "exports/projects-weekly-20260803.csv": True,
        "snapshots/2026-08-20.json": True,
        "sampling-proofs/sampling-proof-20260801.json": True,
        "reports/cto-report-20260803.html": True,
        "reports/cto-report-20260803.eml": True,
        # dated and old, but not ours → kept
        "backups/db-2020-01-01.sql.gz": False,
        "photos/IMG_20190704.jpg": False,
        "snapshots/notes-2020-01-01.txt": False,
        "exports/metrics-weekly-20260803.csv.bak": False,
        "exports/nested/metrics-weekly-20260803.csv": False,
        "2019-01-01.json": False,
        "archive/archive-20200101.jsonl.gz": False,
    }
    for rel in files:
        (art / rel).parent.mkdir(parents=True, exist_ok=True)
        (art / rel).write_text(rel)
    outside = tmp_path / "elsewhere-2020-01-01.json"
    outside.write_text("not ours")
    (art / "snapshots" / "2020-01-02.json").symlink_to(outside)  # a symlink is never followed
    result = apply_retention(db, REPORT_DATE, art, POLICY, run_id="r1")
    assert result.removed["artifacts"] == 6
    for rel, removed in files.items():
        assert (art / rel).exists() != removed, rel
    assert outside.exists() and (art / "snapshots" / "2020-01-02.json").is_symlink()


@pytest.mark.parametrize(
    "where",
    ["/", str(Path.home()), "~", "/root", "/home/someone", str(REPO_ROOT), str(REPO_ROOT.parent)],
)
def test_a_dangerous_artifacts_dir_is_refused_before_anything_is_removed(db, where):
    for message in ("older", "newer"):  # one beyond keep_job_events=1
        db.execute("INSERT INTO ops.job_events (event_type, message) VALUES ('x', %s)", (message,))
    with pytest.raises(UnsafeArtifactsDir):
        apply_retention(db, REPORT_DATE, where, RetentionPolicy(keep_job_events=1), run_id="r")
    with pytest.raises(UnsafeArtifactsDir):
        check_artifacts_dir(where)
    assert db.execute("SELECT count(*) FROM ops.job_events").fetchone()[0] == 2


def test_a_symlink_to_the_repo_root_is_refused_too(tmp_path):
    link = tmp_path / "art"
    os.symlink(REPO_ROOT, link)
    with pytest.raises(UnsafeArtifactsDir, match="repository root"):
        check_artifacts_dir(link)
    assert check_artifacts_dir(REPO_ROOT / "artifacts") == REPO_ROOT / "artifacts"
