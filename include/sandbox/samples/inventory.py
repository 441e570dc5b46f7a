"""Clients and credentials for tests, the benchmark and the demo (idempotent inserts).

Production data comes from the application; the sandbox generator loads the same tables. This
helper lets a test or benchmark set up exactly the clients it needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg

CredentialRow = tuple[str, str] | tuple[str, str, str]  # (client_id, status[, provider])


def insert_clients(conn: psycopg.Connection, credentials: Iterable[CredentialRow]) -> int:
    """Upsert ``analytics.clients`` + ``analytics.client_api_credentials`` rows.

    Each entry is ``(client_id, status)`` or ``(client_id, status, provider)``; a client may
    appear several times with different providers. Returns the number of credential rows.
    """
    rows = [(c[0], c[1], c[2] if len(c) > 2 else "default") for c in credentials]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO analytics.clients (client_id, name) VALUES (%s, %s)"
            " ON CONFLICT (client_id) DO NOTHING",
            [(cid, f"Client {cid}") for cid in dict.fromkeys(r[0] for r in rows)],
        )
        cur.executemany(
            """
            INSERT INTO analytics.client_api_credentials (client_id, provider, status)
            VALUES (%s, %s, %s)
            ON CONFLICT (client_id, provider) DO UPDATE
               SET status = EXCLUDED.status, updated_at = now()
            """,
            [(cid, provider, status) for cid, status, provider in rows],
        )
    return len(rows)


def numbered_clients(count: int, statuses: Sequence[str] = ("connected",)) -> list[CredentialRow]:
    """``client-001`` … with statuses cycling through ``statuses``."""
    return [(f"client-{n:03d}", statuses[(n - 1) % len(statuses)]) for n in range(1, count + 1)]
