"""Defaults in one place: owner, tags, deadline intervals and runtime settings.

Module level holds constants only (safe at DAG parse time) and nothing here imports the rest of
the package: the task defaults with their failure callback are ``callbacks.default_args()``, the
DAG's Deadline Alert is ``deadlines.deadline()``. Runtime settings are an Airflow Variable
(the UI's override) > the environment variable of the same name > a default, read at most once
per task: ``setting()`` for one value, a :class:`FromSettings` dataclass for a group of them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, field, fields
from datetime import timedelta
from typing import Any, Self, TypeVar

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


class SettingError(ValueError):
    """A setting holds a value its type cannot take: bad configuration, not worth a retry."""


class SettingUnavailable(RuntimeError):
    """A setting's Airflow Variable could not be read (the API server failed): worth a retry."""


def _variable(name: str) -> str | None:
    """Variable ``name`` from the secrets backends the Task SDK picks (a configured one,
    ``AIRFLOW_VAR_<NAME>``, then the API server in a task; outside a task there is none), or None.

    Not ``Variable.get``: it logs a failing backend and goes on to the next, and its
    ``ExecutionAPISecretsBackend`` answers None both to "not set" and to "the API server failed"
    (task-sdk 1.3.2), which would silently skip a UI override. Here only "not set" is None.
    """
    from airflow.sdk.exceptions import ErrorType
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import ErrorResponse, GetVariable, VariableResult
    from airflow.sdk.execution_time.secrets import ExecutionAPISecretsBackend
    from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded

    for backend in ensure_secrets_backend_loaded():
        try:
            if not isinstance(backend, ExecutionAPISecretsBackend):
                value = backend.get_variable(key=name)
            else:
                reply = task_runner.SUPERVISOR_COMMS.send(GetVariable(key=name))
                if isinstance(reply, ErrorResponse) and reply.error == ErrorType.VARIABLE_NOT_FOUND:
                    continue
                if not isinstance(reply, VariableResult):
                    raise RuntimeError(f"the API server answered {reply!r}")
                value = reply.value
        except Exception as exc:
            what = type(backend).__name__
            raise SettingUnavailable(f"setting {name}: {what} failed: {exc!r}") from exc
        if value is not None:
            return value
    return None


# The running task's supervisor channel and the raw values it read: the task's settings cache.
_task_cache: tuple[object, dict[str, str | None]] = (None, {})
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def setting(name: str, default: T, cast: Callable[[str], Any] | None = None) -> T:
    """Runtime setting ``name``: Airflow Variable > environment variable > ``default``, parsed by
    ``cast`` (default: the type of ``default``; ``bool`` takes true/false, yes/no, on/off, 1/0,
    ``list`` a comma-separated list); a value ``cast`` refuses is a :class:`SettingError`.
    In a task each name is looked up once (the cache follows the task's supervisor channel: each
    task of ``airflow dags test`` reads afresh); outside a task every call reads the environment.
    """
    global _task_cache
    from airflow.sdk.execution_time import task_runner

    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if comms is None or _task_cache[0] is not comms:
        _task_cache = (comms, {})
    cache = _task_cache[1]
    if name not in cache:
        value = _variable(name)
        cache[name] = os.environ.get(name) if value is None else value
    if (text := cache[name]) is None:
        return default
    kind = cast or (type(default) if default is not None else str)
    try:
        if kind is bool:
            if (word := text.strip().lower()) not in _TRUE + _FALSE:
                raise ValueError("not a boolean (true/false, yes/no, on/off, 1/0)")
            return word in _TRUE  # type: ignore[return-value]
        if kind in (list, tuple):
            return [p.strip() for p in text.split(",") if p.strip()]  # type: ignore[return-value]
        return kind(text)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise SettingError(f"setting {name}={text!r}: {exc}") from exc


def from_setting(name: str, default: Any = MISSING, parse: Any = None, **kw: Any) -> Any:
    """A :class:`FromSettings` field read from setting ``name`` by ``parse`` (default: the type of
    ``default``); ``kw`` go to ``dataclasses.field`` (``default_factory``)."""
    return field(default=default, metadata={"setting": name, "parse": parse or type(default)}, **kw)


class FromSettings:
    """Mixin of a frozen dataclass whose :func:`from_setting` fields are runtime settings."""

    @classmethod
    def from_settings(cls) -> Self:
        """The dataclass with the settings that are set (call inside a task or CLI only)."""
        fs = [f for f in fields(cls) if "setting" in f.metadata]  # type: ignore[arg-type]
        values = {f.name: setting(f.metadata["setting"], MISSING, f.metadata["parse"]) for f in fs}
        return cls(**{k: v for k, v in values.items() if v is not MISSING})

    def as_dict(self) -> dict[str, Any]:
        """The values for a JSON record of what a run used (``store.jsonb``): sets sorted."""

        def plain(value: Any) -> Any:
            if isinstance(value, frozenset | set):
                return sorted(value)
            return dict(value) if isinstance(value, Mapping) else value

        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


def duration(unit: str) -> Callable[[str], timedelta]:
    """The parse of a setting given as a number of ``unit`` (``"seconds"``, ``"hours"``, ...)."""
    return lambda raw: timedelta(**{unit: float(raw)})


seconds, minutes, days = duration("seconds"), duration("minutes"), duration("days")


def pairs(raw: str) -> dict[str, str]:
    """The parse of ``"key=value,key=value"`` into a dict, lower-cased."""
    out: dict[str, str] = {}
    for part in filter(str.strip, raw.split(",")):
        if "=" not in part:
            raise ValueError(f"part {part!r} is not key=value")
        key, value = part.split("=", 1)
        out[key.strip().lower()] = value.strip().lower()
    return out


def artifacts_dir() -> str:
    return setting("ARTIFACTS_DIR", "artifacts")
