"""A local environment on a fresh machine with no Docker and no root: an embedded PostgreSQL
(``pgserver``; or the server in ``PG_DSN``) holding the analytics database and Airflow's metadata
database, an Airflow home migrated against it, and the environment variables that point Airflow,
the DAGs and the CLIs at them. ``make test`` (tests/conftest.py), ``make demo`` and ``make up``
all build on this class.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from include.analytics_ops import pools

REPO_ROOT = Path(__file__).resolve().parents[2]


class DevEnv:
    """Owns a throwaway PostgreSQL (unless ``PG_DSN`` points at one) and an Airflow home."""

    def __init__(
        self,
        name: str = "dev",
        workdir: str | os.PathLike[str] | None = None,
        pg_dsn: str | None = None,
    ) -> None:
        self.name = name
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"aops-{name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.external_dsn = pg_dsn if pg_dsn is not None else os.environ.get("PG_DSN") or None
        self._server = None
        self._pg_dir: str | None = None
        self.server_dsn: str | None = None
        self.analytics_db = f"aops_{name}_analytics"
        self.airflow_db = f"aops_{name}_airflow"
        self.airflow_home = self.workdir / "airflow_home"
        self.artifacts_dir = self.workdir / "artifacts"
        self.sandbox_url: str | None = None

    # ------------------------------------------------------------------ postgres
    def start_postgres(self) -> str:
        if self.external_dsn:
            self.server_dsn = self.external_dsn
        else:
            import pgserver

            logging.getLogger("pgserver").setLevel(logging.WARNING)
            # Unix-socket paths are limited to ~100 bytes: keep the data dir short.
            self._pg_dir = tempfile.mkdtemp(prefix="aops-pg-", dir="/tmp")
            self._server = pgserver.get_server(self._pg_dir, cleanup_mode="stop")
            self.server_dsn = self._server.get_uri()
        for db in (self.analytics_db, self.airflow_db):
            self._recreate_database(db)
        return self.analytics_dsn

    def _recreate_database(self, name: str) -> None:
        with psycopg.connect(self.server_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def dsn_for(self, dbname: str) -> str:
        info = psycopg.conninfo.conninfo_to_dict(self.server_dsn)
        info["dbname"] = dbname
        return psycopg.conninfo.make_conninfo(**{k: v for k, v in info.items() if v is not None})

    @property
    def analytics_dsn(self) -> str:
        return self.dsn_for(self.analytics_db)

    def _conn_parts(self) -> dict:
        return psycopg.conninfo.conninfo_to_dict(self.server_dsn)

    def analytics_connection_json(self) -> str:
        info = self._conn_parts()
        conn = {
            "conn_type": "postgres",
            "host": info.get("host") or "localhost",
            "login": info.get("user") or "postgres",
            "schema": self.analytics_db,
        }
        if info.get("port"):
            conn["port"] = int(info["port"])
        if info.get("password"):
            conn["password"] = info["password"]
        return json.dumps(conn)

    @property
    def airflow_sqlalchemy_conn(self) -> str:
        info = self._conn_parts()
        user = quote(info.get("user") or "postgres", safe="")
        password = info.get("password")
        auth = f"{user}:{quote(password, safe='')}" if password else user
        host = info.get("host") or "localhost"
        if host.startswith("/"):
            return f"postgresql+psycopg2://{auth}@/{self.airflow_db}?host={host}"
        port = f":{info['port']}" if info.get("port") else ""
        return f"postgresql+psycopg2://{auth}@{host}{port}/{self.airflow_db}"

    def stop(self) -> None:
        if self.external_dsn and self.server_dsn:
            try:
                with psycopg.connect(self.server_dsn, autocommit=True) as conn:
                    for db in (self.analytics_db, self.airflow_db):
                        conn.execute(
                            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                                sql.Identifier(db)
                            )
                        )
            except psycopg.Error:
                pass
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        if self._pg_dir:
            shutil.rmtree(self._pg_dir, ignore_errors=True)
            self._pg_dir = None

    # ------------------------------------------------------------------ airflow
    def env(self, **extra: str) -> dict[str, str]:
        """Environment for Airflow commands, DAG runs and the project's CLIs."""
        env = dict(os.environ)
        # `airflow standalone` starts its components by name: the venv's bin must be on PATH even
        # when the venv is not activated (make test runs .venv/bin/python directly).
        bin_dir = str(Path(sys.executable).parent)
        if bin_dir not in env.get("PATH", "").split(os.pathsep):
            env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        env.update(
            {
                "PYTHONPATH": str(REPO_ROOT),
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.airflow_sqlalchemy_conn,
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW_CONN_ANALYTICS_DB": self.analytics_connection_json(),
                "ARTIFACTS_DIR": str(self.artifacts_dir),
                "LEDGER_PATHS": str(self.workdir / "ledger" / "*.jsonl"),
            }
        )
        if self.sandbox_url:
            from include.sandbox.constants import airflow_connections

            env.update(airflow_connections(self.sandbox_url))
        env.update(extra)
        return env

    def airflow(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            [pools.airflow_bin(), *args],
            env=self.env(),
            check=check,
            capture_output=True,
            text=True,
            **kwargs,
        )

    def migrate(self) -> None:
        """Analytics schema migrations + Airflow metadata DB + pools."""
        from include.analytics_ops.migrate import apply_migrations

        apply_migrations(self.analytics_dsn)
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        result = self.airflow("db", "migrate", check=False)
        if result.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{result.stderr[-3000:]}")
        pools.ensure(env=self.env())

    def start(self) -> DevEnv:
        self.start_postgres()
        self.migrate()
        return self


@dataclass
class DemoStep:
    """One DAG run of ``make demo`` / ``make up`` in a ``DevEnv``: what to prepare and print."""

    title: str
    dag_id: str
    when: str | None
    summarize: Callable[[psycopg.Connection, DevEnv], list[str]]
    conf: dict | None = None
    expect_success: bool = True
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[psycopg.Connection, DevEnv], None] | None = None
