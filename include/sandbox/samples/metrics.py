"""Synthetic daily shop metrics for tests and the detector benchmark (numpy only, seeded).

Model per series (vectorised over many series): sessions = level × weekday profile × slow drift
× noise; conversion rate = base × mild weekday profile × noise, conversions ~ Binomial(sessions,
rate); revenue = conversions × basket value × noise. Each of the three drivers (traffic,
conversion, basket) has its own random outlier days (default 4 % each) of ±30–60 %; revenue, the
product, inherits all three. The last ``clean_tail`` days are outlier-free so they can serve as
clean target days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from include.analytics_ops.checks.stats import DayPoint


@dataclass
class SyntheticMetrics:
    """Arrays of shape (n_series, n_days); day j is ``start + j``."""

    start: date
    sessions: np.ndarray
    conversions: np.ndarray
    revenue: np.ndarray
    outlier: np.ndarray  # bool: any driver had an outlier that day

    @property
    def conversion_rate(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.conversions / self.sessions

    def day(self, j: int) -> date:
        return self.start + timedelta(days=int(j))

    def points(self, metric: str, series: int = 0, upto: int | None = None) -> list[DayPoint]:
        """DayPoints of one series (through day index ``upto``, inclusive; default: all)."""
        end = self.sessions.shape[1] if upto is None else upto + 1
        out = []
        for j in range(end):
            sess = int(self.sessions[series, j])
            if metric == "conversion_rate":
                conv = self.conversions[series, j]
                out.append(DayPoint(self.day(j), float(conv) / sess if sess else None, sess))
            else:
                out.append(DayPoint(self.day(j), float(getattr(self, metric)[series, j])))
        return out


def _outliers(rng: np.random.Generator, shape: tuple[int, int], rate: float) -> np.ndarray:
    hit = rng.random(shape) < rate
    size = rng.uniform(0.3, 0.6, shape)
    sign = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return np.where(hit, 1.0 + sign * size, 1.0)


def generate(
    rng: np.random.Generator,
    n_series: int = 1,
    n_days: int = 140,
    *,
    outlier_rate: float = 0.04,
    clean_tail: int = 7,
    start: date = date(2025, 1, 6),  # a Monday
) -> SyntheticMetrics:
    shape = (n_series, n_days)
    dow = (np.arange(n_days) + start.weekday()) % 7
    # traffic: level 5k–50k, weekday profile (weekend dip), slow AR(1) drift, daily noise
    level = np.exp(rng.uniform(np.log(5_000), np.log(50_000), (n_series, 1)))
    profile = np.exp(rng.normal(0, 0.12, (n_series, 7)))
    profile[:, 5:] *= rng.uniform(0.6, 0.9, (n_series, 1))  # weekend
    profile /= profile.mean(axis=1, keepdims=True)
    drift = np.zeros(shape)
    eps = rng.normal(0, 0.015, shape)
    for j in range(1, n_days):
        drift[:, j] = 0.9 * drift[:, j - 1] + eps[:, j]
    sigma_s = rng.uniform(0.04, 0.08, (n_series, 1))
    sessions = level * profile[:, dow] * np.exp(drift + rng.normal(0, 1, shape) * sigma_s)
    # conversion: base 1.5–4 %, mild weekday profile, daily noise, binomial counts
    base = rng.uniform(0.015, 0.04, (n_series, 1))
    cprofile = np.exp(rng.normal(0, 0.05, (n_series, 7)))
    rate = base * cprofile[:, dow] * np.exp(rng.normal(0, 0.03, shape))
    # basket value: 40–120 per order, daily noise
    aov = rng.uniform(40, 120, (n_series, 1)) * np.exp(rng.normal(0, 0.06, shape))

    o_traffic = _outliers(rng, shape, outlier_rate)
    o_conv = _outliers(rng, shape, outlier_rate)
    o_basket = _outliers(rng, shape, outlier_rate)
    if clean_tail:
        for o in (o_traffic, o_conv, o_basket):
            o[:, -clean_tail:] = 1.0
    sessions = np.maximum(np.rint(sessions * o_traffic), 1)
    rate = np.clip(rate * o_conv, 0, 1)
    conversions = rng.binomial(sessions.astype(np.int64), rate).astype(float)
    conversions = np.maximum(conversions, 1)
    revenue = np.round(conversions * aov * o_basket, 2)
    outlier = (o_traffic != 1) | (o_conv != 1) | (o_basket != 1)
    return SyntheticMetrics(start, sessions, conversions, revenue, outlier)
