"""Compare our seasonal robust checks with the peers' detectors at the same false-alarm rate.

    python tests/benchmarks/compare_detectors.py [--series 1000] [--seed 1] [--days 140]

On ``--series`` generated shops (``include.sandbox.samples.metrics``: weekly seasonality,
slow drift, noise, 4 % outlier days of ±30–60 % per driver) each of the last ``--targets`` days
(outlier-free) is a *clean* target day. Every detector's threshold is calibrated per metric to the
99th percentile of its score on clean target days (1 % false alarms), then the catch rate is
measured with a shock planted on the same target days:

* ours, range — robust z of the seasonal band (``evaluate_arrays(...).range_score``, the exact
  code behind ``range_check``; a zero/negative value is a hard-bound hit);
* ours, range + trend — the worse of range, day-over-day and week-over-week z;
* Elementary-style mean ± kσ over the last 14 days, the current day included in its own training
  set (Elementary's default), with and without ``day_of_week`` seasonality (14 same-weekday points
  — the generous reading; a literal 14-day window would leave 2);
* ``SQLIntervalCheckOperator``-style ``ds`` vs ``ds-7`` ratio, ``max_over_min``,
  ``ignore_zero=True`` (a zero on either side passes).

Also printed: our false-alarm and catch rates at the shipped defaults (warning = z ≥ 3 with a ≥ 5 %
effect; week-over-week z ≥ 4 with a ≥ 7.5 % effect), and a cross-check that the scalar
``range_check``/``trend_check`` reproduce the batch z.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from include.analytics_ops.checks import (  # noqa: E402
    DEFAULT_CONFIG,
    CheckConfig,
    evaluate_arrays,
    range_check,
    trend_check,
)
from include.sandbox.samples.metrics import SyntheticMetrics, generate  # noqa: E402

FALSE_ALARM_RATE = 0.01
Batch = tuple[np.ndarray, np.ndarray | None]  # (values, sessions) with the target last

# (label, metric, multiplier, number of days ending on the target it applies to)
SCENARIOS: tuple[tuple[str, str, float, int], ...] = (
    ("−20% sessions", "sessions", 0.80, 1),
    ("−35% revenue", "revenue", 0.65, 1),
    ("−20% conversion rate", "conversion_rate", 0.80, 1),
    ("+30% sessions spike", "sessions", 1.30, 1),
    ("+30% revenue spike", "revenue", 1.30, 1),
    ("+30% conversion-rate spike", "conversion_rate", 1.30, 1),
    ("sessions drop to 0", "sessions", 0.0, 1),
    ("−15% sessions for 7 days", "sessions", 0.85, 7),
    ("−15% revenue for 7 days", "revenue", 0.85, 7),
    ("−10% conv. rate for 7 days", "conversion_rate", 0.90, 7),
)


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
def windows(m: SyntheticMetrics, metric: str, n_targets: int, length: int) -> Batch:
    """(values, sessions) windows of ``length`` days ending on each of the last target days."""
    n_series, n_days = m.sessions.shape
    full = {
        "sessions": m.sessions,
        "revenue": m.revenue,
        "conversion_rate": m.conversion_rate,
    }[metric]
    pad = max(0, length - (n_days - n_targets + 1))
    vals = np.concatenate([np.full((n_series, pad), np.nan), full], axis=1)
    sess = np.concatenate([np.full((n_series, pad), np.nan), m.sessions], axis=1)
    out_v, out_s = [], []
    for k in range(n_targets):
        end = pad + n_days - k  # exclusive
        out_v.append(vals[:, end - length : end])
        out_s.append(sess[:, end - length : end])
    v = np.concatenate(out_v)
    s = np.concatenate(out_s) if metric == "conversion_rate" else None
    return v, s


def shocked(batch: Batch, factor: float, days: int = 1) -> Batch:
    """The batch with the last ``days`` values (ending on the target) multiplied by ``factor``."""
    v, s = batch
    v = v.copy()
    v[:, -days:] *= factor
    return v, s


# ----------------------------------------------------------------------------------------------
# Detectors: each maps a batch to one score per row (higher = more anomalous)
# ----------------------------------------------------------------------------------------------
def _hard_bound(v: np.ndarray) -> np.ndarray:
    return ~(v[:, -1] > 0)


def ours_range(batch: Batch, cfg: CheckConfig = DEFAULT_CONFIG) -> np.ndarray:
    v, s = batch
    hard = _hard_bound(v)
    safe = v.copy()
    safe[hard, -1] = 1.0
    score = evaluate_arrays(safe, s, cfg).range_score(cfg)
    return np.where(hard, np.inf, score)


def ours_combined(batch: Batch, cfg: CheckConfig = DEFAULT_CONFIG) -> np.ndarray:
    v, s = batch
    hard = _hard_bound(v)
    safe = v.copy()
    safe[hard, -1] = 1.0
    st = evaluate_arrays(safe, s, cfg)
    return np.where(hard, np.inf, np.maximum(st.range_score(cfg), st.trend_score(cfg)))


def ours_default_flags(batch: Batch, cfg: CheckConfig = DEFAULT_CONFIG) -> dict[str, np.ndarray]:
    """Which rows the shipped thresholds flag (warning or worse), range alone and range+trend."""
    v, s = batch
    hard = _hard_bound(v)
    safe = v.copy()
    safe[hard, -1] = 1.0
    st = evaluate_arrays(safe, s, cfg)
    rng_flag = hard | (st.range_score(cfg) >= cfg.z_warning)
    trend_flag = st.trend_score(cfg) >= cfg.z_warning
    return {"range": rng_flag, "combined": rng_flag | trend_flag}


def _zscore(train: np.ndarray, current: np.ndarray) -> np.ndarray:
    mean = np.nanmean(train, axis=1)
    std = np.nanstd(train, axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(current - mean) / std
    return np.nan_to_num(z, nan=0.0, posinf=np.inf)


def elementary(batch: Batch, days: int = 14) -> np.ndarray:
    """Mean ± kσ over the last ``days`` days, the current day included (Elementary default)."""
    v, _ = batch
    return _zscore(v[:, -days:], v[:, -1])


def elementary_dow(batch: Batch, points: int = 14) -> np.ndarray:
    """Same, with ``day_of_week`` seasonality: the last ``points`` same weekdays incl. today."""
    v, _ = batch
    return _zscore(v[:, ::-7][:, :points], v[:, -1])


def interval_ratio(batch: Batch, days_back: int = 7) -> np.ndarray:
    """``SQLIntervalCheckOperator``: max/min of ds vs ds-7; ignore_zero=True → a zero passes."""
    v, _ = batch
    cur, ref = v[:, -1], v[:, -1 - days_back]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.maximum(cur, ref) / np.minimum(cur, ref)
    zero = (cur == 0) | (ref == 0)
    return np.where(zero | ~np.isfinite(ratio), 1.0, ratio)


DETECTORS: dict[str, Callable[[Batch], np.ndarray]] = {
    "ours range": ours_range,
    "ours range+trend": ours_combined,
    "Elementary 14d": elementary,
    "Elementary DoW": elementary_dow,
    "interval ds/ds-7": interval_ratio,
}


# ----------------------------------------------------------------------------------------------
# Calibration and measurement
# ----------------------------------------------------------------------------------------------
def calibrate(clean_scores: np.ndarray, rate: float = FALSE_ALARM_RATE) -> float:
    finite = np.where(np.isfinite(clean_scores), clean_scores, np.finfo(float).max)
    return float(np.quantile(finite, 1 - rate, method="higher"))


def catch_rate(scores: np.ndarray, threshold: float) -> float:
    return float(np.mean(scores > threshold))


def cross_check(m: SyntheticMetrics, n: int, rng: np.random.Generator) -> int:
    """Scalar range_check/trend_check must reproduce the batch statistics (returns # compared)."""
    length = DEFAULT_CONFIG.history_days_needed + 1
    n_series = m.sessions.shape[0]
    done = 0
    for _ in range(n):
        i = int(rng.integers(n_series))
        metric = ("sessions", "revenue", "conversion_rate")[int(rng.integers(3))]
        pts = m.points(metric, i)
        st = evaluate_arrays(
            *(a[i : i + 1] if a is not None else None for a in windows(m, metric, 1, length))
        )
        r = range_check(metric, pts[-1].day, pts)
        t = trend_check(metric, pts[-1].day, pts)
        zr = float(st.range_z[0])
        ok = r.score is not None and math.isclose(r.score, zr, rel_tol=1e-9)
        wow_z = st.wow_z[0] * DEFAULT_CONFIG.z_warning / DEFAULT_CONFIG.wow_z_warning
        trend_z = max(float(z) for z in (st.dod_z[0], wow_z) if np.isfinite(z))
        ok = ok and t.score is not None and math.isclose(t.score, trend_z, rel_tol=1e-9)
        if not ok:
            raise AssertionError(f"scalar/batch mismatch on series {i} {metric}: {r} {t} {zr}")
        done += 1
    return done


def run(
    n_series: int = 1000,
    seed: int = 1,
    n_days: int = 140,
    n_targets: int = 7,
    rate: float = FALSE_ALARM_RATE,
    verify: int = 30,
    out=sys.stdout,
) -> dict[str, dict[str, float]]:
    """Run the comparison; returns {scenario: {detector: catch rate}} (plus thresholds)."""
    t0 = time.perf_counter()
    cfg = DEFAULT_CONFIG
    if n_days < 120:
        raise SystemExit("need at least 120 days per series")
    rng = np.random.default_rng(seed)
    m = generate(rng, n_series, n_days, clean_tail=n_targets)
    length = cfg.history_days_needed + 1
    metrics = ("sessions", "revenue", "conversion_rate")
    clean = {mt: windows(m, mt, n_targets, length) for mt in metrics}

    thresholds: dict[str, dict[str, float]] = {mt: {} for mt in metrics}
    defaults_fa: dict[str, dict[str, float]] = {mt: {} for mt in metrics}
    for mt in metrics:
        for name, det in DETECTORS.items():
            thresholds[mt][name] = calibrate(det(clean[mt]), rate)
        for k, flags in ours_default_flags(clean[mt], cfg).items():
            defaults_fa[mt][k] = float(flags.mean())

    results: dict[str, dict[str, float]] = {}
    for label, mt, factor, days in SCENARIOS:
        batch = shocked(clean[mt], factor, days)
        row = {
            name: catch_rate(det(batch), thresholds[mt][name]) for name, det in DETECTORS.items()
        }
        flags = ours_default_flags(batch, cfg)
        row["ours defaults range"] = float(flags["range"].mean())
        row["ours defaults r+t"] = float(flags["combined"].mean())
        results[label] = row

    checked = cross_check(m, verify, np.random.default_rng(seed + 1)) if verify else 0
    elapsed = time.perf_counter() - t0

    n_clean = n_series * n_targets
    print(
        f"{n_series} series × {n_days} days (seed {seed}); {n_clean} clean target days per metric;"
        f" thresholds calibrated to {rate:.0%} false alarms on clean days",
        file=out,
    )
    names = list(DETECTORS)
    width = max(len(s[0]) for s in SCENARIOS) + 2
    cols = [*names, "ours defaults range", "ours defaults r+t"]
    print("\nCatch rate on planted shocks (same 1% false-alarm rate for the first five):", file=out)
    cw = max(len(c) for c in cols) + 2
    print("scenario".ljust(width) + "".join(c.rjust(cw) for c in cols), file=out)
    for label, row in results.items():
        print(label.ljust(width) + "".join(f"{row[c]:>{cw}.1%}" for c in cols), file=out)
    print("\nCalibrated thresholds (score > threshold raises an alarm):", file=out)
    print("metric".ljust(width) + "".join(n.rjust(cw) for n in names), file=out)
    for mt in metrics:
        print(
            mt.ljust(width) + "".join(f"{thresholds[mt][n]:>{cw}.3g}" for n in names),
            file=out,
        )
    print(
        "\nScores: ours = robust z (gated by the minimum effect); Elementary = |x−mean|/σ;"
        " interval = max/min ratio.",
        file=out,
    )
    print(
        "False-alarm rate of the shipped defaults (warning: z ≥ 3 and ≥ 5% effect;"
        " week-over-week z ≥ 4 and ≥ 7.5%):",
        file=out,
    )
    for mt in metrics:
        d = defaults_fa[mt]
        print(f"  {mt:<16} range {d['range']:.2%}   range+trend {d['combined']:.2%}", file=out)
    if checked:
        print(
            f"Cross-check: scalar range_check/trend_check == batch z on {checked} cases", file=out
        )
    print(f"Elapsed {elapsed:.1f}s", file=out)
    out.flush()
    return {"catch": results, "thresholds": thresholds, "defaults_false_alarms": defaults_fa}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=int, default=140)
    ap.add_argument("--targets", type=int, default=7, help="clean target days per series")
    ap.add_argument("--false-alarms", type=float, default=FALSE_ALARM_RATE)
    ap.add_argument("--verify", type=int, default=30, help="scalar-vs-batch cross-checks")
    args = ap.parse_args(argv)
    res = run(args.series, args.seed, args.days, args.targets, args.false_alarms, args.verify)
    catch = res["catch"]
    beaten = [
        label
        for label, row in catch.items()
        if max(row["ours range"], row["ours range+trend"])
        < max(row[n] for n in DETECTORS if not n.startswith("ours"))
    ]
    if beaten:
        print(f"NOTE: a peer out-caught both of our detectors on: {', '.join(beaten)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
