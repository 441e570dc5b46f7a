"""Hypothesis settings for the fuzz tier: a fixed number of cases, derandomized (no flakes, the
same cases every run), no example database, no deadline (real PostgreSQL/HTTP per case)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def bounded(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
