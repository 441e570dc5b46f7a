"""``export_metrics_csv``: the reporting week's metrics as a spreadsheet-safe CSV.

``exports/metrics-weekly-YYYYMMDD.csv`` — header + one row per PT day of the window (a day
without a ``daily_metrics`` row still gets its row, with empty cells). Column order:

1. ``metric_date`` (ISO ``YYYY-MM-DD``), ``revenue``, ``orders``, ``sessions``, ``conversions``,
   ``conversion_rate``, ``average_order_value``, ``ideas_total``, ``ideas_added`` — from
   ``analytics.daily_metrics`` (``average_order_value`` = revenue / orders);
2. ``proof_status`` (``analytics.sampling_proofs``), ``snapshot_status``;
3. every scalar of ``analytics.dashboard_snapshots.metrics`` flattened as
   ``snapshot.<category>.<key>``, sorted by name (present only when snapshots exist).

``exports/projects-weekly-YYYYMMDD.csv`` — one row per active project: health status and the
open-issue figures behind it (see ``health.py``).

Numbers are written with ``.`` decimals, no thousands separators (revenue exactly as stored,
e.g. ``1234.50``). Text cells starting with ``= + - @``, tab or CR get a leading ``'`` so a
spreadsheet shows them instead of evaluating them (CSV/formula injection); numeric cells —
negative numbers included — are left as numbers. Files are replaced atomically, so a rerun
rewrites the same file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from include.analytics_ops.reports.window import ReportWindow

DAILY_COLUMNS = (
    "metric_date",
    "revenue",
    "orders",
    "sessions",
    "conversions",
    "conversion_rate",
    "average_order_value",
    "ideas_total",
    "ideas_added",
)
STATUS_COLUMNS = ("proof_status", "snapshot_status")
PROJECT_COLUMNS = (
    "project_id",
    "repo",
    "name",
    "status",
    "score",
    "health_date",
    "source",
    "reasons",
    "open_issues",
    "open_bugs",
    "open_critical_bugs",
    "unassigned_critical_bugs",
    "revenue_at_risk_per_day",
)

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def neutralise_cell(value: Any) -> Any:
    """Make a text cell inert in spreadsheets; numbers (and numeric text) pass unchanged."""
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(_FORMULA_PREFIXES) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def metrics_csv_path(artifacts: str | os.PathLike[str], window: ReportWindow) -> Path:
    return Path(artifacts) / "exports" / f"metrics-weekly-{window.stamp}.csv"


def projects_csv_path(artifacts: str | os.PathLike[str], window: ReportWindow) -> Path:
    return Path(artifacts) / "exports" / f"projects-weekly-{window.stamp}.csv"


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, out)
    elif isinstance(value, list):
        out[prefix] = json.dumps(value, sort_keys=True, default=str)
    else:
        out[prefix] = value


def _cell(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


@dataclass(frozen=True)
class ExportResult:
    path: Path
    projects_path: Path
    columns: tuple[str, ...]
    rows: int
    days_with_data: int
    projects: int


def fetch_metric_rows(
    conn: psycopg.Connection, window: ReportWindow
) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and one dict per day of the window (the CSV's content, not yet neutralised)."""
    metrics = {
        r[0]: r
        for r in conn.execute(
            """
            SELECT metric_date, revenue, orders, sessions, conversions, conversion_rate,
                   CASE WHEN orders > 0 THEN round(revenue / orders, 2) END,
                   ideas_total, ideas_added
              FROM analytics.daily_metrics WHERE metric_date BETWEEN %s AND %s
            """,
            (window.start, window.end),
        ).fetchall()
    }
    proofs = dict(
        conn.execute(
            "SELECT target_date, status FROM analytics.sampling_proofs"
            " WHERE target_date BETWEEN %s AND %s",
            (window.start, window.end),
        ).fetchall()
    )
    snapshots: dict[date, dict[str, Any]] = {}
    for snap_date, status, metrics_json in conn.execute(
        "SELECT snapshot_date, status, metrics FROM analytics.dashboard_snapshots"
        " WHERE snapshot_date BETWEEN %s AND %s",
        (window.start, window.end),
    ).fetchall():
        flat: dict[str, Any] = {"snapshot_status": status}
        for category, values in (metrics_json or {}).items():
            _flatten(f"snapshot.{category}", values, flat)
        snapshots[snap_date] = flat
    snapshot_columns = sorted(
        {k for flat in snapshots.values() for k in flat if k != "snapshot_status"}
    )
    columns = [*DAILY_COLUMNS, *STATUS_COLUMNS, *snapshot_columns]
    rows: list[dict[str, Any]] = []
    for day in window.days:
        row: dict[str, Any] = dict.fromkeys(columns)
        row["metric_date"] = day
        if day in metrics:
            row.update(zip(DAILY_COLUMNS, metrics[day], strict=True))
        row["proof_status"] = proofs.get(day)
        row.update(snapshots.get(day, {}))
        rows.append(row)
    return columns, rows


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Write rows with pandas (object dtype: ints stay ints, Decimals stay exact), neutralising
    text cells and header names; atomic replace. Returns the number of data rows."""
    import pandas as pd

    records = [[neutralise_cell(_cell(row.get(c))) for c in columns] for row in rows]
    frame = pd.DataFrame(records, columns=[neutralise_cell(c) for c in columns], dtype=object)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False, lineterminator="\n", encoding="utf-8")
    os.replace(tmp, path)
    return len(records)


def export_metrics(
    conn: psycopg.Connection,
    window: ReportWindow,
    artifacts: str | os.PathLike[str],
    project_rows: Sequence[Mapping[str, Any]] | None = None,
) -> ExportResult:
    """Write both CSVs of the week; ``project_rows`` defaults to ``health.project_statuses``."""
    from include.analytics_ops.reports import health

    columns, rows = fetch_metric_rows(conn, window)
    path = metrics_csv_path(artifacts, window)
    n = write_csv(path, columns, rows)
    if project_rows is None:
        project_rows = [s.as_row() for s in health.project_statuses(conn, window.end)]
    projects_path = projects_csv_path(artifacts, window)
    write_csv(projects_path, PROJECT_COLUMNS, project_rows)
    with_data = sum(
        1 for r in rows if r.get("revenue") is not None or r.get("sessions") is not None
    )
    return ExportResult(path, projects_path, tuple(columns), n, with_data, len(project_rows))
