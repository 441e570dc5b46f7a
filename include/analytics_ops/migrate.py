"""Apply the versioned schema migrations in ``include/sql/`` to ``analytics_db``.

Usage: ``python -m include.analytics_ops.migrate [--conn-id ID | --dsn DSN] [--status]`` — the
database is ``--dsn``, else ``$ANALYTICS_DSN``, else the Airflow connection ``--conn-id``
(default ``analytics_db``, e.g. ``AIRFLOW_CONN_ANALYTICS_DB``); prefer the last two for a DSN with
a password (``--dsn`` is visible in ``ps``).

Each ``V<NNN>__<name>.sql`` file runs once, in order, in its own transaction, and is recorded in
``public.analytics_ops_migrations`` with its checksum. Applying twice is a no-op; an applied file
whose content changed is an error (write a new migration instead). Migrations only add: none
drops a table or a column holding data.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg

from include.analytics_ops.db import (
    ANALYTICS_CONN_ID,
    ConfigError,
    add_database_arguments,
    cli_dsn,
    connect,
    describe_dsn,
)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_NAME = re.compile(r"^V(\d{3,})__([a-z0-9_]+)\.sql$")
# A fixed key so two migrators (compose init + demo) never interleave.
_LOCK_KEY = 0x41_4F_50_53


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    found = []
    for path in sorted(sql_dir.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise ConfigError(f"migration file {path.name} does not match V<NNN>__<name>.sql")
        found.append(Migration(int(m.group(1)), m.group(2), path))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise ConfigError(f"duplicate migration versions in {sql_dir}")
    return sorted(found, key=lambda m: m.version)


def apply_migrations(
    dsn: str | None = None, sql_dir: Path = SQL_DIR, *, conn_id: str = ANALYTICS_CONN_ID
) -> list[Migration]:
    """Apply pending migrations; return the ones applied now."""
    migrations = discover(sql_dir)
    applied_now: list[Migration] = []
    with connect(dsn, conn_id=conn_id, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS public.analytics_ops_migrations (
                       version integer PRIMARY KEY, name text NOT NULL,
                       checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = dict(
                conn.execute(
                    "SELECT version, checksum FROM public.analytics_ops_migrations"
                ).fetchall()
            )
            for mig in migrations:
                if mig.version in done:
                    if done[mig.version] != mig.checksum:
                        raise ConfigError(
                            f"migration V{mig.version:03d} ({mig.name}) changed after it was"
                            " applied; add a new migration instead of editing an applied one"
                        )
                    continue
                with conn.transaction():
                    conn.execute(mig.sql)
                    conn.execute(
                        "INSERT INTO public.analytics_ops_migrations (version, name, checksum)"
                        " VALUES (%s, %s, %s)",
                        (mig.version, mig.name, mig.checksum),
                    )
                applied_now.append(mig)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def status(
    dsn: str | None = None, *, conn_id: str = ANALYTICS_CONN_ID
) -> list[tuple[int, str, bool]]:
    with connect(dsn, conn_id=conn_id) as conn:
        exists = conn.execute("SELECT to_regclass('public.analytics_ops_migrations')").fetchone()[0]
        done = set()
        if exists:
            done = {
                r[0] for r in conn.execute("SELECT version FROM public.analytics_ops_migrations")
            }
    return [(m.version, m.name, m.version in done) for m in discover()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m include.analytics_ops.migrate", description=__doc__.splitlines()[0]
    )
    add_database_arguments(parser)
    parser.add_argument("--status", action="store_true", help="list migrations and exit")
    args = parser.parse_args(argv)
    dsn = None
    try:
        dsn = cli_dsn(args)
        if args.status:
            for version, name, done in status(dsn, conn_id=args.conn_id):
                print(f"V{version:03d} {name:40s} {'applied' if done else 'pending'}")
            return 0
        applied = apply_migrations(dsn, conn_id=args.conn_id)
    except (ConfigError, psycopg.Error) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        target = describe_dsn(dsn) if dsn else args.conn_id
        print(f"migrate: cannot apply migrations to {target}: {first}", file=sys.stderr)
        return 2
    if applied:
        for mig in applied:
            print(f"applied V{mig.version:03d} {mig.name}")
    else:
        print("migrate: schema is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
