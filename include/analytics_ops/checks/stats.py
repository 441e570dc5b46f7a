"""Statistics of the six nightly metric checks: pure functions, no Airflow, no database.

Method (``CHECKS_AND_MONITORING.md``), thresholds in :class:`~.config.CheckConfig`:

1. **Hard bounds** (always critical, before any logarithm): a missing value; revenue < 0 or = 0;
   sessions ≤ 0 (a drop to zero is critical — ``SQLIntervalCheckOperator(ignore_zero=True)`` lets
   it pass); conversion rate outside [0, 1], = 0, or with no sessions; configured floors/ceilings.
2. **Range** (seasonal robust band): centre = median of the last 8 same weekdays; residuals
   r = ln(x / centre-of-that-day) pooled over the previous 56 days (each day's centre from *its*
   previous 8 same weekdays); scale = 1.4826 × MAD(r), floored (and, for conversion rate, at the
   binomial error); z = |r_today − median(r)| / scale. Warning at z ≥ 3, critical at z ≥ 4, each
   only if the change vs the expected value also reaches a minimum effect.
3. **Trend**: day-over-day = today's residual minus the median of the previous 3 days' residuals,
   judged (robust z) against the same statistic on the previous 56 days; week-over-week =
   ln(Σ last 7 / Σ previous 7) over weekday-matched pairs (conversion rate: Σconversions/Σsessions),
   judged against the week-over-week ratios ending on each of the previous 56 days. Severity is
   the worse of the two; a single prior day is never the reference.
4. **Hygiene**: excluded days (already critical, not marked expected), missing days and
   non-positive values never enter a centre, a residual pool or a weekly total (weekly totals
   impute them by their seasonal expectation); with fewer than 4 usable same-weekday points, or
   too few pooled residuals, the outcome is ``insufficient_history`` — neither pass nor fail.

The array core (:func:`evaluate_arrays`) is vectorised over a batch of series so the benchmark
(``tests/benchmarks/compare_detectors.py``) measures exactly the code the DAG runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np

from .config import DEFAULT_CONFIG, METRICS, CheckConfig
from .formatting import format_change, format_value

Severity = Literal["passed", "warning", "critical", "insufficient_history"]
Status = Literal["passed", "warning", "critical"]
Kind = Literal["range", "trend"]

SEVERITY_RANK: dict[str, int] = {
    "passed": 0,
    "insufficient_history": 1,
    "warning": 2,
    "critical": 3,
}
EXIT_CODES: dict[str, int] = {"passed": 0, "warning": 1, "critical": 2}
CHECK_NAMES: tuple[str, ...] = tuple(f"{m}_{k}" for m in METRICS for k in ("range", "trend"))


# ==============================================================================================
# Public data types
# ==============================================================================================
@dataclass(frozen=True)
class DayPoint:
    """One day of one metric.

    ``value`` is the metric (for ``conversion_rate`` the rate conversions ÷ sessions, with
    ``sessions`` set so the binomial floor and the rate-of-sums week-over-week can be applied).
    ``excluded`` marks a day already flagged critical and not marked expected: it is kept out of
    every baseline (it can still be the target being judged).
    """

    day: date
    value: float | None
    sessions: int | None = None
    excluded: bool = False


@dataclass(frozen=True)
class CheckOutcome:
    """One row of ``analytics.check_results`` (see :meth:`to_row`)."""

    check_name: str
    metric: str
    kind: Kind
    target_date: date
    value: float | None
    centre: float | None
    expected_low: float | None
    expected_high: float | None
    score: float | None
    severity: Severity
    explanation: str
    excluded: bool
    details: dict[str, Any] = field(default_factory=dict)
    config_version: str = ""

    def to_row(self, *, expected: bool = False) -> dict[str, Any]:
        """Column → value for ``analytics.check_results`` (``details`` is JSON-safe)."""
        row = asdict(self)
        row["expected"] = expected
        return row


# ==============================================================================================
# Vectorised core
# ==============================================================================================
def _nanmedian(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median over the last axis ignoring NaN, and the count of non-NaN (median NaN if none)."""
    valid = ~np.isnan(a)
    n = valid.sum(axis=-1)
    s = np.sort(np.where(valid, a, np.inf), axis=-1)
    lo = np.clip((n - 1) // 2, 0, None)
    hi = np.clip(n // 2, 0, a.shape[-1] - 1)
    m = 0.5 * (
        np.take_along_axis(s, lo[..., None], axis=-1)[..., 0]
        + np.take_along_axis(s, hi[..., None], axis=-1)[..., 0]
    )
    return np.where(n > 0, m, np.nan), n


def _lags(a: np.ndarray, lags: Sequence[int]) -> np.ndarray:
    """Stack a[..., i - lag] for each lag on a new last axis (NaN where i - lag < 0)."""
    out = np.full((*a.shape, len(lags)), np.nan)
    for j, lag in enumerate(lags):
        if lag == 0:
            out[..., j] = a
        elif lag < a.shape[-1]:
            out[..., lag:, j] = a[..., :-lag]
    return out


def _robust(hist: np.ndarray, cfg: CheckConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(median, 1.4826·MAD, count) over the last axis, NaN ignored."""
    med, n = _nanmedian(hist)
    mad, _ = _nanmedian(np.abs(hist - med[..., None]))
    return med, cfg.mad_to_sigma * mad, n


def _window_sum(a: np.ndarray, w: int) -> np.ndarray:
    """Sum of a[..., i-w+1 .. i] (zeros for i < w-1 are treated as missing → partial sums)."""
    c = np.cumsum(a, axis=-1)
    out = c.copy()
    out[..., w:] = c[..., w:] - c[..., :-w]
    return out


@dataclass
class ArrayStats:
    """Per-series statistics for the target (last column) of :func:`evaluate_arrays`."""

    # range
    centre: np.ndarray
    same_weekday_points: np.ndarray
    residual: np.ndarray
    residual_median: np.ndarray
    residual_scale_raw: np.ndarray
    binomial_scale: np.ndarray
    residual_scale: np.ndarray
    residual_points: np.ndarray
    range_z: np.ndarray
    range_effect: np.ndarray
    # day-over-day
    recent_median: np.ndarray
    recent_points: np.ndarray
    dod: np.ndarray
    dod_median: np.ndarray
    dod_scale_raw: np.ndarray
    dod_scale: np.ndarray
    dod_points: np.ndarray
    dod_z: np.ndarray
    dod_effect: np.ndarray
    # week-over-week
    wow: np.ndarray
    wow_last: np.ndarray  # mean per day of the last window (a rate for conversion rate)
    wow_prev: np.ndarray
    wow_pairs: np.ndarray
    wow_median: np.ndarray
    wow_scale_raw: np.ndarray
    wow_scale: np.ndarray
    wow_points: np.ndarray
    wow_imputed_days: np.ndarray
    wow_z: np.ndarray
    wow_effect: np.ndarray

    def range_ok(self, cfg: CheckConfig) -> np.ndarray:
        return (self.same_weekday_points >= cfg.min_same_weekday_points) & (
            self.residual_points >= cfg.min_residual_points
        )

    def dod_ok(self, cfg: CheckConfig) -> np.ndarray:
        return (
            (self.same_weekday_points >= cfg.min_same_weekday_points)
            & (self.recent_points >= cfg.trend_min_recent_points)
            & (self.dod_points >= cfg.min_trend_points)
        )

    def wow_ok(self, cfg: CheckConfig) -> np.ndarray:
        return (
            (self.same_weekday_points >= cfg.min_same_weekday_points)
            & np.isfinite(self.wow)
            & (self.wow_points >= cfg.min_trend_points)
        )

    def range_score(self, cfg: CheckConfig) -> np.ndarray:
        """z where the range check could fire (enough history, effect ≥ warning), else 0."""
        gate = self.range_ok(cfg) & (np.abs(self.range_effect) >= cfg.min_effect_warning)
        return np.where(gate, np.nan_to_num(self.range_z), 0.0)

    def trend_score(self, cfg: CheckConfig) -> np.ndarray:
        """Worse of the gated day-over-day and week-over-week z, the latter rescaled by
        ``z_warning / wow_z_warning`` so one threshold applies to both."""
        dod = np.where(
            self.dod_ok(cfg) & (np.abs(self.dod_effect) >= cfg.min_effect_warning),
            np.nan_to_num(self.dod_z),
            0.0,
        )
        wow = np.where(
            self.wow_ok(cfg) & (np.abs(self.wow_effect) >= cfg.wow_min_effect_warning),
            np.nan_to_num(self.wow_z) * (cfg.z_warning / cfg.wow_z_warning),
            0.0,
        )
        return np.maximum(dod, wow)


def evaluate_arrays(
    values: np.ndarray,
    sessions: np.ndarray | None = None,
    config: CheckConfig = DEFAULT_CONFIG,
) -> ArrayStats:
    """Range and trend statistics for a batch of daily series, judged at their last column.

    ``values``: shape (n_series, n_days), consecutive calendar days, the last column is the target
    (must be > 0). NaN marks a day that must stay out of baselines (missing, excluded,
    non-positive). ``sessions`` (same shape, optional): per-day sessions of a conversion-rate
    series — enables the binomial floor and the rate-of-sums week-over-week. Series shorter than
    ``config.history_days_needed + 1`` simply have fewer usable points.
    """
    cfg = config
    x = np.atleast_2d(np.asarray(values, dtype=float))
    b, length = x.shape
    t = length - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.where(x > 0, x, np.nan)
        if sessions is not None:
            sess = np.atleast_2d(np.asarray(sessions, dtype=float))
            sess = np.where(sess > 0, sess, np.nan)
        else:
            sess = None

        # --- seasonal centres for every day -----------------------------------------------
        same_wd = _lags(x, [7 * k for k in range(1, cfg.seasonal_weeks + 1)])
        centre_all, n_same_all = _nanmedian(same_wd)
        centre_ok = n_same_all >= cfg.min_same_weekday_points
        centre_all = np.where(centre_ok, centre_all, np.nan)
        resid = np.log(x / centre_all)  # NaN where either is unusable

        # --- range: pooled residuals over the previous W days ------------------------------
        w = cfg.residual_window_days
        lo = max(0, t - w)
        pool = resid[:, lo:t]
        med_r, scale_raw, n_resid = _robust(pool, cfg)
        centre_t = centre_all[:, t]
        r_t = resid[:, t]
        expected = centre_t * np.exp(med_r)
        if sess is not None and cfg.binomial_floor:
            p = np.clip(expected, 1e-12, 1 - 1e-12)
            binom = np.sqrt(p * (1 - p) / sess[:, t]) / p
            binom = np.nan_to_num(binom, nan=0.0)
        else:
            binom = np.zeros(b)
        scale = np.maximum(np.maximum(np.nan_to_num(scale_raw), cfg.scale_floor), binom)
        range_z = np.abs(r_t - med_r) / scale
        range_effect = np.exp(r_t - med_r) - 1

        # --- day-over-day on residuals ----------------------------------------------------
        recent = _lags(resid, list(range(1, cfg.trend_recent_days + 1)))
        recent_med, recent_n = _nanmedian(recent)
        recent_med = np.where(recent_n >= cfg.trend_min_recent_points, recent_med, np.nan)
        dod_all = resid - recent_med
        dod_med, dod_scale_raw, dod_n = _robust(dod_all[:, lo:t], cfg)
        dod_scale = np.maximum(np.maximum(np.nan_to_num(dod_scale_raw), cfg.scale_floor), binom)
        dod_t = dod_all[:, t]
        dod_z = np.abs(dod_t - dod_med) / dod_scale
        dod_effect = np.exp(dod_t - dod_med) - 1

        # --- week-over-week on weekday-matched 7-day totals --------------------------------
        # Sums are not robust: before the current window, a day the range rule would call
        # critical counts as excluded (as the nightly feedback loop would have flagged it) and,
        # like missing/excluded days, is imputed by its seasonal expectation. Days of the current
        # window are taken as they are (only caller-excluded days are imputed) so a sustained
        # drift is not imputed away; the target itself is never imputed.
        ww = cfg.wow_window_days
        base_scale = np.maximum(np.nan_to_num(scale_raw), cfg.scale_floor)[:, None]
        dev = resid - med_r[:, None]
        self_excluded = (np.abs(dev) >= cfg.z_critical * base_scale) & (
            np.abs(np.expm1(dev)) >= cfg.min_effect_critical
        )
        self_excluded[:, max(0, t - ww + 1) :] = False
        expected_all = centre_all * np.exp(med_r)[:, None]
        imputed = np.where(np.isnan(x) | self_excluded, expected_all, x)
        weight = np.ones_like(x) if sess is None else sess
        mass = imputed * weight  # conversions for a rate series, the value otherwise
        have = np.isfinite(mass)
        prev_have = _lags(have.astype(float), [7])[..., 0] == 1
        pair = have & prev_have
        mass0 = np.where(have, mass, 0.0)
        weight0 = np.where(have, weight, 0.0)
        mass_prev = _lags(mass0, [7])[..., 0]
        weight_prev = _lags(weight0, [7])[..., 0]
        pf = pair.astype(float)
        last_mass = _window_sum(np.where(pair, mass0, 0.0), ww)
        prev_mass = _window_sum(np.where(pair, mass_prev, 0.0), ww)
        last_w = _window_sum(np.where(pair, weight0, 0.0), ww)
        prev_w = _window_sum(np.where(pair, weight_prev, 0.0), ww)
        n_pairs = _window_sum(pf, ww)
        wow_all = np.log((last_mass / last_w) / (prev_mass / prev_w))
        wow_valid = pair & (n_pairs >= cfg.wow_min_pairs)
        wow_valid[:, : 2 * ww - 1] = False  # incomplete windows at the start
        wow_all = np.where(wow_valid, wow_all, np.nan)
        wlo = max(0, t - cfg.wow_history_days)
        wow_med, wow_scale_raw, wow_n = _robust(wow_all[:, wlo:t], cfg)
        if sess is not None and cfg.binomial_floor:
            p = np.clip(expected, 1e-12, 1 - 1e-12)
            wbin = np.sqrt(p * (1 - p) * (1 / last_w[:, t] + 1 / prev_w[:, t])) / p
            wbin = np.nan_to_num(wbin, nan=0.0, posinf=0.0)
        else:
            wbin = np.zeros(b)
        wow_scale = np.maximum(np.maximum(np.nan_to_num(wow_scale_raw), cfg.wow_scale_floor), wbin)
        wow_t = wow_all[:, t]
        replaced = (np.isnan(x) | self_excluded)[:, max(0, t - 2 * ww + 1) :]
        imputed_days = replaced.sum(axis=1)
        wow_z = np.abs(wow_t - wow_med) / wow_scale
        wow_effect = np.exp(wow_t - wow_med) - 1

    return ArrayStats(
        centre=centre_t,
        same_weekday_points=n_same_all[:, t],
        residual=r_t,
        residual_median=med_r,
        residual_scale_raw=scale_raw,
        binomial_scale=binom,
        residual_scale=scale,
        residual_points=n_resid,
        range_z=range_z,
        range_effect=range_effect,
        recent_median=recent_med[:, t],
        recent_points=recent_n[:, t],
        dod=dod_t,
        dod_median=dod_med,
        dod_scale_raw=dod_scale_raw,
        dod_scale=dod_scale,
        dod_points=dod_n,
        dod_z=dod_z,
        dod_effect=dod_effect,
        wow=wow_t,
        wow_last=last_mass[:, t] / last_w[:, t],
        wow_prev=prev_mass[:, t] / prev_w[:, t],
        wow_pairs=n_pairs[:, t],
        wow_median=wow_med,
        wow_scale_raw=wow_scale_raw,
        wow_scale=wow_scale,
        wow_points=wow_n,
        wow_imputed_days=imputed_days,
        wow_z=wow_z,
        wow_effect=wow_effect,
    )


# ==============================================================================================
# Scalar API used by the DAG
# ==============================================================================================
def _f(v: Any) -> float | None:
    """JSON-safe float (None for NaN/inf/None)."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _i(v: Any) -> int:
    return int(v)


def _severity(z: float, effect: float, zw: float, zc: float, ew: float, ec: float) -> Severity:
    if not (math.isfinite(z) and math.isfinite(effect)):
        return "passed"
    if z >= zc and abs(effect) >= ec:
        return "critical"
    if z >= zw and abs(effect) >= ew:
        return "warning"
    return "passed"


def _worst(*severities: Severity) -> Severity:
    return max(severities, key=lambda s: SEVERITY_RANK[s])


def _usable(metric: str, p: DayPoint) -> bool:
    v = p.value
    if p.excluded or v is None or not math.isfinite(v) or v <= 0:
        return False
    if metric == "conversion_rate":
        if v > 1:
            return False
        if p.sessions is not None and p.sessions <= 0:
            return False
    return True


def _arrays(
    metric: str, target: date, by_day: Mapping[date, DayPoint], cfg: CheckConfig
) -> tuple[np.ndarray, np.ndarray | None]:
    length = cfg.history_days_needed + 1
    x = np.full(length, np.nan)
    use_sessions = metric == "conversion_rate" and any(
        p.sessions is not None for p in by_day.values()
    )
    s = np.full(length, np.nan) if use_sessions else None
    start = target - timedelta(days=length - 1)
    for d, p in by_day.items():
        i = (d - start).days
        if 0 <= i < length - 1 and _usable(metric, p):
            x[i] = float(p.value)  # type: ignore[arg-type]
            if s is not None and p.sessions is not None:
                s[i] = float(p.sessions)
    return x, s


def _index(history: Iterable[DayPoint], target: date) -> dict[date, DayPoint]:
    by_day: dict[date, DayPoint] = {}
    for p in history:
        if p.day <= target:
            by_day[p.day] = p  # a later duplicate wins
    return by_day


def _hard_bound_violation(metric: str, p: DayPoint | None, cfg: CheckConfig) -> str | None:
    """Why the target value is critical before any statistics, or None."""
    if metric == "conversion_rate" and p is not None and p.sessions is not None and p.sessions <= 0:
        return f"{p.sessions} sessions: conversion rate is undefined with no traffic"
    if p is None or p.value is None or (isinstance(p.value, float) and math.isnan(p.value)):
        return "missing"
    v = float(p.value)
    label = metric.replace("_", " ")
    shown = format_value(metric, v)
    if not math.isfinite(v):
        return f"{label} is not a finite number ({v})"
    if metric == "revenue":
        if v < 0:
            return f"negative revenue ({shown}); revenue must be ≥ 0"
        if v == 0:
            return "revenue is zero"
    elif metric == "sessions":
        if v <= 0:
            return f"{shown} sessions; sessions must be > 0 (a drop to zero is a break, not a dip)"
    elif metric == "conversion_rate":
        if v < 0 or v > 1:
            return f"conversion rate {shown} is outside 0–100%"
        if v == 0:
            return "conversion rate is zero (no conversions)"
    floor, ceiling = cfg.bounds(metric)
    if floor is not None and v < floor:
        return f"{label} {shown} is below the configured floor {format_value(metric, floor)}"
    if ceiling is not None and v > ceiling:
        return f"{label} {shown} is above the configured ceiling {format_value(metric, ceiling)}"
    return None


def _prepare(
    metric: str, target: date, history: Sequence[DayPoint], cfg: CheckConfig
) -> tuple[DayPoint | None, str | None, ArrayStats]:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    by_day = _index(history, target)
    point = by_day.get(target)
    violation = _hard_bound_violation(metric, point, cfg)
    x, s = _arrays(metric, target, by_day, cfg)
    # A hard-bound target is replaced by a neutral 1.0 so the baseline (centre, band) can still be
    # reported; its z is never used.
    x[-1] = float(point.value) if violation is None else 1.0  # type: ignore[union-attr, arg-type]
    if s is not None:
        sess = point.sessions if point is not None else None
        s[-1] = float(sess) if violation is None and sess is not None else np.nan
    return point, violation, evaluate_arrays(x[None, :], None if s is None else s[None, :], cfg)


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _insufficient_reason(st: ArrayStats, target: date, cfg: CheckConfig, kind: Kind) -> str:
    n_same = _i(st.same_weekday_points[0])
    if n_same < cfg.min_same_weekday_points:
        return (
            f"{n_same} of the previous {cfg.seasonal_weeks} {_WEEKDAYS[target.weekday()]}s usable, "
            f"need {cfg.min_same_weekday_points}"
        )
    if kind == "range":
        return (
            f"{_i(st.residual_points[0])} seasonal residuals in the previous "
            f"{cfg.residual_window_days} days, need {cfg.min_residual_points}"
        )
    return (
        f"{_i(st.dod_points[0])} day-over-day and {_i(st.wow_points[0])} week-over-week "
        f"reference values, need {cfg.min_trend_points}"
    )


def _band(centre: float, med: float, scale: float, z: float) -> tuple[float | None, float | None]:
    if not (math.isfinite(centre) and math.isfinite(med) and math.isfinite(scale)):
        return None, None
    return centre * math.exp(med - z * scale), centre * math.exp(med + z * scale)


def _outcome(
    metric: str,
    kind: Kind,
    target: date,
    value: float | None,
    centre: float | None,
    band: tuple[float | None, float | None],
    score: float | None,
    severity: Severity,
    explanation: str,
    details: dict[str, Any],
    cfg: CheckConfig,
) -> CheckOutcome:
    details = dict(details)
    details.setdefault("config_version", cfg.version)
    return CheckOutcome(
        check_name=f"{metric}_{kind}",
        metric=metric,
        kind=kind,
        target_date=target,
        value=_f(value),
        centre=_f(centre),
        expected_low=_f(band[0]),
        expected_high=_f(band[1]),
        score=_f(score),
        severity=severity,
        explanation=explanation,
        excluded=severity == "critical",
        details=details,
        config_version=cfg.version,
    )


def _hard_outcome(
    metric: str,
    kind: Kind,
    target: date,
    point: DayPoint | None,
    violation: str,
    centre: float | None,
    band: tuple[float | None, float | None],
    cfg: CheckConfig,
) -> CheckOutcome:
    if violation == "missing":
        text = f"{metric.replace('_', ' ')} is missing for {target.isoformat()} (no row or NULL)"
        rule = "missing_value"
    else:
        text = violation
        rule = "hard_bound"
    if band[0] is not None:
        text += f"; expected {format_value(metric, band[0])}–{format_value(metric, band[1])}"
    value = None if point is None else point.value
    details = {"rule": rule, "reason": violation}
    if point is not None and point.sessions is not None:
        details["sessions"] = int(point.sessions)
    return _outcome(metric, kind, target, value, centre, band, None, "critical", text, details, cfg)


def range_check(
    metric: str,
    target: date,
    history: Sequence[DayPoint],
    config: CheckConfig = DEFAULT_CONFIG,
) -> CheckOutcome:
    """Judge ``target``'s value against its seasonal robust band.

    ``history`` holds the target day (the value judged) and prior days; days after the target are
    ignored. Returns severity ``passed`` / ``warning`` / ``critical`` / ``insufficient_history``.
    """
    cfg = config
    point, violation, st = _prepare(metric, target, history, cfg)
    ok = bool(st.range_ok(cfg)[0])
    centre = _f(st.centre[0])
    med, scale = float(st.residual_median[0]), float(st.residual_scale[0])
    band = _band(centre, med, scale, cfg.z_warning) if ok and centre else (None, None)
    details: dict[str, Any] = {
        "rule": "range",
        "same_weekday_points": _i(st.same_weekday_points[0]),
        "residual_points": _i(st.residual_points[0]),
        "residual_median": _f(med),
        "scale": _f(scale),
        "scale_mad": _f(st.residual_scale_raw[0]),
        "scale_binomial": _f(st.binomial_scale[0]) or None,
        "expected": _f(centre * math.exp(med)) if ok and centre else None,
    }
    if violation is not None:
        out = _hard_outcome(metric, "range", target, point, violation, centre, band, cfg)
        out.details.update({k: v for k, v in details.items() if k != "rule"})
        return out
    assert point is not None and point.value is not None
    value = float(point.value)
    shown = format_value(metric, value)
    if not ok:
        reason = _insufficient_reason(st, target, cfg, "range")
        details["reason"] = reason
        return _outcome(
            metric,
            "range",
            target,
            value,
            centre,
            (None, None),
            None,
            "insufficient_history",
            f"{metric.replace('_', ' ')} {shown}: insufficient history ({reason})",
            details,
            cfg,
        )
    z = float(st.range_z[0])
    effect = float(st.range_effect[0])
    sev = _severity(
        z, effect, cfg.z_warning, cfg.z_critical, cfg.min_effect_warning, cfg.min_effect_critical
    )
    details.update({"residual": _f(st.residual[0]), "z": _f(z), "effect": _f(effect)})
    text = (
        f"{metric.replace('_', ' ')} {shown}, expected "
        f"{format_value(metric, band[0])}–{format_value(metric, band[1])} (z={z:.1f})"
    )
    if sev != "passed":
        text += (
            f": {format_change(effect)} vs the expected {format_value(metric, details['expected'])}"
        )
    elif z >= cfg.z_warning:
        text += f"; change {format_change(effect)} is below the minimum effect, not flagged"
    return _outcome(metric, "range", target, value, centre, band, z, sev, text, details, cfg)


def trend_check(
    metric: str,
    target: date,
    history: Sequence[DayPoint],
    config: CheckConfig = DEFAULT_CONFIG,
) -> CheckOutcome:
    """Judge ``target`` for a day-over-day break (seasonally adjusted) and a week-over-week drift.

    ``centre``/``expected_low``/``expected_high`` are the day-over-day expectation in value units
    (seasonal centre × recent residual level); the week-over-week figures are in ``details``.
    """
    cfg = config
    point, violation, st = _prepare(metric, target, history, cfg)
    label = metric.replace("_", " ")
    dod_ok = bool(st.dod_ok(cfg)[0])
    wow_ok = bool(st.wow_ok(cfg)[0])
    centre_season = float(st.centre[0])
    level = float(st.recent_median[0])
    dod_med, dod_scale = float(st.dod_median[0]), float(st.dod_scale[0])
    if dod_ok and math.isfinite(centre_season):
        centre = centre_season * math.exp(level + dod_med)
        band = _band(centre_season, level + dod_med, dod_scale, cfg.z_warning)
    else:
        centre, band = None, (None, None)
    dod_d: dict[str, Any] = {
        "available": dod_ok,
        "recent_residual_median": _f(level),
        "recent_points": _i(st.recent_points[0]),
        "reference_points": _i(st.dod_points[0]),
        "median": _f(dod_med),
        "scale": _f(dod_scale),
        "scale_mad": _f(st.dod_scale_raw[0]),
    }
    wow_d: dict[str, Any] = {
        "available": wow_ok,
        "pairs": _i(st.wow_pairs[0]),
        "imputed_days": _i(st.wow_imputed_days[0]),
        "reference_points": _i(st.wow_points[0]),
        "median": _f(st.wow_median[0]),
        "scale": _f(st.wow_scale[0]),
        "scale_mad": _f(st.wow_scale_raw[0]),
    }
    details: dict[str, Any] = {
        "rule": "trend",
        "seasonal_centre": _f(centre_season),
        "same_weekday_points": _i(st.same_weekday_points[0]),
        "day_over_day": dod_d,
        "week_over_week": wow_d,
    }
    if violation is not None:
        out = _hard_outcome(metric, "trend", target, point, violation, centre, band, cfg)
        out.details.update({k: v for k, v in details.items() if k != "rule"})
        return out
    assert point is not None and point.value is not None
    value = float(point.value)
    shown = format_value(metric, value)
    if not (dod_ok or wow_ok):
        reason = _insufficient_reason(st, target, cfg, "trend")
        details["reason"] = reason
        return _outcome(
            metric,
            "trend",
            target,
            value,
            centre,
            band,
            None,
            "insufficient_history",
            f"{label} {shown}: insufficient history for the trend check ({reason})",
            details,
            cfg,
        )

    parts: list[str] = []
    triggered: list[str] = []
    sev_dod: Severity = "passed"
    sev_wow: Severity = "passed"
    z_dod = z_wow = None
    if dod_ok:
        z_dod, e_dod = float(st.dod_z[0]), float(st.dod_effect[0])
        sev_dod = _severity(
            z_dod,
            e_dod,
            cfg.z_warning,
            cfg.z_critical,
            cfg.min_effect_warning,
            cfg.min_effect_critical,
        )
        dod_d.update({"value": _f(st.dod[0]), "z": _f(z_dod), "effect": _f(e_dod)})
        dod_d["severity"] = sev_dod
        parts.append(
            f"day-over-day {format_change(e_dod)} vs the recent level (expected "
            f"{format_value(metric, band[0])}–{format_value(metric, band[1])}, z={z_dod:.1f}) "
            + ("normal" if sev_dod == "passed" else f"→ {sev_dod}")
        )
        if sev_dod != "passed":
            triggered.append("day_over_day")
    else:
        parts.append("day-over-day not available (too little recent history)")
    if wow_ok:
        z_wow, e_wow = float(st.wow_z[0]), float(st.wow_effect[0])
        sev_wow = _severity(
            z_wow,
            e_wow,
            cfg.wow_z_warning,
            cfg.wow_z_critical,
            cfg.wow_min_effect_warning,
            cfg.wow_min_effect_critical,
        )
        raw = math.exp(float(st.wow[0])) - 1
        wow_d.update(
            {
                "value": _f(st.wow[0]),
                "ratio_change": _f(raw),
                "last_window": _f(st.wow_last[0]),
                "previous_window": _f(st.wow_prev[0]),
                "z": _f(z_wow),
                "effect": _f(e_wow),
                "severity": sev_wow,
            }
        )
        if metric == "conversion_rate":
            what = (
                f"week-over-week 7-day rate {format_value(metric, _f(st.wow_last[0]))} vs "
                f"{format_value(metric, _f(st.wow_prev[0]))} ({format_change(raw)}, z={z_wow:.1f})"
            )
        else:
            what = f"week-over-week 7-day total {format_change(raw)} (z={z_wow:.1f})"
        parts.append(what + (" normal" if sev_wow == "passed" else f" → {sev_wow}"))
        if sev_wow != "passed":
            triggered.append("week_over_week")
    else:
        parts.append("week-over-week not available (too little history)")
    sev = _worst(sev_dod, sev_wow)
    details["triggered"] = triggered
    # one scale for both: week-over-week z is expressed relative to its own (higher) threshold
    wow_norm = None if z_wow is None else z_wow * cfg.z_warning / cfg.wow_z_warning
    score = max(z for z in (z_dod, wow_norm) if z is not None)
    details["score_rule"] = "max(day-over-day z, week-over-week z × z_warning / wow_z_warning)"
    head = f"{label} {shown}"
    if triggered:
        head += " — " + " and ".join(t.replace("_", "-") for t in triggered) + " triggered"
    text = head + ": " + "; ".join(parts)
    return _outcome(metric, "trend", target, value, centre, band, score, sev, text, details, cfg)


def overall_status(outcomes: Iterable[CheckOutcome | str]) -> Status:
    """Proof status (legacy exit codes 0/1/2 via :data:`EXIT_CODES`).

    ``critical`` if any check is critical; ``passed`` only if there is at least one outcome and
    every one passed; otherwise ``warning`` — so ``insufficient_history`` needs review (it is not a
    pass) but never makes the proof critical.
    """
    sev = [o if isinstance(o, str) else o.severity for o in outcomes]
    if any(s == "critical" for s in sev):
        return "critical"
    if sev and all(s == "passed" for s in sev):
        return "passed"
    return "warning"


def exit_code(status: str) -> int:
    """Legacy sampling-guard exit code: passed 0, warning 1, critical 2."""
    return EXIT_CODES[status]


def history_from_rows(
    rows: Iterable[Mapping[str, Any]],
    metric: str,
    excluded_days: Iterable[date] = (),
) -> list[DayPoint]:
    """DayPoints for one metric from ``analytics.daily_metrics`` rows (mappings).

    Conversion rate is always conversions ÷ sessions of the day (never an average of rates);
    ``None`` when sessions is 0/NULL (the check then reports it as critical).
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    excluded = set(excluded_days)
    out: list[DayPoint] = []
    for row in rows:
        day = row["metric_date"]
        sessions = row.get("sessions")
        sessions = None if sessions is None else int(sessions)
        if metric == "conversion_rate":
            conv = row.get("conversions")
            value = None if conv is None or not sessions else float(conv) / sessions
            out.append(DayPoint(day, value, sessions, day in excluded))
        else:
            raw = row.get(metric)
            out.append(DayPoint(day, None if raw is None else float(raw), None, day in excluded))
    return out
