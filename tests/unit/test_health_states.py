"""``monitoring.health.evaluate``: healthchecks-style states, on DST days and around midnight PT."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from include.analytics_ops.monitoring import jobs
from include.analytics_ops.monitoring.evaluate import artifact_due
from include.analytics_ops.monitoring.health import RunRecord, evaluate
from include.analytics_ops.monitoring.schedule import next_tick

PT = ZoneInfo("America/Los_Angeles")
JOBS = {j.name: j for j in jobs.DAG_JOBS}
NIGHTLY, HOURLY, INVENTORY = (
    JOBS["analytics_nightly"],
    JOBS["analytics_hourly"],
    JOBS["inventory_refresh"],
)


def pt(*args: int) -> datetime:
    return datetime(*args, tzinfo=PT)


def ok(tick: datetime, minutes: int = 20) -> RunRecord:
    return RunRecord(f"scheduled__{tick.isoformat()}", "success", tick, tick,
                     tick + timedelta(minutes=minutes))  # fmt: skip


def failed(tick: datetime) -> RunRecord:
    return RunRecord(f"scheduled__{tick.isoformat()}", "failed", tick, tick,
                     tick + timedelta(minutes=5))  # fmt: skip


def state_at(job, runs, now: datetime, **kw) -> str:
    return evaluate(job, runs, now.astimezone(UTC), **kw).state


def test_a_nightly_job_that_ran_on_time_is_up_then_late_then_down():
    runs = [ok(pt(2026, 11, 20, 2))]
    st = evaluate(NIGHTLY, runs, pt(2026, 11, 21, 1, 0))
    assert st.state == "up"
    assert st.next_expected == pt(2026, 11, 21, 2).astimezone(UTC)
    assert st.last_success == pt(2026, 11, 20, 2)
    assert state_at(NIGHTLY, runs, pt(2026, 11, 21, 3, 29)) == "up"  # within 90 min grace
    late = evaluate(NIGHTLY, runs, pt(2026, 11, 21, 3, 31))
    assert late.state == "late" and "expected by 2026-11-21 10:00 UTC" in late.reason
    assert state_at(NIGHTLY, runs, pt(2026, 11, 21, 5, 59)) == "late"
    assert state_at(NIGHTLY, runs, pt(2026, 11, 21, 6, 1)) == "down"
    # the run for the new tick arrives: up again
    assert state_at(NIGHTLY, [*runs, ok(pt(2026, 11, 21, 2))], pt(2026, 11, 21, 6, 2)) == "up"


def test_spring_forward_day_expects_the_0200_run_at_0300_pdt():
    # 2026-03-08: 02:00 PST does not exist; Airflow runs the 02:00 job at 03:00 PDT (10:00 UTC).
    runs = [ok(pt(2026, 3, 7, 2))]
    st = evaluate(NIGHTLY, runs, pt(2026, 3, 8, 4, 29))
    assert st.next_expected == datetime(2026, 3, 8, 10, 0, tzinfo=UTC)
    assert st.state == "up"  # late only at 03:00 PDT + 90 min = 04:30 PDT
    assert state_at(NIGHTLY, runs, pt(2026, 3, 8, 4, 31)) == "late"
    # after the spring-forward run, the next tick is 02:00 PDT = 09:00 UTC: 23 h later
    runs = [ok(datetime(2026, 3, 8, 10, 0, tzinfo=UTC))]
    st = evaluate(NIGHTLY, runs, pt(2026, 3, 9, 3, 29))
    assert (st.state, st.next_expected) == ("up", datetime(2026, 3, 9, 9, 0, tzinfo=UTC))
    assert state_at(NIGHTLY, runs, pt(2026, 3, 9, 3, 31)) == "late"


def test_fall_back_day_waits_25_hours_without_a_false_late():
    # 2026-11-01: 02:00 PST comes 25 h after 02:00 PDT the day before.
    runs = [ok(pt(2026, 10, 31, 2))]
    st = evaluate(NIGHTLY, runs, pt(2026, 11, 1, 3, 0))
    assert st.next_expected == datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    assert st.state == "up"
    assert state_at(NIGHTLY, runs, pt(2026, 11, 1, 3, 31)) == "late"


def test_fall_back_hour_repeats_without_a_double_tick():
    after_first_0130 = datetime(2026, 11, 1, 8, 30, tzinfo=UTC)  # 01:30 PDT
    nxt = next_tick("30 1 * * *", "America/Los_Angeles", after_first_0130)
    assert nxt == datetime(2026, 11, 2, 9, 30, tzinfo=UTC)  # not 01:30 PST an hour later


def test_around_midnight_pt_the_two_hourly_job():
    runs = [ok(pt(2026, 11, 20, 22))]  # 22:00 PST = 06:00 UTC the next day
    st = evaluate(INVENTORY, runs, pt(2026, 11, 20, 23, 59))
    assert (st.state, st.next_expected) == ("up", pt(2026, 11, 21, 0).astimezone(UTC))
    assert state_at(INVENTORY, runs, pt(2026, 11, 21, 0, 59)) == "up"
    assert state_at(INVENTORY, runs, pt(2026, 11, 21, 1, 1)) == "late"
    assert state_at(INVENTORY, runs, pt(2026, 11, 21, 3, 1)) == "down"


def test_hourly_job_is_down_after_two_missed_ticks():
    runs = [ok(datetime(2026, 11, 20, 10, tzinfo=UTC), minutes=5)]
    at = lambda h, m: datetime(2026, 11, 20, h, m, tzinfo=UTC)  # noqa: E731
    assert state_at(HOURLY, runs, at(11, 29)) == "up"
    assert state_at(HOURLY, runs, at(11, 31)) == "late"
    down = evaluate(HOURLY, runs, at(12, 31))
    assert down.state == "down" and "2 ticks missed" in down.reason
    assert down.details["missed_ticks"] == 2


def test_a_run_exceeding_max_runtime_is_stuck():
    tick = pt(2026, 11, 21, 2)
    running = RunRecord("scheduled__x", "running", tick, tick, None)
    runs = [ok(pt(2026, 11, 20, 2)), running]
    assert state_at(NIGHTLY, runs, tick + timedelta(minutes=60)) == "up"
    assert state_at(NIGHTLY, runs, tick + timedelta(minutes=119)) == "late"  # overdue, not stuck
    st = evaluate(NIGHTLY, runs, tick + timedelta(minutes=121))
    assert st.state == "stuck" and "max runtime 2.0 h" in st.reason
    assert st.details["stuck_run"] == "scheduled__x"


def test_paused_beats_everything_and_failures_count():
    runs = [ok(pt(2026, 11, 10, 2))]
    assert state_at(NIGHTLY, runs, pt(2026, 11, 21, 9), paused=True) == "paused"
    three = [ok(pt(2026, 11, 17, 2)), *(failed(pt(2026, 11, d, 2)) for d in (18, 19, 20))]
    st = evaluate(NIGHTLY, three, pt(2026, 11, 20, 2, 30))
    assert st.state == "down" and "3 consecutive failed runs" in st.reason
    assert st.details["consecutive_failures"] == 3
    assert st.details["runs_7d"] == 4 and st.details["success_rate_7d"] == 25.0


def test_a_job_that_never_ran_is_unknown_until_overdue():
    seen = pt(2026, 11, 20, 12)
    assert state_at(NIGHTLY, [], pt(2026, 11, 20, 13), first_seen=seen) == "unknown"
    assert state_at(NIGHTLY, [], pt(2026, 11, 21, 4), first_seen=seen) == "late"
    assert state_at(NIGHTLY, [], pt(2026, 11, 21, 7), first_seen=seen) == "down"


def test_ledger_interval_is_inferred_from_entries_or_configured():
    t0 = datetime(2026, 11, 20, tzinfo=UTC)
    stamps = [t0 + timedelta(minutes=5 * i) for i in range(6)]
    job, origin = jobs.ledger_job("ladder", stamps)
    assert (job.interval, origin) == (timedelta(minutes=5), "inferred")
    runs = [RunRecord(s.isoformat(), "success", s, s, s) for s in stamps]
    last = stamps[-1]
    assert state_at(job, runs, last + timedelta(minutes=19)) == "up"  # 5 min + 15 min grace
    assert state_at(job, runs, last + timedelta(minutes=21)) == "late"
    assert state_at(job, runs, last + timedelta(minutes=31)) == "down"  # 3 intervals + grace
    job, origin = jobs.ledger_job("ladder", stamps, {"schedule": "0 3 * * *", "tz": "UTC"})
    assert (job.schedule, origin) == ("0 3 * * *", "configured")


def test_artifacts_are_due_at_0330_pt_for_yesterday():
    due, day, nxt = artifact_due(pt(2026, 11, 21, 0, 30).astimezone(UTC))  # after midnight PT
    assert (due, day.isoformat()) == (pt(2026, 11, 20, 3, 30).astimezone(UTC), "2026-11-19")
    due, day, _ = artifact_due(pt(2026, 11, 21, 3, 31))
    assert day.isoformat() == "2026-11-20"
    _, day, nxt = artifact_due(pt(2026, 3, 8, 3, 31))  # spring-forward day
    assert day.isoformat() == "2026-03-07" and nxt == pt(2026, 3, 9, 3, 30).astimezone(UTC)


def test_overrides_apply_to_the_registry():
    job = jobs.dag_jobs({"analytics_nightly": {"grace_seconds": 3600, "enabled": True}})[0]
    assert job.grace == timedelta(hours=1)
    assert len(jobs.dag_jobs({"cron_ledger": {"enabled": False}})) == 4
    with pytest.raises(ValueError):
        evaluate(NIGHTLY, [], datetime(2026, 11, 20))  # naive "now" is refused
