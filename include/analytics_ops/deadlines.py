"""Deadline Alert callbacks (Airflow 3's successor of SLA-miss callbacks) and the CLI that makes
sure every deadline Variable exists.

``on_deadline_missed`` runs in the triggerer (``AsyncCallback``), so it lives in the package, not a
DAG file. It receives ``context={"dag_run": <REST DagRun JSON>, "deadline": {...}}``. One alert per
missed run (``deadline_missed:<dag_id>:<run_id>``); the health evaluation in ``cron_ledger``
resolves it once the run has finished.

``VariableInterval`` has no default and a missing Variable breaks DagRun creation, so a fresh
deployment runs ``python -m include.analytics_ops.deadlines ensure-variables`` (compose init,
``make up``): it sets every missing ``deadline_<dag_id>_seconds`` Variable to its default from
``config.DEADLINE_DEFAULT_SECONDS`` and leaves existing values alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
# States in which a passed deadline is not news: a failed run already raised its failure alert
# (Airflow 3.3.2 still fires the deadline afterwards, #60927); a successful one made it in time.
_FINISHED_STATES = frozenset({"failed", "success"})


def deadline_key(dag_id: str, run_id: str | None) -> str:
    return f"deadline_missed:{dag_id}:{run_id}"


def record_deadline_miss(dag_id: str, context: Mapping[str, Any] | None, dsn: str | None = None):
    """Record the miss through the alert path; runs that already finished are ignored."""
    from include.analytics_ops import alerts, db
    from include.analytics_ops.callbacks import airflow_ui_url

    dag_run = dict((context or {}).get("dag_run") or {})
    deadline = dict((context or {}).get("deadline") or {})
    state = str(dag_run.get("state") or "").lower()
    run_id = dag_run.get("dag_run_id") or dag_run.get("run_id")
    if state in _FINISHED_STATES:
        log.info("deadline of %s %s passed after the run ended %s: no alert", dag_id, run_id, state)
        return None
    queued = dag_run.get("queued_at") or dag_run.get("start_date")
    with db.connect(dsn) as conn:
        return alerts.raise_alert(
            conn,
            dedup_key=deadline_key(dag_id, run_id),
            severity="critical",
            source="deadline",
            title=f"{dag_id} missed its deadline",
            body=f"run {run_id} (queued {queued}) was still {state or 'unfinished'}"
            f" at its deadline {deadline.get('deadline_time')}",
            dag_id=dag_id,
            run_id=run_id,
            url=airflow_ui_url(dag_id, run_id),
            details={"deadline": deadline, "run_state": state},
        )


async def on_deadline_missed(
    dag_id: str, context: Mapping[str, Any] | None = None, **_: Any
) -> None:
    await asyncio.to_thread(record_deadline_miss, dag_id, context)


# --------------------------------------------------------------------------- CLI
def _airflow_bin() -> str:
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else "airflow"


def existing_variables() -> set[str]:
    """Keys of the Variables stored in Airflow's metadata DB (``airflow variables list``)."""
    result = subprocess.run(
        [_airflow_bin(), "variables", "list", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    out = result.stdout.strip()
    start = out.find("[")  # tolerate log lines before the JSON
    rows = json.loads(out[start:]) if start >= 0 else []
    return {row["key"] for row in rows if isinstance(row, dict) and "key" in row}


def ensure_variables(dry_run: bool = False) -> dict[str, str]:
    """Set every missing ``deadline_<dag_id>_seconds`` Variable to its default; return the
    ones set (key -> seconds)."""
    from include.analytics_ops.config import DEADLINE_DEFAULT_SECONDS, deadline_variable

    present = existing_variables()
    missing = {
        deadline_variable(dag_id): str(seconds)
        for dag_id, seconds in DEADLINE_DEFAULT_SECONDS.items()
        if deadline_variable(dag_id) not in present
    }
    for key, value in missing.items():
        if not dry_run:
            subprocess.run(
                [_airflow_bin(), "variables", "set", key, value],
                capture_output=True,
                text=True,
                check=True,
            )
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.analytics_ops.deadlines")
    sub = parser.add_subparsers(dest="command", required=True)
    ensure = sub.add_parser(
        "ensure-variables", help="set missing deadline_<dag_id>_seconds Variables to defaults"
    )
    ensure.add_argument("--dry-run", action="store_true", help="only print what would be set")
    args = parser.parse_args(argv)
    if args.command == "ensure-variables":
        try:
            missing = ensure_variables(dry_run=args.dry_run)
        except subprocess.CalledProcessError as exc:
            print(f"airflow variables failed: {(exc.stderr or '')[-2000:]}", file=sys.stderr)
            return 1
        verb = "would set" if args.dry_run else "set"
        for key, value in missing.items():
            print(f"{verb} {key}={value}")
        if not missing:
            print("every deadline Variable exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
