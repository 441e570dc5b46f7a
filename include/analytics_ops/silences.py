"""Alert silences (maintenance windows): hold back the notifications of matching alerts for a
while, without losing them.

A silence matches alert dedup keys with a glob (``*`` = any run of characters), e.g.
``health:dag:analytics_hourly``, ``task_failed:inventory_refresh:*`` or ``ledger_failed:*``.
While it is active, matching alerts are still recorded, counted and logged by the one alert
path (``alerts.raise_alert``); only the channels (Slack, email) are not told. What was held back
is kept on the alert (``ops.alerts.held_kind``) and ``alerts.send_due_reminders`` (every 5
minutes from ``cron_ledger``) delivers it once no silence covers the alert any more — unless it
stopped being news: an alert that opened and resolved inside the window sends nothing.
Reminders of silenced critical alerts wait for the end of the silence too.

CLI::

    python -m include.analytics_ops.silences add --match 'health:dag:analytics_hourly' \
        --for 2h --reason "PostHog maintenance"
    python -m include.analytics_ops.silences add --match 'ledger_failed:*' \
        --start 2026-11-28T22:00:00-08:00 --until 2026-11-29T02:00:00-08:00 --reason "DB upgrade"
    python -m include.analytics_ops.silences list [--all]
    python -m include.analytics_ops.silences cancel ID
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from include.analytics_ops.store import dict_rows

_ACTIVE = "cancelled_at IS NULL AND starts_at <= now() AND ends_at > now()"
# Correlated "is this alert's key silenced now" condition, for queries over ops.alerts AS a.
SILENCED_SQL = (
    "EXISTS (SELECT 1 FROM ops.alert_silences s WHERE s.cancelled_at IS NULL"
    " AND s.starts_at <= now() AND s.ends_at > now() AND a.dedup_key LIKE s.like_pattern)"
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_SILENCE = timedelta(days=31)


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1.5d``, ``1w`` → timedelta (positive, at most 31 days)."""
    m = _DURATION.match(text or "")
    if not m:
        raise ValueError(f"duration must look like 30m, 2h or 1d, got {text!r}")
    value = timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2)])
    if value <= timedelta(0):
        raise ValueError(f"duration must be positive, got {text!r}")
    return value


def _aware(value: datetime | str, name: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name} must be an ISO-8601 timestamp, got {value!r}") from None
    if value.tzinfo is None:
        raise ValueError(f"{name} needs a UTC offset (e.g. 2026-11-28T22:00:00-08:00)")
    return value


def add_silence(
    conn: psycopg.Connection,
    pattern: str,
    reason: str,
    *,
    ends_at: datetime | str | None = None,
    duration: timedelta | None = None,
    starts_at: datetime | str | None = None,
    created_by: str | None = None,
) -> dict[str, Any]:
    """Create a silence; validated before anything is written. Returns the stored row."""
    pattern = (pattern or "").strip()
    if not pattern:
        raise ValueError("pattern must not be empty")
    if pattern.strip("*") == "":
        raise ValueError("a silence of every alert ('*') is refused: name what is under work")
    if not (reason or "").strip():
        raise ValueError("reason must say why (it is shown with every held alert)")
    if (ends_at is None) == (duration is None):
        raise ValueError("give exactly one of ends_at / duration")
    start = _aware(starts_at, "start") if starts_at is not None else datetime.now(UTC)
    end = _aware(ends_at, "until") if ends_at is not None else start + duration  # type: ignore[operator]
    if end <= start:
        raise ValueError(f"the silence must end after it starts ({start} .. {end})")
    if end <= datetime.now(UTC):
        raise ValueError(f"the silence would already be over ({end})")
    if end - start > MAX_SILENCE:
        raise ValueError(f"a silence may last at most {MAX_SILENCE.days} days")
    row = conn.execute(
        "INSERT INTO ops.alert_silences (pattern, starts_at, ends_at, reason, created_by)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (pattern, start, end, reason.strip(), created_by or getpass.getuser()),
    ).fetchone()
    return get_silence(conn, row[0])  # type: ignore[return-value]


_COLUMNS = (
    "id, pattern, starts_at, ends_at, reason, created_by, created_at, cancelled_at,"
    f" ({_ACTIVE}) AS active"
)


def get_silence(conn: psycopg.Connection, silence_id: int) -> dict[str, Any] | None:
    rows = dict_rows(
        conn, f"SELECT {_COLUMNS} FROM ops.alert_silences WHERE id = %s", (silence_id,)
    )
    return rows[0] if rows else None


def list_silences(conn: psycopg.Connection, include_past: bool = False) -> list[dict[str, Any]]:
    """Active and upcoming silences (``include_past``: every silence), soonest end first."""
    where = "" if include_past else "WHERE cancelled_at IS NULL AND ends_at > now()"
    return dict_rows(
        conn, f"SELECT {_COLUMNS} FROM ops.alert_silences {where} ORDER BY ends_at, id"
    )


def cancel_silence(conn: psycopg.Connection, silence_id: int) -> bool:
    """End a silence now; True when it was live. Held notifications go out on the next
    ``send_due_reminders`` pass."""
    row = conn.execute(
        "UPDATE ops.alert_silences SET cancelled_at = now()"
        " WHERE id = %s AND cancelled_at IS NULL AND ends_at > now() RETURNING id",
        (silence_id,),
    ).fetchone()
    return row is not None


def active_silence(conn: psycopg.Connection, dedup_key: str) -> dict[str, Any] | None:
    """The active silence covering ``dedup_key`` (the one lasting longest), or None."""
    rows = dict_rows(
        conn,
        f"SELECT {_COLUMNS} FROM ops.alert_silences WHERE {_ACTIVE}"
        " AND %s LIKE like_pattern ORDER BY ends_at DESC, id LIMIT 1",
        (dedup_key,),
    )
    return rows[0] if rows else None


# --------------------------------------------------------------------------- CLI
def _print_table(rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        print("no silences")
        return
    for r in rows:
        state = "cancelled" if r["cancelled_at"] else ("ACTIVE" if r["active"] else "scheduled")
        if not r["cancelled_at"] and r["ends_at"] <= datetime.now(UTC):
            state = "over"
        print(
            f"#{r['id']:<4} {state:<9} {r['pattern']:<40} "
            f"{r['starts_at']:%Y-%m-%d %H:%M %Z} .. {r['ends_at']:%Y-%m-%d %H:%M %Z}  "
            f"by {r['created_by']}: {r['reason']}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    from include.analytics_ops import db

    parser = argparse.ArgumentParser(
        prog="python -m include.analytics_ops.silences", description=__doc__.split("\n\n")[0]
    )
    db.add_database_arguments(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="silence matching alerts for a while")
    add.add_argument("--match", required=True, help="dedup-key glob, e.g. 'ledger_failed:*'")
    add.add_argument("--reason", required=True)
    add.add_argument("--start", help="ISO-8601 with offset (default: now)")
    group = add.add_mutually_exclusive_group(required=True)
    group.add_argument("--for", dest="duration", help="e.g. 30m, 2h, 1d")
    group.add_argument("--until", help="ISO-8601 with offset")
    lst = sub.add_parser("list", help="active and upcoming silences")
    lst.add_argument("--all", action="store_true", help="include past and cancelled ones")
    cancel = sub.add_parser("cancel", help="end a silence now")
    cancel.add_argument("id", type=int)
    args = parser.parse_args(argv)

    try:
        duration = parse_duration(args.duration) if getattr(args, "duration", None) else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        conn = db.cli_connect(args)
    except Exception as exc:  # one line, no traceback (the DSN's password is never printed)
        print(f"cannot connect to the analytics database: {exc}", file=sys.stderr)
        return 2
    try:
        with conn:
            if args.command == "add":
                row = add_silence(conn, args.match, args.reason, ends_at=args.until,
                                  duration=duration, starts_at=args.start)  # fmt: skip
                print(f"silence #{row['id']} created")
                _print_table([row])
            elif args.command == "list":
                _print_table(list_silences(conn, include_past=args.all))
            elif cancel_silence(conn, args.id):
                print(f"silence #{args.id} cancelled; held alerts go out on the next pass")
            else:
                print(f"silence #{args.id} is not live (unknown, over or already cancelled)",
                      file=sys.stderr)  # fmt: skip
                return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
