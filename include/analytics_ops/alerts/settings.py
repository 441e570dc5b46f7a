"""The alert path's runtime settings: severity order, minimum severity, reminder and flapping
intervals (Airflow Variable > env > default, through ``config.setting``)."""

from __future__ import annotations

from datetime import timedelta

from include.analytics_ops.config import seconds, setting

SEVERITIES = ("info", "warning", "critical")
RANK = {s: i for i, s in enumerate(SEVERITIES)}


def reminder_interval() -> timedelta:
    return setting("ALERT_REMINDER_SECONDS", timedelta(hours=4), seconds)


def flap_settings() -> tuple[int, timedelta]:
    """(state changes, window): that many opens/resolves within the window is flapping; 0 = off."""
    window = setting("ALERT_FLAP_WINDOW_SECONDS", timedelta(hours=1), seconds)
    return setting("ALERT_FLAP_CHANGES", 5), window


def _severity(raw: str) -> str:
    if (value := raw.strip().lower()) not in RANK:
        raise ValueError(f"not one of {SEVERITIES}")
    return value


def min_severity() -> str:
    return setting("ALERT_MIN_SEVERITY", "warning", _severity)
