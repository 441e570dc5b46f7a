"""Every DAG file imports cleanly, without I/O at parse time, and the set of DAGs is exactly the
checked-in list (a DAG that fails to import cannot silently disappear)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.dags.conftest import DAGS_DIR

HEAVY_MODULES = ("pandas", "matplotlib", "numpy", "psycopg", "httpx", "jinja2.sandbox")


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, "\n".join(
        f"{path}: {err}" for path, err in dagbag.import_errors.items()
    )


def test_dag_ids_match_the_checked_in_list(dagbag, expected_dag_ids):
    assert expected_dag_ids, "expected_dag_ids.txt is empty"
    assert set(dagbag.dag_ids) == expected_dag_ids


def test_one_dag_per_file_named_after_it(dagbag):
    files = sorted(p.stem for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))
    assert files == sorted(dagbag.dag_ids)
    for dag_id, dag in dagbag.dags.items():
        assert Path(dag.fileloc).stem == dag_id


def test_dag_files_import_no_heavy_modules():
    """Parsing must stay cheap: pandas, numpy, DB and HTTP clients load inside tasks only."""
    code = (
        "import sys, importlib.util, pathlib\n"
        "import airflow.sdk\n"
        "before = set(sys.modules)\n"
        f"for p in sorted(pathlib.Path({str(DAGS_DIR)!r}).glob('*.py')):\n"
        "    spec = importlib.util.spec_from_file_location(p.stem, p)\n"
        "    spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "new = set(sys.modules) - before\n"
        f"print(','.join(sorted(m for m in new if m.split('.')[0] in {HEAVY_MODULES!r}"
        " or m in " + repr(HEAVY_MODULES) + ")))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(DAGS_DIR.parent),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "", f"heavy imports at parse time: {result.stdout.strip()}"
