"""The fuzz tier: Hypothesis over every parser that takes outside text, asserting the promise each
makes — stored exactly once, or refused with a reason; never a crash that blocks later input.

Bounded and deterministic by default (profile ``fuzz``: a fixed number of examples per test,
derandomized, no example database written into the repo), so the tier costs well under a minute
and cannot turn red on a random day. ``FUZZ_PROFILE=explore`` runs ten times as many random
examples when hunting for new bugs; ``--hypothesis-show-statistics`` prints how many ran.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,  # the 2-core machine is shared: time is bounded by example counts
    "database": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
settings.register_profile("fuzz", max_examples=100, derandomize=True, **_COMMON)
settings.register_profile("explore", max_examples=1000, **_COMMON)
settings.load_profile(os.environ.get("FUZZ_PROFILE", "fuzz"))
