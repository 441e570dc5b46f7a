"""What ``make demo`` prints for ``analytics_weekly`` (the lead wires it into demo_steps.py)."""

from __future__ import annotations

from typing import Any

import psycopg

#: The run: Monday 2026-11-23 04:00 PST; the sample data ends on DEMO_DAY (Fri 2026-11-20), so
#: the demo pins the week to the seven days ending there (files are stamped 20261121).
DEMO_WHEN = "2026-11-23T12:00:00+00:00"
DEMO_CONF = {"week_ending": "2026-11-20"}


def summary_lines(conn: psycopg.Connection, env: Any = None) -> list[str]:
    """One line per task of the latest analytics_weekly run: status and where its output is."""
    run = conn.execute(
        "SELECT run_id FROM ops.job_runs WHERE dag_id = 'analytics_weekly' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if run is None:
        return ["analytics_weekly recorded no task attempts"]
    rows = conn.execute(
        """
        SELECT DISTINCT ON (task_id) task_id, status, coalesce(status_message, last_error, '')
          FROM ops.job_runs WHERE dag_id = 'analytics_weekly' AND run_id = %s
         ORDER BY task_id, try_number DESC
        """,
        (run[0],),
    ).fetchall()
    order = [
        "export_metrics_csv",
        "build_cto_report",
        "send_cto_report",
        "archive_old_records",
        "check_project_health",
    ]
    rows.sort(key=lambda r: order.index(r[0]) if r[0] in order else len(order))
    return [f"{task}: {status} — {message}" for task, status, message in rows]
