"""``build_cto_report``: collect the week's figures, draw the charts, render the HTML report.

``collect_report_data`` reads Postgres only (deterministic for a given window: job runs are
counted over the window's PT days, open issues as of the report date). ``render_html`` /
``render_text`` use the Jinja templates in ``include/templates`` — the HTML one with autoescape
ON, so issue titles, project names and anomaly texts from upstream systems are shown, never
executed. ``build_report`` writes:

- ``reports/cto-report-YYYYMMDD.html`` — self-contained, charts as ``data:`` URIs;
- ``reports/cto-report-YYYYMMDD.eml`` — the ready email (multipart/alternative: text + HTML
  with the charts as CID inline parts), which ``send_cto_report`` only addresses and sends.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from include.analytics_ops.reports.window import ReportWindow
from include.analytics_ops.store import dict_rows

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
HTML_TEMPLATE = "cto_report.html.j2"
TEXT_TEMPLATE = "cto_report.txt.j2"
CHART_WEEKS = 8
DEFAULT_SLOW_RUN_SECONDS = 300.0  # the seed's "slow job" threshold: 5 minutes


# --------------------------------------------------------------------------- formatting
def fmt_money(value: Any, cents: bool = False) -> str:
    if value is None:
        return "–"
    return f"${float(value):,.2f}" if cents else f"${float(value):,.0f}"


def fmt_int(value: Any) -> str:
    return "–" if value is None else f"{int(value):,}"


def fmt_pct(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{100 * float(value):.{digits}f}%"


def fmt_seconds(value: Any) -> str:
    if value is None:
        return "–"
    s = float(value)
    return f"{s:.1f}s" if s < 120 else f"{s / 60:.1f} min"


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    value: float | None
    previous: float | None
    kind: str  # 'money' | 'int' | 'rate'
    higher_is_better: bool = True

    def _fmt(self, v: float | None) -> str:
        return {"money": fmt_money, "int": fmt_int, "rate": fmt_pct}[self.kind](v)

    @property
    def value_text(self) -> str:
        return self._fmt(self.value)

    @property
    def previous_text(self) -> str:
        return self._fmt(self.previous)

    @property
    def change(self) -> float | None:
        """Relative change (rates: difference in percentage points / 100)."""
        if self.value is None or self.previous is None:
            return None
        if self.kind == "rate":
            return self.value - self.previous
        if self.previous == 0:
            return None
        return (self.value - self.previous) / abs(self.previous)

    @property
    def change_text(self) -> str:
        c = self.change
        if c is None:
            return "n/a"
        sign = "+" if c > 0 else ("−" if c < 0 else "±")
        if self.kind == "rate":
            return f"{sign}{abs(100 * c):.2f} pp"
        return f"{sign}{abs(100 * c):.1f}%"

    @property
    def tone(self) -> str:
        """'good' | 'bad' | 'flat' — colours the change in the report."""
        c = self.change
        if c is None or abs(c) < (0.0005 if self.kind == "rate" else 0.005):
            return "flat"
        return "good" if (c > 0) == self.higher_is_better else "bad"


@dataclass
class ReportData:
    window: ReportWindow
    kpis: list[Kpi]
    week_days: list[dict[str, Any]]
    series: list[dict[str, Any]]  # CHART_WEEKS * 7 days: metric_date, revenue, sessions, rate
    proofs: list[dict[str, Any]]
    check_flags: list[dict[str, Any]]
    projects: list[Any]  # health.ProjectStatus
    critical_bugs: list[dict[str, Any]]
    revenue_at_risk: Decimal
    open_bugs: int
    jobs: list[dict[str, Any]]
    job_totals: dict[str, Any]
    failures: list[dict[str, Any]]
    slow_runs: list[dict[str, Any]]
    slow_run_seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def headline(self) -> dict[str, Any]:
        """The numbers a reader checks first (also used by tests and the subject line)."""
        by = {k.key: k for k in self.kpis}
        return {
            "revenue": by["revenue"].value_text,
            "revenue_change": by["revenue"].change_text,
            "sessions": by["sessions"].value_text,
            "conversion_rate": by["conversion_rate"].value_text,
            "revenue_at_risk": fmt_money(self.revenue_at_risk),
            "critical_bugs": len(self.critical_bugs),
            "job_success_rate": self.job_totals.get("success_rate_text", "–"),
        }


def _week_totals(conn: psycopg.Connection, window: ReportWindow) -> dict[str, Any]:
    (row,) = dict_rows(
        conn,
        """
        SELECT sum(revenue) AS revenue, sum(orders) AS orders, sum(sessions) AS sessions,
               sum(conversions) AS conversions,
               CASE WHEN sum(sessions) > 0
                    THEN sum(conversions)::double precision / sum(sessions) END
                 AS conversion_rate,
               CASE WHEN sum(orders) > 0 THEN sum(revenue) / sum(orders) END AS aov,
               sum(ideas_added) AS ideas_added, count(*) AS days
          FROM analytics.daily_metrics WHERE metric_date BETWEEN %s AND %s
        """,
        (window.start, window.end),
    )
    out = {k: (float(v) if isinstance(v, Decimal) else v) for k, v in row.items()}
    if not out["days"]:
        out = dict.fromkeys(out) | {"days": 0}
    return out


def _kpis(current: Mapping[str, Any], previous: Mapping[str, Any]) -> list[Kpi]:
    spec = (
        ("revenue", "Revenue", "money", True),
        ("orders", "Orders", "int", True),
        ("aov", "Average order value", "money", True),
        ("sessions", "Sessions", "int", True),
        ("conversions", "Conversions", "int", True),
        ("conversion_rate", "Conversion rate", "rate", True),
        ("ideas_added", "Ideas added", "int", True),
    )
    return [
        Kpi(key, label, current.get(key), previous.get(key), kind, better)
        for key, label, kind, better in spec
    ]


def _anomaly_text(anomaly: Any) -> str:
    if isinstance(anomaly, Mapping):
        for key in ("message", "explanation", "description", "detail"):
            if anomaly.get(key):
                prefix = anomaly.get("check") or anomaly.get("check_name") or anomaly.get("metric")
                return f"{prefix}: {anomaly[key]}" if prefix else str(anomaly[key])
        return ", ".join(f"{k}={v}" for k, v in anomaly.items())
    return str(anomaly)


def collect_report_data(
    conn: psycopg.Connection,
    window: ReportWindow,
    *,
    slow_run_seconds: float = DEFAULT_SLOW_RUN_SECONDS,
    max_list: int = 15,
) -> ReportData:
    from include.analytics_ops.reports import health

    current, previous = _week_totals(conn, window), _week_totals(conn, window.previous())
    notes: list[str] = []
    if not current["days"]:
        notes.append("No daily metrics were recorded for this week.")
    elif current["days"] < len(window.days):
        notes.append(
            f"Daily metrics cover {current['days']} of {len(window.days)} days of this week; "
            "totals are partial."
        )

    first = window.end - timedelta(days=7 * CHART_WEEKS - 1)
    by_day = {
        r[0]: r
        for r in conn.execute(
            "SELECT metric_date, revenue, orders, sessions, conversions, conversion_rate"
            " FROM analytics.daily_metrics WHERE metric_date BETWEEN %s AND %s",
            (first, window.end),
        ).fetchall()
    }
    proofs_by_day = {
        r[0]: r
        for r in conn.execute(
            "SELECT target_date, status, anomalies FROM analytics.sampling_proofs"
            " WHERE target_date BETWEEN %s AND %s ORDER BY target_date",
            (window.start, window.end),
        ).fetchall()
    }
    series = []
    for i in range(7 * CHART_WEEKS):
        day = first + timedelta(days=i)
        r = by_day.get(day)
        series.append(
            {
                "metric_date": day,
                "revenue": float(r[1]) if r and r[1] is not None else None,
                "sessions": r[3] if r else None,
                "conversion_rate": r[5] if r else None,
            }
        )
    week_days = []
    for day in window.days:
        r = by_day.get(day)
        p = proofs_by_day.get(day)
        week_days.append(
            {
                "date": day,
                "weekday": f"{day:%a}",
                "revenue": fmt_money(r[1]) if r else "–",
                "orders": fmt_int(r[2]) if r else "–",
                "sessions": fmt_int(r[3]) if r else "–",
                "conversion_rate": fmt_pct(r[5]) if r else "–",
                "proof_status": p[1] if p else "missing",
            }
        )
    proofs = [
        {
            "date": day,
            "status": proofs_by_day[day][1] if day in proofs_by_day else "missing",
            "anomalies": [_anomaly_text(a) for a in (proofs_by_day[day][2] or [])]
            if day in proofs_by_day
            else [],
        }
        for day in window.days
    ]
    check_flags = dict_rows(
        conn,
        'SELECT target_date AS date, check_name AS "check", severity, explanation'
        " FROM analytics.check_results"
        " WHERE target_date BETWEEN %s AND %s AND severity IN ('warning', 'critical')"
        " ORDER BY target_date, check_name",
        (window.start, window.end),
    )

    projects = health.project_statuses(conn, window.end)
    cutoff = window.utc_bounds()[1]
    open_filter = """
        i.opened_at < %(cutoff)s AND (i.closed_at IS NULL OR i.closed_at >= %(cutoff)s)
        AND NOT (i.state = 'closed' AND i.closed_at IS NULL) AND NOT i.is_pull_request
    """
    critical_bugs = [
        {
            "project": r[0],
            "repo": r[1],
            "number": r[2],
            "title": r[3],
            "assignee": r[4] or "unassigned",
            "unassigned": not r[4],
            "age_days": max(0, (cutoff - r[5]).days),
            "impact": fmt_money(r[6]),
        }
        for r in conn.execute(
            f"""
            SELECT p.name, p.repo, i.number, i.title, i.assignee, i.opened_at,
                   i.revenue_impact_per_day
              FROM analytics.issues i JOIN analytics.projects p USING (project_id)
             WHERE {open_filter} AND i.severity = 'critical'
             ORDER BY i.revenue_impact_per_day DESC, i.opened_at, p.repo, i.number
            """,
            {"cutoff": cutoff},
        ).fetchall()
    ]
    risk_row = conn.execute(
        f"""
        SELECT coalesce(sum(i.revenue_impact_per_day), 0), count(*)
          FROM analytics.issues i JOIN analytics.projects p USING (project_id)
         WHERE {open_filter} AND (i.is_bug OR i.severity IS NOT NULL)
        """,
        {"cutoff": cutoff},
    ).fetchone()

    start_utc, end_utc = window.utc_bounds()
    jobs = []
    total = {"attempts": 0, "completed": 0, "failed": 0}
    for dag_id, attempts, completed, failed, partial, avg_s, max_s in conn.execute(
        """
        SELECT dag_id, count(*),
               count(*) FILTER (WHERE status = 'completed'),
               count(*) FILTER (WHERE status IN ('failed', 'timeout', 'cancelled')),
               count(*) FILTER (WHERE status = 'partial'),
               avg(duration_seconds), max(duration_seconds)
          FROM ops.job_runs WHERE started_at >= %s AND started_at < %s
         GROUP BY dag_id ORDER BY dag_id
        """,
        (start_utc, end_utc),
    ).fetchall():
        finished = completed + failed + partial
        rate = completed / finished if finished else None
        jobs.append(
            {
                "dag_id": dag_id,
                "attempts": attempts,
                "completed": completed,
                "failed": failed,
                "partial": partial,
                "success_rate": rate,
                "success_rate_text": fmt_pct(rate, 1),
                "avg": fmt_seconds(avg_s),
                "max": fmt_seconds(max_s),
                "tone": "good"
                if rate is None or rate >= 0.995
                else ("bad" if rate < 0.95 else "warn"),
            }
        )
        total["attempts"] += attempts
        total["completed"] += completed
        total["failed"] += failed + partial
    finished = total["completed"] + total["failed"]
    total["success_rate"] = total["completed"] / finished if finished else None
    total["success_rate_text"] = fmt_pct(total["success_rate"], 1)
    failures = dict_rows(
        conn,
        """
        SELECT dag_id, task_id, run_id, status, started_at AS started,
               left(coalesce(nullif(last_error, ''), nullif(status_message, ''), ''), 300)
                 AS error
          FROM ops.job_runs
         WHERE started_at >= %s AND started_at < %s
           AND status IN ('failed', 'timeout', 'cancelled', 'partial')
         ORDER BY started_at DESC, id DESC LIMIT %s
        """,
        (start_utc, end_utc, max_list),
    )
    slow_runs = [
        r | {"duration": fmt_seconds(r["duration"])}
        for r in dict_rows(
            conn,
            """
            SELECT dag_id, task_id, run_id, duration_seconds AS duration, started_at AS started
              FROM ops.job_runs
             WHERE started_at >= %s AND started_at < %s AND duration_seconds > %s
             ORDER BY duration_seconds DESC, id LIMIT %s
            """,
            (start_utc, end_utc, slow_run_seconds, max_list),
        )
    ]
    return ReportData(
        window=window,
        kpis=_kpis(current, previous),
        week_days=week_days,
        series=series,
        proofs=proofs,
        check_flags=check_flags,
        projects=projects,
        critical_bugs=critical_bugs,
        revenue_at_risk=Decimal(risk_row[0]),
        open_bugs=int(risk_row[1]),
        jobs=jobs,
        job_totals=total,
        failures=failures,
        slow_runs=slow_runs,
        slow_run_seconds=slow_run_seconds,
        notes=notes,
    )


# --------------------------------------------------------------------------- rendering
def _environment(autoescape: bool):
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = fmt_money
    env.filters["num"] = fmt_int
    env.filters["pct"] = fmt_pct
    return env


def _context(data: ReportData, charts: Sequence[Any], image_src: Mapping[str, str]):
    counts = {"healthy": 0, "warning": 0, "critical": 0}
    for p in data.projects:
        counts[p.status] = counts.get(p.status, 0) + 1
    proof_counts: dict[str, int] = {}
    for p in data.proofs:
        proof_counts[p["status"]] = proof_counts.get(p["status"], 0) + 1
    return {
        "data": data,
        "w": data.window,
        "headline": data.headline,
        "health_counts": counts,
        "proof_counts": proof_counts,
        "charts": [
            {
                "name": c.name,
                "title": c.title,
                "alt": c.alt,
                "src": image_src[c.name],
                "width": c.display_width,
            }
            for c in charts
        ],
        "anomaly_total": sum(len(p["anomalies"]) for p in data.proofs),
    }


def render_html(data: ReportData, charts: Sequence[Any], mode: str = "file") -> str:
    """``mode='file'``: images as data: URIs; ``'email'``: images as ``cid:`` references."""
    if mode not in ("file", "email"):
        raise ValueError(f"mode must be 'file' or 'email', got {mode!r}")
    src = {c.name: (c.data_uri() if mode == "file" else f"cid:{c.cid}") for c in charts}
    return _environment(True).get_template(HTML_TEMPLATE).render(**_context(data, charts, src))


def render_text(data: ReportData, charts: Sequence[Any] = ()) -> str:
    src = {c.name: "" for c in charts}
    return _environment(False).get_template(TEXT_TEMPLATE).render(**_context(data, charts, src))


def subject_for(data: ReportData) -> str:
    h = data.headline
    return (
        f"Weekly CTO report {data.window.label}: revenue {h['revenue']} "
        f"({h['revenue_change']}), {h['critical_bugs']} critical bugs"
    )


def report_html_path(artifacts: str | os.PathLike[str], window: ReportWindow) -> Path:
    return Path(artifacts) / "reports" / f"cto-report-{window.stamp}.html"


def report_eml_path(artifacts: str | os.PathLike[str], window: ReportWindow) -> Path:
    return Path(artifacts) / "reports" / f"cto-report-{window.stamp}.eml"


@dataclass(frozen=True)
class BuildResult:
    html_path: Path
    eml_path: Path
    subject: str
    headline: dict[str, Any]
    charts: tuple[str, ...]
    projects: int
    critical_bugs: int


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build_report(
    conn: psycopg.Connection,
    window: ReportWindow,
    artifacts: str | os.PathLike[str],
    *,
    slow_run_seconds: float = DEFAULT_SLOW_RUN_SECONDS,
) -> BuildResult:
    from include.analytics_ops.reports import charts as charts_mod
    from include.analytics_ops.reports import email as email_mod

    data = collect_report_data(conn, window, slow_run_seconds=slow_run_seconds)
    charts = charts_mod.render_charts(data)
    html_file = render_html(data, charts, "file")
    html_mail = render_html(data, charts, "email")
    text = render_text(data, charts)
    subject = subject_for(data)
    message = email_mod.build_message(subject, text, html_mail, charts)
    html_path, eml_path = report_html_path(artifacts, window), report_eml_path(artifacts, window)
    _atomic_write(html_path, html_file.encode("utf-8"))
    _atomic_write(eml_path, message.as_bytes())
    return BuildResult(
        html_path,
        eml_path,
        subject,
        data.headline,
        tuple(c.name for c in charts),
        len(data.projects),
        len(data.critical_bugs),
    )
