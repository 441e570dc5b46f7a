"""Runtime settings inside a real task (``airflow dags test`` of ``settings_probe``): each setting
is asked of the API server at most once per task, and a Variable stored in the metadata DB (what
the UI writes) overrides the environment variable of the same name.

The lookups are counted where they happen: the supervisor logs (at DEBUG) every request the task
runner sends it, ``Received message from task runner ... msg=GetVariable(key='...')``, and answers
each one by asking the execution API."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import fields
from pathlib import Path

import pytest

from include.analytics_ops.github.health import HealthThresholds
from include.analytics_ops.ingest.config import IngestConfig
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.e2e
PROBE_DIR = str(REPO_ROOT / "tests" / "e2e" / "probe_dags_settings")
AIRFLOW_BIN = str(Path(sys.executable).with_name("airflow"))
LOOKUP = re.compile(r"Received message from task runner.*msg=GetVariable\(key='([A-Z0-9_]+)'")
PROBED = [f.metadata["setting"] for c in (IngestConfig, HealthThresholds) for f in fields(c)]


def run_probe(dag_test, tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, Path]:
    """``airflow dags test settings_probe`` with the supervisor logging at DEBUG; the result and
    the file the task writes what it saw to."""
    out = tmp_path / "seen.json"
    env = {
        "AIRFLOW__CORE__DAGS_FOLDER": PROBE_DIR,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
        "SETTINGS_PROBE_OUT": str(out),
        **env,
    }
    return dag_test("settings_probe", env=env), out


def seen(result: subprocess.CompletedProcess, out: Path) -> tuple[list, Counter]:
    """What the task saw, and how often each Variable was asked of the API server."""
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return json.loads(out.read_text()), Counter(LOOKUP.findall(result.stdout + result.stderr))


def test_a_task_asks_for_each_setting_once(dag_test, tmp_path):
    values, lookups = seen(*run_probe(dag_test, tmp_path))
    # The task builds IngestConfig and HealthThresholds twice: 21 settings, 42 reads.
    assert len(PROBED) == 21 and values == [{"page_size": 10_000, "healthy_min": 80}] * 2
    assert lookups == Counter(PROBED), lookups


@pytest.fixture
def stored_variable(devenv):
    """``airflow variables set`` (the metadata DB, as the UI stores it); deleted afterwards."""
    stored = []

    def store(key: str, value: str) -> None:
        cmd = [AIRFLOW_BIN, "variables", "set", key, value]
        subprocess.run(cmd, env=devenv.env(), check=True, capture_output=True, timeout=120)
        stored.append(key)

    yield store
    for key in stored:
        cmd = [AIRFLOW_BIN, "variables", "delete", key]
        subprocess.run(cmd, env=devenv.env(), check=True, capture_output=True, timeout=120)


def test_a_ui_variable_overrides_the_environment_in_a_task(dag_test, tmp_path, stored_variable):
    stored_variable("POSTHOG_PAGE_SIZE", "1234")
    probe = run_probe(dag_test, tmp_path, POSTHOG_PAGE_SIZE="2500", HEALTH_HEALTHY_MIN="90")
    values, lookups = seen(*probe)
    assert values == [{"page_size": 1234, "healthy_min": 90}] * 2
    assert lookups["POSTHOG_PAGE_SIZE"] == 1


def test_a_bad_value_fails_the_task_naming_the_setting(dag_test, tmp_path):
    result, out = run_probe(dag_test, tmp_path, POSTHOG_PREFETCH="sometimes")
    assert result.returncode != 0 and not out.exists()
    assert "setting POSTHOG_PREFETCH='sometimes': not a boolean" in result.stdout + result.stderr


def test_a_failing_secrets_backend_fails_the_task(dag_test, tmp_path):
    """A Variable that cannot be read is not an unset one: with Airflow's local-file secrets
    backend pointed at a missing file, the task fails naming the setting (``Variable.get`` would
    log the failure and carry on with the environment or the default)."""
    result, out = run_probe(
        dag_test,
        tmp_path,
        AIRFLOW__SECRETS__BACKEND="airflow.secrets.local_filesystem.LocalFilesystemBackend",
        AIRFLOW__SECRETS__BACKEND_KWARGS=json.dumps(
            {"variables_file_path": str(tmp_path / "none.json")}
        ),
    )
    assert result.returncode != 0 and not out.exists()
    assert "setting POSTHOG_SETTLE_MINUTES: LocalFilesystemBackend failed: " in (
        result.stdout + result.stderr
    )
