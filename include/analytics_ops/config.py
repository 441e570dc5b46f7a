"""Defaults in one place: owner, tags, deadline intervals and runtime settings.

Module level holds constants only (safe at DAG parse time) and nothing here imports the rest of
the package: the task defaults with their failure callback are ``callbacks.default_args()``, the
DAG's Deadline Alert is ``deadlines.deadline()``. ``setting()`` reads the environment
and, inside a running task, an Airflow Variable of the same name that overrides it from the UI.
"""

from __future__ import annotations

import logging
import os
from typing import Any, TypeVar

T = TypeVar("T")

OWNER = "data-platform"
PT = "America/Los_Angeles"

# Tags a DAG may carry (policy test): cadence + domain.
ALLOWED_TAGS = frozenset(
    {
        "nightly",
        "hourly",
        "two-hourly",
        "weekly",
        "every-5-min",
        "analytics",
        "posthog",
        "checks",
        "github",
        "inventory",
        "reports",
        "monitoring",
        "ledger",
    }
)

# Deadline per DAG (DESIGN §1), seconds after the run was queued. A deployment may override one
# with the environment variable ``DEADLINE_<DAG_ID>_SECONDS``, read when the DAG is parsed (it must
# be set where the dag-processor runs). Deliberately not an Airflow Variable: Airflow 3.3.2's
# Variable-backed deadline interval takes the scheduler down when the Variable is missing *or*
# stored in the metadata DB (AIRFLOW3_NOTES; canary: tests/e2e/test_compat_variable_interval.py).
DEADLINE_DEFAULT_SECONDS: dict[str, int] = {
    "analytics_nightly": 90 * 60,  # 02:00 PT + 90 min = 03:30 PT
    "analytics_hourly": 2 * 3600,  # window end + 2 h
    "inventory_refresh": 2 * 3600,
    "analytics_weekly": 5 * 3600,  # Mon 04:00 PT -> 09:00 PT
    "cron_ledger": 10 * 60,
}


def deadline_env_var(dag_id: str) -> str:
    return f"DEADLINE_{dag_id.upper()}_SECONDS"


def deadline_seconds(dag_id: str) -> int:
    """The deadline interval of ``dag_id``: ``DEADLINE_<DAG_ID>_SECONDS`` if it holds a positive
    whole number, else the default. A bad override is logged and ignored (the DAG keeps its
    documented deadline) rather than turned into an import error that stops every run."""
    default = DEADLINE_DEFAULT_SECONDS.get(dag_id)
    raw = os.getenv(deadline_env_var(dag_id))
    if raw is not None:
        try:
            value = int(raw.strip())
        except ValueError:
            value = 0
        if value > 0:
            return value
        if default is not None:
            logging.getLogger(__name__).warning(
                "%s=%r is not a positive number of seconds; using the default %s s",
                deadline_env_var(dag_id),
                raw,
                default,
            )
    if default is None:
        raise KeyError(f"no deadline default for {dag_id}: add it to DEADLINE_DEFAULT_SECONDS")
    return default


def setting(name: str, default: T, cast: type | None = None) -> T:
    """Runtime setting: Airflow Variable ``name`` > env var ``name`` > ``default``.

    Call inside tasks only (never at module level): it may look up a Variable.
    """
    raw: Any = None
    try:
        from airflow.sdk import Variable

        raw = Variable.get(name, default=None)
    except Exception:
        raw = None
    if raw is None:
        raw = os.environ.get(name)
    if raw is None:
        return default
    kind = cast or (type(default) if default is not None else str)
    if kind is bool:
        return str(raw).strip().lower() in ("1", "true", "yes", "on")  # type: ignore[return-value]
    if kind in (list, tuple):
        return [p.strip() for p in str(raw).split(",") if p.strip()]  # type: ignore[return-value]
    return kind(raw)


def artifacts_dir() -> str:
    return setting("ARTIFACTS_DIR", "artifacts")
