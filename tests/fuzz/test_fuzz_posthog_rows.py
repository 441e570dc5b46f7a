"""Fuzz: PostHog Query API rows through ``ingest.validation``. Each row is a load tuple or a
dead letter with a reason — never an exception — and both are storable in PostgreSQL as they
are: an accepted row goes into ``analytics.posthog_events``' column types, a refused row's
payload into ``ops.dead_letters.payload`` (jsonb)."""

from __future__ import annotations

import json
import uuid as uuidlib

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from include.analytics_ops.ingest import validation
from include.analytics_ops.store import jsonb
from tests.fuzz.bounded import bounded

pytestmark = pytest.mark.fuzz
EXAMPLES = 100  # derandomized: the same cases every run (tests/fuzz/bounded.py)

PIECES = ["\x00", "\\u0000", "\\ud800", "\ud800", "<!channel>", "\r\n", "é", '"', "\\"]
TEXT = st.lists(
    st.text(st.characters(exclude_categories=()), max_size=20) | st.sampled_from(PIECES),
    max_size=4,
).map("".join)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
UUIDS = st.uuids().map(str) | TEXT | st.sampled_from(["{12345678-1234-5678-1234-567812345678}"])
MOMENTS = st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()) | TEXT
PROPS = (
    st.dictionaries(TEXT, JSON, max_size=4).map(json.dumps)
    | st.dictionaries(TEXT, JSON, max_size=4)
    | JSON.map(lambda v: json.dumps(v, allow_nan=True))
    | TEXT
    | JSON
)
EVENTS = st.sampled_from(["$pageview", "listing_viewed", "lead_submitted"]) | TEXT
ROW = st.tuples(UUIDS, EVENTS, TEXT, MOMENTS, MOMENTS, PROPS, st.integers() | JSON)
RULES = validation.Rules(
    required={"lead_submitted": ("listing_id",)}, numeric={"listing_viewed": ("price",)}
)

_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS fuzz_events (uuid uuid, event text, distinct_id text,"
    " ts timestamptz, created_at timestamptz, properties jsonb)"
)


@bounded(EXAMPLES)
@given(rows=st.lists(ROW | st.lists(JSON, max_size=8).map(tuple), min_size=1, max_size=20))
def test_every_posthog_row_is_valid_or_a_dead_letter_and_storable(db, rows):
    good, bad = validation.split_rows(rows, validation.COLUMNS, RULES)
    assert len(good) + len(bad) == len(rows)
    for _payload, reason, _key in bad:
        assert isinstance(reason, str) and reason
    db.execute(_STAGE)
    with db.transaction():
        for uid, event, distinct, ts, created, props in good:
            db.execute(
                "INSERT INTO fuzz_events VALUES (%s, %s, %s, %s, %s, %s::jsonb)",
                (uuidlib.UUID(bytes=uid), event, distinct, ts, created,
                 validation.jsonb_text(props)),
            )  # fmt: skip
        for payload, _reason, _key in bad:
            db.execute("SELECT %s::jsonb", (jsonb(payload),))
        db.execute("TRUNCATE fuzz_events")


def test_the_fuzz_target_catches_an_unstorable_row(db):
    """The invariant above is not vacuous: a row PostgreSQL refuses makes it fail."""
    db.execute(_STAGE)
    with pytest.raises(psycopg.DataError):
        db.execute('INSERT INTO fuzz_events (properties) VALUES (\'{"a": "\\u0000"}\'::jsonb)')
