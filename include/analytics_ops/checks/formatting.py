"""Human-readable numbers for check explanations ("revenue 7.4k, expected 9.8k–11.9k")."""

from __future__ import annotations

import math


def human_number(v: float | None) -> str:
    """Compact number: 742, 7.4k, 11.9k, 245.3k, 1.25M, 3.10B; ``n/a`` for None/NaN."""
    if v is None or not math.isfinite(v):
        return "n/a"
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.2f}B"
    if a >= 1e7:
        return f"{v / 1e6:.1f}M"
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e3:
        return f"{v / 1e3:.1f}k"
    if a >= 100:
        return f"{v:.0f}"
    if float(v).is_integer():
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def format_value(metric: str, v: float | None) -> str:
    """A metric value as shown to people: conversion rate as a percentage, others compact."""
    if v is None or not math.isfinite(v):
        return "n/a"
    if metric == "conversion_rate":
        return f"{v * 100:.2f}%"
    return human_number(v)


def format_change(ratio_minus_one: float) -> str:
    """+12.3% / −35.0% (true minus sign)."""
    pct = ratio_minus_one * 100
    sign = "+" if pct >= 0 else "−"
    return f"{sign}{abs(pct):.1f}%"
