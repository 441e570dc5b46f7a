"""Artifact files of the nightly run, written atomically (temp file in the same directory, then
``os.replace``): a reader never sees half a file, and a rerun replaces the previous one."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def proof_path(artifacts: str | os.PathLike[str], day: date) -> Path:
    """``<artifacts>/sampling-proofs/sampling-proof-YYYYMMDD.json``."""
    return Path(artifacts) / "sampling-proofs" / f"sampling-proof-{day:%Y%m%d}.json"


def snapshot_path(artifacts: str | os.PathLike[str], day: date) -> Path:
    """``<artifacts>/snapshots/YYYY-MM-DD.json``."""
    return Path(artifacts) / "snapshots" / f"{day.isoformat()}.json"


def write_json_atomic(path: Path, payload: Any) -> Path:
    """Write ``payload`` as pretty JSON to ``path`` via a temp file + rename; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, sort_keys=False, default=_default, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
