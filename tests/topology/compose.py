"""``docker-compose.yaml``'s services as local processes, the way their containers run them.

Everything a service gets comes from the deployment files themselves, so this breaks when they
do: the environment is the image's ``ENV`` (Dockerfile) + the ``env_file`` (.env) + the service's
``environment``, interpolated with compose's rules (``${VAR:-default}``, ``${VAR:?message}``,
``$$``); the command is the image's entrypoint (``airflow``) + the service's ``command`` (or its
own ``entrypoint``); the volumes become a per-service folder that plays the container's
``/opt/airflow`` (its own ``AIRFLOW_HOME`` and generated ``airflow.cfg``, with links to the same
host paths the container mounts). Only what a container gets from its network is translated:
service hostnames (``postgres``, ``redis``, ``airflow-apiserver``, ``sandbox``) become
``127.0.0.1:<port>``, and what two containers may share but two processes on one host may not
(celery node names, log-server ports) is made unique. Each such override is listed in
``ProcessTopology.overrides``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
VENV_BIN = Path(sys.executable).parent
CONTAINER_ROOT = "/opt/airflow"

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}")


class ComposeError(ValueError):
    """What `docker compose` itself would refuse (e.g. a required variable is unset)."""


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: ``${V}``, ``${V:-d}``, ``${V-d}``, ``${V:?m}``,
    ``${V?m}``, ``$$``."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        present = name in env
        val = env.get(name, "")
        if op in (":-", "-"):
            use_default = (not present) or (op == ":-" and val == "")
            return interpolate(arg, env) if use_default else val
        if op in (":?", "?"):
            if (not present) or (op == ":?" and val == ""):
                raise ComposeError(f"required variable {name} is missing a value: {arg}")
            return val
        return val

    return _VAR.sub(sub, value)


def _walk(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_walk(x, env) for x in node]
    if isinstance(node, dict):
        return {k: _walk(v, env) for k, v in node.items()}
    return node


def parse_env_file(path: Path) -> dict[str, str]:
    """A compose ``env_file``: ``KEY=VALUE`` lines, ``#`` comments, optional quotes."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def image_env(dockerfile: Path = DOCKERFILE, stage: str = "runtime") -> dict[str, str]:
    """The ``ENV`` lines of one Dockerfile stage (``ENV A=1 \\ B=2`` form)."""
    text = dockerfile.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if not words:
            continue
        if words[0].upper() == "FROM":
            parts = line.split()
            current = parts[3] if len(parts) >= 4 and parts[2].upper() == "AS" else None
        elif words[0].upper() == "ENV" and current == stage and len(words) == 2:
            for item in shlex.split(words[1]):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def image_entrypoint(dockerfile: Path = DOCKERFILE) -> list[str]:
    """The runtime image's ENTRYPOINT, without the PID-1 init wrapper (dumb-init)."""
    import json

    for line in dockerfile.read_text().splitlines():
        if line.startswith("ENTRYPOINT"):
            argv = json.loads(line.split(None, 1)[1])
            if argv and argv[0].endswith("dumb-init"):
                argv = argv[2:] if len(argv) > 1 and argv[1] == "--" else argv[1:]
            return argv
    raise ComposeError("the Dockerfile has no ENTRYPOINT")


def load_compose(dotenv: dict[str, str]) -> dict[str, Any]:
    """The compose file with variables interpolated from ``dotenv`` (the project's .env)."""
    return _walk(yaml.safe_load(COMPOSE_FILE.read_text()), dotenv)


# Internal port of each network service (what other services' URLs use when they omit it).
SERVICE_PORTS = {"postgres": 5432, "redis": 6379, "airflow-apiserver": 8080, "sandbox": 8811}


def map_hosts(value: str, ports: dict[str, int]) -> str:
    """``postgres:5432`` / ``@postgres/`` / ``http://airflow-apiserver:8080`` → 127.0.0.1:port;
    ``localhost:8080`` (the API server's own health check) likewise."""
    for host, port in ports.items():
        inner = SERVICE_PORTS[host]
        pattern = rf"(?:(?<=//)|(?<=@)){re.escape(host)}(?::{inner})?(?=[/\"?]|$)"
        value = re.sub(pattern, f"127.0.0.1:{port}", value)
        if host == "airflow-apiserver":
            value = value.replace(f"localhost:{inner}", f"127.0.0.1:{port}")
    return value


@dataclass
class ServiceSpec:
    name: str  # compose service name (+ replica suffix)
    argv: list[str]
    env: dict[str, str]
    root: Path  # plays /opt/airflow for this service
    volumes: list[tuple[Path, str]] = field(default_factory=list)  # host path -> container path


class ProcessTopology:
    """Builds and runs the compose services as processes under ``workdir``."""

    def __init__(self, workdir: Path, dotenv_path: Path, ports: dict[str, int]) -> None:
        self.workdir = workdir
        # The project's `.env` (interpolation source and `env_file`); a test writes its own.
        self.dotenv_path = dotenv_path
        dotenv = parse_env_file(dotenv_path)
        self.dotenv = dotenv
        self.ports = ports
        self.compose = load_compose(dotenv)
        self.image_env = image_env()
        self.entrypoint = image_entrypoint()
        self.procs: dict[str, subprocess.Popen] = {}
        self.specs: dict[str, ServiceSpec] = {}
        self.overrides: dict[str, dict[str, str]] = {}

    # ---------------------------------------------------------------- building
    def service(self, name: str) -> dict[str, Any]:
        return self.compose["services"][name]

    def spec(self, name: str, replica: int = 1, extra_env: dict[str, str] | None = None):
        svc = self.service(name)
        label = name if replica == 1 else f"{name}-{replica}"
        root = self.workdir / "containers" / label
        root.mkdir(parents=True, exist_ok=True)
        volumes = []
        for vol in svc.get("volumes", []):
            src, dest = vol.split(":")[:2]
            host = (REPO_ROOT / src).resolve() if src.startswith(".") else Path(src)
            if not dest.startswith(CONTAINER_ROOT):
                raise ComposeError(f"{name}: mount outside {CONTAINER_ROOT}: {vol}")
            link = root / dest[len(CONTAINER_ROOT) :].lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            host.parent.mkdir(parents=True, exist_ok=True)
            if not host.exists() and not Path(src).suffix:
                host.mkdir(parents=True, exist_ok=True)  # docker creates missing bind dirs
            if not link.exists():
                link.symlink_to(host)
            volumes.append((host, dest))
        env: dict[str, str] = {
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(root),
            "LANG": "C.UTF-8",
        }
        env.update(self.image_env)
        for entry in svc.get("env_file", []):
            path = entry["path"] if isinstance(entry, dict) else entry
            env_path = self.dotenv_path if path == ".env" else REPO_ROOT / path
            if not env_path.exists() and isinstance(entry, dict) and not entry.get("required"):
                continue
            env.update(parse_env_file(env_path))
        environment = svc.get("environment", {})
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        env.update({k: "" if v is None else str(v) for k, v in environment.items()})
        env = {
            k: map_hosts(v.replace(CONTAINER_ROOT, str(root)), self.ports) for k, v in env.items()
        }
        if "entrypoint" in svc:
            entry = svc["entrypoint"]
            argv = shlex.split(entry) if isinstance(entry, str) else list(entry)
            cmd = svc.get("command") or []
            argv += shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        else:
            cmd = svc.get("command") or []
            argv = [*self.entrypoint, *(shlex.split(cmd) if isinstance(cmd, str) else cmd)]
        argv = [self._local(a, root, first=i == 0) for i, a in enumerate(argv)]
        if name in self.ports:  # a network service listens on its mapped port
            argv = [str(self.ports[name]) if a == str(SERVICE_PORTS[name]) else a for a in argv]
        overrides = dict(extra_env or {})
        env.update(overrides)
        self.overrides[label] = overrides
        spec = ServiceSpec(label, argv, env, root, volumes)
        self.specs[label] = spec
        return spec

    def _local(self, arg: str, root: Path, first: bool = False) -> str:
        if first and arg in ("airflow", "python", "celery"):  # the image's executables
            return sys.executable if arg == "python" else str(VENV_BIN / arg)
        if arg == "0.0.0.0":
            return "127.0.0.1"  # never listen on every interface in a test
        return map_hosts(arg, self.ports).replace(CONTAINER_ROOT, str(root))

    # ---------------------------------------------------------------- running
    def run(self, spec: ServiceSpec, timeout: float = 600) -> subprocess.Popen:
        """A one-shot service (``airflow-init``, a CLI): start it and wait; ``.returncode``."""
        proc = self.start(spec)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(spec.name)
            raise
        return proc

    def start(self, spec: ServiceSpec) -> subprocess.Popen:
        """A long-running service in its own process group (stopped by ``stop_all``)."""
        with self.log_path(spec.name).open("w") as log:
            proc = subprocess.Popen(
                spec.argv,
                env=spec.env,
                cwd=spec.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[spec.name] = proc
        return proc

    def log_path(self, name: str) -> Path:
        path = self.workdir / "logs" / f"{name}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def tail(self, name: str, lines: int = 40) -> str:
        try:
            text = self.log_path(name).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=60)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 40
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
