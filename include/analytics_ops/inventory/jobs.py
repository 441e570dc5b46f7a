"""What one ``inventory_refresh`` run refreshes: connected clients × platforms, in batches.

A run refreshes every client with at least one ``connected`` row in
``analytics.client_api_credentials`` on every platform (``shopify``, ``amazon``, ``all``); a
manual run may narrow that with the ``client_ids`` / ``platforms`` params, which are validated
against the database before anything is called.

Clients are split into contiguous batches (sorted by id) so the number of mapped task instances
stays small whatever the number of clients: ``batch_size = max(min_batch_size, ceil(n /
max_batches))``. 5,000 clients with the defaults (64, 25) make 64 batches of 79 clients; 300
make 12 batches of 25; 10 make one batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from include.analytics_ops.inventory import PLATFORMS

#: Airflow's ``[core] max_map_length`` default: a mapped task cannot expand over more entries.
MAX_MAP_LENGTH = 1024


class InvalidRefreshParams(ValueError):
    """A manual run's params name clients or platforms that cannot be refreshed."""


# --------------------------------------------------------------------------- params
def parse_params(params: Mapping[str, Any] | None) -> tuple[list[str] | None, tuple[str, ...]]:
    """Validate ``client_ids`` / ``platforms`` params (shape only; ids are checked in the DB).

    Returns ``(client_ids or None for "every connected client", platforms in canonical order)``.
    """
    params = params or {}
    raw_ids = params.get("client_ids")
    client_ids: list[str] | None = None
    if raw_ids not in (None, ""):
        if isinstance(raw_ids, str):
            raw_ids = [p.strip() for p in raw_ids.split(",")]
        if not isinstance(raw_ids, (list, tuple)):
            raise InvalidRefreshParams(
                f"param 'client_ids' must be a list of client ids, got {type(raw_ids).__name__}"
            )
        bad = [v for v in raw_ids if not isinstance(v, str) or not v.strip() or not v.isprintable()]
        if bad:
            raise InvalidRefreshParams(
                f"param 'client_ids' has empty or non-text ids (or unprintable characters): {bad!r}"
            )
        client_ids = list(dict.fromkeys(v.strip() for v in raw_ids))
        if not client_ids:
            raise InvalidRefreshParams(
                "param 'client_ids' is an empty list: omit it (null) to refresh every connected "
                "client, or name at least one client"
            )
    raw_platforms = params.get("platforms")
    if raw_platforms in (None, ""):
        return client_ids, PLATFORMS
    if isinstance(raw_platforms, str):
        raw_platforms = [p.strip() for p in raw_platforms.split(",")]
    if not isinstance(raw_platforms, (list, tuple)) or not raw_platforms:
        raise InvalidRefreshParams(
            f"param 'platforms' must be a non-empty list drawn from {list(PLATFORMS)}, "
            f"got {raw_platforms!r}"
        )
    unknown = [p for p in raw_platforms if p not in PLATFORMS]
    if unknown:
        raise InvalidRefreshParams(
            f"param 'platforms' has unknown platforms {unknown!r}; allowed: {list(PLATFORMS)}"
        )
    wanted = set(raw_platforms)
    return client_ids, tuple(p for p in PLATFORMS if p in wanted)


# --------------------------------------------------------------------------- clients
def connected_clients(conn: psycopg.Connection) -> list[str]:
    """Every client with at least one ``connected`` credential row, sorted by id."""
    rows = conn.execute(
        """
        SELECT DISTINCT client_id FROM analytics.client_api_credentials
         WHERE status = 'connected' ORDER BY client_id
        """
    ).fetchall()
    return [r[0] for r in rows]


def select_clients(conn: psycopg.Connection, client_ids: Sequence[str] | None) -> list[str]:
    """The clients a run refreshes: all connected ones, or the requested ones after checking
    that each exists and is connected (raises :class:`InvalidRefreshParams` naming the bad ones).
    """
    connected = connected_clients(conn)
    if client_ids is None:
        return connected
    connected_set = set(connected)
    rows = conn.execute(
        """
        SELECT client_id FROM analytics.clients WHERE client_id = ANY(%s)
        UNION
        SELECT client_id FROM analytics.client_api_credentials WHERE client_id = ANY(%s)
        """,
        (list(client_ids), list(client_ids)),
    ).fetchall()
    known = {r[0] for r in rows}
    unknown = [c for c in client_ids if c not in known]
    not_connected = [c for c in client_ids if c in known and c not in connected_set]
    problems = []
    if unknown:
        problems.append(f"unknown client ids {unknown}")
    if not_connected:
        problems.append(
            f"clients without a connected credential (status disconnected/error/pending) "
            f"{not_connected}"
        )
    if problems:
        raise InvalidRefreshParams(
            "param 'client_ids' refused, nothing was refreshed: " + "; ".join(problems)
        )
    return sorted(client_ids)


# --------------------------------------------------------------------------- batches
@dataclass(frozen=True)
class Batch:
    """One mapped ``refresh_client`` instance: a contiguous slice of clients × the platforms."""

    number: int  # 1-based
    count: int  # batches in the run
    client_ids: tuple[str, ...]
    platforms: tuple[str, ...]

    @property
    def jobs(self) -> int:
        return len(self.client_ids) * len(self.platforms)

    @property
    def label(self) -> str:
        """What the UI shows for the mapped instance (``map_index_template``)."""
        first, last = self.client_ids[0], self.client_ids[-1]
        who = first if first == last else f"{first}…{last}"
        extra = f" ({len(self.client_ids)} clients)" if len(self.client_ids) > 2 else ""
        return f"batch {self.number}/{self.count}: {who}{extra} × {','.join(self.platforms)}"

    def descriptor(self) -> dict[str, Any]:
        """The small XCom entry a mapped instance expands over (the ids stay in Postgres)."""
        return {
            "batch": self.number,
            "batches": self.count,
            "clients": len(self.client_ids),
            "jobs": self.jobs,
            "label": self.label,
        }


def batch_size_for(n_clients: int, max_batches: int, min_batch_size: int) -> int:
    if max_batches < 1 or min_batch_size < 1:
        raise ValueError("max_batches and min_batch_size must be >= 1")
    if max_batches > MAX_MAP_LENGTH:
        raise ValueError(
            f"max_batches={max_batches} exceeds Airflow's [core] max_map_length={MAX_MAP_LENGTH}"
        )
    return max(min_batch_size, math.ceil(n_clients / max_batches)) if n_clients else 0


def plan_batches(
    client_ids: Sequence[str],
    platforms: Sequence[str] = PLATFORMS,
    *,
    max_batches: int = 64,
    min_batch_size: int = 25,
) -> list[Batch]:
    """Split sorted clients into ``<= max_batches`` contiguous batches of near-equal size."""
    clients = sorted(dict.fromkeys(client_ids))
    size = batch_size_for(len(clients), max_batches, min_batch_size)
    if not clients:
        return []
    count = math.ceil(len(clients) / size)
    # Spread the clients evenly (sizes differ by at most one) instead of a short last batch.
    base, rest = divmod(len(clients), count)
    batches, start = [], 0
    for i in range(count):
        end = start + base + (1 if i < rest else 0)
        batches.append(Batch(i + 1, count, tuple(clients[start:end]), tuple(platforms)))
        start = end
    return batches


# --------------------------------------------------------------------------- work list
def record_work_list(
    conn: psycopg.Connection,
    run_id: str,
    batches: Sequence[Batch],
    *,
    platforms: Sequence[str],
    requested_client_ids: Sequence[str] | None,
) -> int:
    """Replace the run's work list (and drop results of jobs no longer on it) in one
    transaction. Re-listing the same run is idempotent. Returns the number of jobs."""
    jobs = [(run_id, c, p, b.number) for b in batches for c in b.client_ids for p in b.platforms]
    with conn.transaction():
        conn.execute("DELETE FROM analytics.inventory_refresh_jobs WHERE run_id = %s", (run_id,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO analytics.inventory_refresh_jobs (run_id, client_id, platform, batch)"
                " VALUES (%s, %s, %s, %s)",
                jobs,
            )
        conn.execute(
            """
            DELETE FROM analytics.inventory_refresh_results r
             WHERE r.run_id = %s AND NOT EXISTS (
                   SELECT 1 FROM analytics.inventory_refresh_jobs j
                    WHERE j.run_id = r.run_id AND j.client_id = r.client_id
                      AND j.platform = r.platform)
            """,
            (run_id,),
        )
        conn.execute(
            """
            INSERT INTO analytics.inventory_refresh_runs
                   (run_id, client_count, job_count, batch_count, batch_size, platforms,
                    requested_client_ids)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (run_id) DO UPDATE
               SET client_count = EXCLUDED.client_count, job_count = EXCLUDED.job_count,
                   batch_count = EXCLUDED.batch_count, batch_size = EXCLUDED.batch_size,
                   platforms = EXCLUDED.platforms,
                   requested_client_ids = EXCLUDED.requested_client_ids, listed_at = now()
            """,
            (
                run_id,
                sum(len(b.client_ids) for b in batches),
                len(jobs),
                len(batches),
                max((len(b.client_ids) for b in batches), default=0),
                list(platforms),
                list(requested_client_ids) if requested_client_ids is not None else None,
            ),
        )
    return len(jobs)


def batch_jobs(conn: psycopg.Connection, run_id: str, batch: int) -> list[tuple[str, str]]:
    """The (client_id, platform) jobs of one batch of a run, in a stable order."""
    return conn.execute(
        """
        SELECT client_id, platform FROM analytics.inventory_refresh_jobs
         WHERE run_id = %s AND batch = %s
         ORDER BY client_id, array_position(ARRAY['shopify', 'amazon', 'all'], platform)
        """,
        (run_id, batch),
    ).fetchall()


def successful_jobs(
    conn: psycopg.Connection, run_id: str, jobs: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which of ``jobs`` already have a ``success`` outcome in this run."""
    jobs = list(jobs)
    if not jobs:
        return set()
    rows = conn.execute(
        """
        SELECT client_id, platform FROM analytics.inventory_refresh_results
         WHERE run_id = %s AND status = 'success' AND client_id = ANY(%s)
        """,
        (run_id, sorted({c for c, _ in jobs})),
    ).fetchall()
    return set(rows) & set(jobs)
