"""The PostHog ``events`` table of the sandbox: deterministic, generated per PT day on demand.

Row layout (a tuple, sorted by the canonical keyset ``(created_ms, uuid)``)::

    (created_ms, uuid, created_us, ts_us, event, distinct_id, properties_json, ts_iso, created_iso)

Event taxonomy (what the ingest may rely on)
-------------------------------------------
``distinct_id`` is the user id (``seeker-…``, ``agent-…``, ``developer-…``). Every event of a web
session carries ``$session_id`` (a UUIDv7 string) and ``user_type`` (``seeker``/``agent``/
``developer``).

- ``$pageview``: ``$session_id``, ``user_type``, ``$current_url``, optional ``listing_id``,
  ``development_id``; plus ``$browser``, ``$os``, ``$device_type``, ``$lib``.
- ``listing_viewed``: ``listing_id`` (required), ``development_id`` (when the listing belongs to
  one), ``$session_id``, ``user_type``.
- ``listing_saved``: ``listing_id`` (required), ``development_id``, ``$session_id``, ``user_type``.
- ``lead_submitted``: ``listing_id`` and ``seeker_id`` (required; seeker_id = distinct_id),
  optional ``development_id``, ``$session_id``, ``user_type`` (always ``seeker``).
- ``purchase``: ``revenue`` (number, dollars with cents), ``order_id`` (required), ``currency``
  (``USD``), ``$session_id`` (absent for server-side purchases, which only happen on the planted
  tracking-break day).

Daily metrics of PT day D (events whose ``timestamp`` falls on D, in America/Los_Angeles):
sessions = distinct ``$session_id``; orders = number of ``purchase`` events; conversions = distinct
``$session_id`` having a purchase; revenue = sum of purchase ``revenue``. They equal
``data.daily_metrics_for(D)`` exactly (and so ``analytics.daily_metrics`` after
``load_sample_data``).

Arrival: ``created_at`` = ``timestamp`` + lag (log-normal, median ~8 s, p95 ~60 s, capped at
30 min; µs precision). ~2.5% of sessions are flushed in one batch (all events share one
``created_at``), six backlog bursts a day give tens of events one identical ``created_at``, and ~1%
of sessions (mobile, offline) arrive 1–4 days after their ``timestamp``. ``timestamp`` has ms
precision. uuids are UUIDv7 strings (ms of ``timestamp`` + random bits), unique.

Benchmark mode (fault knob ``posthog_events_per_hour`` = N): every UTC hour holds exactly N
synthetic events (``created_at`` spaced evenly, groups of 4 sharing one instant, ``timestamp`` 0–5 s
earlier, ~780-byte properties), generated lazily by index, so any page is produced in O(page).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from functools import lru_cache

from include.sandbox.data import daily_metrics_for, rng_for, split_cents
from include.sandbox.timeutil import US, iso_us, pt_day_bounds_us, pt_days_between

# Row tuple indexes.
CREATED_MS, UUID, CREATED_US, TS_US, EVENT, DISTINCT_ID, PROPS, TS_ISO, CREATED_ISO = range(9)

DAY_US = 86_400 * US
HOUR_US = 3600 * US
MAX_LAG_US = 1800 * US
#: Upper bound of created_at − timestamp for any generated event (late sessions ≤ 4 days).
MAX_DELAY_US = 4 * DAY_US + HOUR_US
BENCH_MAX_LAG_US = 5 * US

# Diurnal curve, PT local hour 0..23 (relative weights of session starts).
DIURNAL = (
    0.9, 0.6, 0.45, 0.35, 0.35, 0.5, 0.9, 1.6, 2.4, 2.9, 3.1, 3.2,
    3.2, 3.1, 3.0, 3.0, 3.1, 3.3, 3.6, 4.0, 4.1, 3.7, 2.7, 1.6,
)  # fmt: skip
_DIURNAL_CUM = [sum(DIURNAL[: i + 1]) for i in range(24)]

BROWSERS = ("Chrome", "Safari", "Firefox", "Edge", "Mobile Safari", "Chrome Mobile")
OSES = ("Mac OS X", "Windows", "iOS", "Android", "Linux")
LISTINGS = 3000
DEVELOPMENTS = 120


def uuid7(ms: int, rand: int) -> str:
    """UUIDv7 text from a millisecond timestamp and 74 random bits."""
    rand_a = (rand >> 62) & 0xFFF
    rand_b = (rand & ((1 << 62) - 1)) | (1 << 63)
    t = f"{ms:012x}"
    b = f"{rand_b:016x}"
    return f"{t[:8]}-{t[8:]}-7{rand_a:03x}-{b[:4]}-{b[4:]}"


def listing_development(listing: int) -> str | None:
    return f"dev-{listing % DEVELOPMENTS:03d}" if listing % 3 else None


try:
    from msgspec.json import encode as _msgspec_encode

    def _props(d: dict) -> str:
        return _msgspec_encode(d).decode()

except ImportError:  # pragma: no cover

    def _props(d: dict) -> str:
        return json.dumps(d, separators=(",", ":"))


def generate_day(day: date, seed: int) -> list[tuple]:
    """All events whose ``timestamp`` falls on PT day ``day``, sorted by (created_ms, uuid)."""
    m = daily_metrics_for(day, seed)
    rng = rng_for(seed, "events", day.isoformat())
    day_lo, day_hi = pt_day_bounds_us(day)
    span = day_hi - day_lo
    ymd = day.strftime("%Y%m%d")
    raw: list[tuple[int, int, str, str, dict]] = []  # (ts_ms, created_us, event, distinct, props)
    order_no = 0

    # Purchases: C sessions convert, O − C extra purchases go to random converting sessions.
    amounts = split_cents(m.revenue_cents, m.orders, rng)
    if m.sessions:
        converting = set(rng.sample(range(m.sessions), m.conversions))
        purchases_per: dict[int, int] = dict.fromkeys(converting, 1)
        conv_list = sorted(converting)
        for _ in range(m.orders - m.conversions):
            purchases_per[rng.choice(conv_list)] += 1
    else:
        purchases_per = {}

    bursts = sorted(rng.randrange(day_lo + HOUR_US, day_hi) for _ in range(6))
    for s in range(m.sessions):
        r = rng.random()
        user_type = "seeker" if r < 0.8 else ("agent" if r < 0.92 else "developer")
        pool = {"seeker": 40_000, "agent": 800, "developer": 150}[user_type]
        distinct = f"{user_type}-{rng.randrange(pool):05d}"
        n_purch = purchases_per.get(s, 0)
        n_events = rng.randint(3, 7) + n_purch
        gaps = [rng.randint(4_000, 90_000) for _ in range(n_events - 1)]  # ms
        duration_us = sum(gaps) * 1000
        # Session start: diurnal hour bucket (scaled to the real day length on DST days).
        u = rng.random() * _DIURNAL_CUM[-1]
        hour = bisect.bisect_left(_DIURNAL_CUM, u)
        frac = (hour + rng.random()) / 24
        start = day_lo + int(frac * span)
        start = min(start, day_hi - duration_us - 2 * US)
        start_ms = start // 1000
        session_id = uuid7(start_ms, rng.getrandbits(74))
        base = {
            "$session_id": session_id,
            "user_type": user_type,
            "$browser": BROWSERS[rng.randrange(len(BROWSERS))],
            "$os": OSES[rng.randrange(len(OSES))],
            "$lib": "web",
        }
        base["$device_type"] = "Mobile" if base["$os"] in ("iOS", "Android") else "Desktop"
        listing = rng.randrange(LISTINGS)
        events: list[tuple[int, str, dict]] = []
        t_ms = start_ms
        n_browse = n_events - n_purch
        for k in range(n_events):
            if k:
                t_ms += gaps[k - 1]
            props = dict(base)
            if k >= n_browse:
                order_no += 1
                amount = amounts.pop()
                props.update(
                    revenue=amount / 100,
                    currency="USD",
                    order_id=f"ord-{ymd}-{order_no:05d}",
                )
                events.append((t_ms, "purchase", props))
                continue
            if k == 0 or rng.random() < 0.3:
                name = "$pageview"
                if rng.random() < 0.6:
                    listing = rng.randrange(LISTINGS)
                    props["listing_id"] = f"lst-{listing:05d}"
                    dev = listing_development(listing)
                    if dev:
                        props["development_id"] = dev
                    props["$current_url"] = f"https://homes.example.com/listings/{listing:05d}"
                else:
                    props["$current_url"] = "https://homes.example.com/search"
            else:
                r = rng.random()
                if r < 0.65:
                    name = "listing_viewed"
                    listing = rng.randrange(LISTINGS)
                elif r < 0.85:
                    name = "listing_saved"
                elif user_type == "seeker":
                    name = "lead_submitted"
                    props["seeker_id"] = distinct
                else:
                    name = "listing_viewed"
                props["listing_id"] = f"lst-{listing:05d}"
                dev = listing_development(listing)
                if dev:
                    props["development_id"] = dev
            events.append((t_ms, name, props))
        end_us = t_ms * 1000
        # Arrival.
        mode = rng.random()
        if mode < 0.01:  # offline mobile client: whole session uploaded 1–4 days later
            batch = end_us + rng.randrange(DAY_US, 4 * DAY_US)
        elif mode < 0.035:  # one flush for the whole session (~2.5%)
            batch = end_us + _lag_us(rng)
        else:
            batch = None
            for b in bursts:
                if b - 300 * US <= end_us < b and rng.random() < 0.6:
                    batch = b
                    break
        for t_ms, name, props in events:
            created = batch if batch is not None else t_ms * 1000 + _lag_us(rng)
            raw.append((t_ms, created, name, distinct, props))

    if not m.sessions:  # tracking break: only server-side purchases, no $session_id
        for amount in amounts:
            order_no += 1
            t_us = day_lo + rng.randrange(span - 60 * US)
            props = {
                "revenue": amount / 100,
                "currency": "USD",
                "order_id": f"ord-{ymd}-{order_no:05d}",
                "$lib": "posthog-python",
            }
            distinct = f"seeker-{rng.randrange(40_000):05d}"
            raw.append((t_us // 1000, t_us + _lag_us(rng), "purchase", distinct, props))

    rows = []
    for t_ms, created, name, distinct, props in raw:
        uid = uuid7(t_ms, rng.getrandbits(74))
        ts_us = t_ms * 1000
        rows.append(
            (
                created // 1000,
                uid,
                created,
                ts_us,
                name,
                distinct,
                _props(props),
                iso_us(ts_us),
                iso_us(created),
            )
        )
    rows.sort()
    return rows


def _lag_us(rng) -> int:
    lag = math.exp(rng.gauss(math.log(7.0), 0.95))
    return min(int(lag * US), MAX_LAG_US) + rng.randrange(1000)


# ----------------------------------------------------------------------------- benchmark mode
_MASK = (1 << 64) - 1
_PAD = "x" * 140


def _mix(x: int) -> int:
    """splitmix64 finaliser."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


class SyntheticHour(Sequence):
    """Exactly ``n`` synthetic events with created_at in UTC hour ``hour_us`` (lazy, by index)."""

    GROUP = 4

    def __init__(self, hour_us: int, n: int, seed: int) -> None:
        self.hour_us = hour_us
        self.n = n
        self.salt = _mix(seed * 1_000_003 + hour_us // HOUR_US)
        groups = -(-n // self.GROUP)
        self.step = HOUR_US // max(groups, 1)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.row(i)

    def key(self, i: int) -> tuple[int, str]:
        ms = (self.hour_us + (i // self.GROUP) * self.step) // 1000
        return ms, self._uuid(ms, i, hash((self.salt, i)) & 0xFFFFFFFFFFFFFFFF)

    def _uuid(self, ms: int, i: int, h: int) -> str:
        # rand_a (12 bits) = index within the group keeps uuid order == index order per ms.
        t = f"{ms:012x}"
        tail = f"{(h >> 48) | 0x8000:04x}-{h & 0xFFFFFFFFFFFF:012x}"
        return f"{t[:8]}-{t[8:]}-7{i % self.GROUP:03x}-{tail}"

    def row(self, i: int) -> tuple:
        return next(self.rows(i, i + 1))

    def rows(self, lo: int, hi: int) -> Iterator[tuple]:
        """Rows lo..hi-1 (a tight loop; properties come from pre-built pools)."""
        hour, step, group, salt = self.hour_us, self.step, self.GROUP, self.salt
        base_sec = hour // US - 10
        prefix = _second_prefixes(base_sec, 3620)
        purchases, viewed, pageviews, users = _synthetic_pools()
        last_group = -1
        ms = created = 0
        head = created_iso = ""
        for i in range(lo, hi):
            h = hash((salt, i)) & 0xFFFFFFFFFFFFFFFF
            g = i // group
            if g != last_group:
                last_group = g
                created = hour + g * step
                ms = created // 1000
                t = f"{ms:012x}"
                head = f"{t[:8]}-{t[8:]}-7"
                cs, cmicro = divmod(created, US)
                created_iso = f"{prefix[cs - base_sec]}.{cmicro:06d}Z"
            ts_ms = ms - (h & 0x3FFFFF) % 5000
            ts_s, ts_milli = divmod(ts_ms, 1000)
            kind = h % 100
            if kind < 2:
                name, props = "purchase", purchases[(h >> 8) & 1023]
            elif kind < 40:
                name, props = "listing_viewed", viewed[(h >> 8) & 1023]
            else:
                name, props = "$pageview", pageviews[(h >> 8) & 1023]
            yield (
                ms,
                f"{head}{i % group:03x}-{(h >> 48) | 0x8000:04x}-{h & 0xFFFFFFFFFFFF:012x}",
                created,
                ts_ms * 1000,
                name,
                users[(h >> 20) % 40000],
                props,
                f"{prefix[ts_s - base_sec]}.{ts_milli:03d}000Z",
                created_iso,
            )


_SYN_STATIC = (
    ',"user_type":"seeker","$browser":"Chrome","$os":"Mac OS X","$device_type":"Desktop",'
    '"$lib":"web","$lib_version":"1.187.2","$referrer":"https://www.google.com/",'
    '"$referring_domain":"www.google.com","$screen_height":1117,"$screen_width":1728,'
    '"$viewport_height":987,"$viewport_width":1728,"utm_source":"newsletter",'
    '"utm_medium":"email","utm_campaign":"fall-2026","$timezone":"America/Los_Angeles",'
    '"$pathname":"/listings","$host":"homes.example.com","pad":"' + _PAD + '",'
    '"$current_url":"https://homes.example.com/listings/'
)


@lru_cache(maxsize=1)
def _synthetic_pools() -> tuple[list[str], list[str], list[str], list[str]]:
    """1024 property strings per synthetic event kind (~780 bytes each) and 40k user ids."""
    pools: tuple[list[str], list[str], list[str]] = ([], [], [])
    for k in range(1024):
        h = _mix(k)
        listing = h % LISTINGS
        session = uuid7(1_790_000_000_000 + k * 997, h >> 10)
        extras = (
            f',"revenue":{(h >> 12) % 20000 / 100 + 20},"currency":"USD","order_id":"ord-b{k:05d}"',
            f',"listing_id":"lst-{listing:05d}",'
            f'"development_id":"dev-{listing % DEVELOPMENTS:03d}"',
            f',"listing_id":"lst-{listing:05d}"',
        )
        for pool, extra in zip(pools, extras, strict=True):
            pool.append(
                f'{{"$session_id":"{session}"{_SYN_STATIC}{listing:05d}?ref=search&page=2",'
                f'"$insert_id":"{h:016x}"{extra}}}'
            )
    users = [f"seeker-{n:05d}" for n in range(40_000)]
    return pools[0], pools[1], pools[2], users


@lru_cache(maxsize=64)
def _second_prefixes(base_sec: int, count: int) -> list[str]:
    return [iso_us((base_sec + k) * US)[:19] for k in range(count)]


# ----------------------------------------------------------------------------- store
#: Benchmark rows are generated and kept in chunks (LRU: ~600k rows, ~0.7 GB at most).
SYN_CHUNK = 10_000
SYN_MAX_CHUNKS = 60


class TooMuchData(ValueError):
    pass


class EventStore:
    """Day cache (bounded LRU) + injected extra events + benchmark mode; thread safe."""

    def __init__(self, seed: int, max_days: int = 16) -> None:
        self.seed = seed
        self.max_days = max_days
        self._days: OrderedDict[date, list[tuple]] = OrderedDict()
        self._lock = threading.Lock()
        self._gen_locks: dict[date, threading.Lock] = {}
        self.extra: list[tuple] = []
        self.version = 0
        self._syn_chunks: OrderedDict[tuple[int, int, int], list[tuple]] = OrderedDict()

    def reset(self) -> None:
        with self._lock:
            self.extra = []
            self._syn_chunks.clear()
            self.version += 1

    def add_events(self, rows: Iterable[tuple]) -> int:
        rows = list(rows)
        with self._lock:
            self.extra = sorted([*self.extra, *rows])
            self.version += 1
        return len(rows)

    def day(self, day: date) -> list[tuple]:
        with self._lock:
            rows = self._days.get(day)
            if rows is not None:
                self._days.move_to_end(day)
                return rows
            gen_lock = self._gen_locks.setdefault(day, threading.Lock())
        with gen_lock:
            with self._lock:
                rows = self._days.get(day)
            if rows is None:
                rows = generate_day(day, self.seed)
                with self._lock:
                    self._days[day] = rows
                    while len(self._days) > self.max_days:
                        self._days.popitem(last=False)
        return rows

    # -- candidate rows, always sorted by (created_ms, uuid) ----------------------------------
    def candidates(
        self,
        created: tuple[int | None, int | None],
        ts: tuple[int | None, int | None],
        *,
        now_us: int,
        events_per_hour: int | None,
        max_scan_days: int = 16,
    ) -> Iterator[tuple]:
        c_lo, c_hi = created
        t_lo, t_hi = ts
        if c_lo is None and t_lo is None:
            raise TooMuchData(
                "sandbox HogQL needs a lower time bound: add `created_at >= …` or `timestamp >= …`"
                " (or a keyset tuple on toUnixTimestamp64Milli(created_at)) to WHERE"
            )
        if c_hi is None:
            c_hi = (t_hi + MAX_DELAY_US) if t_hi is not None else now_us + DAY_US
        if c_lo is None:
            c_lo = t_lo
        if t_lo is None:
            t_lo = c_lo - MAX_DELAY_US
        if t_hi is None:
            t_hi = c_hi
        extra = self.extra
        lo_key = (c_lo // 1000,)
        hi_key = (c_hi // 1000 + 1,)
        sources: list[Iterable[tuple]] = []
        if extra:
            sources.append(
                extra[bisect.bisect_left(extra, lo_key) : bisect.bisect_left(extra, hi_key)]
            )
        if events_per_hour:
            if c_hi - c_lo > 31 * DAY_US:
                raise TooMuchData("sandbox HogQL scans at most 31 days of created_at per query")
            sources.append(self._synthetic(c_lo, c_hi, events_per_hour, lo_key, hi_key))
        else:
            t_lo = max(t_lo, c_lo - MAX_DELAY_US)
            t_hi = min(t_hi, c_hi)
            if t_hi < t_lo:
                return iter(sources[0]) if sources else iter(())
            days = pt_days_between(t_lo, t_hi)
            if len(days) > max_scan_days:
                raise TooMuchData(
                    f"sandbox HogQL scans at most {max_scan_days} days of events per query "
                    f"(this query spans {len(days)}); narrow the timestamp/created_at range"
                )
            for d in days:
                rows = self.day(d)
                lo = bisect.bisect_left(rows, lo_key)
                hi = bisect.bisect_left(rows, hi_key)
                if hi > lo:
                    sources.append(rows[lo:hi] if (lo or hi != len(rows)) else rows)
        if len(sources) == 1:
            return iter(sources[0])
        return heapq.merge(*sources)

    def _synthetic(self, c_lo, c_hi, n, lo_key, hi_key) -> Iterator[tuple]:
        hour = c_lo // HOUR_US * HOUR_US
        while hour <= c_hi:
            seq = SyntheticHour(hour, n, self.seed)
            lo = bisect.bisect_left(range(n), lo_key, key=seq.key)
            hi = bisect.bisect_left(range(n), hi_key, key=seq.key)
            chunk = lo // SYN_CHUNK
            while chunk * SYN_CHUNK < hi:
                rows = self._synthetic_chunk(seq, chunk)
                base = chunk * SYN_CHUNK
                yield from itertools.islice(rows, max(lo - base, 0), min(hi - base, len(rows)))
                chunk += 1
            hour += HOUR_US

    def _synthetic_chunk(self, seq: SyntheticHour, chunk: int) -> list[tuple]:
        key = (seq.hour_us, seq.n, chunk)
        with self._lock:
            rows = self._syn_chunks.get(key)
            if rows is not None:
                self._syn_chunks.move_to_end(key)
                return rows
        lo = chunk * SYN_CHUNK
        rows = list(seq.rows(lo, min(lo + SYN_CHUNK, seq.n)))
        with self._lock:
            self._syn_chunks[key] = rows
            while len(self._syn_chunks) > SYN_MAX_CHUNKS:
                self._syn_chunks.popitem(last=False)
        return rows
