"""The sandbox's PostHog ``events`` table on real ClickHouse, in-process (chDB).

Two ``MergeTree`` tables with PostHog's column types (``uuid UUID``, ``timestamp`` and
``created_at`` ``DateTime64(6, 'UTC')``, ``properties String``): ``ph.events`` (the generated
sample days, loaded on demand per PT day, and benchmark hours of ``posthog_events_per_hour``) and
``ph.injected`` (events added through the control API; emptied by ``reset``). Neither is ever
deduplicated (PostHog's HogQL never adds ``FINAL``): an injected duplicate uuid comes back twice.

A query's ``events`` is the union of both, restricted to the rows visible now: an injected event
may carry ``visible_at`` (when it reaches ClickHouse, after its ``created_at``), and the fault knob
``posthog_now`` hides every row whose ``created_at`` or ``visible_at`` is later. Queries run with
``max_execution_time = 10`` (PostHog's cap for personal API keys); results are formatted like
PostHog's orjson output (``2026-11-20T10:00:00.123000Z``, no fraction when it is zero; uuids as
strings; integers as JSON numbers) and passed through as raw JSON, undecoded.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable
from datetime import date

from include.sandbox import events as ev
from include.sandbox.hogql import HogQLError, Query
from include.sandbox.timeutil import US

SCHEMA = (
    "uuid UUID, event String, distinct_id String, properties String,"
    " timestamp DateTime64(6, 'UTC'), created_at DateTime64(6, 'UTC'),"
    " _visible_at DateTime64(6, 'UTC'), _mode UInt32"
)
# PostHog's sharded_events sorts by (date, event, distinct id hash, uuid hash): a scan is not in
# (created_at, uuid) order, so only ORDER BY gives one.
TABLE = (
    "CREATE TABLE IF NOT EXISTS ph.{name} ({schema}) ENGINE = MergeTree"
    " PARTITION BY toYYYYMM(timestamp)"
    " ORDER BY (toDate(timestamp), event, cityHash64(distinct_id), cityHash64(uuid))"
)
TSV_STRUCTURE = (
    "uuid String, event String, distinct_id String, properties String, ts Int64, cr Int64,"
    " vis Int64"
)
SOURCE = (
    "(SELECT uuid, event, distinct_id, properties, timestamp, created_at FROM ph.events"
    " WHERE _mode = {{_mode:UInt32}}{hide} UNION ALL"
    " SELECT uuid, event, distinct_id, properties, timestamp, created_at FROM ph.injected"
    " WHERE _visible_at <= fromUnixTimestamp64Micro({{_now:Int64}}, 'UTC'){hide})"
)
HIDE = " AND created_at <= fromUnixTimestamp64Micro({_until:Int64}, 'UTC')"
SETTINGS = " SETTINGS max_execution_time = 10, date_time_input_format = 'best_effort'"
MAX_SCAN_DAYS = 16
MAX_SYNTHETIC_HOURS = 31 * 24


class EngineError(HogQLError):
    """ClickHouse refused or failed the query (HTTP 400, or 504 when ``timeout``)."""

    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


def _tsv(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _fmt_datetime(expr: str) -> str:
    """orjson's rendering of a datetime: microseconds only when non-zero, then ``Z``."""
    x = f"toDateTime64({expr}, 6, 'UTC')"
    return (
        f"if(toUnixTimestamp64Micro({x}) % 1000000 = 0,"
        f" formatDateTime({x}, '%Y-%m-%dT%H:%i:%SZ', 'UTC'),"
        f" formatDateTime({x}, '%Y-%m-%dT%H:%i:%S.%fZ', 'UTC'))"
    )


class Engine:
    """One chDB session (thread safe: queries are serialised; they take milliseconds)."""

    def __init__(self, store: ev.EventStore) -> None:
        from chdb import session

        self.store = store
        self._dir = tempfile.mkdtemp(prefix="sandbox-chdb-")
        atexit.register(shutil.rmtree, self._dir, True)
        self._session = session.Session(os.path.join(self._dir, "db"))
        self._lock = threading.Lock()
        self._days: set[date] = set()
        self._hours: set[tuple[int, int]] = set()
        self._run("CREATE DATABASE IF NOT EXISTS ph")
        for name in ("events", "injected"):
            self._run(TABLE.format(name=name, schema=SCHEMA))

    def close(self) -> None:
        try:
            self._session.close()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    # -- low level ----------------------------------------------------------------------
    def _run(self, sql: str, params: dict | None = None, fmt: str = "CSV") -> bytes:
        try:
            result = self._session.query(sql, fmt, params=params or {})
        except Exception as exc:  # chdb raises RuntimeError with ClickHouse's message
            text = str(exc)
            raise EngineError(text[:2000], timeout="TIMEOUT_EXCEEDED" in text) from None
        return result.bytes()

    def _insert(self, table: str, rows: Iterable[tuple], mode: int, visible: dict | None) -> int:
        path = os.path.join(self._dir, f"{table}-{threading.get_ident()}.tsv")
        n = 0
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            for r in rows:
                vis = (visible or {}).get(r[ev.UUID], 0)
                f.write(
                    f"{r[ev.UUID]}\t{_tsv(r[ev.EVENT])}\t{_tsv(r[ev.DISTINCT_ID])}\t"
                    f"{_tsv(r[ev.PROPS])}\t{r[ev.TS_US]}\t{r[ev.CREATED_US]}\t{vis}\n"
                )
                n += 1
        if n:
            self._run(
                f"INSERT INTO ph.{table} SELECT toUUID(uuid), event, distinct_id, properties,"
                " fromUnixTimestamp64Micro(ts, 'UTC'), fromUnixTimestamp64Micro(cr, 'UTC'),"
                f" fromUnixTimestamp64Micro(vis, 'UTC'), {int(mode)}"
                f" FROM file('{path}', TabSeparated, '{TSV_STRUCTURE}')"
            )
        os.unlink(path)
        return n

    # -- data ----------------------------------------------------------------------------
    def add(self, rows: list[tuple], visible: dict[str, int]) -> None:
        with self._lock:
            self._insert("injected", rows, 0, visible)

    def reset(self) -> None:
        with self._lock:
            self._run("TRUNCATE TABLE ph.injected")

    def _ensure(self, q: Query, mode: int, now_us: int) -> None:
        """Load the generated days / benchmark hours the query's time bounds can reach."""
        lo = {"created_at": None, "timestamp": None}
        hi = {"created_at": None, "timestamp": None}
        if q.bounds:
            exprs = ", ".join(f"toUnixTimestamp64Micro({b[2]})" for b in q.bounds)
            line = self._run(f"SELECT {exprs}{SETTINGS}", q.params).decode().strip()
            for (column, op, _), value in zip(q.bounds, line.split(","), strict=True):
                us = int(value)
                if op in (">", ">="):
                    lo[column] = us if lo[column] is None else max(lo[column], us)
                else:
                    hi[column] = us if hi[column] is None else min(hi[column], us)
        c_lo, c_hi, t_lo, t_hi = (
            lo["created_at"],
            hi["created_at"],
            lo["timestamp"],
            hi["timestamp"],
        )
        if c_lo is None and t_lo is None:
            raise HogQLError(
                "sandbox HogQL needs a lower time bound: add `created_at >= …` or `timestamp >= …`"
                " (or a keyset tuple on toUnixTimestamp64Milli(created_at)) to WHERE"
            )
        if mode:
            c_lo = c_lo if c_lo is not None else t_lo
            c_hi = c_hi if c_hi is not None else (t_hi + 5 * US if t_hi else c_lo + ev.DAY_US)
            hours = range(c_lo // ev.HOUR_US, c_hi // ev.HOUR_US + 1)
            if len(hours) > MAX_SYNTHETIC_HOURS:
                raise HogQLError("sandbox HogQL scans at most 31 days of created_at per query")
            for h in hours:
                if (mode, h) not in self._hours:
                    seq = ev.SyntheticHour(h * ev.HOUR_US, mode, self.store.seed)
                    self._insert("events", seq.rows(0, mode), mode, None)
                    self._hours.add((mode, h))
            return
        if c_hi is None:
            c_hi = (t_hi + ev.MAX_DELAY_US) if t_hi is not None else now_us + ev.DAY_US
        if t_lo is None or (c_lo is not None and t_lo < c_lo - ev.MAX_DELAY_US):
            t_lo = c_lo - ev.MAX_DELAY_US
        t_hi = c_hi if t_hi is None else min(t_hi, c_hi)
        if t_hi < t_lo:
            return
        try:
            days = ev.days_to_scan(t_lo, t_hi, MAX_SCAN_DAYS)
        except ev.TooMuchData as exc:
            raise HogQLError(str(exc)) from None
        for d in days:
            if d not in self._days:
                self._insert("events", self.store.day(d), 0, None)
                self._days.add(d)

    # -- queries -------------------------------------------------------------------------
    def execute(
        self, q: Query, limit: int, *, mode: int, now_us: int, until_us: int | None
    ) -> tuple[bytes, int]:
        """(JSON array of result rows, row count) of ``q`` with ``LIMIT limit``."""
        hide = HIDE if until_us is not None else ""
        source = SOURCE.format(hide=hide)
        inner = q.sql.replace("{events}", source) + f" LIMIT {int(limit)}"
        outer = ", ".join(
            _fmt_datetime(f"`_c{k}`") if dt else f"`_c{k}`"
            for k, dt in enumerate(q.datetime_columns)
        )
        params = {**q.params, "_mode": mode, "_now": now_us}
        if until_us is not None:
            params["_until"] = until_us
        sql = f"SELECT {outer} FROM ({inner}){SETTINGS}"
        with self._lock:
            try:
                self._ensure(q, mode, now_us)
            except HogQLError:
                self._run(f"EXPLAIN {sql}", params)  # a type error is the better answer
                raise
            out = self._run(sql, params, "JSONCompactEachRow")
        body = out.rstrip(b"\n")
        if not body:
            return b"[]", 0
        return b"[" + body.replace(b"\n", b",") + b"]", body.count(b"\n") + 1
