"""Thresholds of the six nightly metric checks, versioned by a hash of their values.

Every number the checks use lives in :class:`CheckConfig`. The defaults come from
``CHECKS_AND_MONITORING.md`` (tuned on synthetic data, see
``tests/benchmarks/compare_detectors.py``) and should be re-tuned by back-testing on real history.
``CheckConfig.version`` changes whenever a value (or :data:`ALGORITHM_VERSION`) changes, so every
``analytics.check_results`` row records which configuration judged it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

# Bump when the statistics change in a way that alters outcomes for the same thresholds.
ALGORITHM_VERSION = "1"

METRICS = ("revenue", "sessions", "conversion_rate")


@dataclass(frozen=True)
class CheckConfig:
    """All thresholds of the range and trend checks (defaults from the methods note)."""

    # --- seasonal centre (range) ---------------------------------------------------------------
    seasonal_weeks: int = 8
    """Centre = median of the last N same weekdays (D-7 … D-7N); excluded days dropped."""
    min_same_weekday_points: int = 4
    """Fewer usable same-weekday points than this → ``insufficient_history``."""

    # --- pooled residual spread (range) --------------------------------------------------------
    residual_window_days: int = 56
    """Residuals r = ln(x / centre) pooled over the previous N days."""
    min_residual_points: int = 14
    """Fewer pooled residuals than this → ``insufficient_history``."""
    mad_to_sigma: float = 1.4826
    scale_floor: float = 0.02
    """Minimum robust scale of the log residuals (≈ 2 % day-to-day noise)."""
    binomial_floor: bool = True
    """Floor the conversion-rate spread at the binomial error sqrt(p(1-p)/sessions)/p."""

    # --- severities ----------------------------------------------------------------------------
    z_warning: float = 3.0
    z_critical: float = 4.0
    min_effect_warning: float = 0.05
    """|value / expected - 1| must also reach this for a warning (range, day-over-day)."""
    min_effect_critical: float = 0.10
    """… and this for a critical; a large z with a smaller effect stays a warning."""

    # --- trend: day-over-day on seasonally adjusted residuals ----------------------------------
    trend_recent_days: int = 3
    """Day-over-day compares today's residual with the median of the previous N days' residuals."""
    trend_min_recent_points: int = 2
    """Usable residuals needed among those N previous days."""

    # --- trend: week-over-week on 7-day totals -------------------------------------------------
    wow_window_days: int = 7
    wow_history_days: int = 56
    """Historical week-over-week log ratios (ending on each of the previous N days) give the
    distribution today's ratio is judged against."""
    wow_min_pairs: int = 5
    """Day pairs (d, d-7) with a value needed in the two windows (gaps are imputed seasonally)."""
    wow_scale_floor: float = 0.01
    wow_z_warning: float = 4.0
    """Higher than the daily z: the 56 overlapping weekly ratios behind the reference scale hold
    only ~8 independent weeks, so their robust z has heavier tails (benchmark: z ≥ 3 alone gave
    ~2 % false alarms on clean days, z ≥ 4 gives < 1 %)."""
    wow_z_critical: float = 5.0
    wow_min_effect_warning: float = 0.075
    wow_min_effect_critical: float = 0.15
    min_trend_points: int = 14
    """Historical day-over-day / week-over-week values needed to judge either statistic."""

    # --- hard bounds (always critical; None = not configured) ----------------------------------
    revenue_floor: float | None = None
    revenue_ceiling: float | None = None
    sessions_floor: float | None = None
    sessions_ceiling: float | None = None
    conversion_rate_floor: float | None = None
    conversion_rate_ceiling: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.z_warning <= self.z_critical:
            raise ValueError("need 0 < z_warning <= z_critical")
        if not 0 <= self.min_effect_warning <= self.min_effect_critical:
            raise ValueError("need 0 <= min_effect_warning <= min_effect_critical")
        if not 0 < self.wow_z_warning <= self.wow_z_critical:
            raise ValueError("need 0 < wow_z_warning <= wow_z_critical")
        if not 0 <= self.wow_min_effect_warning <= self.wow_min_effect_critical:
            raise ValueError("need 0 <= wow_min_effect_warning <= wow_min_effect_critical")
        if self.min_same_weekday_points < 1 or self.min_same_weekday_points > self.seasonal_weeks:
            raise ValueError("min_same_weekday_points must be in 1..seasonal_weeks")
        if self.scale_floor <= 0 or self.wow_scale_floor <= 0:
            raise ValueError("scale floors must be > 0")

    # ------------------------------------------------------------------------------------------
    @property
    def version(self) -> str:
        """``v<algorithm>-<12 hex>``: a hash of every threshold; changes when any value does."""
        payload = json.dumps(
            {"algorithm": ALGORITHM_VERSION, **asdict(self)}, sort_keys=True, default=str
        )
        return f"v{ALGORITHM_VERSION}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"

    @property
    def history_days_needed(self) -> int:
        """Calendar days before the target a caller should read for a fully-fed judgement.

        Residuals over ``residual_window_days`` (plus the ``trend_recent_days`` before the oldest,
        for day-over-day) or the week-over-week windows, each needing its own seasonal centre
        (``7 × seasonal_weeks`` days further back).
        """
        residual_back = self.residual_window_days + self.trend_recent_days
        wow_back = self.wow_history_days + 2 * self.wow_window_days - 1
        return max(residual_back, wow_back) + 7 * self.seasonal_weeks

    def bounds(self, metric: str) -> tuple[float | None, float | None]:
        """Configured (floor, ceiling) for a metric, on top of the built-in hard bounds."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
        return getattr(self, f"{metric}_floor"), getattr(self, f"{metric}_ceiling")

    def with_overrides(self, **changes: Any) -> CheckConfig:
        """A copy with some thresholds changed (unknown names raise ``TypeError``)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown CheckConfig fields: {sorted(unknown)}")
        return replace(self, **changes)


DEFAULT_CONFIG = CheckConfig()
