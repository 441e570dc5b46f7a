"""Run one nightly metric check for one day and store its ``analytics.check_results`` row.

History hygiene: a day whose ``check_results`` row for the same metric (range or trend) is
``critical`` and not marked ``expected`` by a person is passed to the statistics as *excluded*,
so an outage or a tracking break never widens later baselines. A person who marks a day expected
(``UPDATE analytics.check_results SET expected = true WHERE ...``, e.g. a planned promotion) puts
it back into the baselines; reruns keep that mark.

Thresholds: :class:`~include.analytics_ops.checks.CheckConfig` defaults, overridden by the JSON
setting ``CHECK_CONFIG_OVERRIDES`` (Airflow Variable > env) and by the operator's own
``config_overrides``. Top-level keys apply to every check; a key naming a metric
(``"revenue": {...}``) or a check (``"sessions_trend": {...}``) applies to it only (check beats
metric beats global), e.g. ``{"z_warning": 3.5, "revenue": {"min_effect_critical": 0.15},
"sessions_trend": {"wow_z_critical": 6}}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from include.analytics_ops.nightly import CHECK_TASK_IDS
from include.analytics_ops.store import dict_rows, jsonb

KINDS = ("range", "trend")


class InvalidCheckConfig(ValueError):
    """The threshold overrides cannot be applied (bad JSON, unknown field, invalid value)."""


def parse_overrides(raw: Any) -> dict[str, Any]:
    """``CHECK_CONFIG_OVERRIDES`` as a dict (accepts a JSON string, a mapping or empty)."""
    if raw in (None, ""):
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        value = json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise InvalidCheckConfig(f"CHECK_CONFIG_OVERRIDES is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidCheckConfig("CHECK_CONFIG_OVERRIDES must be a JSON object")
    return value


def _merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in layers:
        out.update(layer)
    return out


def config_for(metric: str, kind: str, *override_sets: Mapping[str, Any]):
    """The :class:`CheckConfig` for ``<metric>_<kind>`` after applying each override set in
    order (global keys, then the metric's, then the check's)."""
    from include.analytics_ops.checks import DEFAULT_CONFIG, METRICS

    if metric not in METRICS:
        raise InvalidCheckConfig(f"unknown metric {metric!r}; expected one of {METRICS}")
    if kind not in KINDS:
        raise InvalidCheckConfig(f"unknown check kind {kind!r}; expected one of {KINDS}")
    scoped = set(METRICS) | set(CHECK_TASK_IDS)
    check_name = f"{metric}_{kind}"
    global_keys: dict[str, Any] = {}
    metric_keys: dict[str, Any] = {}
    check_keys: dict[str, Any] = {}
    for overrides in override_sets:
        for key, value in overrides.items():
            if key in scoped:
                if not isinstance(value, Mapping):
                    raise InvalidCheckConfig(f"override {key!r} must be an object of thresholds")
                if key == metric:
                    metric_keys.update(value)
                elif key == check_name:
                    check_keys.update(value)
            else:
                global_keys[key] = value
    changes = _merge(global_keys, metric_keys, check_keys)
    try:
        return DEFAULT_CONFIG.with_overrides(**changes) if changes else DEFAULT_CONFIG
    except (TypeError, ValueError) as exc:
        raise InvalidCheckConfig(f"threshold overrides for {check_name} rejected: {exc}") from None


def excluded_days(conn, metric: str, start: date, before: date) -> set[date]:
    """Days in [start, before) already flagged critical for ``metric`` and not marked expected."""
    rows = conn.execute(
        """
        SELECT DISTINCT target_date FROM analytics.check_results
         WHERE metric = %s AND target_date >= %s AND target_date < %s
           AND severity = 'critical' AND NOT expected
        """,
        (metric, start, before),
    ).fetchall()
    return {r[0] for r in rows}


def read_history(conn, day: date, days_back: int) -> list[dict[str, Any]]:
    """``daily_metrics`` rows for [day - days_back, day] as mappings, oldest first."""
    return dict_rows(
        conn,
        "SELECT metric_date, revenue, orders, sessions, conversions FROM analytics.daily_metrics"
        " WHERE metric_date BETWEEN %s AND %s ORDER BY metric_date",
        (day - timedelta(days=days_back), day),
    )


def evaluate_check(conn, metric: str, kind: str, day: date, config) -> tuple[Any, dict[str, Any]]:
    """Judge ``<metric>_<kind>`` on ``day``; returns (CheckOutcome, stats about the inputs)."""
    from include.analytics_ops.checks import history_from_rows, range_check, trend_check

    days_back = config.history_days_needed
    rows = read_history(conn, day, days_back)
    excluded = excluded_days(conn, metric, day - timedelta(days=days_back), day)
    history = history_from_rows(rows, metric, excluded_days=excluded)
    judge = range_check if kind == "range" else trend_check
    outcome = judge(metric, day, history, config)
    stats = {
        "history_rows": len(rows),
        "history_days_requested": days_back + 1,
        "excluded_days": sorted(d.isoformat() for d in excluded),
    }
    return outcome, stats


def upsert_check_result(conn, outcome, run_id: str | None, extra_details: Mapping | None = None):
    """Insert or replace the (target_date, check_name) row. A person's ``expected`` mark survives
    reruns, and an expected day is never ``excluded``."""
    row = outcome.to_row()
    details = dict(row["details"])
    if extra_details:
        details.update(extra_details)
    conn.execute(
        """
        INSERT INTO analytics.check_results AS c
               (target_date, check_name, metric, kind, value, centre, expected_low,
                expected_high, score, severity, explanation, excluded, expected, config_version,
                details, run_id, created_at, updated_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, false, %s, %s, %s, now(), now())
        ON CONFLICT (target_date, check_name) DO UPDATE
           SET metric = EXCLUDED.metric, kind = EXCLUDED.kind, value = EXCLUDED.value,
               centre = EXCLUDED.centre, expected_low = EXCLUDED.expected_low,
               expected_high = EXCLUDED.expected_high, score = EXCLUDED.score,
               severity = EXCLUDED.severity, explanation = EXCLUDED.explanation,
               excluded = EXCLUDED.excluded AND NOT c.expected,
               config_version = EXCLUDED.config_version, details = EXCLUDED.details,
               run_id = EXCLUDED.run_id, updated_at = now()
        """,
        (
            row["target_date"],
            row["check_name"],
            row["metric"],
            row["kind"],
            row["value"],
            row["centre"],
            row["expected_low"],
            row["expected_high"],
            row["score"],
            row["severity"],
            row["explanation"],
            row["excluded"],
            row["config_version"],
            jsonb(details),
            run_id,
        ),
    )


def run_check(
    conn, metric: str, kind: str, day: date, config, run_id: str | None
) -> tuple[Any, dict[str, Any]]:
    """Evaluate and store one check (one transaction); returns (outcome, input stats)."""
    with conn.transaction():
        outcome, stats = evaluate_check(conn, metric, kind, day, config)
        upsert_check_result(
            conn, outcome, run_id, {"excluded_history_days": stats["excluded_days"]}
        )
    return outcome, stats
