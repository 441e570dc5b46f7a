"""Row validation: a Query API row either becomes a load tuple or a dead letter with a reason.

A row is loadable when it has a valid ``uuid``, non-empty ``event`` and ``distinct_id`` that
PostgreSQL can store (no NUL, no lone surrogate: ``textsafe.unstorable``), parseable
``timestamp`` and ``created_at``, ``properties`` that are a JSON object PostgreSQL's jsonb can
store, the required properties of its event type (``IngestConfig.required``) and numeric values
where the rollups sum them (``IngestConfig.numeric``), finite and within the configured range
(``IngestConfig.ranges``; a value the rollup columns cannot hold would block the stream).
Everything else is a dead letter whose payload and reason are made storable
(``textsafe.storable``); nothing here raises on bad data.
"""

from __future__ import annotations

import math
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from include.analytics_ops.textsafe import not_unicode, storable, unstorable

#: Columns the ingest selects, in order (the query aliases them exactly so).
COLUMNS = ("uuid", "event", "distinct_id", "timestamp", "created_at", "properties", "created_ms")

_decode = msgspec.json.decode
_encode = msgspec.json.encode
_DecodeError = msgspec.DecodeError
_fromiso = datetime.fromisoformat
_UUID = uuidlib.UUID


#: The range a numeric property must lie in when none is configured: what the rollups' columns
#: (``numeric(14, 2)`` sums of a day) can hold with room to spare.
DEFAULT_RANGE = (-1_000_000_000.0, 1_000_000_000.0)


@dataclass(frozen=True)
class Rules:
    required: Mapping[str, tuple[str, ...]]
    numeric: Mapping[str, tuple[str, ...]]
    created_lo_ms: int | None = None  # window bounds on created_at (ms, [lo, hi))
    created_hi_ms: int | None = None
    #: {event: {property: (min, max)}} for numeric properties (inclusive); else DEFAULT_RANGE
    ranges: Mapping[str, Mapping[str, tuple[float, float]]] = field(default_factory=dict)


def parse_ts(value: Any) -> datetime:
    """ISO-8601 with ``Z``/offset (naive = UTC); raises ValueError/TypeError."""
    # Python 3.11+ fromisoformat accepts 'Z', 'T' or ' ', up to µs.
    moment = value if isinstance(value, datetime) else _fromiso(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def payload_of(columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """A refused row as a dead letter's payload, made storable in jsonb (``textsafe.storable``)."""
    return {c: storable(row[i]) if i < len(row) else None for i, c in enumerate(columns)}


def check_row(
    row: Sequence[Any], idx: Mapping[str, int], rules: Rules
) -> tuple[tuple | None, str | None]:
    """(load tuple, None) or (None, reason). The load tuple is
    ``(uuid, event, distinct_id, timestamp, created_at, properties)`` where ``uuid`` (16 bytes)
    and ``properties`` (version byte 1 + UTF-8 JSON text) are already PostgreSQL's binary wire
    formats, so a binary COPY sends them as they are."""
    try:
        raw_uuid = row[idx["uuid"]]
        if not raw_uuid or not isinstance(raw_uuid, str):
            return None, "missing uuid"
        uid = uuid_wire(raw_uuid)
        if uid is None:
            return None, f"invalid uuid {raw_uuid[:64]!r}"
        event = row[idx["event"]]
        if not event or not isinstance(event, str):
            return None, "missing or invalid event name"
        distinct = row[idx["distinct_id"]]
        if not distinct or not isinstance(distinct, str):
            return None, "missing or invalid distinct_id"
        why = unstorable(event, "event") or unstorable(distinct, "distinct_id")
        if why:
            return None, why
        moments = []
        for column in ("timestamp", "created_at"):
            raw = row[idx[column]]
            try:
                moments.append(parse_ts(raw))
            except (ValueError, TypeError):
                return None, f"unparseable {column} {str(raw)[:64]!r}"
        ts, created = moments
        ms_i = idx.get("created_ms")
        if ms_i is not None and rules.created_lo_ms is not None:
            ms = row[ms_i]
            if not isinstance(ms, int) or not (rules.created_lo_ms <= ms < rules.created_hi_ms):
                return None, "created_at outside the requested window"
        props = row[idx["properties"]]
        if props is None or props == "":
            decoded: Any = {}
            text = "{}"
        elif isinstance(props, str):
            if "\\u0000" in props:
                return None, "properties contain \\u0000, which PostgreSQL jsonb cannot store"
            try:
                decoded = _decode(props)
            except _DecodeError as exc:
                return None, f"unparseable properties JSON: {str(exc)[:120]}"
            except UnicodeEncodeError:  # a lone surrogate: not UTF-8, so not jsonb either
                return None, not_unicode("properties")
            text = props
        elif isinstance(props, dict):
            decoded = props
            try:
                text = _encode(props).decode()
            except UnicodeEncodeError:  # a lone surrogate in a key or value
                return None, not_unicode("properties")
            if "\\u0000" in text:
                return None, "properties contain \\u0000, which PostgreSQL jsonb cannot store"
        else:
            return None, f"properties must be a JSON object, got {type(props).__name__}"
        if not isinstance(decoded, dict):
            return None, f"properties must be a JSON object, got {type(decoded).__name__}"
        for name in rules.required.get(event, ()):
            value = decoded.get(name)
            if value is None or value == "":
                return None, f"missing required property {name!r} for event {event!r}"
        for name in rules.numeric.get(event, ()):
            value = decoded.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None, f"property {name!r} of event {event!r} is not a number"
            if not math.isfinite(value):
                return None, f"property {name!r} of event {event!r} is not finite"
            lo, hi = rules.ranges.get(event, {}).get(name, DEFAULT_RANGE)
            if not lo <= value <= hi:
                return None, (
                    f"property {name!r} of event {event!r} is {value!r}, outside the"
                    f" configured range [{lo:g}, {hi:g}]"
                )
        return (uid, event, distinct, ts, created, b"\x01" + text.encode()), None
    except (IndexError, KeyError, TypeError) as exc:
        return None, f"malformed row ({type(exc).__name__}: {exc})"


def uuid_wire(text: str) -> bytes | None:
    """16 bytes of a canonical (8-4-4-4-12 hex) uuid, or None."""
    if len(text) == 36 and text[8] == text[13] == text[18] == text[23] == "-":
        try:
            return bytes.fromhex(text.replace("-", ""))
        except ValueError:
            return None
    try:  # other spellings uuid.UUID accepts (braces, urn:, no hyphens)
        return _UUID(text).bytes
    except ValueError:
        return None


def uuid_text(wire: bytes) -> str:
    return str(_UUID(bytes=wire))


def jsonb_text(wire: bytes) -> str:
    """The JSON text of a load tuple's ``properties``."""
    return wire[1:].decode()


def split_rows(
    rows: Sequence[Sequence[Any]], columns: Sequence[str], rules: Rules
) -> tuple[list[tuple], list[tuple[dict, str, str | None]]]:
    """Validate a page: (load tuples, dead letters as (payload, reason, source_key))."""
    idx = {c: i for i, c in enumerate(columns)}
    missing = [c for c in COLUMNS[:-1] if c not in idx]
    if missing:
        raise ValueError(f"the Query API response lacks columns {missing}")
    good: list[tuple] = []
    bad: list[tuple[dict, str, str | None]] = []
    append = good.append
    for row in rows:
        loaded, reason = check_row(row, idx, rules)
        if loaded is not None:
            append(loaded)
        else:
            payload = payload_of(columns, row)
            key = payload.get("uuid")
            reason = storable(reason or "invalid")  # it may quote the row's text
            bad.append((payload, reason, key if isinstance(key, str) else None))
    return good, bad
