"""Pure parts of the PostHog ingest: row validation, wait hints, windows, settings."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from include.analytics_ops.ingest.config import EventMapping, IngestConfig, parse_instant
from include.analytics_ops.ingest.loader import (
    Window,
    WindowError,
    WindowNotSettled,
    ensure_settled,
)
from include.analytics_ops.ingest.posthog import (
    backoff_seconds,
    base_url_from_connection,
    retry_after_seconds,
)
from include.analytics_ops.ingest.validation import (
    COLUMNS,
    Rules,
    check_row,
    jsonb_text,
    split_rows,
    uuid_text,
)
from include.analytics_ops.operators.ingest import resolve_window

IDX = {c: i for i, c in enumerate(COLUMNS)}
RULES = Rules({"purchase": ("revenue", "order_id")}, {"purchase": ("revenue",)}, 1000, 5000)
UUID = "0192f0c1-8a2b-7c3d-9e4f-a1b2c3d4e5f6"


def row(**over):
    base = {
        "uuid": UUID,
        "event": "purchase",
        "distinct_id": "seeker-1",
        "timestamp": "2026-11-20T10:00:00.123Z",
        "created_at": "2026-11-20T10:00:05.000456Z",
        "properties": '{"revenue": 12.5, "order_id": "o-1"}',
        "created_ms": 2000,
    }
    base.update(over)
    return [base[c] for c in COLUMNS]


def test_a_good_row_becomes_wire_ready_load_tuple():
    good, reason = check_row(row(), IDX, RULES)
    assert reason is None
    assert uuid_text(good[0]) == UUID and good[1:3] == ("purchase", "seeker-1")
    assert good[3] == datetime(2026, 11, 20, 10, 0, 0, 123000, tzinfo=UTC)
    assert good[4].microsecond == 456 and good[4].tzinfo is not None
    assert good[5][:1] == b"\x01" and jsonb_text(good[5]) == '{"revenue": 12.5, "order_id": "o-1"}'


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"uuid": None}, "missing uuid"),
        ({"uuid": "not-a-uuid"}, "invalid uuid 'not-a-uuid'"),
        ({"event": ""}, "missing or invalid event name"),
        ({"distinct_id": None}, "missing or invalid distinct_id"),
        ({"timestamp": "2026-13-45T25:61:00Z"}, "unparseable timestamp '2026-13-45T25:61:00Z'"),
        ({"created_at": 17}, "unparseable created_at '17'"),
        ({"created_ms": 5000}, "created_at outside the requested window"),
        ({"properties": '{"revenue": 1, "order_id"'}, "unparseable properties JSON"),
        ({"properties": "[1, 2]"}, "properties must be a JSON object, got list"),
        ({"properties": '{"a": "\\u0000"}'}, "properties contain \\u0000"),
        ({"properties": '{"order_id": "o"}'}, "missing required property 'revenue'"),
        ({"properties": '{"order_id": "o", "revenue": "12"}'}, "property 'revenue' of event"),
        # lone surrogates: not UTF-8, so PostgreSQL can store neither the row nor its text
        ({"event": "purchase\ud800"}, "'event' is not valid Unicode"),
        ({"event": "pur\x00chase"}, "NUL character in 'event'"),
        ({"distinct_id": "\udfffseeker"}, "'distinct_id' is not valid Unicode"),
        ({"properties": {"revenue": 1, "order_id": "o\ud800"}}, "'properties' is not valid"),
        ({"properties": {"\ud800": 1}}, "'properties' is not valid Unicode"),
        ({"properties": '{"revenue": 1, "order_id": "\ud800"}'}, "'properties' is not valid"),
    ],
)
def test_bad_rows_get_a_reason_instead_of_raising(override, reason):
    good, got = check_row(row(**override), IDX, RULES)
    assert good is None and got.startswith(reason), got


@pytest.mark.parametrize(
    ("props", "reason"),
    [
        ('{"revenue": 1e15, "order_id": "o-1"}', "outside the configured range [-1e+06, 1e+06]"),
        ('{"revenue": -5000000, "order_id": "o-1"}', "outside the configured range"),
        ('{"revenue": 1e400, "order_id": "o-1"}', "unparseable properties JSON"),
    ],
)
def test_numeric_values_must_be_finite_and_in_range(props, reason):
    rules = Rules(RULES.required, RULES.numeric, 1000, 5000, ranges=IngestConfig().ranges)
    good, why = check_row(row(properties=props), IDX, rules)
    assert good is None and reason in why
    ok, none = check_row(row(properties='{"revenue": 999999.99, "order_id": "o-1"}'), IDX, rules)
    assert ok is not None and none is None


def test_numeric_ranges_are_configuration(monkeypatch):
    monkeypatch.setenv("POSTHOG_NUMERIC_RANGES", '{"purchase": {"revenue": [0, 50]}}')
    cfg = IngestConfig.from_settings()
    assert cfg.ranges == {"purchase": {"revenue": (0.0, 50.0)}}
    rules = Rules(RULES.required, RULES.numeric, 1000, 5000, ranges=cfg.ranges)
    good, why = check_row(row(properties='{"revenue": 51, "order_id": "o-1"}'), IDX, rules)
    assert good is None and "range [0, 50]" in why


def test_required_properties_apply_per_event_type_and_dicts_are_accepted():
    good, reason = check_row(row(event="$pageview", properties={"x": 1}), IDX, RULES)
    assert reason is None and jsonb_text(good[5]) == '{"x":1}'


def test_split_rows_keeps_payload_and_uuid_of_dead_letters():
    rows = [
        row(),
        row(uuid="0192f0c1-8a2b-7c3d-9e4f-a1b2c3d4e5f7", timestamp="bad"),
        row(uuid=None),
    ]
    good, bad = split_rows(rows, list(COLUMNS), RULES)
    assert len(good) == 1 and len(bad) == 2
    payload, reason, key = bad[0]
    assert payload["timestamp"] == "bad" and key.endswith("f7") and "timestamp" in reason
    assert bad[1][2] is None and bad[1][1] == "missing uuid"
    with pytest.raises(ValueError, match="lacks columns"):
        split_rows(rows, ["uuid"], RULES)


def test_wait_hint_prefers_retry_after_then_the_throttle_detail():
    body = {"detail": "Request was throttled. Expected available in 2202 seconds."}
    assert retry_after_seconds({"retry-after": "7"}, body) == 7
    assert retry_after_seconds({}, body) == 2202
    assert retry_after_seconds({}, {"detail": "Exceeded maximum concurrency limit: 3"}) is None
    rng = random.Random(1)
    waits = [backoff_seconds(a, 1.0, 30.0, rng) for a in range(10)]
    assert all(0 <= w <= min(30.0, 2**a) for a, w in enumerate(waits))


def test_host_may_carry_scheme_and_port():
    assert base_url_from_connection("http://127.0.0.1:8811/") == "http://127.0.0.1:8811"
    assert base_url_from_connection("us.posthog.com") == "https://us.posthog.com"
    assert base_url_from_connection("eu.posthog.com", 8443, "http") == "http://eu.posthog.com:8443"
    assert base_url_from_connection("https://ph.example.com", 444) == "https://ph.example.com:444"


def test_window_comes_from_params_then_data_interval_then_run_after():
    s, e = datetime(2026, 11, 20, 10, tzinfo=UTC), datetime(2026, 11, 20, 11, tzinfo=UTC)
    assert resolve_window({}, s, e, None) == Window(s, e)
    params = {"window_start": "2026-11-19T01:00:00Z", "window_end": "2026-11-19T03:00:00+00:00"}
    w = resolve_window(params, s, e, None)
    assert (w.start.hour, w.end.hour, w.start.day) == (1, 3, 19)
    # No logical date: the last whole hour before run_after.
    w = resolve_window({}, None, None, datetime(2026, 11, 20, 11, 42, tzinfo=UTC))
    assert w == Window(s, e)
    with pytest.raises(ValueError, match="together"):
        resolve_window({"window_start": "2026-11-19T01:00:00Z"}, s, e, None)
    with pytest.raises(ValueError, match=r"24 hours|one day"):
        resolve_window({"window_start": "2026-11-18", "window_end": "2026-11-20"}, s, e, None)
    with pytest.raises(WindowError, match="after its start"):
        Window(e, s)


@pytest.mark.parametrize(
    "moment",
    [
        "0001-01-01T00:00:00+01:00",  # no UTC datetime at all (OverflowError before)
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00Z",  # a UTC datetime, but start - lookback is not
        "9999-12-31T23:00:00Z",  # nor end + settle
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
    ],
)
def test_an_instant_outside_the_ingestible_range_is_a_clear_value_error(moment):
    with pytest.raises(ValueError, match=r"window_start must lie in \[1900-01-01, 2300-01-01\)"):
        parse_instant(moment, "window_start")
    later = "2026-11-19T01:00:00Z"
    with pytest.raises(ValueError, match="must lie in"):
        resolve_window({"window_start": moment, "window_end": later}, None, None, None)
    assert parse_instant("1900-01-01T00:00:00Z", "x") == datetime(1900, 1, 1, tzinfo=UTC)


def test_a_window_is_read_only_after_the_settle_delay():
    w = Window(datetime(2026, 11, 20, 10, tzinfo=UTC), datetime(2026, 11, 20, 11, tzinfo=UTC))
    cfg = IngestConfig()
    ensure_settled(w, cfg, now=datetime(2026, 11, 20, 11, 15, tzinfo=UTC))
    with pytest.raises(WindowNotSettled) as err:
        ensure_settled(w, cfg, now=datetime(2026, 11, 20, 11, 14, tzinfo=UTC))
    assert err.value.ready_at == w.end + timedelta(minutes=15)


def test_settings_and_mapping_are_configuration(monkeypatch):
    monkeypatch.setenv("POSTHOG_PAGE_SIZE", "2500")
    monkeypatch.setenv("POSTHOG_SETTLE_MINUTES", "5")
    monkeypatch.setenv("POSTHOG_INGEST_START", "2026-11-21T08:00:00Z")
    monkeypatch.setenv("POSTHOG_REQUIRED_PROPERTIES", '{"order": ["amount"]}')
    monkeypatch.setenv(
        "POSTHOG_EVENT_MAPPING", '{"purchase_events": "order", "revenue_property": "amount"}'
    )
    cfg = IngestConfig.from_settings()
    assert cfg.page_size == 2500 and cfg.settle == timedelta(minutes=5)
    assert cfg.ingest_start == datetime(2026, 11, 21, 8, tzinfo=UTC)
    assert cfg.required == {"order": ("amount",)}
    assert cfg.mapping.purchase_events == ("order",) and cfg.mapping.revenue_property == "amount"
    assert cfg.mapping.view_events == EventMapping().view_events
    with pytest.raises(ValueError, match="unknown keys"):
        EventMapping.from_json('{"nope": 1}')
    with pytest.raises(ValueError, match="page size"):
        IngestConfig(page_size=50_001)
