"""Silences (maintenance windows) on the one alert path, with the real loopback webhook and SMTP
receivers: held back while active, delivered after if still news, nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.analytics_ops import alerts, silences
from tests.integration.receivers import alert_row as _alert


def test_a_silence_holds_news_until_it_ends_and_drops_what_stopped_being_news(db, receivers):
    hook, box = receivers.hook, receivers.box
    s = silences.add_silence(db, "health:dag:*", "scheduler upgrade", duration=timedelta(hours=1))
    assert s["active"] and s["created_by"]

    held = alerts.raise_alert(db, "health:dag:analytics_hourly", "warning", "job_health",
                              "analytics_hourly is LATE")  # fmt: skip
    assert (held.transition, held.notified, held.silenced_by) == ("opened", False, s["id"])
    # not covered by the silence: delivered as usual
    other = alerts.raise_alert(db, "ledger_failed:backup", "warning", "ledger", "backup exited 2")
    assert other.notified and other.silenced_by is None
    assert len(hook.texts()) == 1 and hook.texts()[0].startswith("[WARNING] backup exited 2")
    assert box.subjects() == ["[WARNING] backup exited 2"]

    row = _alert(db, "health:dag:analytics_hourly")
    assert (row["state"], row["held_kind"], row["last_notified_at"]) == ("open", "opened", None)
    note = db.execute(
        "SELECT e.channels -> 'silenced' FROM ops.alert_events e JOIN ops.alerts a"
        " ON a.id = e.alert_id WHERE a.dedup_key = 'health:dag:analytics_hourly'"
    ).fetchone()[0]
    assert note["silence_id"] == s["id"] and note["reason"] == "scheduler upgrade"

    # began and ended inside the window: nobody is told, before or after
    alerts.raise_alert(db, "health:dag:cron_ledger", "critical", "job_health", "cron_ledger DOWN")
    flap = alerts.resolve_alert(db, "health:dag:cron_ledger", "back up")
    assert flap.silenced_by == s["id"] and not flap.notified
    assert _alert(db, "health:dag:cron_ledger")["held_kind"] is None

    # still silenced: the reminder pass holds on
    assert alerts.send_due_reminders(db)["released"] == 0
    assert len(hook.posts) == 1

    assert silences.cancel_silence(db, s["id"]) is True
    assert alerts.send_due_reminders(db) == {"released": 1, "reminders": 0, "retries": 0}
    assert len(hook.posts) == 2 and box.subjects()[-1] == "[WARNING] analytics_hourly is LATE"
    assert "cron_ledger" not in " ".join(hook.texts())
    row = _alert(db, "health:dag:analytics_hourly")
    assert row["held_kind"] is None and row["last_notified_at"] is not None
    kinds = [k for (k,) in db.execute(
        "SELECT e.kind FROM ops.alert_events e JOIN ops.alerts a ON a.id = e.alert_id"
        " WHERE a.dedup_key = 'health:dag:analytics_hourly' ORDER BY e.id")]  # fmt: skip
    assert kinds == ["opened", "released"]
    assert alerts.send_due_reminders(db)["released"] == 0  # delivered once
    assert silences.cancel_silence(db, s["id"]) is False  # already over


def test_recovery_and_reminders_of_an_announced_alert_wait_for_the_silence(db, receivers):
    hook = receivers.hook
    alerts.raise_alert(db, "task_failed:inventory_refresh:refresh_client", "critical",
                       "task_failure", "refresh_client failed")  # fmt: skip
    assert len(hook.posts) == 1
    s = silences.add_silence(db, "task_failed:inventory_refresh:*", "vendor outage",
                             duration=timedelta(minutes=30))  # fmt: skip
    db.execute("UPDATE ops.alerts SET last_notified_at = now() - interval '5 hours'")
    assert alerts.send_due_reminders(db)["reminders"] == 0  # due, but silenced
    again = alerts.raise_alert(db, "task_failed:inventory_refresh:refresh_client", "critical",
                               "task_failure", "refresh_client failed")  # fmt: skip
    assert again.transition == "repeated" and not again.notified
    assert len(hook.posts) == 1

    gone = alerts.resolve_alert(db, "task_failed:inventory_refresh:refresh_client", "fixed")
    assert not gone.notified and gone.silenced_by == s["id"]
    assert _alert(db, "task_failed:inventory_refresh:refresh_client")["held_kind"] == "resolved"

    silences.cancel_silence(db, s["id"])
    assert alerts.send_due_reminders(db)["released"] == 1
    assert hook.texts()[-1].startswith("[RESOLVED]") and len(hook.posts) == 2


def test_reopened_inside_the_window_after_an_unsent_recovery_sends_nothing(db, receivers):
    hook = receivers.hook
    key = "health:dag:analytics_weekly"
    alerts.raise_alert(db, key, "warning", "job_health", "weekly LATE")
    s = silences.add_silence(db, key, "planned pause", duration=timedelta(hours=2))
    alerts.resolve_alert(db, key)
    alerts.raise_alert(db, key, "warning", "job_health", "weekly LATE")  # the channels' picture
    assert _alert(db, key)["held_kind"] is None
    silences.cancel_silence(db, s["id"])
    assert alerts.send_due_reminders(db)["released"] == 0
    assert len(hook.posts) == 1


def test_patterns_are_globs_with_like_metacharacters_taken_literally(db):
    silences.add_silence(db, "task_failed:a_b:*", "x", duration=timedelta(hours=1))
    silences.add_silence(db, "health:100%", "y", duration=timedelta(hours=1))
    assert silences.active_silence(db, "task_failed:a_b:load")["reason"] == "x"
    assert silences.active_silence(db, "task_failed:aXb:load") is None  # _ is not a wildcard
    assert silences.active_silence(db, "health:100%")["reason"] == "y"
    assert silences.active_silence(db, "health:1000") is None  # % is not a wildcard
    # a scheduled silence is not active yet
    later = datetime.now(UTC) + timedelta(hours=1)
    silences.add_silence(db, "ledger_failed:*", "tonight", starts_at=later,
                         duration=timedelta(hours=1))  # fmt: skip
    assert silences.active_silence(db, "ledger_failed:backup") is None
    assert [r["pattern"] for r in silences.list_silences(db)] == [
        "task_failed:a_b:*", "health:100%", "ledger_failed:*",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--match", "*", "--for", "1h", "--reason", "all"], "every alert"),
        (["--match", "health:*", "--for", "soon", "--reason", "r"], "duration must look like"),
        (["--match", "health:*", "--for", "40d", "--reason", "r"], "at most 31 days"),
        (["--match", "health:*", "--until", "2026-01-01T00:00:00", "--reason", "r"], "UTC offset"),
        (
            [
                "--match",
                "health:*",
                "--start",
                "2020-01-01T00:00:00Z",
                "--until",
                "2020-01-02T00:00:00Z",
                "--reason",
                "r",
            ],
            "already be over",
        ),
        (["--match", "health:*", "--until", "2020-01-01T00:00:00Z", "--reason", "r"], "end after"),
        (["--match", "health:*", "--for", "1h", "--reason", "  "], "reason must say why"),
    ],
)
def test_cli_refuses_bad_silences_before_writing(db, pg_dsn, capsys, args, message):
    assert silences.main(["--dsn", pg_dsn, "add", *args]) == 2
    assert message in capsys.readouterr().err
    assert db.execute("SELECT count(*) FROM ops.alert_silences").fetchone()[0] == 0


def test_cli_add_list_cancel(db, pg_dsn, capsys):
    assert silences.main(["--dsn", pg_dsn, "add", "--match", "ledger_failed:*", "--for", "90m",
                          "--reason", "log rotation fix"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "silence #1 created" in out and "ACTIVE" in out and "log rotation fix" in out
    row = silences.get_silence(db, 1)
    assert timedelta(minutes=89) < row["ends_at"] - row["starts_at"] <= timedelta(minutes=90)
    assert silences.main(["--dsn", pg_dsn, "list"]) == 0
    assert "ledger_failed:*" in capsys.readouterr().out
    assert silences.main(["--dsn", pg_dsn, "cancel", "1"]) == 0
    assert silences.main(["--dsn", pg_dsn, "cancel", "1"]) == 1
    assert silences.main(["--dsn", pg_dsn, "list"]) == 0
    assert capsys.readouterr().out.strip().endswith("no silences")
    assert silences.main(["--dsn", pg_dsn, "list", "--all"]) == 0
    assert "cancelled" in capsys.readouterr().out
