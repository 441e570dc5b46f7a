"""Flap detection on the one alert path, with the real loopback webhook and SMTP receivers: a
condition that keeps opening and resolving sends one FLAPPING message, then nothing until it
settles, then its settled state once."""

from __future__ import annotations

from include.analytics_ops import alerts
from tests.integration.receivers import alert_row

KEY = "ledger_failed:sync_orders"


def _flip(
    db, times: int, severity: str = "warning", first: str = "raise"
) -> list[alerts.AlertOutcome]:
    """``times`` alternating raises and resolves, the first one being ``first``."""
    out = []
    for i in range(times):
        if (i % 2 == 0) == (first == "raise"):
            out.append(alerts.raise_alert(db, KEY, severity, "ledger", "sync_orders exited 1",
                                          "exit code 1: upstream timeout"))  # fmt: skip
        else:
            out.append(alerts.resolve_alert(db, KEY, "exit 0"))
    return out


def _age_events(db, minutes: int) -> None:
    db.execute(
        "UPDATE ops.alert_events SET occurred_at = occurred_at - make_interval(mins => %s)",
        (minutes,),
    )


def test_flapping_sends_once_pauses_then_sends_the_settled_state(db, receivers):
    hook, box = receivers.hook, receivers.box
    outcomes = _flip(db, 5)
    assert [o.notified for o in outcomes] == [True] * 5
    assert [o.flapping for o in outcomes] == [False] * 4 + [True]
    assert len(hook.posts) == 5
    assert hook.texts()[-1].startswith("[FLAPPING WARNING] sync_orders exited 1")
    assert "5 opens/resolves in 60 min" in hook.texts()[-1]
    assert box.subjects()[-1] == "[FLAPPING WARNING] sync_orders exited 1"
    assert alert_row(db, KEY)["flapping_since"] is not None

    # it keeps flapping: nothing more is sent, the alert itself stays exact
    more = _flip(db, 4, first="resolve")
    assert [o.transition for o in more] == ["resolved", "reopened", "resolved", "reopened"]
    assert not any(o.notified for o in more) and all(o.flapping for o in more)
    assert len(hook.posts) == 5
    alerts.resolve_alert(db, KEY, "exit 0")
    row = alert_row(db, KEY)
    assert (row["state"], row["held_kind"]) == ("resolved", "resolved")
    assert alerts.send_due_reminders(db)["released"] == 0  # changed just now: still flapping

    # stable for a whole window: the settled state goes out once
    _age_events(db, 61)
    assert alerts.send_due_reminders(db)["released"] == 1
    assert hook.texts()[-1].startswith("[RESOLVED] sync_orders exited 1")
    assert "No longer flapping (no change for 60 min): resolved." in hook.texts()[-1]
    row = alert_row(db, KEY)
    assert row["flapping_since"] is None and row["held_kind"] is None
    assert alerts.send_due_reminders(db)["released"] == 0
    kinds = [k for (k,) in db.execute("SELECT kind FROM ops.alert_events ORDER BY id")]
    assert kinds[-1] == "released" and kinds.count("released") == 1

    # a single new failure afterwards is ordinary news again
    again = alerts.raise_alert(db, KEY, "warning", "ledger", "sync_orders exited 1")
    assert again.notified and not again.flapping and len(hook.posts) == 7


def test_a_flapping_critical_alert_gets_no_reminders_and_settles_open(db, receivers):
    hook = receivers.hook
    _flip(db, 5, severity="critical")
    assert hook.texts()[-1].startswith("[FLAPPING CRITICAL]")
    db.execute("UPDATE ops.alerts SET last_notified_at = now() - interval '5 hours'")
    assert alerts.send_due_reminders(db)["reminders"] == 0  # flapping: no reminder
    repeat = alerts.raise_alert(db, KEY, "critical", "ledger", "sync_orders exited 1")
    assert repeat.transition == "repeated" and not repeat.notified
    _age_events(db, 61)
    sent = alerts.send_due_reminders(db)
    assert sent["released"] == 1 and sent["reminders"] == 0  # just told: no reminder on top
    assert hook.texts()[-1].startswith("[CRITICAL] sync_orders exited 1")
    assert "No longer flapping (no change for 60 min): still open." in hook.texts()[-1]


def test_flap_detection_can_be_turned_off_and_tuned(db, receivers, monkeypatch):
    monkeypatch.setenv("ALERT_FLAP_CHANGES", "0")
    assert all(o.notified and not o.flapping for o in _flip(db, 7))
    assert len(receivers.hook.posts) == 7

    monkeypatch.setenv("ALERT_FLAP_CHANGES", "3")
    monkeypatch.setenv("ALERT_FLAP_WINDOW_SECONDS", "600")
    _age_events(db, 11)  # the 7 earlier changes fell out of the 10-minute window
    outcomes = _flip(db, 2, first="resolve")  # it was left open
    assert [o.transition for o in outcomes] == ["resolved", "reopened"]
    assert not any(o.flapping for o in outcomes)  # only 2 changes in the window so far
    last = alerts.resolve_alert(db, KEY, "exit 0")
    assert last.flapping and "3 opens/resolves in 10 min" in receivers.hook.texts()[-1]
