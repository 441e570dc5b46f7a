"""``airflow dags test analytics_weekly`` end to end: CSV, report, email to a real SMTP receiver
on loopback, retention and the project health check, for Monday 2026-11-23 04:00 PST."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from include.sandbox.demo_steps import weekly as demo
from include.sandbox.samples import weekly as sample
from tests.integration.test_weekly_email import SmtpReceiver, check_report_email

pytestmark = pytest.mark.e2e

MONDAY = "2026-11-23T12:00:00+00:00"  # Mon 04:00 PST
TASKS = {
    "export_metrics_csv",
    "build_cto_report",
    "send_cto_report",
    "archive_old_records",
    "check_project_health",
}


def test_weekly_dag_runs_end_to_end(db, dag_test, tmp_path):
    sample.load_weekly_sample(db, date(2026, 11, 22), hostile=True)
    for i in range(40):  # more job events than the (lowered) limit keeps
        db.execute("INSERT INTO ops.job_events (event_type, message) VALUES ('x', %s)", (f"e{i}",))
    artifacts = tmp_path / "artifacts"
    old = artifacts / "snapshots" / "2026-08-01.json"
    old.parent.mkdir(parents=True)
    old.write_text("{}")
    with SmtpReceiver() as rx:
        result = dag_test(
            "analytics_weekly",
            MONDAY,
            env={
                "ARTIFACTS_DIR": str(artifacts),
                "REPORT_EMAILS": "cto@acme.test, eng@acme.test",
                "EMAIL_FROM": "analytics@acme.test",
                "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(rx.airflow_conn()),
                "RETENTION_KEEP_JOB_EVENTS": "25",
            },
        )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "s3cret-pass" not in result.stdout + result.stderr

    csv_path = artifacts / "exports" / "metrics-weekly-20261123.csv"
    html_path = artifacts / "reports" / "cto-report-20261123.html"
    assert csv_path.is_file() and html_path.is_file()
    assert len(csv_path.read_text().splitlines()) == 8  # header + 7 days
    assert (artifacts / "exports" / "projects-weekly-20261123.csv").is_file()

    # the same receiver also gets the alert channel's mails (project health alerts)
    reports = [m for m in rx.messages if b"X-Report: analytics-ops cto-report" in m.data]
    assert len(reports) == 1
    assert reports[0].mail_from == "analytics@acme.test"
    assert reports[0].rcpt_tos == ["cto@acme.test", "eng@acme.test"]
    parts = check_report_email(reports[0].data)
    revenue = db.execute(
        "SELECT sum(revenue) FROM analytics.daily_metrics"
        " WHERE metric_date BETWEEN '2026-11-16' AND '2026-11-22'"
    ).fetchone()[0]
    assert f"${float(revenue):,.0f}" in parts["html"]

    runs = dict(
        db.execute(
            "SELECT task_id, status FROM ops.job_runs WHERE dag_id = 'analytics_weekly'"
        ).fetchall()
    )
    assert runs == dict.fromkeys(TASKS, "completed")
    assert not old.exists()
    assert (artifacts / "archive" / "archive-20261123.jsonl.gz").is_file()
    assert db.execute("SELECT count(*) FROM ops.job_events").fetchone()[0] <= 26
    alerts = dict(
        db.execute(
            "SELECT dedup_key, severity FROM ops.alerts WHERE source = 'project_health'"
        ).fetchall()
    )
    assert alerts["project_health:evil/hyperlink"] == "critical"
    assert alerts["project_health:acme/mobile-app"] == "warning"
    assert "project_health:acme/data-pipeline" not in alerts


def test_weekly_dag_without_recipients_still_builds_the_report(db, dag_test, tmp_path):
    sample.load_weekly_sample(db, date(2026, 11, 22))
    artifacts = tmp_path / "artifacts"
    result = dag_test(
        "analytics_weekly", MONDAY, env={"ARTIFACTS_DIR": str(artifacts), "REPORT_EMAILS": ""}
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    html = artifacts / "reports" / "cto-report-20261123.html"
    assert html.is_file()
    msg = db.execute(
        "SELECT status_message FROM ops.job_runs WHERE task_id = 'send_cto_report'"
    ).fetchone()[0]
    assert "REPORT_EMAILS is not set" in msg and str(html) in msg
    lines = demo.summary_lines(db)  # what `make demo` prints
    assert [line.split(":")[0] for line in lines] == [
        "export_metrics_csv",
        "build_cto_report",
        "send_cto_report",
        "archive_old_records",
        "check_project_health",
    ]
    assert "metrics-weekly-20261123.csv" in lines[0] and str(html) in lines[1]


def test_bad_week_ending_fails_before_any_work(db, dag_test, tmp_path):
    result = dag_test(
        "analytics_weekly",
        MONDAY,
        # passes Param's JSON schema (a date), refused by the DAG's own check: not a past day
        conf={"week_ending": "2026-11-23"},
        env={"ARTIFACTS_DIR": str(tmp_path)},
    )
    assert result.returncode != 0
    assert "is not a complete day yet" in result.stdout + result.stderr
    assert not any(Path(tmp_path).rglob("*.csv"))
    assert db.execute("SELECT count(*) FROM ops.job_runs").fetchone()[0] == 0
