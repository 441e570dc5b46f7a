"""Small, fast time helpers shared by the sandbox modules (integer microseconds since the epoch)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

PT = ZoneInfo("America/Los_Angeles")
US = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_ISO_RE = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2}|UTC)?\s*$",
    re.IGNORECASE,
)


def dt_to_us(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - EPOCH
    return (delta.days * 86400 + delta.seconds) * US + delta.microseconds


def us_to_dt(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def parse_datetime_us(text: str, default_tz=UTC) -> int | None:
    """Parse an ISO-8601 / ClickHouse style datetime string into µs since the epoch (None if bad).

    Naive strings are read in ``default_tz`` (the project timezone), like ClickHouse does when a
    DateTime column is compared with a string.
    """
    m = _ISO_RE.match(text)
    if not m:
        return None
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    try:
        value = datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0))
    except ValueError:
        return None
    micro = int((frac or "0")[:6].ljust(6, "0"))
    if tz is None:
        value = value.replace(tzinfo=default_tz)
    elif tz.upper() in ("Z", "UTC"):
        value = value.replace(tzinfo=UTC)
    else:
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        value = value.replace(tzinfo=UTC) - sign * offset
    return dt_to_us(value) + micro


@lru_cache(maxsize=4096)
def _date_prefix(days: int) -> str:
    return (EPOCH + timedelta(days=days)).strftime("%Y-%m-%d")


def _parts(us: int) -> tuple[str, int, int, int, int]:
    seconds, micro = divmod(us, US)
    days, sod = divmod(seconds, 86400)
    hh, rem = divmod(sod, 3600)
    mm, ss = divmod(rem, 60)
    return _date_prefix(days), hh, mm, ss, micro


def iso_us(us: int) -> str:
    """``2026-11-20T10:00:00.123456Z`` (always six fractional digits, UTC)."""
    d, hh, mm, ss, micro = _parts(us)
    return f"{d}T{hh:02d}:{mm:02d}:{ss:02d}.{micro:06d}Z"


def clickhouse_str(us: int) -> str:
    """What ClickHouse's toString(DateTime64(6, 'UTC')) prints."""
    d, hh, mm, ss, micro = _parts(us)
    return f"{d} {hh:02d}:{mm:02d}:{ss:02d}.{micro:06d}"


def pt_day_bounds_us(day: date) -> tuple[int, int]:
    """[start, end) of a Pacific-time calendar day in µs (23 or 25 h long on DST days)."""
    start = datetime.combine(day, time(0), tzinfo=PT)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=PT)
    return dt_to_us(start), dt_to_us(end)


def pt_day_of_us(us: int) -> date:
    return us_to_dt(us).astimezone(PT).date()


def pt_days_between(lo_us: int, hi_us: int) -> list[date]:
    """Every PT day that overlaps [lo_us, hi_us]."""
    first, last = pt_day_of_us(lo_us), pt_day_of_us(hi_us)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
