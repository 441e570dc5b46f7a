"""`python -m include.analytics_ops.pools ensure` on a real metadata DB: creates what is
missing, leaves existing pools (and slot counts an operator tuned) alone, and is idempotent."""

from __future__ import annotations

import subprocess
import sys

from include.analytics_ops import pools
from tests.conftest import REPO_ROOT


def _cli(devenv) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "include.analytics_ops.pools", "ensure"],
        env=devenv.env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )


def test_ensure_creates_missing_pools_and_keeps_tuned_ones(devenv):
    env = devenv.env()
    try:
        devenv.airflow("pools", "delete", "inventory_api")
        devenv.airflow("pools", "set", "posthog_api", "5", "tuned by an operator")
        assert "inventory_api" not in pools.existing_pools(env)
        result = _cli(devenv)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "created pool inventory_api (16 slots)" in result.stdout
        assert "posthog_api" not in result.stdout
        existing = pools.existing_pools(env)
        assert existing["inventory_api"] == 16 and existing["posthog_api"] == 5
        again = _cli(devenv)
        assert again.returncode == 0 and "every pool exists" in again.stdout
    finally:
        devenv.airflow("pools", "set", "posthog_api", "3", "PostHog allows 3 concurrent queries")
        pools.ensure(env=env)
