"""Targeted fixes for known bugs of the pinned Airflow release, applied from
``airflow_local_settings.py`` (imported by every Airflow process at start-up).

Each fix is gated on the exact version it was written for, so an upgrade silently disables it;
``tests/dags/test_compat.py`` runs the unpatched code and fails once upstream no longer has the bug,
which is the signal to delete the fix.

AIRFLOW_73428 — ``dag.test()`` / ``airflow dags test`` of a DAG with ``deadline=`` crashes after
a *successful* run with ``'dict' object has no attribute 'hex'`` (apache/airflow#73428, fixed
upstream by #73430, not in 3.3.2). Under ``dag.test()`` the run's DAG carries its deadline alerts
as encoded dicts instead of the UUIDs of their stored rows, and ``DagRun.update_state`` hands
them to ``DeadlineAlertModel.get_by_id``. The fix lets ``get_by_id`` accept such a dict and
return a transient, never-persisted model built from it, which is all ``update_state`` needs
(it only reads ``reference_class`` before pruning the run's deadlines). Scheduler runs pass UUIDs
and take the original path unchanged.
"""

from __future__ import annotations

import os

PATCHED_VERSIONS = {"3.3.2"}
DISABLE_ENV = "ANALYTICS_OPS_DISABLE_COMPAT"


def apply() -> list[str]:
    """Apply the fixes that match the running Airflow; return their names."""
    if os.environ.get(DISABLE_ENV) == "1":
        return []
    import airflow

    if airflow.__version__ not in PATCHED_VERSIONS:
        return []
    return [name for name, fix in (("AIRFLOW_73428", _fix_73428),) if fix()]


def _fix_73428() -> bool:
    from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel
    from airflow.serialization.definitions.deadline import DeadlineAlertFields

    original = DeadlineAlertModel.get_by_id
    if getattr(original, "_analytics_ops_fix", False):
        return True
    original_func = original.__func__

    def get_by_id(cls, deadline_alert_id, *args, **kwargs):
        if isinstance(deadline_alert_id, dict):
            data = deadline_alert_id.get("__var", deadline_alert_id)
            return cls(
                reference=data[DeadlineAlertFields.REFERENCE],
                interval=data.get(DeadlineAlertFields.INTERVAL),
                callback_def=data.get(DeadlineAlertFields.CALLBACK),
            )
        return original_func(cls, deadline_alert_id, *args, **kwargs)

    get_by_id._analytics_ops_fix = True  # type: ignore[attr-defined]
    DeadlineAlertModel.get_by_id = classmethod(get_by_id)  # type: ignore[method-assign]
    return True
