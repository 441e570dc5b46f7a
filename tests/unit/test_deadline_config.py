"""Deadline intervals are plain timedeltas: a default per DAG, an optional environment override
read at parse time, and no configuration state that could stop a run from being created."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from include.analytics_ops import config, deadlines


def test_defaults_come_from_the_table(monkeypatch):
    monkeypatch.delenv("DEADLINE_CRON_LEDGER_SECONDS", raising=False)
    assert config.deadline_seconds("cron_ledger") == 600
    alert = deadlines.deadline("cron_ledger")
    assert alert.interval == timedelta(minutes=10)
    assert alert.name == "cron_ledger_deadline"


def test_an_environment_override_wins(monkeypatch):
    monkeypatch.setenv("DEADLINE_ANALYTICS_NIGHTLY_SECONDS", " 7200 ")
    assert deadlines.deadline("analytics_nightly").interval == timedelta(hours=2)


@pytest.mark.parametrize("bad", ["", "soon", "-5", "0", "1.5"])
def test_a_bad_override_keeps_the_documented_default_and_says_so(monkeypatch, caplog, bad):
    monkeypatch.setenv("DEADLINE_ANALYTICS_HOURLY_SECONDS", bad)
    with caplog.at_level(logging.WARNING, logger="include.analytics_ops.config"):
        assert config.deadline_seconds("analytics_hourly") == 2 * 3600
    assert "DEADLINE_ANALYTICS_HOURLY_SECONDS" in caplog.text


def test_a_dag_without_a_default_needs_an_override(monkeypatch):
    monkeypatch.delenv("DEADLINE_SOME_PROBE_SECONDS", raising=False)
    with pytest.raises(KeyError, match="DEADLINE_DEFAULT_SECONDS"):
        config.deadline_seconds("some_probe")
    monkeypatch.setenv("DEADLINE_SOME_PROBE_SECONDS", "5")
    assert config.deadline_seconds("some_probe") == 5
