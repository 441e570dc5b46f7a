"""Fuzz: ledger lines into a real PostgreSQL. Every non-blank line is stored exactly once, is a
duplicate of a stored one, or is a dead letter with a reason — and nothing blocks later lines or
the next collection."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from include.analytics_ops.ledger import collect
from include.analytics_ops.ledger.collector import MAX_MESSAGE_CHARS, Limits
from tests.fuzz.bounded import bounded

pytestmark = pytest.mark.fuzz
EXAMPLES = 100  # derandomized: the same cases every run (tests/fuzz/bounded.py)

# Text as cron scripts and attackers write it: any code point, lone surrogates and NUL included.
# ... seeded with the pieces known to break parsers and sinks, so a bounded run meets them.
PIECES = ["\ud800", "\udfff", "\x00", "\r\n", "\u2028", "\x85", "<!channel>", "\\", '"', "é"]
ANY_TEXT = st.lists(
    st.text(st.characters(exclude_categories=()), max_size=30) | st.sampled_from(PIECES),
    max_size=5,
).map("".join)
CLEAN_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                     max_size=80)  # fmt: skip
OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
EDGE_MOMENTS = st.sampled_from([datetime.min, datetime.max]).flatmap(
    lambda d: OFFSETS.map(lambda tz: d.replace(tzinfo=tz))
)
MOMENTS = st.datetimes(datetime(1970, 1, 1), datetime(2100, 1, 1), timezones=OFFSETS)
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def valid_entry(draw) -> tuple[bytes, tuple]:
    """A line every collector must store, and what it must store."""
    ts = draw(MOMENTS)
    code = draw(st.integers(-(2**31), 2**31 - 1))
    msg = draw(CLEAN_TEXT | st.builds(lambda c, n: c * n, CLEAN_TEXT.filter(bool),
                                       st.integers(100, 3000)))  # fmt: skip
    job = draw(st.none() | CLEAN_TEXT.filter(lambda j: j.strip() and len(j) <= 200))
    entry = {"ts": ts.isoformat(), "exit": code, "msg": msg}
    if job is not None:
        entry["job"] = job
    raw = json.dumps(entry, ensure_ascii=draw(st.booleans())).encode("utf-8")
    return raw, (job or "fuzz", ts.astimezone(UTC), code, msg[:MAX_MESSAGE_CHARS])


@st.composite
def hostile_line(draw) -> bytes:
    """Anything: broken JSON, wrong types, escapes PostgreSQL refuses, random bytes."""
    kind = draw(st.sampled_from(["near", "near", "json", "entry", "bytes", "deep"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200)).replace(b"\n", b" ")
    if kind == "deep":
        return b"[" * draw(st.integers(1, 40_000))
    if kind == "near":  # well-formed, each field from its widest range (years 1-9999, ...)
        entry = {
            "ts": draw(st.datetimes(timezones=OFFSETS | st.none()) | EDGE_MOMENTS).isoformat(),
            "exit": draw(st.integers() | st.floats() | st.integers(-(2**31), 2**31 - 1)),
            "msg": draw(ANY_TEXT),
        }
        if draw(st.booleans()):
            entry["job"] = draw(ANY_TEXT)
        return json.dumps(entry, ensure_ascii=draw(st.booleans()), allow_nan=True).encode(
            "utf-8", "surrogatepass"
        )
    if kind == "json":
        return json.dumps(draw(ANY_JSON)).encode()
    entry = draw(st.fixed_dictionaries({}, optional={
        "ts": ANY_JSON | st.text(max_size=40) | MOMENTS.map(datetime.isoformat),
        "exit": ANY_JSON | st.integers(),
        "msg": ANY_JSON | ANY_TEXT,
        "job": ANY_JSON | ANY_TEXT,
    }))  # fmt: skip
    return json.dumps(entry).encode()  # ensure_ascii: lone surrogates become \ud800 escapes


LINES = st.lists(
    st.one_of(valid_entry().map(lambda v: (v[0], v[1])), hostile_line().map(lambda b: (b, None)),
              st.just((b"   ", None))),
    min_size=1, max_size=25,
)  # fmt: skip


def _reset(db) -> None:
    db.execute("TRUNCATE ops.ledger_entries, ops.ledger_files, ops.dead_letters, ops.alerts,"
               " ops.alert_events RESTART IDENTITY CASCADE")  # fmt: skip


@bounded(EXAMPLES)
@given(lines=LINES, cap=st.sampled_from([1024, 64 * 1024]))
def test_every_ledger_line_is_stored_once_or_a_dead_letter(db, lines, cap):
    _reset(db)
    limits = Limits(max_line_bytes=cap, max_bytes_per_run=10**9)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.jsonl"
        path.write_bytes(b"".join(raw + b"\n" for raw, _ in lines))
        result = collect(db, str(path), limits=limits, channels=[])
        assert result.errors == {} and result.refused == {}
        starts, pos = {}, 0
        for raw, expected in lines:
            starts[pos] = (raw, expected)
            pos += len(raw) + 1
        counted = [raw for raw, _ in lines if raw.strip()]
        stored = db.execute("SELECT job, ts, exit_code, message FROM ops.ledger_entries").fetchall()
        letters = db.execute(
            "SELECT reason, payload FROM ops.dead_letters WHERE stream = 'ledger'"
        ).fetchall()
        # every line accounted for exactly once
        assert result.lines == len(counted)
        assert result.inserted == len(stored) and result.malformed == len(letters)
        assert len(stored) + result.duplicates + len(letters) == len(counted)
        assert len(set(stored)) == len(stored)
        # a dead letter names a real line start and says why
        for reason, payload in letters:
            assert reason and payload["offset"] in starts and payload["path"] == str(path)
        # a valid line is stored, exactly as written (a long one within the cap)
        for raw, expected in lines:
            if expected is not None and len(raw) <= cap:
                assert expected in stored
        # the whole file was consumed and nothing is read twice
        assert db.execute("SELECT byte_offset FROM ops.ledger_files").fetchone()[0] == pos
        assert collect(db, str(path), limits=limits, channels=[]).lines == 0
