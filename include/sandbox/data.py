"""Deterministic sample business data: daily metrics, idea pool, clients, SKU counts.

Everything is a pure function of ``(seed, key)`` so the loader (``generator.py``), the PostHog
stand-in (``events.py``) and the tests agree without sharing state: the events served for PT day D
aggregate exactly to ``daily_metrics_for(D)``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from include.sandbox.constants import DEMO_DAY, PLANTED_ANOMALIES
from include.sandbox.timeutil import PT

#: Ideas exist from this day on (plus IDEA_BASE ideas created the day before).
IDEAS_EPOCH = date(2025, 1, 1)
IDEA_BASE = 40

# Monday .. Sunday
WEEKDAY_FACTOR = (1.00, 1.04, 1.03, 1.01, 0.96, 0.84, 0.88)
BASE_SESSIONS = 2200.0
BASE_CONVERSION_RATE = 0.022
BASE_AOV = 86.0
REPEAT_ORDER_RATE = 0.12
OUTLIER_RATE = 0.04
#: Random outliers stay this many days away from DEMO_DAY so the demo day's baseline is clean.
QUIET_DAYS_BEFORE_DEMO = 8


def rng_for(seed: int, *parts: object) -> random.Random:
    return random.Random("|".join([str(seed), *map(str, parts)]))


@dataclass(frozen=True)
class DayMetrics:
    day: date
    sessions: int
    conversions: int
    orders: int
    revenue_cents: int
    ideas_added: int
    ideas_total: int
    outlier: str | None = None

    @property
    def revenue(self) -> float:
        return self.revenue_cents / 100

    @property
    def tracking_break(self) -> bool:
        return self.sessions == 0


def outlier_kind(day: date, seed: int) -> str | None:
    """Random past outlier days (~4%), never in the quiet period before DEMO_DAY."""
    if day in PLANTED_ANOMALIES:
        return "planted"
    if DEMO_DAY - timedelta(days=QUIET_DAYS_BEFORE_DEMO) <= day <= DEMO_DAY:
        return None
    rng = rng_for(seed, "outlier", day.isoformat())
    if rng.random() >= OUTLIER_RATE:
        return None
    return rng.choice(("sessions_low", "sessions_high", "cr_low", "cr_high", "aov_low", "aov_high"))


@lru_cache(maxsize=4096)
def ideas_added_for(day: date, seed: int) -> int:
    if day < IDEAS_EPOCH:
        return 0
    rng = rng_for(seed, "ideas", day.isoformat())
    return max(0, round(rng.gauss(3.0, 1.6)))


@lru_cache(maxsize=64)
def _ideas_prefix(seed: int, last: date) -> dict[date, int]:
    totals: dict[date, int] = {}
    running = IDEA_BASE
    day = IDEAS_EPOCH
    while day <= last:
        running += ideas_added_for(day, seed)
        totals[day] = running
        day += timedelta(days=1)
    return totals


def ideas_total_for(day: date, seed: int) -> int:
    if day < IDEAS_EPOCH:
        return IDEA_BASE
    # Prefix sums up to the end of the day's year keep the cache small and reusable.
    return _ideas_prefix(seed, date(day.year, 12, 31))[day]


@lru_cache(maxsize=4096)
def daily_metrics_for(day: date, seed: int = 7) -> DayMetrics:
    """The day's target metrics (PT calendar day): weekly seasonality, mild trend, noise,
    random outliers and the PLANTED_ANOMALIES."""
    rng = rng_for(seed, "day", day.isoformat())
    t = (day - DEMO_DAY).days
    sessions = BASE_SESSIONS * (1 + 0.0006 * t) * WEEKDAY_FACTOR[day.weekday()]
    sessions *= 1 + max(-0.09, min(0.09, rng.gauss(0, 0.03)))
    cr = BASE_CONVERSION_RATE * (1 + max(-0.15, min(0.15, rng.gauss(0, 0.05))))
    aov = BASE_AOV * (1 + max(-0.1, min(0.1, rng.gauss(0, 0.035))))
    revenue_factor = 1.0
    kind = outlier_kind(day, seed)
    tracking_break = False
    if kind == "sessions_low":
        sessions *= 0.68
    elif kind == "sessions_high":
        sessions *= 1.35
    elif kind == "cr_low":
        cr *= 0.55
    elif kind == "cr_high":
        cr *= 1.6
    elif kind == "aov_low":
        aov *= 0.66
    elif kind == "aov_high":
        aov *= 1.4
    elif kind == "planted":
        if day == date(2026, 10, 15):
            cr *= 1.8
        elif day == date(2026, 10, 29):
            revenue_factor = 0.65
        elif day == date(2026, 11, 6):
            sessions *= 0.8
        elif day == date(2026, 11, 11):
            tracking_break = True
    n_sessions = max(1, round(sessions))
    conversions = max(1, round(n_sessions * cr))
    orders = conversions + sum(1 for _ in range(conversions) if rng.random() < REPEAT_ORDER_RATE)
    revenue_cents = round(orders * aov * 100 * revenue_factor)
    if tracking_break:
        n_sessions = 0
        conversions = 0
    return DayMetrics(
        day=day,
        sessions=n_sessions,
        conversions=conversions,
        orders=orders,
        revenue_cents=revenue_cents,
        ideas_added=ideas_added_for(day, seed),
        ideas_total=ideas_total_for(day, seed),
        outlier=kind,
    )


def split_cents(total: int, parts: int, rng: random.Random, minimum: int = 500) -> list[int]:
    """Split ``total`` cents into ``parts`` positive amounts that sum exactly to it."""
    if parts <= 0:
        return []
    minimum = min(minimum, total // parts)
    weights = [rng.lognormvariate(0, 0.45) for _ in range(parts)]
    scale = (total - minimum * parts) / sum(weights)
    amounts = [minimum + int(w * scale) for w in weights]
    remainder = total - sum(amounts)
    for i in range(remainder):
        amounts[i % parts] += 1
    return amounts


# ----------------------------------------------------------------------------- ideas
IDEA_TOPICS = (
    "saved-search alerts",
    "mortgage calculator",
    "agent response-time badge",
    "floor-plan viewer",
    "school-district filter",
    "price-drop emails",
    "virtual tour booking",
    "developer landing pages",
    "lead scoring",
    "map clustering",
    "open-house calendar",
    "commute-time search",
)
IDEA_STATUSES = ("new", "new", "new", "in_review", "planned", "in_progress", "done", "rejected")


def ideas_until(end_day: date, seed: int) -> list[tuple[str, str, str, datetime]]:
    """(idea_id, title, status, created_at) of every idea created on or before ``end_day``.

    The count of ideas created on or before day D equals ``daily_metrics_for(D).ideas_total``.
    """
    out: list[tuple[str, str, str, datetime]] = []
    n = 0
    rng = rng_for(seed, "idea-pool")

    def add(created: datetime) -> None:
        nonlocal n
        n += 1
        topic = IDEA_TOPICS[rng.randrange(len(IDEA_TOPICS))]
        out.append((f"idea-{n:05d}", f"Idea {n}: {topic}", rng.choice(IDEA_STATUSES), created))

    base_day = IDEAS_EPOCH - timedelta(days=1)
    for i in range(IDEA_BASE):
        add(datetime.combine(base_day, time(9, 0), tzinfo=PT) + timedelta(minutes=7 * i))
    day = IDEAS_EPOCH
    while day <= end_day:
        for k in range(ideas_added_for(day, seed)):
            created = datetime.combine(day, time(8, 0), tzinfo=PT) + timedelta(
                minutes=rng.randrange(0, 13 * 60), seconds=k
            )
            add(created)
        day += timedelta(days=1)
    return out


# ----------------------------------------------------------------------------- clients
CLIENT_NAMES = (
    "Harbor Homes",
    "Summit Realty",
    "Oakline Developments",
    "Bayview Properties",
    "Cedar & Stone",
    "Northgate Living",
    "Riverside Estates",
    "Pinecrest Group",
    "Lumen Residential",
    "Westfield Lofts",
    "Granite Peak",
    "Meadowbrook Partners",
)
#: Position in each block of 12 clients -> credential status (9 connected, 2 disconnected, 1 error).
CLIENT_STATUS_PATTERN = (
    "connected",
    "connected",
    "connected",
    "disconnected",
    "connected",
    "connected",
    "error",
    "connected",
    "connected",
    "disconnected",
    "connected",
    "connected",
)
MAX_CLIENTS = 999


def client_id(n: int) -> str:
    return f"client-{n:03d}"


def client_number(cid: str) -> int | None:
    """1..MAX_CLIENTS for ids the inventory backend knows (``client-001`` .. ``client-999``)."""
    if not cid.startswith("client-") or not cid[7:].isdigit() or len(cid) != 10:
        return None
    n = int(cid[7:])
    return n if 1 <= n <= MAX_CLIENTS else None


def sample_clients(count: int = 12) -> list[tuple[str, str, str]]:
    """(client_id, name, credential status) for client-001 .. client-<count>."""
    out = []
    for n in range(1, count + 1):
        base = CLIENT_NAMES[(n - 1) % len(CLIENT_NAMES)]
        name = base if n <= len(CLIENT_NAMES) else f"{base} {(n - 1) // len(CLIENT_NAMES) + 1}"
        out.append((client_id(n), name, CLIENT_STATUS_PATTERN[(n - 1) % 12]))
    return out


def sku_count(cid: str, platform: str, seed: int = 7) -> int:
    """Deterministic SKU count per client × platform; ``all`` = shopify + amazon."""
    if platform == "all":
        return sku_count(cid, "shopify", seed) + sku_count(cid, "amazon", seed)
    rng = rng_for(seed, "skus", cid, platform)
    return rng.randrange(40, 900) if platform == "shopify" else rng.randrange(0, 400)
