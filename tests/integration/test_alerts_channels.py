"""The alert path end to end: a real Slack-style webhook receiver (http.server) and a real SMTP
receiver (aiosmtpd), both on loopback, configured through the ``alerts_slack`` / ``smtp_default``
connections exactly as in production."""

from __future__ import annotations

import json
from types import SimpleNamespace

from include.analytics_ops import alerts, callbacks
from include.analytics_ops.deadlines import record_deadline_miss
from tests.integration.receivers import alert_row as _alert
from tests.integration.receivers import free_port


def test_an_alert_reaches_slack_and_email_once_and_its_recovery_too(db, receivers):
    hook, box = receivers.hook, receivers.box
    url = callbacks.airflow_ui_url("analytics_nightly", "scheduled__2026-11-21T10:00:00+00:00",
                                   "capture_snapshot")  # fmt: skip
    first = alerts.raise_alert(
        db, "task_failed:analytics_nightly:capture_snapshot", "critical", "task_failure",
        "analytics_nightly.capture_snapshot failed", "KeyError: 'revenue'",
        dag_id="analytics_nightly", run_id="scheduled__2026-11-21T10:00:00+00:00",
        task_id="capture_snapshot", url=url,
    )  # fmt: skip
    assert first.transition == "opened" and first.notified
    assert len(hook.posts) == 1 and len(box.messages) == 1
    text = hook.texts()[0]
    assert "[CRITICAL] analytics_nightly.capture_snapshot failed" in text
    assert "KeyError: 'revenue'" in text and "task: capture_snapshot" in text
    assert f"<{url}|Open in Airflow>" in text
    rcpts, mail = box.messages[0]
    assert sorted(rcpts) == ["cto@example.com", "oncall@example.com"]
    assert mail["Subject"] == "[CRITICAL] analytics_nightly.capture_snapshot failed"
    body = mail.get_payload(decode=True).decode()
    assert url in body and "run: scheduled__2026-11-21T10:00:00+00:00" in body
    row = _alert(db, first.dedup_key)
    assert {k: v["ok"] for k, v in row["channels"].items()} == {
        "log": True, "slack": True, "email": True,
    }  # fmt: skip
    assert row["channels"]["slack"]["status"] == 200

    # the same condition on the next run: counted, not sent again
    again = alerts.raise_alert(db, first.dedup_key, "critical", "task_failure",
                               "analytics_nightly.capture_snapshot failed")  # fmt: skip
    assert (again.transition, again.count, again.notified) == ("repeated", 2, False)
    assert len(hook.posts) == 1 and len(box.messages) == 1

    # resolution sends a recovery to both
    resolved = alerts.resolve_alert(db, first.dedup_key, "run succeeded at 03:05")
    assert resolved.transition == "resolved" and resolved.notified
    assert len(hook.posts) == 2 and box.subjects()[-1].startswith("[RESOLVED]")
    assert "run succeeded at 03:05" in hook.texts()[-1]
    events = db.execute(
        "SELECT kind, channels ? 'slack', channels ? 'email' FROM ops.alert_events ORDER BY id"
    ).fetchall()
    assert events == [("opened", True, True), ("repeated", False, False), ("resolved", True, True)]


def test_a_failing_channel_keeps_the_alert_and_the_other_channel_is_served(db, receivers):
    hook, box = receivers.hook, receivers.box
    hook.status = 500
    outcome = alerts.raise_alert(db, "ledger_failed:backup", "warning", "ledger",
                                 "cron job backup exited 2", "exit code 2: disk full")  # fmt: skip
    assert outcome.transition == "opened"
    assert len(hook.posts) == 1  # tried
    assert box.subjects() == ["[WARNING] cron job backup exited 2"]  # still served
    row = _alert(db, "ledger_failed:backup")
    assert row["state"] == "open" and row["delivery_failed"] is True
    assert row["channels"]["slack"]["ok"] is False and row["channels"]["slack"]["status"] == 500
    assert "HTTP 500" in row["channels"]["slack"]["error"]
    assert row["channels"]["email"]["ok"] is True

    # the next reminder pass retries only the failed channel
    hook.status = 200
    sent = alerts.send_due_reminders(db)
    assert sent == {"released": 0, "reminders": 0, "retries": 1}
    assert len(hook.posts) == 2 and len(box.messages) == 1
    row = _alert(db, "ledger_failed:backup")
    assert row["delivery_failed"] is False and row["channels"]["slack"]["ok"] is True
    assert alerts.send_due_reminders(db) == {"released": 0, "reminders": 0, "retries": 0}


def test_an_unreachable_channel_never_loses_the_alert(db, receivers, monkeypatch):
    dead = f"http://127.0.0.1:{free_port()}/x"  # nothing listens there
    monkeypatch.setenv(
        "AIRFLOW_CONN_ALERTS_SLACK", json.dumps({"conn_type": "slackwebhook", "password": dead})
    )
    outcome = alerts.raise_alert(db, "k", "critical", "test", "broken")
    assert outcome.transition == "opened"
    row = _alert(db, "k")
    assert (
        row["channels"]["slack"]["ok"] is False and "Connect" in row["channels"]["slack"]["error"]
    )
    assert len(receivers.box.messages) == 1


def test_reminders_for_still_open_critical_alerts_and_escalation(db, receivers):
    hook = receivers.hook
    alerts.raise_alert(db, "health:dag:analytics_hourly", "warning", "job_health", "hourly LATE")
    assert len(hook.posts) == 1
    up = alerts.raise_alert(db, "health:dag:analytics_hourly", "critical", "job_health",
                            "hourly DOWN")  # fmt: skip
    assert up.transition == "escalated" and len(hook.posts) == 2
    assert hook.texts()[-1].startswith("[ESCALATED CRITICAL] hourly DOWN")
    # not due yet
    assert alerts.send_due_reminders(db)["reminders"] == 0
    db.execute("UPDATE ops.alerts SET last_notified_at = now() - interval '5 hours'")
    assert alerts.send_due_reminders(db)["reminders"] == 1
    assert hook.texts()[-1].startswith("[REMINDER CRITICAL] hourly DOWN")
    assert alerts.send_due_reminders(db)["reminders"] == 0  # reminded just now
    # a repeated raise is also a reminder once due
    db.execute("UPDATE ops.alerts SET last_notified_at = now() - interval '5 hours'")
    again = alerts.raise_alert(db, "health:dag:analytics_hourly", "critical", "job_health",
                               "hourly DOWN")  # fmt: skip
    assert again.transition == "repeated" and again.deliveries["slack"]["kind"] == "reminder"
    assert _alert(db, "health:dag:analytics_hourly")["notify_count"] == 4


def test_info_alerts_are_recorded_but_not_sent(db, receivers):
    outcome = alerts.raise_alert(db, "note", "info", "test", "FYI")
    assert outcome.transition == "opened" and not outcome.notified
    assert receivers.hook.posts == [] and receivers.box.messages == []
    assert alerts.resolve_alert(db, "note").notified is False  # never told: no recovery either


def _ti(dag_id, task_id, run_id, try_number=3):
    return SimpleNamespace(dag_id=dag_id, task_id=task_id, run_id=run_id,
                           try_number=try_number, map_index=-1)  # fmt: skip


def test_task_failure_callback_escalates_on_the_third_consecutive_failure(db, receivers):
    hook = receivers.hook
    for day in (19, 20, 21):
        run_id = f"scheduled__2026-11-{day}T10:00:00+00:00"
        callbacks.on_task_failure(
            {"ti": _ti("analytics_nightly", "run_checks", run_id),
             "exception": RuntimeError(f"boom {day}")}
        )  # fmt: skip
    row = _alert(db, "task_failed:analytics_nightly:run_checks")
    assert (row["severity"], row["count"]) == ("critical", 3)
    assert "3 consecutive failures" in row["title"]
    assert row["details"]["consecutive_failures"] == 3
    assert row["url"].endswith(
        "/runs/scheduled__2026-11-21T10%3A00%3A00%2B00%3A00/tasks/run_checks"
    )
    # opened (warning) + escalated (critical): the 2nd failure was only counted
    assert [t.splitlines()[0] for t in hook.texts()] == [
        "[WARNING] analytics_nightly.run_checks failed",
        "[ESCALATED CRITICAL] analytics_nightly.run_checks failed (3 consecutive failures)",
    ]
    assert "RuntimeError: boom 21" in hook.texts()[-1]
    # the DAG-level callback records the run's failure without a second message
    callbacks.on_dag_failure(
        {"dag": SimpleNamespace(dag_id="analytics_nightly"),
         "run_id": "scheduled__2026-11-21T10:00:00+00:00", "reason": "task_failure",
         "ti": _ti("analytics_nightly", "run_checks", "scheduled__2026-11-21T10:00:00+00:00")}
    )  # fmt: skip
    dag_row = _alert(db, "dag_failed:analytics_nightly")
    assert dag_row["state"] == "open" and dag_row["last_notified_at"] is None
    assert len(hook.posts) == 2


def test_deadline_miss_is_one_alert_per_run_and_ignores_finished_runs(db, receivers):
    ctx = {"dag_run": {"dag_run_id": "manual__1", "state": "running"},
           "deadline": {"id": "d1", "deadline_time": "2026-11-21T11:30:00+00:00"}}  # fmt: skip
    first = record_deadline_miss("analytics_nightly", ctx)
    assert first.transition == "opened" and first.notified
    assert "missed its deadline" in receivers.hook.texts()[0]
    record_deadline_miss("analytics_nightly", ctx)  # fired twice: still one alert, one message
    assert len(receivers.hook.posts) == 1
    assert db.execute("SELECT count(*) FROM ops.alerts").fetchone()[0] == 1
    failed = {"dag_run": {"dag_run_id": "manual__2", "state": "failed"}, "deadline": {}}
    assert record_deadline_miss("analytics_nightly", failed) is None  # #60927
    assert db.execute("SELECT count(*) FROM ops.alerts").fetchone()[0] == 1
