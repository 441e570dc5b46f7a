"""Ingest settings with their defaults, and the event → rollup mapping.

Every setting is read by ``IngestConfig.from_settings()`` inside a task (Airflow Variable of the
same name > environment variable > default, see ``include.analytics_ops.config.FromSettings``):

| setting | default | meaning |
|---|---|---|
| ``POSTHOG_SETTLE_MINUTES`` | 15 | a window is read only this long after its end (arrival lag) |
| ``POSTHOG_PAGE_SIZE`` | 10000 | rows per Query API page (1..50000) |
| ``POSTHOG_MIN_PAGE_SIZE`` | 500 | smallest page after 504/512 shrinking |
| ``POSTHOG_EVENT_LOOKBACK_DAYS`` | 7 | event time bound: ``timestamp >= window start − N days`` |
| ``POSTHOG_EVENT_LOOKAHEAD_DAYS`` | 1 | event time bound: ``timestamp < window end + N days`` |
| ``POSTHOG_REQUEST_TIMEOUT_SECONDS`` | 60 | HTTP read timeout of one query |
| ``POSTHOG_MAX_ATTEMPTS`` | 8 | attempts per page on 5xx/timeouts (429s are bounded by time only) |
| ``POSTHOG_BACKOFF_BASE_SECONDS``, ``..._CAP_SECONDS`` | 1, 120 | backoff with full jitter |
| ``POSTHOG_MAX_INLINE_WAIT_SECONDS`` | 120 | longer throttle hints: waited out deferred |
| ``POSTHOG_RECONCILE_OFFSETS_HOURS`` | 1,24 | recount each window this long after its end |
| ``POSTHOG_RECONCILE_ALERT_EVENTS`` | 50 | alert when a window gained more late events |
| ``POSTHOG_SWEEP_HORIZON_DAYS`` | 90 | older late events are counted and reported |
| ``POSTHOG_PREFETCH`` | true | fetch page k+1 in a thread while page k is loaded |
| ``POSTHOG_INGEST_START`` | stored stream start | ISO timestamp: start of the "ingest era" |
| ``POSTHOG_REQUIRED_PROPERTIES`` | see ``DEFAULT_REQUIRED`` | JSON {event: [property, ...]} |
| ``POSTHOG_NUMERIC_PROPERTIES`` | see ``DEFAULT_NUMERIC`` | JSON {event: [property, ...]} |
| ``POSTHOG_EVENT_MAPPING`` | see ``EventMapping`` | JSON overriding fields of the mapping |
| ``POSTHOG_NUMERIC_RANGES`` | see ``DEFAULT_RANGES`` | JSON {event: {property: [min, max]}} |
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from include.analytics_ops.config import FromSettings, days, from_setting, minutes

MAX_PAGE_SIZE = 50_000

#: Properties an event must carry to be loaded (else: dead letter "missing required property").
DEFAULT_REQUIRED: dict[str, tuple[str, ...]] = {
    "listing_viewed": ("listing_id",),
    "listing_saved": ("listing_id",),
    "lead_submitted": ("listing_id", "seeker_id"),
    "purchase": ("revenue", "order_id"),
}
#: Properties that must be JSON numbers when present (revenue is summed into daily_metrics).
DEFAULT_NUMERIC: dict[str, tuple[str, ...]] = {"purchase": ("revenue",)}
#: Inclusive ranges of numeric properties (dollars for revenue): outside → dead letter.
DEFAULT_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "purchase": {"revenue": (-1_000_000.0, 1_000_000.0)}
}


def _ranges(text: str | Mapping[str, Any] | None) -> dict[str, dict[str, tuple[float, float]]]:
    if text in (None, ""):
        return {k: dict(v) for k, v in DEFAULT_RANGES.items()}
    data = json.loads(text) if isinstance(text, str) else dict(text)
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for event, props in data.items():
        out[str(event)] = {}
        for name, bounds in dict(props).items():
            lo, hi = (float(b) for b in bounds)
            if not lo <= hi:
                raise ValueError(f"POSTHOG_NUMERIC_RANGES {event}.{name}: min > max")
            out[str(event)][str(name)] = (lo, hi)
    return out


@dataclass(frozen=True)
class EventMapping:
    """Which events and properties feed which rollup column (all configuration).

    - listing/development ``views``, ``unique_viewers``: events in ``view_events`` that carry
      ``listing_property`` (a ``$pageview`` of a search page is not a listing view);
    - ``saves``: ``save_events``; ``leads`` and ``analytics.leads``: ``lead_events`` with
      ``listing_property`` and ``seeker_property`` (falls back to ``distinct_id``);
    - user stats: ``user_id`` = ``distinct_id``, ``user_type`` = ``user_type_property``
      (``unknown`` when absent), ``page_views`` = ``pageview_events``, ``sessions`` = distinct
      ``session_property``, ``purchases`` = ``purchase_events``;
    - ``daily_metrics`` (PT day of ``timestamp``): ``sessions`` = distinct ``session_property``
      over all events, ``orders`` = number of ``purchase_events``, ``conversions`` = distinct
      ``session_property`` among purchases, ``revenue`` = sum of numeric ``revenue_property``.
    """

    view_events: tuple[str, ...] = ("listing_viewed", "$pageview")
    pageview_events: tuple[str, ...] = ("$pageview",)
    save_events: tuple[str, ...] = ("listing_saved",)
    lead_events: tuple[str, ...] = ("lead_submitted",)
    purchase_events: tuple[str, ...] = ("purchase",)
    listing_property: str = "listing_id"
    development_property: str = "development_id"
    seeker_property: str = "seeker_id"
    user_type_property: str = "user_type"
    session_property: str = "$session_id"
    revenue_property: str = "revenue"

    @classmethod
    def from_json(cls, text: str | Mapping[str, Any] | None) -> EventMapping:
        if not text:
            return cls()
        data = json.loads(text) if isinstance(text, str) else dict(text)
        known = {f.name: f for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"POSTHOG_EVENT_MAPPING has unknown keys: {sorted(unknown)}")

        def typed(name: str, value: Any) -> Any:
            if not name.endswith("_events"):
                return str(value)
            return tuple(str(v) for v in ([value] if isinstance(value, str) else value))

        return replace(cls(), **{name: typed(name, value) for name, value in data.items()})


def _event_lists(text: str | Mapping[str, Any] | None, default: dict) -> dict[str, tuple]:
    if text in (None, ""):
        return dict(default)
    data = json.loads(text) if isinstance(text, str) else dict(text)
    if not isinstance(data, dict) or not all(isinstance(v, list | tuple) for v in data.values()):
        raise ValueError("expected a JSON object {event: [property, ...]}")
    return {str(k): tuple(str(p) for p in v) for k, v in data.items()}


#: The instants a window or start may name: what PostHog's ClickHouse ``DateTime64`` holds
#: ([1900-01-01, 2299-12-31]), so window arithmetic (lookback, settle) never leaves Python's range.
INSTANT_RANGE = (datetime(1900, 1, 1, tzinfo=UTC), datetime(2300, 1, 1, tzinfo=UTC))


def parse_instant(value: Any, name: str) -> datetime:
    """An aware UTC datetime from an ISO string (naive = UTC) or datetime, within
    ``INSTANT_RANGE``; anything else raises a ValueError naming ``name``."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip().replace(" ", "T")
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{name} must be an ISO timestamp, got {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    lo, hi = INSTANT_RANGE
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 has no UTC datetime at all
        utc = None
    if utc is None or not lo <= utc < hi:
        raise ValueError(f"{name} must lie in [{lo:%Y-%m-%d}, {hi:%Y-%m-%d}) UTC, got {value!r}")
    return utc


def _hours_list(raw: str) -> tuple[timedelta, ...]:
    return tuple(timedelta(hours=float(h)) for h in raw.split(",") if h.strip())


def _instant(raw: str) -> datetime | None:
    return parse_instant(raw, "POSTHOG_INGEST_START") if raw else None


@dataclass(frozen=True)
class IngestConfig(FromSettings):
    settle: timedelta = from_setting("POSTHOG_SETTLE_MINUTES", timedelta(minutes=15), minutes)
    page_size: int = from_setting("POSTHOG_PAGE_SIZE", 10_000)
    min_page_size: int = from_setting("POSTHOG_MIN_PAGE_SIZE", 500)
    lookback: timedelta = from_setting("POSTHOG_EVENT_LOOKBACK_DAYS", timedelta(days=7), days)
    lookahead: timedelta = from_setting("POSTHOG_EVENT_LOOKAHEAD_DAYS", timedelta(days=1), days)
    request_timeout: float = from_setting("POSTHOG_REQUEST_TIMEOUT_SECONDS", 60.0)
    max_attempts: int = from_setting("POSTHOG_MAX_ATTEMPTS", 8)
    backoff_base: float = from_setting("POSTHOG_BACKOFF_BASE_SECONDS", 1.0)
    backoff_cap: float = from_setting("POSTHOG_BACKOFF_CAP_SECONDS", 120.0)
    max_inline_wait: float = from_setting("POSTHOG_MAX_INLINE_WAIT_SECONDS", 120.0)
    reconcile_offsets: tuple[timedelta, ...] = from_setting(
        "POSTHOG_RECONCILE_OFFSETS_HOURS", (timedelta(hours=1), timedelta(hours=24)), _hours_list
    )
    reconcile_alert_events: int = from_setting("POSTHOG_RECONCILE_ALERT_EVENTS", 50)
    sweep_horizon: timedelta = from_setting("POSTHOG_SWEEP_HORIZON_DAYS", timedelta(days=90), days)
    prefetch: bool = from_setting("POSTHOG_PREFETCH", True)
    ingest_start: datetime | None = from_setting("POSTHOG_INGEST_START", None, _instant)
    required: Mapping[str, tuple[str, ...]] = from_setting(
        "POSTHOG_REQUIRED_PROPERTIES",
        parse=lambda raw: _event_lists(raw, DEFAULT_REQUIRED),
        default_factory=lambda: dict(DEFAULT_REQUIRED),
    )
    numeric: Mapping[str, tuple[str, ...]] = from_setting(
        "POSTHOG_NUMERIC_PROPERTIES",
        parse=lambda raw: _event_lists(raw, DEFAULT_NUMERIC),
        default_factory=lambda: dict(DEFAULT_NUMERIC),
    )
    mapping: EventMapping = from_setting(
        "POSTHOG_EVENT_MAPPING", parse=EventMapping.from_json, default_factory=EventMapping
    )
    ranges: Mapping[str, Mapping[str, tuple[float, float]]] = from_setting(
        "POSTHOG_NUMERIC_RANGES", parse=_ranges, default_factory=lambda: _ranges(None)
    )

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page size must be 1..{MAX_PAGE_SIZE}, got {self.page_size}")
        if not 1 <= self.min_page_size <= self.page_size:
            smallest = min(max(1, self.min_page_size), self.page_size)
            object.__setattr__(self, "min_page_size", smallest)
        if self.settle < timedelta(0):
            raise ValueError("settle delay must not be negative")
        if self.max_attempts < 1:
            raise ValueError("max attempts must be >= 1")

    def with_page_size(self, page_size: int | None) -> IngestConfig:
        return self if not page_size else replace(self, page_size=int(page_size))
