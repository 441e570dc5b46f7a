"""Statistics of the six nightly metric checks (include.analytics_ops.checks) — pure, no DB.

Series are generated with fixed seeds: weekly seasonality (weekend dip), multiplicative noise
(≈3 % traffic, ≈5 % revenue day-to-day), binomial conversions and 4 % random outlier days of
±30–60 % per driver in the history (the last week is kept clean so the target and its recent past
are normal unless a test plants something).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pytest

from include.analytics_ops.checks import (
    CHECK_NAMES,
    DEFAULT_CONFIG,
    METRICS,
    CheckConfig,
    CheckOutcome,
    DayPoint,
    evaluate_arrays,
    exit_code,
    format_value,
    history_from_rows,
    human_number,
    overall_status,
    range_check,
    trend_check,
)

START = date(2025, 1, 6)  # Monday
N_DAYS = 140
PROFILE = np.array([1.0, 1.03, 1.01, 0.98, 0.95, 0.72, 0.66])
CPROFILE = np.array([1.0, 1.02, 1.0, 0.99, 0.97, 1.05, 1.08])


def make_days(seed: int, n_days: int = N_DAYS, outlier_rate: float = 0.04) -> dict[str, list]:
    """One shop: daily sessions, conversions, revenue (lists), day 0 = START (a Monday)."""
    rng = np.random.default_rng(seed)
    dow = np.arange(n_days) % 7
    sessions = 50_000 * PROFILE[dow] * np.exp(rng.normal(0, 0.03, n_days))
    rate = 0.03 * CPROFILE[dow] * np.exp(rng.normal(0, 0.015, n_days))
    aov = 80 * np.exp(rng.normal(0, 0.03, n_days))
    for arr in (sessions, rate, aov):
        hit = rng.random(n_days) < outlier_rate
        hit[-7:] = False
        size = rng.uniform(0.3, 0.6, n_days) * np.where(rng.random(n_days) < 0.5, -1, 1)
        arr *= np.where(hit, 1 + size, 1.0)
    sessions = np.rint(sessions).astype(int)
    conversions = rng.binomial(sessions, np.clip(rate, 0, 1))
    revenue = np.round(conversions * aov, 2)
    days = [START + timedelta(days=i) for i in range(n_days)]
    return {
        "days": days,
        "sessions": sessions.tolist(),
        "conversions": conversions.tolist(),
        "revenue": revenue.tolist(),
    }


def points(shop: dict, metric: str, upto: int | None = None) -> list[DayPoint]:
    end = len(shop["days"]) if upto is None else upto + 1
    out = []
    for i in range(end):
        d, s = shop["days"][i], shop["sessions"][i]
        if metric == "conversion_rate":
            out.append(DayPoint(d, shop["conversions"][i] / s if s else None, s))
        else:
            out.append(DayPoint(d, float(shop[metric][i])))
    return out


def with_target(pts: list[DayPoint], factor: float | None = None, **changes) -> list[DayPoint]:
    """Replace the last (target) point: scale its value and/or change fields."""
    last = pts[-1]
    if factor is not None:
        changes.setdefault("value", last.value * factor)
    return [*pts[:-1], replace(last, **changes)]


def judge(metric: str, pts: list[DayPoint], cfg: CheckConfig = DEFAULT_CONFIG):
    return range_check(metric, pts[-1].day, pts, cfg), trend_check(metric, pts[-1].day, pts, cfg)


FLAGGED = {"warning", "critical"}
SEEDS = range(12)


# ------------------------------------------------------------------------------------------------
# Planted anomalies are flagged, normal days are not
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("metric", "factor"),
    [
        ("sessions", 0.80),
        ("revenue", 0.65),
        ("conversion_rate", 0.80),
        ("conversion_rate", 1.30),
        ("revenue", 1.40),
    ],
)
def test_planted_shocks_are_flagged(metric: str, factor: float) -> None:
    severities = []
    for seed in SEEDS:
        pts = with_target(points(make_days(seed), metric), factor)
        rng_out, _ = judge(metric, pts)
        severities.append(rng_out.severity)
        assert rng_out.severity in FLAGGED, (seed, rng_out.explanation)
        assert rng_out.score is not None and rng_out.score >= DEFAULT_CONFIG.z_warning
        assert rng_out.value is not None
        if factor < 1:
            assert rng_out.value < rng_out.expected_low
        else:
            assert rng_out.value > rng_out.expected_high
    # the big drops are critical (z ≥ 4 and ≥ 10 % effect) nearly always
    if factor <= 0.8:
        assert severities.count("critical") >= len(SEEDS) - 1, severities


def test_normal_days_are_not_flagged() -> None:
    non_passed = []
    for seed in SEEDS:
        shop = make_days(seed)
        for metric in METRICS:
            for out in judge(metric, points(shop, metric)):
                if out.severity != "passed":
                    non_passed.append((seed, out.check_name, out.explanation))
    # 72 clean judgements; at the shipped thresholds not one is flagged on these seeds
    assert non_passed == []


def test_normal_monday_after_a_past_outlier_is_not_flagged() -> None:
    shop = make_days(3)
    target = len(shop["days"]) - 1
    assert shop["days"][target].weekday() == 6  # sanity: 140 days from a Monday ends on Sunday
    target = len(shop["days"]) - 7  # the last Monday
    assert shop["days"][target].weekday() == 0
    pts = points(shop, "sessions", upto=target)
    # last Monday was an outage (−55 %) and the Monday before a promotion (+50 %), not excluded
    pts[-8] = replace(pts[-8], value=pts[-8].value * 0.45)
    pts[-15] = replace(pts[-15], value=pts[-15].value * 1.5)
    rng_out, trend_out = judge("sessions", pts)
    assert rng_out.severity == "passed", rng_out.explanation
    assert trend_out.severity == "passed", trend_out.explanation
    # the single-reference ds vs ds-7 ratio would have screamed: today / last Monday ≈ 2.2
    assert pts[-1].value / pts[-8].value > 2.0
    # and the same with the outage marked excluded
    pts[-8] = replace(pts[-8], excluded=True)
    assert judge("sessions", pts)[0].severity == "passed"


def test_yesterday_outlier_is_not_the_reference_for_today() -> None:
    pts = points(make_days(5), "revenue")
    pts[-2] = replace(pts[-2], value=pts[-2].value * 0.4)  # yesterday collapsed
    _, trend_out = judge("revenue", pts)
    assert trend_out.severity == "passed", trend_out.explanation
    # today is +150 % vs yesterday, but day-over-day uses the median of the previous 3 residuals
    assert abs(trend_out.details["day_over_day"]["effect"]) < 0.10


def test_week_over_week_drift_is_caught_by_the_trend_check() -> None:
    caught = range_caught = 0
    for seed in SEEDS:
        pts = points(make_days(seed), "sessions")
        pts = [*pts[:-7], *(replace(p, value=p.value * 0.90) for p in pts[-7:])]
        rng_out, trend_out = judge("sessions", pts)
        range_caught += rng_out.severity in FLAGGED
        if trend_out.severity in FLAGGED:
            caught += 1
            assert "week_over_week" in trend_out.details["triggered"]
            assert "week-over-week" in trend_out.explanation
            assert trend_out.details["week_over_week"]["ratio_change"] < -0.075
    assert caught >= len(SEEDS) - 2
    assert range_caught < caught  # a slow drift hides from the seasonal band


def test_day_over_day_triggers_on_a_level_break() -> None:
    pts = with_target(points(make_days(7), "sessions"), 0.75)
    _, trend_out = judge("sessions", pts)
    assert trend_out.severity == "critical"
    assert "day_over_day" in trend_out.details["triggered"]
    assert "day-over-day" in trend_out.explanation
    assert trend_out.value < trend_out.expected_low


# ------------------------------------------------------------------------------------------------
# History hygiene
# ------------------------------------------------------------------------------------------------
def test_insufficient_history_has_its_own_status() -> None:
    shop = make_days(1, n_days=24)  # three previous same weekdays at most
    for metric in METRICS:
        rng_out, trend_out = judge(metric, points(shop, metric))
        for out in (rng_out, trend_out):
            assert out.severity == "insufficient_history", out.explanation
            assert not out.excluded
            assert out.score is None
            assert "insufficient history" in out.explanation
        assert "need 4" in rng_out.explanation


def test_excluded_same_weekdays_can_make_history_insufficient() -> None:
    pts = points(make_days(2), "revenue")
    assert judge("revenue", pts)[0].severity == "passed"
    # exclude 5 of the previous 8 same weekdays → 3 usable < 4
    pts = [replace(p, excluded=True) if k in (7, 14, 21, 28, 35) else p for k, p in _back(pts)]
    rng_out, trend_out = judge("revenue", pts)
    assert rng_out.severity == "insufficient_history"
    assert "3 of the previous 8 Sundays usable" in rng_out.explanation
    assert trend_out.severity == "insufficient_history"


def _back(pts: list[DayPoint]):
    """(days before the target, point) pairs."""
    target = pts[-1].day
    return [((target - p.day).days, p) for p in pts]


def test_excluded_outage_does_not_widen_the_band() -> None:
    base = points(make_days(4), "revenue")
    # a three-week outage inside the 56-day residual window, at 15 % of normal
    outage = {k for k in range(10, 31)}
    broken = [replace(p, value=p.value * 0.15) if k in outage else p for k, p in _back(base)]
    flagged = [replace(p, excluded=True) if k in outage else p for k, p in _back(broken)]
    missing = [p for k, p in _back(broken) if k not in outage]

    r_flagged = range_check("revenue", base[-1].day, with_target(flagged, 0.65))
    r_broken = range_check("revenue", base[-1].day, with_target(broken, 0.65))
    r_missing = range_check("revenue", base[-1].day, with_target(missing, 0.65))
    # excluded == absent: the outage values play no part in the band
    assert r_flagged.expected_low == pytest.approx(r_missing.expected_low)
    assert r_flagged.expected_high == pytest.approx(r_missing.expected_high)
    # ... whereas left in, they widen it enough to hide the later −35 % drop
    width = r_flagged.expected_high / r_flagged.expected_low
    assert r_broken.expected_high / r_broken.expected_low > 1.5 * width
    assert r_broken.severity not in FLAGGED
    assert r_flagged.severity == "critical", r_flagged.explanation
    assert r_flagged.details["same_weekday_points"] >= 4


# ------------------------------------------------------------------------------------------------
# Hard bounds (always critical, never a crash on ln(0))
# ------------------------------------------------------------------------------------------------
def test_zero_sessions_is_critical() -> None:
    pts = with_target(points(make_days(0), "sessions"), value=0.0)
    for out in judge("sessions", pts):
        assert out.severity == "critical"
        assert out.excluded is True
        assert out.details["rule"] == "hard_bound"
        assert out.explanation.startswith("0 sessions")
        assert "expected" in out.explanation  # the normal band is still reported
        assert out.expected_low is not None and out.expected_low > 1000


def test_zero_sessions_makes_conversion_rate_critical_not_a_crash() -> None:
    pts = with_target(points(make_days(0), "conversion_rate"), value=None, sessions=0)
    for out in judge("conversion_rate", pts):
        assert out.severity == "critical"
        assert "undefined" in out.explanation


@pytest.mark.parametrize("value", [-125.0, 0.0])
def test_negative_or_zero_revenue_is_critical(value: float) -> None:
    pts = with_target(points(make_days(0), "revenue"), value=value)
    for out in judge("revenue", pts):
        assert out.severity == "critical", out.explanation
        assert out.score is None
        assert "revenue" in out.explanation


@pytest.mark.parametrize("value", [1.2, -0.01, 0.0])
def test_conversion_rate_outside_0_1_or_zero_is_critical(value: float) -> None:
    pts = with_target(points(make_days(0), "conversion_rate"), value=value)
    for out in judge("conversion_rate", pts):
        assert out.severity == "critical", out.explanation
        assert out.details["rule"] == "hard_bound"


def test_missing_target_value_is_critical_with_its_own_explanation() -> None:
    pts = points(make_days(0), "sessions")
    for history in (with_target(pts, value=None), pts[:-1]):
        out = range_check("sessions", pts[-1].day, history)
        assert out.severity == "critical"
        assert out.details["rule"] == "missing_value"
        assert "missing" in out.explanation
        assert out.value is None


def test_configured_floor_and_ceiling_are_critical() -> None:
    pts = points(make_days(0), "sessions")
    value = pts[-1].value
    floor_cfg = DEFAULT_CONFIG.with_overrides(sessions_floor=value + 1)
    ceil_cfg = DEFAULT_CONFIG.with_overrides(sessions_ceiling=value - 1)
    assert range_check("sessions", pts[-1].day, pts).severity == "passed"
    assert "floor" in range_check("sessions", pts[-1].day, pts, floor_cfg).explanation
    assert range_check("sessions", pts[-1].day, pts, floor_cfg).severity == "critical"
    assert range_check("sessions", pts[-1].day, pts, ceil_cfg).severity == "critical"


def test_zero_and_negative_history_days_do_not_crash_or_count() -> None:
    pts = points(make_days(6), "revenue")
    holes = [replace(p, value=v) for p, v in zip(pts[-30:-27], [0.0, -5.0, None], strict=True)]
    pts = [*pts[:-30], *holes, *pts[-27:]]
    out = range_check("revenue", pts[-1].day, pts)
    assert out.severity == "passed"
    assert math.isfinite(out.score)


# ------------------------------------------------------------------------------------------------
# Band, explanation, output row
# ------------------------------------------------------------------------------------------------
def test_expected_band_contains_the_centre() -> None:
    for seed in range(6):
        shop = make_days(seed)
        for metric in METRICS:
            for out in judge(metric, points(shop, metric)):
                assert out.expected_low < out.centre < out.expected_high, out


def test_explanation_contains_the_formatted_value_and_band() -> None:
    pts = with_target(points(make_days(8), "revenue"), 0.65)
    out = range_check("revenue", pts[-1].day, pts)
    low, high = (
        format_value("revenue", out.expected_low),
        format_value("revenue", out.expected_high),
    )
    assert out.explanation.startswith(f"revenue {format_value('revenue', out.value)}, expected ")
    assert f"expected {low}–{high} (z={out.score:.1f})" in out.explanation
    assert low.endswith("k") and high.endswith("k")
    assert "−" in out.explanation  # the signed change vs expected

    cr = range_check("conversion_rate", pts[-1].day, points(make_days(8), "conversion_rate"))
    assert cr.explanation.startswith(f"conversion rate {cr.value * 100:.2f}%, expected ")
    assert cr.explanation.count("%") >= 3


def test_human_number_formatting() -> None:
    assert human_number(7_400) == "7.4k"
    assert human_number(11_900) == "11.9k"
    assert human_number(742) == "742"
    assert human_number(1_250_000) == "1.25M"
    assert human_number(None) == "n/a"
    assert format_value("conversion_rate", 0.0312) == "3.12%"
    assert format_value("sessions", 18_240) == "18.2k"


def test_outcome_row_is_json_safe_and_versioned() -> None:
    pts = points(make_days(9), "conversion_rate")
    for out in judge("conversion_rate", pts):
        row = out.to_row()
        assert set(row) >= {
            "target_date",
            "check_name",
            "metric",
            "kind",
            "value",
            "centre",
            "expected_low",
            "expected_high",
            "score",
            "severity",
            "explanation",
            "excluded",
            "expected",
            "config_version",
            "details",
        }
        json.dumps(row["details"], allow_nan=False)
        assert row["config_version"] == DEFAULT_CONFIG.version
        assert row["check_name"] in CHECK_NAMES
    # the binomial floor is recorded for conversion rate
    assert judge("conversion_rate", pts)[0].details["scale_binomial"] > 0


def test_days_after_the_target_are_ignored() -> None:
    shop = make_days(10)
    pts = points(shop, "sessions")
    target = pts[-8].day
    future = [replace(p, value=1.0) for p in pts[-7:]]
    a = range_check("sessions", target, pts[:-7])
    b = range_check("sessions", target, [*pts[:-7], *future])
    assert a == b


def test_history_from_rows_uses_rate_of_sums() -> None:
    rows = [
        {"metric_date": date(2025, 3, 1), "revenue": 10.5, "sessions": 200, "conversions": 5},
        {"metric_date": date(2025, 3, 2), "revenue": 0, "sessions": 0, "conversions": 0},
    ]
    cr = history_from_rows(rows, "conversion_rate", excluded_days=[date(2025, 3, 2)])
    assert cr[0] == DayPoint(date(2025, 3, 1), 0.025, 200, False)
    assert cr[1].value is None and cr[1].sessions == 0 and cr[1].excluded
    assert history_from_rows(rows, "revenue")[0].value == 10.5
    with pytest.raises(ValueError):
        history_from_rows(rows, "orders")


def test_scalar_checks_match_the_vectorised_core() -> None:
    shop = make_days(11)
    pts = points(shop, "sessions")
    n = DEFAULT_CONFIG.history_days_needed + 1
    st = evaluate_arrays(np.array(shop["sessions"][-n:], dtype=float)[None, :])
    out = range_check("sessions", pts[-1].day, pts)
    assert out.score == pytest.approx(float(st.range_z[0]))


# ------------------------------------------------------------------------------------------------
# Configuration versioning and overall status
# ------------------------------------------------------------------------------------------------
def test_config_version_changes_with_any_threshold() -> None:
    base = CheckConfig()
    assert base.version == DEFAULT_CONFIG.version == CheckConfig().version
    assert base.version.startswith("v")
    changed = {
        base.with_overrides(z_warning=2.5).version,
        base.with_overrides(min_effect_critical=0.2).version,
        base.with_overrides(scale_floor=0.03).version,
        base.with_overrides(revenue_floor=100.0).version,
    }
    assert base.version not in changed and len(changed) == 4
    with pytest.raises(TypeError):
        base.with_overrides(no_such_threshold=1)
    with pytest.raises(ValueError):
        CheckConfig(z_warning=5, z_critical=4)
    assert base.history_days_needed >= 7 * base.seasonal_weeks + base.residual_window_days


def test_thresholds_are_configuration() -> None:
    pts = with_target(points(make_days(0), "sessions"), 0.75)
    assert range_check("sessions", pts[-1].day, pts).severity == "critical"
    lax = DEFAULT_CONFIG.with_overrides(z_warning=50, z_critical=60)
    assert range_check("sessions", pts[-1].day, pts, lax).severity == "passed"
    big_effect = DEFAULT_CONFIG.with_overrides(min_effect_warning=0.3, min_effect_critical=0.4)
    out = range_check("sessions", pts[-1].day, pts, big_effect)
    assert out.severity == "passed" and "below the minimum effect" in out.explanation


def _o(severity: str) -> CheckOutcome:
    return CheckOutcome(
        "sessions_range", "sessions", "range", START, 1.0, 1.0, 0.9, 1.1, 0.0, severity, "", False
    )


def test_overall_status_and_exit_codes() -> None:
    six = ["passed"] * 6
    assert overall_status([_o(s) for s in six]) == "passed"
    assert overall_status([*six[:5], "warning"]) == "warning"
    assert overall_status([*six[:5], "insufficient_history"]) == "warning"
    assert overall_status(["insufficient_history", "warning", "critical"]) == "critical"
    assert overall_status([]) == "warning"
    assert [exit_code(s) for s in ("passed", "warning", "critical")] == [0, 1, 2]
