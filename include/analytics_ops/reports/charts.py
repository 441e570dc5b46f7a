"""Charts of the CTO report as PNG bytes (matplotlib's Agg canvas; no pyplot global state).

matplotlib is imported inside ``render_charts`` only, so importing this module is cheap. Text
from upstream systems (project names) is drawn with mathtext parsing off, so a ``$`` in a name
is shown as typed.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

COLORS = {
    "primary": "#2563eb",
    "primary_light": "#93c5fd",
    "healthy": "#16a34a",
    "warning": "#d97706",
    "critical": "#dc2626",
    "grid": "#e5e7eb",
    "text": "#374151",
}
DPI = 144
WIDTH_IN = 6.0  # 600 px at 100%: fits a 640 px email column


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    alt: str
    png: bytes
    display_width: int = 600

    @property
    def cid(self) -> str:
        return f"{self.name}@cto-report"

    @property
    def filename(self) -> str:
        return f"{self.name}.png"

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _figure(height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.spines[["left", "bottom"]].set_color(COLORS["grid"])
    ax.tick_params(colors=COLORS["text"], labelsize=8)
    ax.grid(axis="y", color=COLORS["grid"], linewidth=0.6)
    ax.set_axisbelow(True)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white", bbox_inches="tight")
    return buf.getvalue()


def _daily_chart(series: Sequence[dict[str, Any]], key: str, week_start, kind: str):
    from matplotlib.dates import DateFormatter, WeekdayLocator
    from matplotlib.ticker import FuncFormatter

    points = [(r["metric_date"], r[key]) for r in series if r[key] is not None]
    fig = _figure(2.2)
    ax = fig.add_subplot(1, 1, 1)
    _style(ax)
    if points:
        days = [d for d, _ in points]
        values = [float(v) for _, v in points]
        if kind == "bar":
            colors = [
                COLORS["primary"] if d >= week_start else COLORS["primary_light"] for d in days
            ]
            ax.bar(days, values, color=colors, width=0.8)
        else:
            ax.plot(days, values, color=COLORS["primary"], linewidth=1.6)
            ax.fill_between(days, values, min(values), color=COLORS["primary_light"], alpha=0.3)
        from datetime import timedelta

        half = timedelta(hours=12)
        ax.axvspan(
            week_start - half, series[-1]["metric_date"] + half, color="#fef3c7", lw=0, zorder=0
        )
    ax.xaxis.set_major_locator(WeekdayLocator(byweekday=0))
    ax.xaxis.set_major_formatter(DateFormatter("%b %d"))
    formatter = {
        "money": lambda v, _: f"${v / 1000:,.0f}k" if abs(v) >= 1000 else f"${v:,.0f}",
        "int": lambda v, _: f"{v:,.0f}",
        "rate": lambda v, _: f"{100 * v:.1f}%",
    }[kind if kind != "bar" else "money"]
    ax.yaxis.set_major_formatter(FuncFormatter(formatter))
    return fig


def _health_chart(projects: Sequence[Any]):
    n = len(projects)
    fig = _figure(max(1.4, 0.34 * n + 0.7))
    ax = fig.add_subplot(1, 1, 1)
    _style(ax)
    ax.grid(axis="x", color=COLORS["grid"], linewidth=0.6)
    ax.grid(axis="y", visible=False)
    ordered = sorted(projects, key=lambda p: (p.score, p.name))[::-1]
    names = [p.name if len(p.name) <= 28 else p.name[:27] + "…" for p in ordered]
    scores = [p.score for p in ordered]
    colors = [COLORS.get(p.status, COLORS["primary"]) for p in ordered]
    ax.barh(range(n), scores, color=colors, height=0.6)
    ax.set_yticks(range(n), labels=names)
    for i, (score, status) in enumerate(zip(scores, [p.status for p in ordered], strict=True)):
        ax.text(score + 1, i, f"{score} {status}", va="center", fontsize=7, color=COLORS["text"])
    ax.set_xlim(0, 118)
    ax.axvline(80, color=COLORS["healthy"], lw=0.6, ls="--")
    ax.axvline(50, color=COLORS["critical"], lw=0.6, ls="--")
    return fig


def render_charts(data: Any) -> list[Chart]:
    """Charts for a ``report.ReportData``: revenue, sessions, conversion rate (8 weeks daily)
    and health score by project. A chart without data is left out."""
    import matplotlib

    charts: list[Chart] = []
    week_start = data.window.start
    with matplotlib.rc_context(
        {"text.parse_math": False, "font.size": 8, "font.family": "DejaVu Sans"}
    ):
        specs = (
            ("revenue", "Daily revenue, last 8 weeks", "revenue", "bar"),
            ("sessions", "Daily sessions, last 8 weeks", "sessions", "int"),
            ("conversion", "Daily conversion rate, last 8 weeks", "conversion_rate", "rate"),
        )
        for name, title, key, kind in specs:
            if not any(r[key] is not None for r in data.series):
                continue
            fig = _daily_chart(data.series, key, week_start, kind)
            charts.append(Chart(name, title, f"{title} (this week highlighted)", _png(fig)))
        if data.projects:
            fig = _health_chart(data.projects)
            charts.append(
                Chart(
                    "health",
                    "Health score by project",
                    "Bar chart of project health "
                    "scores: green healthy, amber warning, red critical",
                    _png(fig),
                )
            )
    return charts
