"""Pure parts of the nightly branch: threshold overrides, the proof fold, artifact paths and
atomic writes, freshness messages on DST days (no database)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from include.analytics_ops.checks import DEFAULT_CONFIG
from include.analytics_ops.dates import pt_day_bounds
from include.analytics_ops.nightly import CHECK_TASK_IDS
from include.analytics_ops.nightly.artifacts import proof_path, snapshot_path, write_json_atomic
from include.analytics_ops.nightly.freshness import (
    Freshness,
    MissingDataError,
    StaleDataError,
    require_fresh,
)
from include.analytics_ops.nightly.metric_checks import (
    InvalidCheckConfig,
    config_for,
    parse_overrides,
)
from include.analytics_ops.nightly.proof import (
    IncompleteChecksError,
    build_proof,
    check_label,
    rows_of_run,
)

DAY = date(2026, 11, 20)


# --------------------------------------------------------------------------- overrides
def test_overrides_scope_global_then_metric_then_check():
    overrides = {
        "z_warning": 3.5,
        "z_critical": 5.0,
        "revenue": {"z_warning": 2.5, "min_effect_critical": 0.2},
        "revenue_trend": {"z_warning": 2.0},
    }
    rev_range = config_for("revenue", "range", overrides)
    rev_trend = config_for("revenue", "trend", overrides)
    sessions = config_for("sessions", "range", overrides)
    assert (rev_range.z_warning, rev_range.min_effect_critical) == (2.5, 0.2)
    assert rev_trend.z_warning == 2.0
    assert (sessions.z_warning, sessions.z_critical) == (3.5, 5.0)
    assert sessions.min_effect_critical == DEFAULT_CONFIG.min_effect_critical
    # the version records the thresholds: different configs, different versions
    assert len({rev_range.version, rev_trend.version, sessions.version}) == 3
    assert config_for("sessions", "trend").version == DEFAULT_CONFIG.version


def test_later_override_sets_win():
    cfg = config_for("sessions", "range", {"z_warning": 3.5}, {"z_warning": 3.2})
    assert cfg.z_warning == 3.2


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_bad_override_text_is_rejected(raw, needle):
    with pytest.raises(InvalidCheckConfig, match=needle):
        parse_overrides(raw)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"z_warnin": 3}, "unknown CheckConfig fields"),
        ({"z_warning": 5, "z_critical": 4}, "z_warning <= z_critical"),
        ({"revenue": 3}, "must be an object"),
    ],
)
def test_invalid_thresholds_are_rejected(overrides, needle):
    with pytest.raises(InvalidCheckConfig, match=needle):
        config_for("revenue", "range", overrides)


def test_parse_overrides_accepts_empty_and_json():
    assert parse_overrides(None) == {} and parse_overrides("") == {}
    assert parse_overrides('{"z_warning": 3.5}') == {"z_warning": 3.5}


# --------------------------------------------------------------------------- proof fold
def _row(name: str, severity: str, explanation: str = "", run_id: str = "run-1") -> dict:
    metric, kind = name.rsplit("_", 1)
    return {
        "check_name": name,
        "metric": metric,
        "kind": kind,
        "value": 100.0,
        "centre": 110.0,
        "expected_low": 95.0,
        "expected_high": 125.0,
        "score": 1.0,
        "severity": severity,
        "explanation": explanation or f"{name} fine",
        "excluded": severity == "critical",
        "expected": False,
        "config_version": "v1-abc",
        "details": {},
        "run_id": run_id,
    }


def test_all_passed_proof_is_exit_code_0_with_no_anomalies():
    proof = build_proof([_row(n, "passed") for n in CHECK_TASK_IDS], DAY, "run-1")
    assert (proof.status, proof.exit_code, proof.anomalies) == ("passed", 0, [])
    doc = proof.as_json()
    assert [c["check"] for c in doc["checks"]] == [
        "Revenue Range",
        "Revenue Trend",
        "Conversion Rate Range",
        "Conversion Rate Trend",
        "Sessions Range",
        "Sessions Trend",
    ]
    assert doc["summary"]["passed"] == 6 and doc["config_version"] == "v1-abc"
    assert {
        "status",
        "checks",
        "anomalies",
        "target_date",
        "config_version",
        "generated_at",
        "run_id",
    } <= set(doc)
    json.dumps(doc)  # JSON-safe


def test_one_critical_makes_the_proof_critical_with_the_explanation_first():
    rows = [_row(n, "passed") for n in CHECK_TASK_IDS]
    rows[1] = _row("revenue_trend", "warning", "revenue trend drifting")
    rows[4] = _row("sessions_range", "critical", "sessions 1.7k, expected 2.0k–2.3k (z=8.1)")
    proof = build_proof(rows, DAY, "run-1")
    assert (proof.status, proof.exit_code) == ("critical", 2)
    assert [a["check_name"] for a in proof.anomalies] == ["sessions_range", "revenue_trend"]
    assert proof.anomalies[0]["message"] == "sessions 1.7k, expected 2.0k–2.3k (z=8.1)"
    assert proof.anomalies[0]["check"] == "Sessions Range"
    assert proof.summary == {
        "passed": 4,
        "insufficient_history": 0,
        "warning": 1,
        "critical": 1,
        "total": 6,
    }


def test_insufficient_history_is_a_warning_not_a_pass():
    rows = [_row(n, "passed") for n in CHECK_TASK_IDS]
    rows[0] = _row("revenue_range", "insufficient_history")
    proof = build_proof(rows, DAY, "run-1")
    assert (proof.status, proof.exit_code, proof.anomalies) == ("warning", 1, [])


def test_proof_needs_all_six_checks():
    with pytest.raises(IncompleteChecksError, match="six checks"):
        build_proof([_row(n, "passed") for n in CHECK_TASK_IDS[:5]], DAY, "run-1")


def test_rows_of_another_run_do_not_count():
    rows = {n: _row(n, "passed") for n in CHECK_TASK_IDS}
    rows["sessions_trend"] = _row("sessions_trend", "passed", run_id="older-run")
    mine, missing = rows_of_run(rows, "run-1")
    assert missing == ["sessions_trend"] and len(mine) == 5


def test_check_label():
    assert check_label("conversion_rate_trend") == "Conversion Rate Trend"


# --------------------------------------------------------------------------- artifacts
def test_artifact_paths_follow_the_legacy_names(tmp_path):
    assert proof_path(tmp_path, DAY) == tmp_path / "sampling-proofs/sampling-proof-20261120.json"
    assert snapshot_path(tmp_path, DAY) == tmp_path / "snapshots/2026-11-20.json"


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "sub" / "x.json"
    write_json_atomic(path, {"a": 1, "when": DAY})
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "x.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(ValueError):
        write_json_atomic(path, {"a": float("nan")})  # not valid JSON
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


# --------------------------------------------------------------------------- freshness
def _freshness(day: date, watermark: datetime | None, row: bool = True, nulls=()) -> Freshness:
    start, end = pt_day_bounds(day)
    return Freshness(day, start, end, "posthog", watermark, row, tuple(nulls))


def test_fall_back_day_needs_the_watermark_past_its_25th_hour():
    day = date(2026, 11, 1)  # 25 hours in PT
    start, end = pt_day_bounds(day)
    assert end == datetime(2026, 11, 2, 8, tzinfo=UTC)
    almost = _freshness(day, start + timedelta(hours=24))
    assert not almost.fresh and almost.retryable
    assert "60 min before the end of 2026-11-01 PT" in almost.message()
    assert _freshness(day, end).fresh


def test_stale_is_retryable_and_missing_is_not():
    _, end = pt_day_bounds(DAY)
    with pytest.raises(StaleDataError, match="STALE DATA: 2026-11-20"):
        require_fresh(_freshness(DAY, end - timedelta(hours=3)))
    with pytest.raises(StaleDataError, match="no 'posthog' watermark"):
        require_fresh(_freshness(DAY, None))
    with pytest.raises(MissingDataError, match=r"MISSING DATA: .*has no row for 2026-11-20"):
        require_fresh(_freshness(DAY, end, row=False))
    with pytest.raises(MissingDataError, match="has no revenue, sessions"):
        require_fresh(_freshness(DAY, end, nulls=("revenue", "sessions")))
    assert require_fresh(_freshness(DAY, end + timedelta(hours=5))).fresh
