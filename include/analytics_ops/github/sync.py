"""Incremental sync of GitHub issues and pull requests into ``analytics.issues``.

For every active project (``analytics.projects.active``) the sync asks the issues endpoint for
everything updated since the project's watermark (``analytics.project_sync_state``), newest first,
with the stored ETag on the first page:

- the ETag belongs to one URL, i.e. to one ``since``: it is sent only when the stored ETag was
  answered for the current watermark. So after a sync that found changes, the next run asks
  with the new watermark and gets a small 200 (the boundary items, nothing rewritten); from then
  on an unchanged repo answers 304.
- ``304`` → nothing changed: no row of ``analytics.issues`` is written, the watermark and ETag stay;
  only ``last_checked_at``/``last_synced_at`` of the sync state move.
- ``200`` → all pages are fetched first, then, in ONE transaction per project, the issues are
  upserted (a row is only rewritten when something in it changed), the watermark advances to the
  newest ``updated_at`` seen and the new ETag is stored. A failure half-way writes nothing, so
  the next run asks for the same range again.
- a failing project (404, 5xx after retries, rate limit beyond the wait cap, ...) is recorded
  (``last_status='failed'``, ``last_error``, an ``error`` event in ``ops.job_events``) and the
  others continue. A 401/403 (bad token) stops the sync at once: every project would fail alike.

Label convention (configuration, see :class:`LabelConvention`): an issue is a *bug* when it
carries one of ``GITHUB_BUG_LABELS`` (default ``bug``); its severity comes from a label
``<GITHUB_SEVERITY_LABEL_PREFIX><critical|high|medium|low>`` (default prefix ``severity:``; the
most severe wins when several are present; ``GITHUB_SEVERITY_ALIASES`` such as ``P0=critical``
map other names); its revenue impact per day from ``<GITHUB_REVENUE_LABEL_PREFIX><dollars>``
(default ``revenue:``, e.g. ``revenue:2500``, ``revenue:$1,200``, ``revenue:1.5k``; the largest
wins). Label matching ignores case. Pull requests are never bugs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

import psycopg

from include.analytics_ops import store, textsafe
from include.analytics_ops.config import FromSettings, from_setting, pairs
from include.analytics_ops.github import SEVERITIES
from include.analytics_ops.github.client import (
    GitHubAuthError,
    GitHubClient,
    GitHubError,
    GitHubTransientError,
)

log = logging.getLogger(__name__)
EVENT_TYPE = "github_sync"
DEAD_LETTER_STREAM = "github_issues"
MAX_DOLLARS = Decimal(10) ** 12
MAX_ISSUE_NUMBER = 2**31 - 1  # analytics.issues.number is an integer
_MONEY = re.compile(r"^\$?\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*(k)?$", re.IGNORECASE)


# --------------------------------------------------------------------------- labels
def _labels(raw: str) -> frozenset[str]:
    return frozenset(b.strip().lower() for b in raw.split(",") if b.strip())


@dataclass(frozen=True)
class LabelConvention(FromSettings):
    """How labels map to bug / severity / revenue impact (settings: see module docstring)."""

    bug_labels: frozenset[str] = from_setting("GITHUB_BUG_LABELS", frozenset({"bug"}), _labels)
    severity_prefix: str = from_setting("GITHUB_SEVERITY_LABEL_PREFIX", "severity:", str.lower)
    revenue_prefix: str = from_setting("GITHUB_REVENUE_LABEL_PREFIX", "revenue:", str.lower)
    severity_aliases: Mapping[str, str] = from_setting(
        "GITHUB_SEVERITY_ALIASES", parse=pairs, default_factory=dict
    )

    def __post_init__(self) -> None:
        for alias, sev in self.severity_aliases.items():
            if sev not in SEVERITIES:
                raise ValueError(f"severity alias {alias!r} -> {sev!r}: not one of {SEVERITIES}")

    def classify(self, labels: Iterable[str]) -> tuple[bool, str | None, Decimal]:
        """(is_bug, severity or None, revenue impact in dollars per day) for a label list."""
        names = [n.strip().lower() for n in labels]
        is_bug = any(n in self.bug_labels for n in names)
        severity: str | None = None
        revenue = Decimal(0)
        for name in names:
            sev = None
            if self.severity_prefix and name.startswith(self.severity_prefix):
                sev = name[len(self.severity_prefix) :].strip()
            sev = self.severity_aliases.get(name, sev)
            if sev in SEVERITIES and (
                severity is None or SEVERITIES.index(sev) < SEVERITIES.index(severity)
            ):
                severity = sev
            if self.revenue_prefix and name.startswith(self.revenue_prefix):
                value = parse_dollars(name[len(self.revenue_prefix) :])
                if value is not None and value > revenue:
                    revenue = value
        return is_bug, severity, revenue


def parse_dollars(text: str) -> Decimal | None:
    """``2500``, ``$1,200``, ``1.5k`` → dollars; None when it is not an amount (or not below
    $10^12, the column's limit)."""
    m = _MONEY.match(text.strip())
    if not m:
        return None
    try:
        value = Decimal(m.group(1).replace(",", ""))
        if m.group(2):
            value *= 1000
        value = value.quantize(Decimal("0.01"))
    except InvalidOperation:
        return None
    # analytics.issues.revenue_impact_per_day is numeric(14, 2): larger is not a real amount
    return value if value < MAX_DOLLARS else None


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class IssueRecord:
    number: int
    is_pull_request: bool
    state: str
    title: str
    severity: str | None
    is_bug: bool
    revenue_impact_per_day: Decimal
    assignee: str | None
    labels: list[str]
    opened_at: datetime
    closed_at: datetime | None
    merged_at: datetime | None
    updated_at: datetime | None


#: Issue text also shows on pages and in mail: other control characters are replaced too.
storable = partial(textsafe.storable, controls=True)


def _ts(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_issue(raw: Mapping[str, Any], convention: LabelConvention) -> IssueRecord:
    """One item of GitHub's issues endpoint → the row we store (text sanitised, see
    :func:`storable`). Raises ValueError/KeyError/TypeError for an item that is not an issue."""
    if not isinstance(raw, Mapping):
        raise TypeError(f"an issue must be a JSON object, got {type(raw).__name__}")
    raw_labels = raw.get("labels") or []
    if not isinstance(raw_labels, list):
        raise TypeError(f"issue #{raw.get('number')}: labels must be a list")
    labels = [
        storable(str((lab.get("name") if isinstance(lab, Mapping) else lab) or ""), 200)
        for lab in raw_labels
    ]
    pr = raw.get("pull_request")
    is_pr = pr is not None
    is_bug, severity, revenue = convention.classify(labels)
    if is_pr:
        is_bug, revenue = False, Decimal(0)
    assignee = raw.get("assignee") or {}
    if not assignee and isinstance(raw.get("assignees"), list) and raw["assignees"]:
        assignee = raw["assignees"][0] or {}
    state = raw.get("state")
    if state not in ("open", "closed"):
        raise ValueError(f"issue #{raw.get('number')}: unexpected state {state!r}")
    number = raw["number"]
    if isinstance(number, bool) or not isinstance(number, int | str):
        raise TypeError(f"issue number must be an integer, got {number!r}"[:200])
    number = int(number)
    if not 0 < number <= MAX_ISSUE_NUMBER:
        raise ValueError(f"issue number out of range: {number}"[:200])
    login = assignee.get("login") if isinstance(assignee, Mapping) else None
    opened_at = _ts(raw["created_at"])
    if opened_at is None:
        raise ValueError(f"issue #{number}: no created_at")
    return IssueRecord(
        number=number,
        is_pull_request=is_pr,
        state=state,
        title=storable(str(raw.get("title") or ""), 1000),
        severity=severity,
        is_bug=is_bug,
        revenue_impact_per_day=revenue,
        assignee=storable(str(login), 200) if login is not None else None,
        labels=labels,
        opened_at=opened_at,
        closed_at=_ts(raw.get("closed_at")),
        merged_at=_ts(pr.get("merged_at")) if isinstance(pr, Mapping) else None,
        updated_at=_ts(raw.get("updated_at")),
    )


# --------------------------------------------------------------------------- state
@dataclass(frozen=True)
class Project:
    project_id: int
    repo: str
    name: str


@dataclass
class ProjectOutcome:
    project_id: int
    repo: str
    status: str  # 'synced' | 'not_modified' | 'failed'
    fetched: int = 0
    written: int = 0
    pages: int = 0
    error: str | None = None
    http_status: int | None = None
    retryable: bool = False
    rejected: int = 0  # items that were not valid issues (dead-lettered)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rejected": self.rejected,
            "project_id": self.project_id,
            "repo": self.repo,
            "status": self.status,
            "fetched": self.fetched,
            "written": self.written,
            "pages": self.pages,
            "error": self.error,
            "http_status": self.http_status,
            "retryable": self.retryable,
        }


@dataclass
class SyncSummary:
    outcomes: list[ProjectOutcome]
    stats: dict[str, Any]

    @property
    def failed(self) -> list[ProjectOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def run_status(self) -> str:
        """ops.job_runs status: completed / partial (some failed) / failed (all failed)."""
        if not self.failed:
            return "completed"
        return "failed" if len(self.failed) == len(self.outcomes) else "partial"


def active_projects(conn: psycopg.Connection, repos: Sequence[str] | None = None) -> list[Project]:
    rows = conn.execute(
        "SELECT project_id, repo, name FROM analytics.projects"
        " WHERE active AND (%s::text[] IS NULL OR repo = ANY(%s::text[])) ORDER BY project_id",
        (list(repos) if repos else None, list(repos) if repos else None),
    ).fetchall()
    return [Project(int(r[0]), r[1], r[2]) for r in rows]


def read_sync_state(
    conn: psycopg.Connection, project_id: int
) -> tuple[datetime | None, str | None]:
    """(since, etag to send): the ETag only when it was answered for this same ``since``."""
    row = conn.execute(
        "SELECT since_watermark, etag, etag_since FROM analytics.project_sync_state"
        " WHERE project_id = %s",
        (project_id,),
    ).fetchone()
    if row is None:
        return None, None
    since, etag, etag_since = row
    return since, (etag if etag_since == since else None)


_UPSERT = """
INSERT INTO analytics.issues AS t (project_id, number, is_pull_request, state, title, severity,
    is_bug, revenue_impact_per_day, assignee, labels, opened_at, closed_at, merged_at, updated_at,
    synced_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (project_id, number) DO UPDATE SET
    is_pull_request = EXCLUDED.is_pull_request, state = EXCLUDED.state, title = EXCLUDED.title,
    severity = EXCLUDED.severity, is_bug = EXCLUDED.is_bug,
    revenue_impact_per_day = EXCLUDED.revenue_impact_per_day, assignee = EXCLUDED.assignee,
    labels = EXCLUDED.labels, opened_at = EXCLUDED.opened_at, closed_at = EXCLUDED.closed_at,
    merged_at = EXCLUDED.merged_at, updated_at = EXCLUDED.updated_at, synced_at = now()
WHERE (t.is_pull_request, t.state, t.title, t.severity, t.is_bug, t.revenue_impact_per_day,
       t.assignee, t.labels, t.opened_at, t.closed_at, t.merged_at, t.updated_at)
      IS DISTINCT FROM
      (EXCLUDED.is_pull_request, EXCLUDED.state, EXCLUDED.title, EXCLUDED.severity,
       EXCLUDED.is_bug, EXCLUDED.revenue_impact_per_day, EXCLUDED.assignee, EXCLUDED.labels,
       EXCLUDED.opened_at, EXCLUDED.closed_at, EXCLUDED.merged_at, EXCLUDED.updated_at)
RETURNING 1
"""


def upsert_issues(conn: psycopg.Connection, project_id: int, records: Iterable[IssueRecord]) -> int:
    """Upsert; returns how many rows were inserted or actually changed."""
    written = 0
    with conn.cursor() as cur:
        for r in records:
            # _UPSERT's columns are the project id, then IssueRecord's fields in their order
            values = {f.name: getattr(r, f.name) for f in fields(r)}
            values["labels"] = store.jsonb(r.labels)
            cur.execute(_UPSERT, (project_id, *values.values()))
            written += cur.fetchone() is not None
    return written


def _write_state(
    conn: psycopg.Connection,
    project_id: int,
    status: str,
    *,
    since: datetime | None = None,
    etag: str | None = None,
    etag_since: datetime | None = None,
    error: str | None = None,
    http_status: int | None = None,
    fetched: int = 0,
    written: int = 0,
) -> None:
    ok = status != "failed"
    conn.execute(
        """
        INSERT INTO analytics.project_sync_state AS s (project_id, since_watermark, etag,
            etag_since, last_synced_at, last_checked_at, last_status, last_error,
            last_http_status, issues_fetched, issues_written)
        VALUES (%(pid)s, %(since)s, %(etag)s, %(etag_since)s, CASE WHEN %(ok)s THEN now() END,
                now(), %(status)s, %(error)s, %(http)s, %(fetched)s, %(written)s)
        ON CONFLICT (project_id) DO UPDATE SET
            since_watermark = COALESCE(EXCLUDED.since_watermark, s.since_watermark),
            -- a 200 replaces the ETag and the request it belongs to; 304/failure keep them
            etag = CASE WHEN %(synced)s THEN EXCLUDED.etag ELSE s.etag END,
            etag_since = CASE WHEN %(synced)s THEN EXCLUDED.etag_since ELSE s.etag_since END,
            last_synced_at = COALESCE(EXCLUDED.last_synced_at, s.last_synced_at),
            last_checked_at = now(), last_status = EXCLUDED.last_status,
            last_error = EXCLUDED.last_error, last_http_status = EXCLUDED.last_http_status,
            issues_fetched = EXCLUDED.issues_fetched, issues_written = EXCLUDED.issues_written,
            updated_at = now()
        """,
        {
            "pid": project_id,
            "since": since,
            "etag": etag,
            "etag_since": etag_since,
            "synced": status == "synced",
            "ok": ok,
            "status": status,
            "error": error,
            "http": http_status,
            "fetched": fetched,
            "written": written,
        },
    )
    if ok:
        conn.execute(
            "UPDATE analytics.projects SET last_synced_at = now() WHERE project_id = %s",
            (project_id,),
        )


def sync_project(
    conn: psycopg.Connection,
    client: GitHubClient,
    project: Project,
    convention: LabelConvention,
    *,
    key: store.RunKey | None = None,
    job_run_id: int | None = None,
) -> ProjectOutcome:
    """Sync one project (see module docstring). Raises only :class:`GitHubAuthError`; every other
    failure is recorded and returned as a 'failed' outcome."""
    since, etag = read_sync_state(conn, project.project_id)
    try:
        fetch = client.list_issues(project.repo, since=since, etag=etag)
    except GitHubAuthError as exc:
        _record_failure(conn, project, exc, key=key, job_run_id=job_run_id)
        raise
    except GitHubError as exc:
        return _record_failure(conn, project, exc, key=key, job_run_id=job_run_id)
    records, rejected = parse_issues(project, fetch.issues, convention)

    if fetch.not_modified:
        outcome = ProjectOutcome(project.project_id, project.repo, "not_modified", http_status=304)
        with conn.transaction():
            _write_state(conn, project.project_id, "not_modified", http_status=304)
            _log(conn, project, outcome, key=key, job_run_id=job_run_id)
        return outcome

    newest = max((r.updated_at for r in records if r.updated_at), default=None)
    if since is not None and newest is not None and newest < since:
        newest = since
    try:
        with conn.transaction():
            written = upsert_issues(conn, project.project_id, records)
            if rejected:
                store.add_dead_letters(conn, DEAD_LETTER_STREAM, rejected, job_run_id=job_run_id)
            outcome = ProjectOutcome(
                project.project_id,
                project.repo,
                "synced",
                fetched=len(records) + len(rejected),
                written=written,
                pages=fetch.pages,
                http_status=fetch.last_status,
                rejected=len(rejected),
            )
            _write_state(
                conn,
                project.project_id,
                "synced",
                since=newest,
                etag=fetch.etag,
                etag_since=since,
                http_status=fetch.last_status,
                fetched=outcome.fetched,
                written=written,
            )
            _log(conn, project, outcome, key=key, job_run_id=job_run_id)
    except psycopg.Error as exc:  # nothing of this project was written; the others go on
        return _record_failure(conn, project, exc, key=key, job_run_id=job_run_id)
    return outcome


def parse_issues(
    project: Project, items: Sequence[Any], convention: LabelConvention
) -> tuple[list[IssueRecord], list[tuple[Any, str, str]]]:
    """Parse a page set: (records, dead letters). An item that is not a valid issue becomes a
    dead letter ``(payload, reason, "<repo>#<number>")`` instead of failing the project."""
    records: list[IssueRecord] = []
    rejected: list[tuple[Any, str, str]] = []
    for raw in items:
        try:
            records.append(parse_issue(raw, convention))
        except (ValueError, KeyError, TypeError, OverflowError, AttributeError) as exc:
            number = raw.get("number") if isinstance(raw, Mapping) else None
            reason = storable(f"{project.repo}: not a valid issue: {type(exc).__name__}: {exc}")
            rejected.append((storable(raw), reason[:1000], storable(f"{project.repo}#{number}")))
    return records, rejected


def _record_failure(
    conn: psycopg.Connection,
    project: Project,
    exc: Exception,
    *,
    key: store.RunKey | None,
    job_run_id: int | None,
) -> ProjectOutcome:
    status = getattr(exc, "status", None)
    outcome = ProjectOutcome(
        project.project_id,
        project.repo,
        "failed",
        error=storable(f"{type(exc).__name__}: {exc}", 2000),
        http_status=status,
        retryable=isinstance(exc, GitHubTransientError),
    )
    log.warning("GitHub sync of %s failed: %s", project.repo, outcome.error)
    with conn.transaction():
        _write_state(conn, project.project_id, "failed", error=outcome.error, http_status=status)
        _log(conn, project, outcome, key=key, job_run_id=job_run_id)
    return outcome


def _log(
    conn: psycopg.Connection,
    project: Project,
    outcome: ProjectOutcome,
    *,
    key: store.RunKey | None,
    job_run_id: int | None,
) -> None:
    if outcome.status == "failed":
        message = f"{project.repo}: sync failed: {outcome.error}"
    elif outcome.status == "not_modified":
        message = f"{project.repo}: not modified (304)"
    else:
        message = (
            f"{project.repo}: {outcome.fetched} fetched in {outcome.pages} page(s),"
            f" {outcome.written} written"
            + (f", {outcome.rejected} not valid (dead letters)" if outcome.rejected else "")
        )
    store.log_event(
        conn,
        EVENT_TYPE,
        message,
        level="error" if outcome.status == "failed" else "info",
        job_run_id=job_run_id,
        key=key,
        entity_id=project.repo,
        details=outcome.as_dict(),
    )


def sync_projects(
    conn: psycopg.Connection,
    client: GitHubClient,
    convention: LabelConvention,
    *,
    repos: Sequence[str] | None = None,
    key: store.RunKey | None = None,
    job_run_id: int | None = None,
) -> SyncSummary:
    """Sync every active project, isolating failures (see module docstring)."""
    outcomes: list[ProjectOutcome] = []
    for project in active_projects(conn, repos):
        try:
            outcome = sync_project(
                conn, client, project, convention, key=key, job_run_id=job_run_id
            )
        except GitHubAuthError:
            raise
        except Exception as exc:  # one project's surprise must not stop the others
            log.exception("GitHub sync of %s failed unexpectedly", project.repo)
            outcome = _record_failure(conn, project, exc, key=key, job_run_id=job_run_id)
        outcomes.append(outcome)
    stats = {
        "projects": len(outcomes),
        "synced": sum(o.status == "synced" for o in outcomes),
        "not_modified": sum(o.status == "not_modified" for o in outcomes),
        "failed": sum(o.status == "failed" for o in outcomes),
        "issues_fetched": sum(o.fetched for o in outcomes),
        "issues_written": sum(o.written for o in outcomes),
        "issues_rejected": sum(o.rejected for o in outcomes),
        "pages": sum(o.pages for o in outcomes),
        "failed_repos": [o.repo for o in outcomes if o.status == "failed"],
        **client.stats.as_dict(),
    }
    return SyncSummary(outcomes, stats)
