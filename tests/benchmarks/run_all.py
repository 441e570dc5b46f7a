"""``make bench``: run every benchmark in this folder, one after another (they share 2 cores and
each starts its own PostgreSQL), and print their reports. Each benchmark prints a ratio against
a baseline measured in the same run. ``--only NAME`` runs the ones whose file name contains NAME.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="substring of the benchmark file name")
    args = parser.parse_args(argv)
    scripts = sorted(
        p
        for p in HERE.glob("*.py")
        if p.name not in ("run_all.py", "__init__.py") and args.only in p.name
    )
    failed = []
    for script in scripts:
        print(f"\n===== {script.name} =====", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(script)], cwd=ROOT, check=False)
        print(f"----- {script.name}: exit {result.returncode} in {time.monotonic() - started:.0f}s")
        if result.returncode != 0:
            failed.append(script.name)
    print(f"\n{len(scripts) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
