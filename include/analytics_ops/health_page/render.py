"""Server-rendered HTML for the health page: one Jinja2 template, inline CSS, inline SVG charts.

Autoescaping is on: job names, error messages and alert titles come from the database (and
ultimately from upstream APIs and log lines), so they are never trusted as HTML. Links taken from
the database go through ``safe_url`` (http(s) or a same-site path only: no ``javascript:``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

TEMPLATE = Path(__file__).with_name("health.html.j2")
PT = ZoneInfo("America/Los_Angeles")

STATE_COLOURS = {
    "up": "#1a7f37",
    "late": "#b35900",
    "down": "#cf222e",
    "stuck": "#8250df",
    "paused": "#6e7781",
    "unknown": "#6e7781",
    "never_ran": "#b35900",
    "import_error": "#cf222e",
}
LEVEL_COLOURS = {"ok": "#1a7f37", "warning": "#b35900", "critical": "#cf222e", "info": "#0969da"}


def _ago(seconds: float) -> str:
    future = seconds < 0
    s = abs(seconds)
    if s < 90:
        text = f"{int(s)} s"
    elif s < 90 * 60:
        text = f"{round(s / 60)} min"
    elif s < 48 * 3600:
        text = f"{s / 3600:.1f} h"
    else:
        text = f"{s / 86400:.1f} d"
    return f"in {text}" if future else f"{text} ago"


def make_formatters(now: datetime) -> dict[str, Any]:
    def when(value: datetime | None, relative: bool = True) -> Markup:
        """'Nov 20 02:03 PT (3.0 h ago)' with the UTC instant in the tooltip."""
        if value is None:
            return Markup('<span class="muted">—</span>')
        if not isinstance(value, datetime):
            return escape(str(value))
        local = value.astimezone(PT)
        text = local.strftime("%b %d %H:%M ") + local.strftime("%Z")
        rel = f" ({_ago((now - value).total_seconds())})" if relative else ""
        utc = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return Markup('<time datetime="{}" title="{}">{}{}</time>').format(
            value.astimezone(UTC).isoformat(), utc, text, rel
        )

    def duration(seconds: float | None) -> str:
        if seconds is None:
            return "—"
        s = float(seconds)
        if s < 60:
            return f"{s:.0f} s"
        if s < 3600:
            return f"{int(s // 60)} min {int(s % 60):02d} s"
        return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.0f}%" if value == int(value) else f"{value}%"

    def lag(seconds: float | None) -> str:
        if seconds is None:
            return "—"
        return _ago(seconds).removesuffix(" ago")

    return {"when": when, "duration": duration, "pct": pct, "lag": lag}


def rate_sparkline(series: list[float | None], width: int = 91, height: int = 22) -> Markup:
    """7 daily success rates (oldest first) as a polyline; days below 100% get a red dot."""
    n = len(series)
    if not n or all(v is None for v in series):
        return Markup('<span class="muted">no runs</span>')
    step = (width - 6) / max(n - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return 3 + i * step, 3 + (height - 6) * (1 - v / 100.0)

    points = [xy(i, v) for i, v in enumerate(series) if v is not None]
    parts = [
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' role="img" aria-label="success rate per day, last 7 days">',
        f'<line x1="0" y1="3" x2="{width}" y2="3" stroke="#d0d7de" stroke-dasharray="2,2"/>',
    ]
    if len(points) > 1:
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#57606a" stroke-width="1.5"/>')
    for i, v in enumerate(series):
        if v is None:
            continue
        x, y = xy(i, v)
        colour = "#1a7f37" if v >= 100 else ("#b35900" if v >= 80 else "#cf222e")
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="{colour}">'
            f"<title>{6 - i} d ago: {v}%</title></circle>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def volume_bars(hourly: list[dict[str, Any]], width: int = 480, height: int = 60) -> Markup:
    """Events per hour (oldest first) as bars scaled to the card; empty hours show in red."""
    if not hourly:
        return Markup('<span class="muted">no data</span>')
    peak = max(h["events"] for h in hourly) or 1
    bar_w = width / len(hourly)
    parts = [
        f'<svg class="bars" width="100%" height="{height}" viewBox="0 0 {width} {height}" '
        'preserveAspectRatio="none" role="img" aria-label="events per hour">'
    ]
    for i, h in enumerate(hourly):
        x = i * bar_w
        count = h["events"]
        label = escape(f"{h['hour'].astimezone(PT):%b %d %H:00 %Z}: {count} events")
        bh, colour = (max(1.0, (height - 2) * count / peak), "#0969da") if count else (3, "#cf222e")
        parts.append(
            f'<rect x="{x + 0.5:.1f}" y="{height - bh:.1f}" width="{max(bar_w - 1, 0.5):.1f}" '
            f'height="{bh:.1f}" fill="{colour}"><title>{label}</title></rect>'
        )
    parts.append("</svg>")
    first, last = hourly[0]["hour"].astimezone(PT), hourly[-1]["hour"].astimezone(PT)
    parts.append(
        '<div class="muted" style="display:flex;justify-content:space-between;font-size:11px">'
        f"<span>{first:%b %d %H:00}</span><span>peak {peak}/h</span>"
        f"<span>{last:%b %d %H:00} PT</span></div>"
    )
    return Markup("".join(parts))


def safe_url(value: Any) -> str:
    """``value`` when it is an http(s) URL or a same-site absolute path, else ``""`` (so a
    stored ``javascript:``/``data:`` URL never becomes a link)."""
    from urllib.parse import urlsplit

    text = str(value or "").strip()
    if not text or not text.isprintable():
        return ""
    if text.startswith("/") and not text.startswith("//"):
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return ""
    return text if parts.scheme in ("http", "https") and parts.netloc else ""


@cache
def _environment():
    from jinja2 import Environment, StrictUndefined

    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True)
    env.globals.update(
        state_colours=STATE_COLOURS,
        level_colours=LEVEL_COLOURS,
        rate_sparkline=rate_sparkline,
        volume_bars=volume_bars,
    )
    env.filters["urlpart"] = lambda v: quote(str(v), safe="")
    env.filters["safe_url"] = safe_url
    return env


@cache
def _template():
    return _environment().from_string(TEMPLATE.read_text())


def render_page(data: dict[str, Any], *, ui_base: str = "", at: str | None = None) -> str:
    template = _template()
    now = data["generated_at"]
    return template.render(d=data, ui_base=ui_base, at=at, **make_formatters(now))
