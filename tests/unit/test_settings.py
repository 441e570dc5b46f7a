"""Runtime settings outside a task (CLIs, tests): a bad value is an error naming the setting, and a
secrets backend that fails is an error, not an unset Variable. Inside a task:
``tests/e2e/test_settings_in_tasks.py`` and ``tests/e2e/test_settings_api_failure.py``."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from include.analytics_ops.alerts.settings import min_severity, reminder_interval
from include.analytics_ops.config import SettingError, setting
from include.analytics_ops.github.risk import RiskConfig
from include.analytics_ops.ingest.config import IngestConfig
from include.analytics_ops.monitoring.jobs import dag_jobs
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize(
    ("name", "value", "read"),
    [
        ("POSTHOG_PAGE_SIZE", "lots", IngestConfig.from_settings),
        ("POSTHOG_PREFETCH", "sometimes", IngestConfig.from_settings),
        ("POSTHOG_SETTLE_MINUTES", "nan", IngestConfig.from_settings),
        ("BUG_RISK_REVENUE_THRESHOLD", "ten grand", RiskConfig.from_settings),
        ("ALERT_MIN_SEVERITY", "loud", min_severity),
        ("ALERT_REMINDER_SECONDS", "soon", reminder_interval),
        ("HEALTH_JOBS", "[1, 2]", dag_jobs),
    ],
)
def test_a_bad_value_is_an_error_naming_the_setting(monkeypatch, name, value, read):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError, match=re.escape(f"setting {name}={value!r}: ")):
        read()


def test_booleans_and_lists_parse_as_before(monkeypatch):
    for word, expected in [("Yes", True), ("on", True), ("1", True), ("off", False), ("", False)]:
        monkeypatch.setenv("POSTHOG_PREFETCH", word)
        assert setting("POSTHOG_PREFETCH", not expected) is expected
    monkeypatch.setenv("ALERT_CHANNELS", " log, ,email ")
    assert setting("ALERT_CHANNELS", ["log"]) == ["log", "email"]
    monkeypatch.setenv("POSTHOG_PREFETCH", "sometimes")
    with pytest.raises(SettingError, match="not a boolean"):
        setting("POSTHOG_PREFETCH", True)


def test_a_failing_secrets_backend_is_an_error_not_unset(tmp_path):
    """Airflow's own local-file secrets backend, pointed at a file that does not exist: the
    Variable cannot be read, so the setting cannot be known (a fresh process: the SDK keeps a
    configured backend for the process's life)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO_ROOT),
        "AIRFLOW_HOME": str(tmp_path),
        "POSTHOG_PAGE_SIZE": "2500",
        "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": f'{{"variables_file_path": "{tmp_path}/none.json"}}',
    }
    code = (
        "from include.analytics_ops.config import setting; print(setting('POSTHOG_PAGE_SIZE', 1))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0, result.stdout
    assert "SettingUnavailable: setting POSTHOG_PAGE_SIZE: LocalFilesystemBackend failed: " in (
        result.stderr
    )
