"""The Airflow pools this project's DAGs run in, and the CLI that creates the missing ones.

A task assigned to a pool that does not exist stays ``scheduled`` forever with only a scheduler
warning (AIRFLOW3_NOTES), so every deployment path runs ``python -m include.analytics_ops.pools
ensure`` (compose init, ``make demo``, ``make up``, the Helm post-install job): it creates each
missing pool of ``include/airflow_pools.json`` and leaves existing pools — and the slot counts an
operator tuned — alone. ``cron_ledger``'s health evaluation flags a pool that goes missing later.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

POOLS_FILE = Path(__file__).resolve().parents[1] / "airflow_pools.json"


def required_pools(path: Path = POOLS_FILE) -> dict[str, dict[str, Any]]:
    """name -> {"slots", "description", "include_deferred"} for every pool a DAG uses."""
    return json.loads(path.read_text())


def airflow_bin() -> str:
    """The ``airflow`` CLI of this interpreter's venv (also when the venv is not activated)."""
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else "airflow"


def _airflow(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [airflow_bin(), *args], capture_output=True, text=True, env=env, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args[:2])} failed: {result.stderr.strip()[-1500:]}")
    return result.stdout


def existing_pools(env: dict[str, str] | None = None) -> dict[str, int]:
    """name -> slots of the pools in Airflow's metadata DB (``airflow pools list``)."""
    out = _airflow("pools", "list", "-o", "json", env=env)
    start = out.find("[")  # tolerate log lines before the JSON
    rows = json.loads(out[start:]) if start >= 0 else []
    return {row["pool"]: int(row["slots"]) for row in rows if isinstance(row, dict)}


def ensure(env: dict[str, str] | None = None, dry_run: bool = False) -> dict[str, int]:
    """Create the missing pools; return the ones created (name -> slots)."""
    present = existing_pools(env)
    created: dict[str, int] = {}
    for name, spec in required_pools().items():
        if name in present:
            continue
        args = ["pools", "set", name, str(spec["slots"]), spec.get("description") or name]
        if spec.get("include_deferred"):
            args.append("--include-deferred")
        if not dry_run:
            _airflow(*args, env=env)
        created[name] = int(spec["slots"])
    return created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.analytics_ops.pools")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("ensure", help="create the missing pools of include/airflow_pools.json")
    cmd.add_argument("--dry-run", action="store_true", help="only print what would be created")
    args = parser.parse_args(argv)
    try:
        created = ensure(dry_run=args.dry_run)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"pools: {exc}", file=sys.stderr)
        return 1
    verb = "would create" if args.dry_run else "created"
    for name, slots in created.items():
        print(f"{verb} pool {name} ({slots} slots)")
    if not created:
        print(f"every pool exists: {', '.join(required_pools())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
