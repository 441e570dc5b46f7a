"""Fuzz: every DAG's manual-run params through the validation its tasks run first. A value
Airflow's Param schema lets through is either accepted — and then usable as it is (PostgreSQL
takes it, a path is a regular file under the roots) — or refused with the DAG's own clear error;
never another exception half-way through a run."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime

import pytest
from airflow.sdk.exceptions import AirflowFailException
from hypothesis import given
from hypothesis import strategies as st

from include.analytics_ops import dates
from include.analytics_ops.inventory.jobs import InvalidRefreshParams, parse_params
from include.analytics_ops.ledger.collector import resolve_paths
from include.analytics_ops.operators.ingest import resolve_window
from include.analytics_ops.operators.monitoring import _paths_param
from include.analytics_ops.reports.window import InvalidWeeklyParams, validate_params, window_for
from tests.fuzz.bounded import bounded

pytestmark = pytest.mark.fuzz
EXAMPLES = 100  # derandomized: the same cases every run (tests/fuzz/bounded.py)

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
PIECES = ["\x00", "\ud800", "\n", "2026-11-20", "2026-11-20T10:00:00Z", "24:00", "T", "Z",
          "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "+14:00", " ", "-", "/", "..",
          "*"]  # fmt: skip
TEXT = st.lists(
    st.text(st.characters(exclude_categories=()), max_size=12) | st.sampled_from(PIECES),
    max_size=4,
).map("".join)
DATE_TEXT = (
    TEXT
    | st.dates().map(date.isoformat)
    | st.datetimes(timezones=st.timezones()).map(datetime.isoformat)
)
ANY = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
                   lambda i: st.lists(i, max_size=3) | st.dictionaries(TEXT, i, max_size=3),
                   max_leaves=6)  # fmt: skip


@bounded(EXAMPLES)
@given(value=st.none() | DATE_TEXT | ANY)
def test_nightly_target_date(value):
    try:
        day = dates.parse_date_param(value, "target_date")
    except ValueError as exc:
        assert "target_date" in str(exc)
        return
    assert day is None or isinstance(day, date)


@bounded(EXAMPLES)
@given(week_ending=st.none() | DATE_TEXT | ANY, resend=st.booleans() | ANY)
def test_weekly_params(week_ending, resend):
    try:
        validate_params({"week_ending": week_ending, "resend_email": resend})
        window = window_for(NOW, week_ending)
    except InvalidWeeklyParams as exc:
        assert str(exc)
        return
    assert window.start <= window.end < NOW.date()


@bounded(EXAMPLES)
@given(start=st.none() | DATE_TEXT, end=st.none() | DATE_TEXT)
def test_hourly_window_params(start, end):
    try:
        window = resolve_window({"window_start": start, "window_end": end}, None, None, NOW)
    except ValueError as exc:
        assert str(exc)
        return
    assert window.start.tzinfo is not None and window.end.tzinfo is not None


@bounded(EXAMPLES)
@given(client_ids=st.none() | st.lists(TEXT, max_size=4) | ANY,
       platforms=st.none() | st.lists(st.sampled_from(["shopify", "amazon", "all"]) | TEXT,
                                      max_size=4) | ANY)  # fmt: skip
def test_inventory_params(db, client_ids, platforms):
    try:
        ids, chosen = parse_params({"client_ids": client_ids, "platforms": platforms})
    except InvalidRefreshParams as exc:
        assert str(exc)
        return
    assert chosen and set(chosen) <= {"shopify", "amazon", "all"}
    if ids is not None:  # what the task then asks PostgreSQL about
        assert db.execute("SELECT cardinality(%s::text[])", (ids,)).fetchone()[0] == len(ids)


@pytest.fixture(scope="module")
def ledger_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ledger-root")
    (root / "ladder.jsonl").write_text("")
    (root / "sub").mkdir()
    os.mkfifo(root / "pipe.jsonl")
    os.symlink("/etc/passwd", root / "passwd.jsonl")
    return root


@bounded(EXAMPLES)
@given(data=st.data())
def test_cron_ledger_paths(ledger_root, monkeypatch, data):
    pieces = [str(ledger_root), "/", "//", "..", "*", "ladder.jsonl", "sub", "pipe.jsonl",
              "passwd.jsonl", "/dev/zero", "/etc", ",", "~", "\x00", "\n"]  # fmt: skip
    value = "".join(data.draw(st.lists(st.sampled_from(pieces) | TEXT, min_size=1, max_size=6)))
    monkeypatch.setenv("LEDGER_PATHS", str(ledger_root / "*.jsonl"))
    monkeypatch.delenv("LEDGER_ROOTS", raising=False)
    try:
        paths, roots = _paths_param({"params": {"ledger_paths": value}}, None)
    except AirflowFailException as exc:
        assert "ledger_paths" in str(exc)
        return
    assert roots == [str(ledger_root)]
    if value == "":  # no param: the configured LEDGER_PATHS, whose refusals are reported per path
        assert paths == str(ledger_root / "*.jsonl")
        return
    for real, _given, refused in resolve_paths(paths, roots):
        assert refused is None
        assert os.path.commonpath([real, str(ledger_root)]) == str(ledger_root)
        assert not os.path.exists(real) or (os.path.isfile(real) and not os.path.islink(real))
