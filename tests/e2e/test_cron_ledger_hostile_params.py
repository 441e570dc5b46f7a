"""``airflow dags test cron_ledger`` with a ``ledger_paths`` param that names what a run must
never read (issue 15): ``collect_ledger`` fails before any work, says why in its failure alert,
nothing was read, and the run fails (the `ledger_collected` leaf carries the failed collection
into the run's state; the all_done watcher alone would have turned it green)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_a_ledger_paths_param_outside_the_roots_fails_before_any_work(dag_test, db, tmp_path):
    (tmp_path / "ladder.jsonl").write_text(
        '{"ts": "2026-11-20T04:30:00Z", "exit": 0, "msg": "ok"}\n'
    )
    env = {"LEDGER_PATHS": str(tmp_path / "*.jsonl"), "HEALTH_RUN_SOURCE": "job_runs"}
    # (never run this against the old collector: it reads /dev/zero until the worker dies)
    result = dag_test("cron_ledger", conf={"ledger_paths": f"/dev/zero,/{tmp_path}/../"}, env=env)
    out = result.stdout + result.stderr
    assert result.returncode != 0, "a failed collection must fail the run"
    assert "params.ledger_paths refused" in out and "/dev/zero: outside LEDGER_ROOTS" in out
    body = db.execute(
        "SELECT body FROM ops.alerts WHERE dedup_key = 'task_failed:cron_ledger:collect_ledger'"
    ).fetchone()[0]
    assert "AirflowFailException: params.ledger_paths refused: /dev/zero" in body
    assert db.execute("SELECT count(*) FROM ops.ledger_files").fetchone()[0] == 0
    tasks = dict(
        db.execute("SELECT task_id, status FROM ops.job_runs WHERE dag_id = 'cron_ledger'")
    )
    assert "collect_ledger" not in tasks  # refused before the attempt was even recorded
    # the same run with a path inside the roots (spelled with //) collects it once
    result = dag_test("cron_ledger", conf={"ledger_paths": f"/{tmp_path}/ladder.jsonl"}, env=env)
    assert result.returncode == 0, out[-3000:]
    sources = db.execute("SELECT source, job FROM ops.ledger_entries").fetchall()
    assert sources == [(str(tmp_path / "ladder.jsonl"), "ladder")]
