"""The sampling proof: the six check rows of a day folded into one verdict.

``status`` is ``passed`` / ``warning`` / ``critical`` (legacy exit codes 0 / 1 / 2, via
:func:`include.analytics_ops.checks.overall_status`): critical if any check is critical, passed
only if all six passed, otherwise warning (``insufficient_history`` needs review, it is no pass).
``anomalies`` lists the warning and critical checks with their human explanation
("revenue 2.8k, expected 3.6k–6.3k (z=5.7): −41.3% vs the expected 4.8k").

Alerts (``sync_check_alerts``) are per check, dedup key ``metric_check:<check_name>``: raised as
warning/critical when the check is, resolved when it passes, ``info`` for insufficient history.
The alert path only notifies on a change of state, so a rerun of the same day finds the alert
already open with the same severity ("repeated": counted, not sent). Alerts follow the *newest*
judged day of each check: a backfill of an older day stores its results and proof but leaves the
alert state alone, so it never re-alerts about the past nor resolves a current problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from include.analytics_ops.nightly import CHECK_TASK_IDS
from include.analytics_ops.nightly.artifacts import proof_path, write_json_atomic
from include.analytics_ops.store import dict_rows, jsonb

ALERT_PREFIX = "metric_check:"
ALERT_SOURCE = "metric_check"
ROW_COLUMNS = (
    "check_name",
    "metric",
    "kind",
    "severity",
    "value",
    "centre",
    "expected_low",
    "expected_high",
    "score",
    "explanation",
    "excluded",
    "expected",
    "config_version",
    "details",
    "run_id",
)
#: What the proof shows of each row: all but the bookkeeping.
ENTRY_COLUMNS = tuple(c for c in ROW_COLUMNS if c not in ("details", "run_id"))


def check_label(check_name: str) -> str:
    """``conversion_rate_trend`` → ``Conversion Rate Trend`` (the legacy proof's names)."""
    return " ".join(w.capitalize() for w in check_name.split("_"))


def alert_key(check_name: str) -> str:
    return f"{ALERT_PREFIX}{check_name}"


class IncompleteChecksError(RuntimeError):
    """Not every check has a result of this run for the day."""


@dataclass(frozen=True)
class Proof:
    target_date: date
    status: str
    exit_code: int
    checks: list[dict[str, Any]]
    anomalies: list[dict[str, Any]]
    config_version: str
    run_id: str | None
    generated_at: datetime
    summary: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "target_date": self.target_date.isoformat(),
            "status": self.status,
            "exit_code": self.exit_code,
            "summary": self.summary,
            "checks": self.checks,
            "anomalies": self.anomalies,
            "config_version": self.config_version,
            "generated_at": self.generated_at.isoformat(),
            "run_id": self.run_id,
        }


def load_check_rows(conn, day: date) -> dict[str, dict[str, Any]]:
    """The stored rows of ``day`` for the six checks, by check name."""
    rows = dict_rows(
        conn,
        f"SELECT {', '.join(ROW_COLUMNS)} FROM analytics.check_results"
        " WHERE target_date = %s AND check_name = ANY(%s)",
        (day, list(CHECK_TASK_IDS)),
    )
    return {r["check_name"]: r for r in rows}


def rows_of_run(
    rows: Mapping[str, Mapping[str, Any]], run_id: str | None
) -> tuple[list[Mapping[str, Any]], list[str]]:
    """(the rows written by ``run_id`` in check order, the checks without such a row)."""
    mine, missing = [], []
    for name in CHECK_TASK_IDS:
        row = rows.get(name)
        if row is None or (run_id is not None and row["run_id"] != run_id):
            missing.append(name)
        else:
            mine.append(row)
    return mine, missing


def status_of_run(conn, day: date, run_id: str | None) -> tuple[str | None, list[str]]:
    """The proof status the six rows of this run give (None while some check has no row of this
    run) and the checks still missing — what the snapshot records."""
    from include.analytics_ops.checks import overall_status

    mine, missing = rows_of_run(load_check_rows(conn, day), run_id)
    if missing:
        return None, missing
    return overall_status(r["severity"] for r in mine), []


def _check_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"check": check_label(row["check_name"])} | {c: row[c] for c in ENTRY_COLUMNS}


def build_proof(
    rows: Sequence[Mapping[str, Any]],
    day: date,
    run_id: str | None,
    generated_at: datetime | None = None,
) -> Proof:
    """Fold the six rows (in check order) into the proof (pure)."""
    from include.analytics_ops.checks import SEVERITY_RANK, exit_code, overall_status

    names = [r["check_name"] for r in rows]
    if sorted(names) != sorted(CHECK_TASK_IDS):
        raise IncompleteChecksError(
            f"the proof needs the six checks {list(CHECK_TASK_IDS)}, got {names}"
        )
    status = overall_status(r["severity"] for r in rows)
    checks = [_check_entry(r) for r in rows]
    anomalies = [
        {
            "check": c["check"],
            "check_name": c["check_name"],
            "metric": c["metric"],
            "severity": c["severity"],
            "message": c["explanation"],
            "value": c["value"],
            "expected_low": c["expected_low"],
            "expected_high": c["expected_high"],
        }
        for c in sorted(checks, key=lambda c: -SEVERITY_RANK[c["severity"]])
        if c["severity"] in ("warning", "critical")
    ]
    summary = {s: sum(1 for r in rows if r["severity"] == s) for s in SEVERITY_RANK}
    summary["total"] = len(rows)
    versions = sorted({r["config_version"] or "" for r in rows})
    return Proof(
        target_date=day,
        status=status,
        exit_code=exit_code(status),
        checks=checks,
        anomalies=anomalies,
        config_version=",".join(versions),
        run_id=run_id,
        generated_at=generated_at or datetime.now(UTC),
        summary=summary,
    )


def store_proof(conn, proof: Proof, artifacts: str) -> Path:
    """Write the proof file (atomically) and upsert its ``analytics.sampling_proofs`` row."""
    path = write_json_atomic(proof_path(artifacts, proof.target_date), proof.as_json())
    conn.execute(
        """
        INSERT INTO analytics.sampling_proofs AS p
               (target_date, status, checks, anomalies, artifact_path, run_id, exit_code,
                config_version, summary, created_at, updated_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now(), now())
        ON CONFLICT (target_date) DO UPDATE
           SET status = EXCLUDED.status, checks = EXCLUDED.checks,
               anomalies = EXCLUDED.anomalies, artifact_path = EXCLUDED.artifact_path,
               run_id = EXCLUDED.run_id, exit_code = EXCLUDED.exit_code,
               config_version = EXCLUDED.config_version, summary = EXCLUDED.summary,
               updated_at = now()
        """,
        (
            proof.target_date,
            proof.status,
            jsonb(proof.checks),
            jsonb(proof.anomalies),
            str(path),
            proof.run_id,
            proof.exit_code,
            proof.config_version,
            jsonb(proof.summary),
        ),
    )
    return path


@dataclass(frozen=True)
class AlertChange:
    check_name: str
    severity: str
    action: str  # opened | reopened | escalated | repeated | resolved | unchanged | skipped
    notified: bool = False


def newest_judged_day(conn, check_name: str) -> date | None:
    row = conn.execute(
        "SELECT max(target_date) FROM analytics.check_results WHERE check_name = %s",
        (check_name,),
    ).fetchone()
    return row[0] if row else None


def sync_check_alerts(
    conn,
    day: date,
    checks: Iterable[Mapping[str, Any]],
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    url: str | None = None,
    channels=None,
) -> list[AlertChange]:
    """Bring each check's alert in line with its result on ``day`` (see module docstring)."""
    from include.analytics_ops import alerts

    changes: list[AlertChange] = []
    for check in checks:
        name, severity = check["check_name"], check["severity"]
        newest = newest_judged_day(conn, name)
        if newest is not None and day < newest:
            changes.append(AlertChange(name, severity, "skipped"))
            continue
        key = alert_key(name)
        if severity == "passed":
            outcome = alerts.resolve_alert(
                conn, key, f"{check_label(name)} passed on {day.isoformat()}", channels=channels
            )
            action = "resolved" if outcome is not None else "unchanged"
            changes.append(AlertChange(name, severity, action, bool(outcome and outcome.notified)))
            continue
        alert_severity = {"warning": "warning", "critical": "critical"}.get(severity, "info")
        what = "insufficient history" if severity == "insufficient_history" else severity
        outcome = alerts.raise_alert(
            conn,
            key,
            alert_severity,
            ALERT_SOURCE,
            f"{check_label(name)} {what} on {day.isoformat()}",
            check["explanation"],
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            url=url,
            details={
                "target_date": day.isoformat(),
                "check_name": name,
                "severity": severity,
                "value": check.get("value"),
                "expected_low": check.get("expected_low"),
                "expected_high": check.get("expected_high"),
                "score": check.get("score"),
            },
            channels=channels,
        )
        changes.append(AlertChange(name, severity, outcome.transition, outcome.notified))
    return changes
