"""The one retry policy of every upstream client (PostHog, GitHub, inventory), on ``tenacity``.

:func:`policy` builds a ``tenacity.Retrying`` (or ``AsyncRetrying``): exponential backoff with
jitter and a cap, a maximum number of attempts and/or a time budget (an absolute ``deadline`` on
``clock``), and a wait that honours the upstream's own hint when it gives one. What is worth
retrying, which failures use up an attempt, what the hint is and what to raise when the policy
gives up stay with each API, as small functions of the exception an attempt raised.

:func:`parse_retry_after` is the only ``Retry-After`` parser of the package (seconds or HTTP date).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Literal, NoReturn

import tenacity

Jitter = Literal["full", "half", "none"]


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date, never negative);
    None when absent or unreadable."""
    value = value.strip() if value else ""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now())


def backoff(
    attempt: int, base: float, cap: float, jitter: Jitter, rng: random.Random | None = None
) -> float:
    """Wait after failed ``attempt`` (1-based): ``min(cap, base * 2**(attempt-1))``, with full
    jitter (uniform from 0), half jitter (uniform from half) or none."""
    raw = min(cap, base * 2 ** max(0, attempt - 1))
    if jitter == "full":
        return (rng or random).uniform(0, raw)
    if jitter == "half":
        return raw * (rng or random).uniform(0.5, 1.0)
    return raw


def policy(
    *,
    retry_if: Callable[[BaseException], bool],
    max_attempts: int | None = None,
    limited: Callable[[BaseException], bool] = lambda exc: True,
    base: float = 1.0,
    cap: float = math.inf,
    jitter: Jitter = "full",
    hint: Callable[[BaseException], float | None] = lambda exc: None,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    give_up: Callable[[BaseException, str, float, int], NoReturn] | None = None,
    before_sleep: Callable[[BaseException, float, int], None] | None = None,
    sleep: Callable[[float], object] = time.sleep,
    rng: random.Random | None = None,
    asynchronous: bool = False,
) -> tenacity.BaseRetrying:
    """A ``tenacity`` retrier for one call.

    - ``retry_if(exc)``: is this failure worth another attempt (else it is raised at once);
    - ``max_attempts``: failures for which ``limited(exc)`` is true stop the policy once
      ``max_attempts`` attempts were made (None: only the budget bounds them);
    - the wait is ``hint(exc)`` when not None, else :func:`backoff` (``base``, ``cap``, ``jitter``);
    - ``deadline`` (on ``clock``): a wait that would end past it stops the policy;
    - ``give_up(exc, reason, wait, attempts)`` raises the API's own error when the policy stops
      (reason 'attempts' or 'budget'); without it the last failure is re-raised;
    - ``before_sleep(exc, wait, attempts)`` runs before each wait (logging, stats);
    - ``sleep`` does the waiting (inject it in tests; a coroutine function when ``asynchronous``).
    """

    def _exc(rs: tenacity.RetryCallState) -> BaseException:
        exc = rs.outcome.exception() if rs.outcome is not None else None
        assert exc is not None  # only failures are retried
        return exc

    def _out_of_attempts(rs: tenacity.RetryCallState) -> bool:
        return max_attempts is not None and limited(_exc(rs)) and rs.attempt_number >= max_attempts

    def _wait(rs: tenacity.RetryCallState) -> float:
        if _out_of_attempts(rs):
            return 0.0  # no wait follows: the hint and the jitter are not drawn
        hinted = hint(_exc(rs))
        if hinted is not None:
            return hinted
        return backoff(rs.attempt_number, base, cap, jitter, rng)

    stopped: dict[str, str] = {}

    def _stop(rs: tenacity.RetryCallState) -> bool:
        if _out_of_attempts(rs):
            stopped["reason"] = "attempts"
        elif deadline is not None and clock() + rs.upcoming_sleep > deadline:
            stopped["reason"] = "budget"
        else:
            return False
        return True

    def _on_stop(rs: tenacity.RetryCallState) -> NoReturn:
        exc = _exc(rs)
        if give_up is not None:
            give_up(exc, stopped["reason"], rs.upcoming_sleep, rs.attempt_number)
        raise exc

    def _before_sleep(rs: tenacity.RetryCallState) -> None:
        if before_sleep is not None:
            before_sleep(_exc(rs), rs.upcoming_sleep, rs.attempt_number)

    cls = tenacity.AsyncRetrying if asynchronous else tenacity.Retrying
    return cls(
        sleep=sleep,
        retry=tenacity.retry_if_exception(retry_if),
        stop=_stop,
        wait=_wait,
        retry_error_callback=_on_stop,
        before_sleep=_before_sleep,
    )
