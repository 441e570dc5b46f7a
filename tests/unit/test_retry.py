"""The one retry policy (include/analytics_ops/retry.py): hint parsing, backoff, cap, attempts and
the time budget. Nothing sleeps for real: the sleep and the clock are injected."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from include.analytics_ops import retry
from include.analytics_ops.ingest.posthog import retry_after_seconds

NOW = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC).timestamp()


class Flaky(Exception):
    def __init__(self, hint: float | None = None, limited: bool = True) -> None:
        super().__init__("flaky")
        self.hint = hint
        self.limited = limited


class Fatal(Exception):
    pass


def failing(errors: list[BaseException], result: str = "ok"):
    """A call that raises ``errors`` in turn, then returns ``result``; counts its calls."""
    calls = []

    def call() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return result

    call.calls = calls  # type: ignore[attr-defined]
    return call


class GaveUp(Exception):
    def __init__(self, reason: str, wait: float, attempts: int) -> None:
        super().__init__(reason)
        self.reason, self.wait, self.attempts = reason, wait, attempts


def give_up(exc: BaseException, reason: str, wait: float, attempts: int):
    raise GaveUp(reason, wait, attempts) from exc


def make(sleeps: list[float], **kwargs):
    kwargs.setdefault("retry_if", lambda exc: isinstance(exc, Flaky))
    kwargs.setdefault("hint", lambda exc: getattr(exc, "hint", None))
    kwargs.setdefault("limited", lambda exc: getattr(exc, "limited", True))
    return retry.policy(sleep=sleeps.append, give_up=give_up, **kwargs)


# ---------------------------------------------------------------- Retry-After and PostHog hints
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-3", 0.0),  # never negative
        (format_datetime(datetime(2026, 12, 1, 10, 0, 42, tzinfo=UTC), usegmt=True), 42.0),
        ("Tue, 01 Dec 2026 10:01:00 -0000", 60.0),  # -0000 is UTC
        ("Tue, 01 Dec 2026 09:00:00 GMT", 0.0),  # a date in the past: no wait
        (None, None),
        ("", None),
        ("   ", None),
        ("soon", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(value, expected):
    assert retry.parse_retry_after(value, now=lambda: NOW) == expected


def test_posthog_hint_takes_retry_after_then_the_throttle_detail_else_none():
    throttled = {"detail": "Request was throttled. Expected available in 1200 seconds."}
    assert retry_after_seconds({"retry-after": "7"}, throttled) == 7
    assert retry_after_seconds({"retry-after": "later"}, throttled) == 1200
    assert retry_after_seconds({}, {"detail": "Expected available in 1.5 second"}) == 1.5
    future = format_datetime(datetime.now(UTC).replace(microsecond=0), usegmt=True)
    assert 0 <= retry_after_seconds({"retry-after": future}, None) <= 1
    assert retry_after_seconds({}, {"detail": "Exceeded maximum concurrency limit: 3"}) is None
    assert retry_after_seconds({}, None) is None
    assert retry_after_seconds({}, "not a dict") is None


# ---------------------------------------------------------------- backoff
def test_backoff_doubles_up_to_the_cap():
    waits = [retry.backoff(a, 1.0, 10.0, "none") for a in range(1, 7)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    rng = random.Random(3)
    full = [retry.backoff(a, 1.0, 10.0, "full", rng) for a in range(1, 40)]
    assert all(0 <= w <= min(10.0, 2 ** (a - 1)) for a, w in enumerate(full, 1))
    assert max(full) > 5  # jitter spreads up to the cap
    half = [retry.backoff(a, 1.0, 10.0, "half", rng) for a in range(1, 40)]
    assert all(
        min(10.0, 2 ** (a - 1)) / 2 <= w <= min(10.0, 2 ** (a - 1)) for a, w in enumerate(half, 1)
    )


# ---------------------------------------------------------------- the policy
def test_backs_off_exponentially_with_a_cap_then_succeeds():
    sleeps: list[float] = []
    call = failing([Flaky() for _ in range(5)])
    assert make(sleeps, max_attempts=10, base=0.5, cap=3.0, jitter="none")(call) == "ok"
    assert sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert len(call.calls) == 6


def test_the_upstream_hint_replaces_the_backoff():
    sleeps: list[float] = []
    call = failing([Flaky(hint=30.0), Flaky(), Flaky(hint=0.0)])
    assert make(sleeps, max_attempts=5, base=1.0, jitter="none")(call) == "ok"
    assert sleeps == [30.0, 2.0, 0.0]


def test_max_attempts_gives_up_without_a_last_wait():
    sleeps: list[float] = []
    call = failing([Flaky() for _ in range(10)])
    with pytest.raises(GaveUp) as info:
        make(sleeps, max_attempts=3, base=1.0, jitter="none")(call)
    assert (info.value.reason, info.value.attempts) == ("attempts", 3)
    assert len(call.calls) == 3 and sleeps == [1.0, 2.0]


def test_failures_that_are_not_limited_never_stop_the_policy():
    # e.g. PostHog's 429s: bounded by the budget only. They still count as attempts (as the
    # clients always counted them), so the first limited failure past max_attempts stops.
    sleeps: list[float] = []
    call = failing([Flaky(hint=1.0, limited=False) for _ in range(6)] + [Flaky(), Flaky()])
    with pytest.raises(GaveUp) as info:
        make(sleeps, max_attempts=3, base=1.0, jitter="none")(call)
    assert (info.value.reason, info.value.attempts) == ("attempts", 7)
    assert len(call.calls) == 7 and sleeps == [1.0] * 6


def test_a_wait_past_the_budget_gives_up_before_sleeping():
    sleeps: list[float] = []
    now = [100.0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    call = failing([Flaky() for _ in range(10)])
    policy = retry.policy(
        retry_if=lambda exc: isinstance(exc, Flaky),
        base=4.0,
        jitter="none",
        deadline=120.0,
        clock=lambda: now[0],
        give_up=give_up,
        sleep=sleep,
    )
    with pytest.raises(GaveUp) as info:
        policy(call)
    # 100 + 4 + 8 = 112; the next wait (16) would end at 128 > 120
    assert sleeps == [4.0, 8.0]
    assert (info.value.reason, info.value.wait, info.value.attempts) == ("budget", 16.0, 3)


def test_a_failure_not_worth_retrying_is_raised_at_once():
    sleeps: list[float] = []
    call = failing([Flaky(), Fatal("no")])
    with pytest.raises(Fatal):
        make(sleeps, max_attempts=5, base=1.0, jitter="none")(call)
    assert sleeps == [1.0] and len(call.calls) == 2


def test_without_give_up_the_last_failure_is_raised_and_before_sleep_sees_each_wait():
    seen: list[tuple[str, float, int]] = []
    sleeps: list[float] = []
    policy = retry.policy(
        retry_if=lambda exc: isinstance(exc, Flaky),
        max_attempts=3,
        base=1.0,
        jitter="none",
        before_sleep=lambda exc, wait, attempts: seen.append((str(exc), wait, attempts)),
        sleep=sleeps.append,
    )
    with pytest.raises(Flaky):
        policy(failing([Flaky() for _ in range(5)]))
    assert seen == [("flaky", 1.0, 1), ("flaky", 2.0, 2)] and sleeps == [1.0, 2.0]


def test_the_async_policy_awaits_the_injected_sleep():
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    errors = [Flaky(), Flaky(hint=5.0)]

    async def call() -> str:
        if errors:
            raise errors.pop(0)
        return "ok"

    policy = retry.policy(
        retry_if=lambda exc: isinstance(exc, Flaky),
        max_attempts=3,
        base=1.0,
        jitter="none",
        hint=lambda exc: exc.hint,
        sleep=sleep,
        asynchronous=True,
    )
    assert asyncio.run(policy(call)) == "ok"
    assert sleeps == [1.0, 5.0]
