"""Load one arrival-time window of PostHog events exactly once.

The window is ``[start, end)`` on ``created_at`` (when PostHog processed the event), with event time
bounded as PostHog's batch exports do: ``timestamp`` in ``[start − 7 d, end + 1 d)``. Pages come
from the Query API with a keyset on the total order ``(toUnixTimestamp64Milli(created_at), uuid)``
— never OFFSET, never a timestamp-only cursor, so rows sharing an instant are neither skipped nor
repeated at page boundaries.

Each page, in ONE PostgreSQL transaction: validate → binary ``COPY`` of the good rows into a temp
staging table → ``INSERT … SELECT … ON CONFLICT (uuid) DO NOTHING`` into
``analytics.posthog_events`` → bad rows into ``ops.dead_letters`` with their reason → the checkpoint
(cursor + counters) of ``(stream, window)``. A crash at any point loses at most the uncommitted
page; the retry resumes from the checkpoint's cursor. Because ``uuid`` is the primary key and the
merge ignores conflicts, re-reading any page (rerun, overlap, backfill) cannot duplicate a row.
While page k is being loaded, page k+1 is already being fetched in a thread (one request in flight
per task, within the ``posthog_api`` pool); at most two pages are in memory.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import psycopg

from include.analytics_ops import retry, store
from include.analytics_ops.dates import pt_date
from include.analytics_ops.ingest import STREAM
from include.analytics_ops.ingest.config import IngestConfig
from include.analytics_ops.ingest.posthog import (
    BudgetExhausted,
    PostHogClient,
    QueryTooExpensive,
    ThrottledFor,
    UndecodableBody,
)
from include.analytics_ops.ingest.validation import (
    COLUMNS,
    Rules,
    jsonb_text,
    payload_of,
    split_rows,
    uuid_text,
    uuid_wire,
)

log = logging.getLogger(__name__)

EVENT_TIME = """
  AND timestamp >= toDateTime64({t_start}, 6, 'UTC')
  AND timestamp < toDateTime64({t_end}, 6, 'UTC')"""
# The daily sweep (``reconcile.sweep_old_events``): what no hourly window's event-time bound let
# through — ``timestamp`` before its window's start − lookback, back to the sweep horizon.
OLD_EVENT_TIME = """
  AND timestamp >= toDateTime64({t_start}, 6, 'UTC')
  AND timestamp < toStartOfHour(created_at) - toIntervalSecond({lookback_s})"""
_WINDOW_WHERE = """FROM events
WHERE created_at >= toDateTime64({w_start}, 6, 'UTC')
  AND created_at < toDateTime64({w_end}, 6, 'UTC')%(event_time)s"""
PAGE_QUERY_TEMPLATE = (
    """
SELECT uuid, event, distinct_id, timestamp, created_at, properties,
       toUnixTimestamp64Milli(created_at) AS created_ms
"""
    + _WINDOW_WHERE
    + """%(keyset)s
ORDER BY toUnixTimestamp64Milli(created_at), uuid
LIMIT %(limit)d
"""
)
#: PostHog's row count of a window (duplicates included, like the pages): reconciliation.
COUNT_QUERY_TEMPLATE = "SELECT count() AS n " + _WINDOW_WHERE
KEYSET = "\n  AND (toUnixTimestamp64Milli(created_at), uuid) > ({c_ms}, {c_uuid})"


@dataclass(frozen=True)
class Source:
    """What a load reads: the checkpoint stream and the event-time predicate (+ its values)."""

    stream: str = STREAM
    event_time: str = EVENT_TIME
    values: dict[str, Any] = field(default_factory=dict)
    defines_start: bool = True  # may its first window record the stream start?


STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS posthog_stage (
    uuid uuid, event text, distinct_id text, ts timestamptz, created_at timestamptz,
    properties jsonb
) ON COMMIT DELETE ROWS
"""
# Binary COPY: ``uuid`` and ``properties`` go out as pre-encoded wire bytes (see validation).
COPY_TYPES = ["bytea", "text", "text", "timestamptz", "timestamptz", "bytea"]
COPY_STAGE = "COPY posthog_stage FROM STDIN (FORMAT BINARY)"
COPY_DIRECT = (
    "COPY analytics.posthog_events (uuid, event, distinct_id, timestamp, created_at, properties)"
    " FROM STDIN (FORMAT BINARY)"
)
DUPLICATE_REASON = "duplicate uuid, different content"
#: A version's identity: its content, independent of the session's TimeZone.
_VERSION = (
    "md5(concat_ws(chr(31), {t}event, {t}distinct_id, (extract(epoch FROM {t}{ts}) * 1e6)::bigint,"
    " (extract(epoch FROM {t}created_at) * 1e6)::bigint, {t}properties::text))"
)
# Every distinct version of each staged uuid (staged or stored). The winner of a uuid is the
# version PostHog processed first (smallest created_at), ties broken by the content hash: the
# same whatever order windows, reruns or duplicates arrive in. Losers become dead letters.
VERSIONS_SQL = f"""
CREATE TEMP TABLE posthog_versions ON COMMIT DROP AS
SELECT DISTINCT ON (uuid, h) uuid, event, distinct_id, ts, created_at, properties, h, stored,
       row_number() OVER (PARTITION BY uuid ORDER BY created_at, h) AS rank
  FROM (
    SELECT DISTINCT ON (uuid, h) *
      FROM (SELECT s.*, {_VERSION.format(t="s.", ts="ts")} AS h, false AS stored
              FROM posthog_stage s
            UNION ALL
            SELECT e.uuid, e.event, e.distinct_id, e."timestamp", e.created_at, e.properties,
                   {_VERSION.format(t="e.", ts='"timestamp"')}, true
              FROM analytics.posthog_events e
             WHERE e.uuid IN (SELECT uuid FROM posthog_stage)) v
     ORDER BY uuid, h, stored DESC
  ) d
 ORDER BY uuid, h
"""
MERGE_SQL = """
INSERT INTO analytics.posthog_events (uuid, event, distinct_id, "timestamp", created_at, properties)
SELECT uuid, event, distinct_id, ts, created_at, properties FROM posthog_versions
 WHERE rank = 1 AND NOT stored
ON CONFLICT (uuid) DO UPDATE
   SET event = EXCLUDED.event, distinct_id = EXCLUDED.distinct_id,
       "timestamp" = EXCLUDED."timestamp", created_at = EXCLUDED.created_at,
       properties = EXCLUDED.properties
RETURNING (xmax = 0) AS inserted, "timestamp"
"""
LOSERS_SQL = """
SELECT uuid::text, event, distinct_id, ts, created_at, properties::text, stored
  FROM posthog_versions WHERE rank > 1
"""
INSERT_ONE_SQL = """
INSERT INTO analytics.posthog_events (uuid, event, distinct_id, "timestamp", created_at, properties)
VALUES (%s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (uuid) DO NOTHING
"""


def insert_one_params(row: tuple) -> tuple:
    return (uuid_text(row[0]), *row[1:5], jsonb_text(row[5]))


def insert_one(conn: psycopg.Connection, row: tuple) -> tuple[int, str | None]:
    """Insert one load tuple in its own savepoint: (rows inserted, None), or (0, the reason) when
    PostgreSQL refuses it."""
    try:
        with conn.transaction():
            return max(conn.execute(INSERT_ONE_SQL, insert_one_params(row)).rowcount, 0), None
    except psycopg.DataError as exc:
        return 0, f"rejected by PostgreSQL: {str(exc).splitlines()[0][:200]}"


class WindowError(ValueError):
    """A window that cannot be ingested (bad bounds): not retryable."""


class WindowNotSettled(RuntimeError):
    """The window ends too recently: PostHog may still be receiving its events."""

    def __init__(self, window: Window, ready_at: datetime) -> None:
        super().__init__(
            f"window {window.label} is not settled yet: it can be read from "
            f"{ready_at.isoformat()} (window end + settle delay)"
        )
        self.ready_at = ready_at


class ConcurrentIngest(RuntimeError):
    """Another attempt moved this window's checkpoint: retry later."""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None:
                raise WindowError(f"window {name} must be timezone-aware, got {value!r}")
            # A plain stdlib datetime: pendulum's (Airflow context) loses tz on + timedelta.
            u = value.astimezone(UTC)
            plain = datetime(
                u.year, u.month, u.day, u.hour, u.minute, u.second, u.microsecond, tzinfo=UTC
            )
            object.__setattr__(self, name, plain)
        if self.end <= self.start:
            raise WindowError(f"window end {self.end} must be after its start {self.start}")
        if self.end - self.start > timedelta(days=1):
            raise WindowError("a window spans at most one day (split longer ranges)")
        if self.start.microsecond % 1000 or self.end.microsecond % 1000:
            raise WindowError("window bounds must be whole milliseconds")

    @property
    def label(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"

    @property
    def start_ms(self) -> int:
        return _ms(self.start)

    @property
    def end_ms(self) -> int:
        return _ms(self.end)


def _ms(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _ch(moment: datetime) -> str:
    """A ClickHouse DateTime64(6) literal in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def query_values(window: Window, cfg: IngestConfig, extra: dict[str, Any]) -> dict[str, Any]:
    """The HogQL values of a window's queries: its bounds and event-time bounds, plus ``extra``."""
    return {
        "w_start": _ch(window.start),
        "w_end": _ch(window.end),
        "t_start": _ch(window.start - cfg.lookback),
        "t_end": _ch(window.end + cfg.lookahead),
        **extra,
    }


def ready_at(window: Window, cfg: IngestConfig) -> datetime:
    return window.end + cfg.settle


def ensure_settled(window: Window, cfg: IngestConfig, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    when = ready_at(window, cfg)
    if now < when:
        raise WindowNotSettled(window, when)


# ----------------------------------------------------------------------------- fetching
@dataclass
class Page:
    """One fetched and validated page. Trailing rows without a usable key are left out (they
    come again at the head of the next page); the raw rows are dropped after validation."""

    number: int
    size: int  # rows of this page that were validated (= fetched)
    good: list[tuple]  # load tuples
    bad: list[tuple[dict, str, str | None]]  # dead letters
    cursor: dict[str, Any] | None  # keyset after this page; None when the window is exhausted
    limit: int


class PageFetcher:
    """Builds and runs page queries; shrinks the page on 504/512."""

    def __init__(
        self,
        client: PostHogClient,
        window: Window,
        cfg: IngestConfig,
        deadline: float | None,
        source: Source | None = None,
    ) -> None:
        self.source = source or Source()
        self.client = client
        self.window = window
        self.cfg = cfg
        self.deadline = deadline
        self.limit = cfg.page_size
        self._restore: int | None = None  # page size to go back to after an undecodable row
        self.rules = Rules(
            cfg.required, cfg.numeric, window.start_ms, window.end_ms, ranges=cfg.ranges
        )
        self.values = query_values(window, cfg, self.source.values)

    def fetch(self, number: int, cursor: dict[str, Any] | None) -> Page:
        """Page ``number``: 504/512/read timeouts halve the page down to ``min_page_size``; there
        they are retried with the retry policy (``max_attempts``, backoff, the time budget)."""

        def give_up(exc: BaseException, reason: str, wait: float, attempts: int) -> NoReturn:
            if reason == "budget":
                raise BudgetExhausted(
                    "PostHog keeps timing out at the minimum page size and the time budget "
                    "is spent; Airflow will retry from the checkpoint",
                    504,
                ) from None
            raise exc

        return retry.policy(
            retry_if=lambda exc: isinstance(exc, QueryTooExpensive),
            max_attempts=self.cfg.max_attempts,
            base=2 * self.cfg.backoff_base,  # the first wait is 2 * base
            cap=self.cfg.backoff_cap,
            jitter="none",
            deadline=self.deadline,
            give_up=give_up,
        )(self._fetch_shrinking, number, cursor)

    def _fetch_shrinking(self, number: int, cursor: dict[str, Any] | None) -> Page:
        while True:
            limit = self.limit
            values = dict(self.values)
            if cursor:
                values["c_ms"] = int(cursor["created_ms"])
                values["c_uuid"] = str(cursor["uuid"])
            query = PAGE_QUERY_TEMPLATE % {
                "event_time": self.source.event_time,
                "keyset": KEYSET if cursor else "",
                "limit": limit,
            }
            try:
                body = self.client.query(
                    query,
                    values,
                    name=f"analytics_hourly {self.window.start:%Y-%m-%dT%H:%M} p{number}",
                    deadline=self.deadline,
                )
            except UndecodableBody as exc:
                if limit > 1:  # halve down to the one bad row
                    self.client.stats.page_shrinks += 1
                    self._restore = self._restore or limit
                    self.limit = max(1, limit // 2)
                    log.warning(
                        "PostHog body does not decode: page size %d -> %d", limit, self.limit
                    )
                    continue
                page = self._undecodable(number, exc)
                self.limit, self._restore = self._restore or self.cfg.page_size, None
                return page
            except QueryTooExpensive:
                self.client.stats.page_shrinks += 1
                if limit > self.cfg.min_page_size:
                    self.limit = max(self.cfg.min_page_size, limit // 2)
                    log.warning("PostHog 504/512: page size %d -> %d", limit, self.limit)
                    continue
                raise
            return self._page(number, body, limit)

    def _undecodable(self, number: int, exc: UndecodableBody) -> Page:
        """The one row whose JSON does not decode: read it leniently (invalid bytes replaced) for
        its key and dead-letter it, so the stream moves on instead of retrying forever."""
        body = json.loads(exc.raw.decode("utf-8", "replace"))
        columns = list(body.get("columns") or COLUMNS)
        rows = body.get("results") or []
        if len(rows) != 1:
            raise RuntimeError(f"page {number}: undecodable body with {len(rows)} rows") from exc
        key = _key_of(rows[0], columns.index("created_ms"), columns.index("uuid"))
        if key is None:
            raise RuntimeError(f"page {number}: undecodable row without a usable key") from exc
        payload = payload_of(columns, rows[0])
        reason = f"undecodable response body ({str(exc)[:160]})"
        cursor = {"created_ms": key[0], "uuid": key[1]}
        return Page(number, 1, [], [(payload, reason, key[1])], cursor, 1)

    def _page(self, number: int, body: dict[str, Any], limit: int) -> Page:
        """Cut at the last keyed row and validate — here, in the prefetch thread, so the
        Python work of page k+1 overlaps the PostgreSQL work of page k."""
        columns = list(body.get("columns") or COLUMNS)
        rows, cursor = self._cut(number, columns, body.pop("results"), limit)
        good, bad = split_rows(rows, columns, self.rules)
        return Page(number, len(rows), good, bad, cursor, limit)

    def _cut(
        self, number: int, columns: list[str], rows: list, limit: int
    ) -> tuple[list, dict[str, Any] | None]:
        if len(rows) < limit:  # a short page: the window is exhausted
            return rows, None
        try:
            i_ms, i_uuid = columns.index("created_ms"), columns.index("uuid")
        except ValueError:
            raise RuntimeError("the Query API response lacks created_ms/uuid columns") from None
        # The next page starts after the last row with a usable key. Rows after it (no/invalid
        # uuid: they can only be dead letters) are served again at the head of the next page.
        for k in range(len(rows) - 1, -1, -1):
            key = _key_of(rows[k], i_ms, i_uuid)
            if key is not None:
                if k < len(rows) - 1:
                    del rows[k + 1 :]
                return rows, {"created_ms": key[0], "uuid": key[1]}
        raise RuntimeError(
            f"page {number} of {self.window.label}: no row has a usable (created_ms, uuid) key, "
            "so keyset paging cannot continue"
        )


def _key_of(row: list, i_ms: int, i_uuid: int) -> tuple[int, str] | None:
    try:
        ms, raw = row[i_ms], row[i_uuid]
    except IndexError:
        return None
    if not isinstance(ms, int) or isinstance(ms, bool) or not isinstance(raw, str):
        return None
    try:
        return ms, str(uuidlib.UUID(raw))
    except ValueError:
        return None


def iter_pages(
    fetcher: PageFetcher, cursor: dict[str, Any] | None, first_number: int, prefetch: bool
) -> Iterable[Page]:
    """Pages from ``cursor`` on; with ``prefetch`` the next page is requested as soon as the
    current page's cursor is known, while the caller loads the current page."""
    if not prefetch:
        number = first_number
        while True:
            page = fetcher.fetch(number, cursor)
            yield page
            if page.cursor is None:
                return
            cursor, number = page.cursor, number + 1
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="posthog-prefetch")
    try:
        future: Future[Page] = pool.submit(fetcher.fetch, first_number, cursor)
        while True:
            page = future.result()
            if page.cursor is not None:
                future = pool.submit(fetcher.fetch, page.number + 1, page.cursor)
            yield page
            if page.cursor is None:
                return
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------- loading
@dataclass
class Progress:
    """The window's running totals; persisted in the checkpoint's cursor JSON."""

    pages: int = 0
    fetched: int = 0
    loaded: int = 0
    inserted: int = 0
    dead_lettered: int = 0
    created_ms: int | None = None
    uuid: str | None = None
    #: PT dates changed outside the window's own events (replaced/removed versions): rollups
    extra_dates: list[str] = field(default_factory=list)
    resolved: int = 0  # open dead letters resolved because their uuid loaded
    removed: int = 0  # stored rows removed because the current rules reject them

    def cursor(self) -> dict[str, Any] | None:
        if self.created_ms is None:
            return None
        return {"created_ms": self.created_ms, "uuid": self.uuid}

    def as_json(self, done: bool) -> dict[str, Any]:
        return {**asdict(self), "done": done}

    @classmethod
    def from_checkpoint(cls, cursor: Any) -> Progress:
        data = cursor if isinstance(cursor, dict) else {}
        counts = {f.name: int(data.get(f.name) or 0) for f in fields(cls) if f.type == "int"}
        return cls(
            **counts,
            created_ms=data.get("created_ms"),
            uuid=data.get("uuid"),
            extra_dates=list(data.get("extra_dates") or []),
        )


@dataclass
class IngestResult:
    window: Window
    status: str  # completed | partial (done with dead letters)
    fetched: int
    loaded: int
    inserted: int
    dead_lettered: int
    pages: int
    resumed_from_page: int
    skipped: bool
    seconds: float
    api: dict[str, Any] = field(default_factory=dict)
    job_run_id: int | None = None

    @classmethod
    def of(
        cls, window: Window, p: Progress, resumed_from: int, skipped: bool, started: float
    ) -> IngestResult:
        """The result of a window whose totals are ``p`` (partial = done with dead letters)."""
        status = "partial" if p.dead_lettered else "completed"
        seconds = time.monotonic() - started
        counts = (p.fetched, p.loaded, p.inserted, p.dead_lettered, p.pages)
        return cls(window, status, *counts, resumed_from, skipped, seconds)

    def stats(self) -> dict[str, Any]:
        return {
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
            "events_fetched": self.fetched,
            "events_processed": self.loaded,
            "events_inserted": self.inserted,
            "events_dead_lettered": self.dead_lettered,
            "pages": self.pages,
            "resumed_from_page": self.resumed_from_page,
            "already_complete": self.skipped,
            "seconds": round(self.seconds, 3),
            **{f"posthog_{k}": v for k, v in self.api.items()},
        }


def _prepare(conn: psycopg.Connection) -> None:
    conn.execute(STAGE_DDL)


def _copy(conn: psycopg.Connection, statement: str, good: list[tuple]) -> None:
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(COPY_TYPES)
        write = copy.write_row
        for row in good:
            write(row)


def version_payload(row: tuple) -> dict[str, Any]:
    """A dead letter's payload for a stored/staged version (the Query API row's shape)."""
    uid, event, distinct, ts, created, props = row[:6]
    return {
        "uuid": uid,
        "event": event,
        "distinct_id": distinct,
        "timestamp": ts.astimezone(UTC).isoformat(),
        "created_at": created.astimezone(UTC).isoformat(),
        "properties": props,
    }


@dataclass
class MergeResult:
    inserted: int = 0
    changed: int = 0  # rows inserted or replaced by a winning version
    losers: list[tuple[dict, str, str | None]] = field(default_factory=list)
    dates: set = field(default_factory=set)  # PT dates whose rows changed beyond the window


def _copy_and_merge(
    conn: psycopg.Connection, good: list[tuple], state: dict[str, bool]
) -> MergeResult:
    """Load ``good`` rows exactly once (see ``VERSIONS_SQL`` for same uuid, other content).

    First load of a window (the common case): an optimistic binary COPY straight into
    ``posthog_events`` inside a savepoint — as fast as a raw COPY. If any uuid already exists
    (rerun, overlap, duplicate in the page) the unique index aborts it, the savepoint rolls it
    back, and this and later pages take the staging path: COPY into the temp table, then pick
    one winner per uuid and merge it."""
    if state.get("direct", True):
        try:
            with conn.transaction():
                _copy(conn, COPY_DIRECT, good)
            return MergeResult(len(good), len(good))
        except psycopg.errors.UniqueViolation:
            state["direct"] = False
    _copy(conn, COPY_STAGE, good)
    conn.execute(VERSIONS_SQL)
    result = MergeResult()
    for inserted, ts in conn.execute(MERGE_SQL).fetchall():
        result.changed += 1
        result.inserted += bool(inserted)
        if not inserted:
            result.dates.add(pt_date(ts))
    for *row, _stored in conn.execute(LOSERS_SQL).fetchall():
        result.losers.append((version_payload(tuple(row)), DUPLICATE_REASON, row[0]))
        result.dates.add(pt_date(row[3]))
    conn.execute("DROP TABLE posthog_versions")
    return result


def _reconcile_dead_letters(
    conn: psycopg.Connection, good: list[tuple], bad: list[tuple[dict, str, str | None]]
) -> tuple[int, int, set]:
    """Each uuid in exactly one place: open dead letters of a uuid now loaded are resolved; a
    stored row whose uuid the current rules reject (and no good version of this page) is removed
    (a reprocess after a rule change). Same transaction as the page. Returns (resolved, removed,
    PT dates of removed rows)."""
    resolved = 0
    any_open = conn.execute(  # the common case (nothing open) costs one index probe
        "SELECT EXISTS (SELECT 1 FROM ops.dead_letters WHERE stream = %s AND resolved_at IS NULL)",
        (STREAM,),
    ).fetchone()[0]
    loaded = [uuid_text(r[0]) for r in good] if any_open or bad else []
    if loaded and any_open:
        resolved = conn.execute(
            "UPDATE ops.dead_letters SET resolved_at = now(), resolution = 'reloaded: now valid',"
            " last_seen = now()"
            " WHERE stream = %s AND resolved_at IS NULL AND reason <> %s"
            " AND source_key = ANY(%s)",
            (STREAM, DUPLICATE_REASON, loaded),
        ).rowcount
    rejected = sorted({k for _, reason, k in bad if k and reason != DUPLICATE_REASON} - set(loaded))
    rejected = [k for k in rejected if uuid_wire(k) is not None]
    dates: set = set()
    if rejected:
        rows = conn.execute(
            "DELETE FROM analytics.posthog_events WHERE uuid = ANY(%s::uuid[])"
            ' RETURNING "timestamp"',
            (rejected,),
        ).fetchall()
        dates = {pt_date(r[0]) for r in rows}
        return resolved, len(rows), dates
    return resolved, 0, dates


def _insert_one_by_one(
    conn: psycopg.Connection, good: list[tuple]
) -> tuple[int, list[tuple[dict, str, str | None]]]:
    """Slow path after PostgreSQL refused a page: each row in its own savepoint."""
    inserted = 0
    refused: list[tuple[dict, str, str | None]] = []
    for row in good:
        count, reason = insert_one(conn, row)
        inserted += count
        if reason is not None:
            payload = {
                "uuid": uuid_text(row[0]),
                "event": row[1],
                "distinct_id": row[2],
                "timestamp": row[3].isoformat(),
                "created_at": row[4].isoformat(),
                "properties": jsonb_text(row[5]),
            }
            refused.append((payload, reason, payload["uuid"]))
    return inserted, refused


def _commit_page(
    conn: psycopg.Connection,
    window: Window,
    page: Page,
    good: list[tuple],
    bad: list[tuple[dict, str, str | None]],
    progress: Progress,
    expected_cursor: dict[str, Any] | None,
    *,
    job_run_id: int | None,
    key: store.RunKey | None,
    api_events: list[tuple[str, str, dict]],
    slow: bool,
    copy_state: dict[str, bool],
    stream: str = STREAM,
) -> Progress:
    """One transaction: stage + merge + dead letters + checkpoint (+ run progress)."""
    with conn.transaction():
        cp = store.read_checkpoint(conn, stream, window.start, window.end, for_update=True)
        current = Progress.from_checkpoint(cp.cursor).cursor() if cp else None
        if cp is not None and (current != expected_cursor or cp.status == "complete"):
            raise ConcurrentIngest(
                f"checkpoint of {window.label} moved under this attempt (now {current}, "
                f"expected {expected_cursor}): another run is ingesting the same window"
            )
        dates: set = set()
        if slow:
            inserted, refused = _insert_one_by_one(conn, good)
            bad = [*bad, *refused]
            changed = inserted
        else:
            merged = _copy_and_merge(conn, good, copy_state) if good else MergeResult()
            inserted, changed, refused = merged.inserted, merged.changed, []
            bad = [*bad, *merged.losers]
            dates |= merged.dates
        resolved, removed, removed_dates = _reconcile_dead_letters(conn, good, bad)
        dates |= removed_dates
        if bad:
            store.add_dead_letters(
                conn,
                STREAM,
                bad,
                job_run_id=job_run_id,
                window_start=window.start,
                window_end=window.end,
            )
        new = Progress(
            pages=progress.pages + 1,
            fetched=progress.fetched + page.size,
            loaded=progress.loaded + len(good) - len(refused),
            inserted=progress.inserted + inserted,
            dead_lettered=progress.dead_lettered + len(bad),
            created_ms=(page.cursor or {}).get("created_ms", progress.created_ms),
            uuid=(page.cursor or {}).get("uuid", progress.uuid),
            extra_dates=sorted({*progress.extra_dates, *(d.isoformat() for d in dates)}),
            resolved=progress.resolved + resolved,
            removed=progress.removed + removed,
        )
        done = page.cursor is None
        store.write_checkpoint(
            conn,
            stream,
            window.start,
            window.end,
            new.as_json(done),
            new.loaded,
            complete=done,
        )
        if changed or removed or cp is None:
            conn.execute(
                "UPDATE ops.checkpoints SET rolled_up_at = NULL"
                " WHERE stream = %s AND window_start = %s AND window_end = %s",
                (stream, window.start, window.end),
            )
        if job_run_id is not None:
            store.update_job_run(
                conn,
                job_run_id,
                records_in=new.fetched,
                records_out=new.inserted,
                error_count=new.dead_lettered,
                stats={"pages": new.pages, "events_processed": new.loaded},
            )
            if bad:
                reasons: dict[str, int] = {}
                for _, reason, _ in bad:
                    kind = reason.split(" '")[0].split(" {")[0][:60]
                    reasons[kind] = reasons.get(kind, 0) + 1
                store.log_event(
                    conn,
                    "dead_letters",
                    f"page {page.number}: {len(bad)} row(s) dead-lettered",
                    level="warning",
                    job_run_id=job_run_id,
                    key=key,
                    details={"reasons": reasons, "window": window.label},
                )
            for event_type, message, details in api_events:
                store.log_event(
                    conn,
                    event_type,
                    message,
                    level="warning",
                    job_run_id=job_run_id,
                    key=key,
                    details=details,
                )
    return new


def ingest_window(
    conn: psycopg.Connection,
    client: PostHogClient,
    window: Window,
    cfg: IngestConfig,
    *,
    key: store.RunKey | None = None,
    reprocess: bool = False,
    deadline: float | None = None,
    now: datetime | None = None,
    check_settled: bool = True,
    on_page: Callable[[Page, Progress], None] | None = None,
    source: Source | None = None,
) -> IngestResult:
    """Ingest ``window`` (see module docstring). ``conn`` must be in autocommit mode: every page
    is its own transaction. With ``key``, the attempt is recorded in ``ops.job_runs`` (one row per
    attempt; status completed, partial = completed with dead letters, failed or timeout) and its
    API errors and dead letters in ``ops.job_events``. ``reprocess`` re-reads a window whose
    checkpoint is complete (the merge keeps it exactly-once). ``deadline`` (``time.monotonic()``
    value) bounds every retry wait. ``on_page`` is called after each committed page."""
    if not conn.autocommit:
        raise ValueError("ingest_window needs an autocommit connection (one transaction a page)")
    if check_settled:
        ensure_settled(window, cfg, now)
    started = time.monotonic()
    source = source or Source()
    if source.defines_start:
        from include.analytics_ops.ingest.rollups import record_stream_start

        record_stream_start(conn, window.start, key.run_type if key else "library call")
    job_run_id = None
    if key is not None:
        job_run_id = store.start_job_run(
            conn,
            key,
            window_start=window.start,
            window_end=window.end,
            status_message=f"ingesting {window.label}",
        )
    api_before = client.stats.as_dict()
    try:
        result = _ingest(
            conn, client, window, cfg, job_run_id, key, reprocess, deadline, on_page, started,
            source,
        )  # fmt: skip
    except ThrottledFor as exc:  # not a failure: the operator waits it out deferred
        if job_run_id is not None:
            _record_deferral(conn, job_run_id, key, window, client, exc)
        raise
    except Exception as exc:
        if job_run_id is not None:
            _record_failure(conn, job_run_id, key, window, client, exc, started)
        raise
    result.job_run_id = job_run_id
    result.api = _api_delta(api_before, client.stats.as_dict())
    if job_run_id is not None:
        store.finish_job_run(
            conn,
            job_run_id,
            result.status,
            records_in=result.fetched,
            records_out=result.inserted,
            error_count=result.dead_lettered,
            stats=result.stats(),
            status_message=(
                f"{result.fetched} fetched = {result.loaded} loaded "
                f"({result.inserted} new) + {result.dead_lettered} dead-lettered"
                + (" (window was already complete)" if result.skipped else "")
            ),
        )
    return result


def _api_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in after.items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[k] = round(v - before.get(k, 0), 3) if isinstance(v, float) else v - before[k]
    out["rate_limit_hit"] = out.get("rate_limit_hits", 0) > 0
    return out


def _record_deferral(conn, job_run_id, key, window, client, exc: ThrottledFor) -> None:
    """The attempt stays ``running`` (it resumes after the wait, same try); say why."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    resume = datetime.now(UTC) + timedelta(seconds=exc.seconds)
    store.log_event(
        conn,
        "rate_limited",
        f"PostHog throttled the window for {exc.seconds:.0f}s: deferred until {resume:%H:%M:%S}Z",
        level="warning",
        job_run_id=job_run_id,
        key=key,
        details={"window": window.label, "wait_seconds": exc.seconds, **client.stats.as_dict()},
    )
    store.update_job_run(
        conn,
        job_run_id,
        status_message=f"throttled by PostHog: waiting {exc.seconds:.0f}s deferred, then resuming",
        stats={f"posthog_{k}": v for k, v in client.stats.as_dict().items()},
    )


def _record_failure(conn, job_run_id, key, window, client, exc, started) -> None:
    status = "timeout" if isinstance(exc, BudgetExhausted) else "failed"
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        store.log_event(
            conn,
            "ingest_failed",
            f"{type(exc).__name__}: {exc}"[:2000],
            level="error",
            job_run_id=job_run_id,
            key=key,
            details={"window": window.label, **client.stats.as_dict()},
        )
        store.finish_job_run(
            conn,
            job_run_id,
            status,
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
            error_details={
                "type": type(exc).__name__,
                "message": str(exc)[:4000],
                "http_status": getattr(exc, "status", None),
                "window": window.label,
                "seconds": round(time.monotonic() - started, 3),
            },
            stats={f"posthog_{k}": v for k, v in client.stats.as_dict().items()},
        )
    except Exception:
        log.exception("could not record the failed attempt %s", job_run_id)


class _ApiEventTap:
    """Collects the client's errors (from the prefetch thread) for the next page transaction."""

    def __init__(self, client: PostHogClient) -> None:
        self.client = client
        self.lock = threading.Lock()
        self.seen = (0, 0)

    def drain(self) -> list[tuple[str, str, dict]]:
        with self.lock:
            s = self.client.stats
            errors, hits = s.api_errors, s.rate_limit_hits
            prev_errors, prev_hits = self.seen
            self.seen = (errors, hits)
        out = []
        if errors > prev_errors:
            new_hits = hits - prev_hits
            out.append(
                (
                    "rate_limited" if new_hits else "api_error",
                    f"PostHog: {errors - prev_errors} failed call(s), {new_hits} of them "
                    "rate-limited (429); retried",
                    {"status_counts": dict(s.status_counts), "wait_seconds": s.wait_seconds},
                )
            )
        return out


def _ingest(
    conn, client, window, cfg, job_run_id, key, reprocess, deadline, on_page, started, source
) -> IngestResult:
    _prepare(conn)
    cp = store.read_checkpoint(conn, source.stream, window.start, window.end)
    if cp is not None and cp.status == "complete" and not reprocess:
        p = Progress.from_checkpoint(cp.cursor)
        log.info("window %s already complete (%d rows): nothing to fetch", window.label, p.loaded)
        return IngestResult.of(window, p, p.pages, True, started)
    if cp is not None and not (reprocess and cp.status == "complete"):
        progress = Progress.from_checkpoint(cp.cursor)
        if progress.pages:
            log.info(
                "resuming %s after page %d (%d rows loaded) from cursor %s",
                window.label, progress.pages, progress.loaded, progress.cursor(),
            )  # fmt: skip
    else:
        progress = Progress()
        if cp is not None:  # reprocess a complete window from its start
            with conn.transaction():
                store.write_checkpoint(
                    conn, source.stream, window.start, window.end, progress.as_json(False), 0
                )
    resumed_from = progress.pages
    fetcher = PageFetcher(client, window, cfg, deadline, source)
    tap = _ApiEventTap(client)
    copy_state: dict[str, bool] = {"direct": True}
    for page in iter_pages(fetcher, progress.cursor(), progress.pages + 1, cfg.prefetch):
        good, bad = page.good, page.bad
        expected = progress.cursor()
        try:
            progress = _commit_page(
                conn, window, page, good, bad, progress, expected,
                job_run_id=job_run_id, key=key, api_events=tap.drain(), slow=False,
                copy_state=copy_state, stream=source.stream,
            )  # fmt: skip
        except psycopg.DataError as exc:
            log.warning("page %d refused as a whole (%s); loading row by row", page.number, exc)
            progress = _commit_page(
                conn, window, page, good, bad, progress, expected,
                job_run_id=job_run_id, key=key, api_events=tap.drain(), slow=True,
                copy_state=copy_state, stream=source.stream,
            )  # fmt: skip
        page.good, page.bad = [], []  # release this page's rows
        del good, bad
        if on_page is not None:
            on_page(page, progress)
    return IngestResult.of(window, progress, resumed_from, False, started)
