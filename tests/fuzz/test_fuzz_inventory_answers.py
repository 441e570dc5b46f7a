"""Fuzz: inventory-analytics answers through ``inventory.api.parse_refresh_payload``. Any JSON
body gives counts or an error text — never an exception — and what it gives fits the columns of
``analytics.inventory_refresh_results`` (checked by PostgreSQL itself)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from include.analytics_ops.inventory.api import parse_refresh_payload
from tests.fuzz.bounded import bounded

pytestmark = pytest.mark.fuzz
EXAMPLES = 100  # derandomized: the same cases every run (tests/fuzz/bounded.py)

KEYS = ["success", "status", "error", "message", "platforms_count", "total_skus", "sku_count",
        "skus", "platforms", "summary", "data", "sku_analysis"]  # fmt: skip
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20) | st.sampled_from(["error", "failed", "ok", ""])
    | st.sampled_from([-1, 2**31, 2.0**31, 1e300, 10**30])  # counts no column can hold
)  # fmt: skip
BODY = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=12,
)


@bounded(EXAMPLES)
@given(platform=st.sampled_from(["shopify", "amazon", "all"]), body=BODY)
def test_every_answer_gives_storable_counts_or_an_error(db, platform, body):
    platforms, skus, error = parse_refresh_payload(platform, body)
    if error is not None:
        assert isinstance(error, str) and error and (platforms, skus) == (None, None)
        return
    db.execute(
        "CREATE TEMP TABLE IF NOT EXISTS fuzz_refresh"
        " (LIKE analytics.inventory_refresh_results INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    with db.transaction():
        db.execute(
            "INSERT INTO fuzz_refresh (run_id, client_id, platform, status, skus, platforms)"
            " VALUES ('r', 'c', %s, 'success', %s, %s)",
            (platform, skus, platforms),
        )
        db.execute("TRUNCATE fuzz_refresh")
    assert isinstance(platforms, int) and platforms >= 0
    assert skus is None or skus >= 0
