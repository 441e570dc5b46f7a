"""The alert path's runtime settings: severity order, minimum severity, reminder and flapping
intervals (Airflow Variable > env > default, through ``config.setting``)."""

from __future__ import annotations

from datetime import timedelta

from include.analytics_ops.config import setting

SEVERITIES = ("info", "warning", "critical")
RANK = {s: i for i, s in enumerate(SEVERITIES)}


def reminder_interval() -> timedelta:
    return timedelta(seconds=float(setting("ALERT_REMINDER_SECONDS", 4 * 3600, float)))


def flap_settings() -> tuple[int, timedelta]:
    """(state changes, window): that many opens/resolves within the window is flapping; 0 = off."""
    changes = int(setting("ALERT_FLAP_CHANGES", 5, int))
    window = timedelta(seconds=float(setting("ALERT_FLAP_WINDOW_SECONDS", 3600, float)))
    return changes, window


def min_severity() -> str:
    value = str(setting("ALERT_MIN_SEVERITY", "warning")).strip().lower()
    return value if value in RANK else "warning"
