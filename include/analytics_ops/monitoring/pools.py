"""Pool health: a task assigned to a pool that does not exist — or that asks for more slots than
the pool has — stays ``scheduled`` forever, and Airflow's only sign is a scheduler warning
(AIRFLOW3_NOTES). Each pool the DAGs use (``include/airflow_pools.json``) and each pool a waiting
task names becomes a ``pool:<name>`` health state: ``down`` with the waiting tasks named, or
``up``. The evaluation stores and alerts it like any job (``health:pool:<name>``, critical), so it
shows on the health page within one pass of ``cron_ledger``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from include.analytics_ops.monitoring.health import HealthState

KIND = "pool"
_FIX = "create it with `python -m include.analytics_ops.pools ensure` (or Admin → Pools)"


def _task_label(ti: Mapping[str, Any]) -> str:
    label = f"{ti.get('dag_id')}.{ti.get('task_id')}"
    if ti.get("map_index") not in (None, -1):
        label += f"[{ti['map_index']}]"
    return label


def pool_states(
    existing: Mapping[str, int],
    waiting: Iterable[Mapping[str, Any]],
    required: Iterable[str],
    now: datetime,
    source: str,
) -> list[HealthState]:
    """One state per pool that the DAGs need or a waiting task names."""
    waiting_by_pool: dict[str, list[Mapping[str, Any]]] = {}
    for ti in waiting:
        waiting_by_pool.setdefault(str(ti.get("pool") or "default_pool"), []).append(ti)
    names = sorted(set(required) | set(waiting_by_pool))
    out = []
    for name in names:
        tis = waiting_by_pool.get(name, [])
        labels = [_task_label(ti) for ti in tis]
        shown = ", ".join(labels[:5]) + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")
        details: dict[str, Any] = {"source": source, "waiting": labels[:50]}
        if name not in existing:
            waits = (
                f"{len(tis)} task(s) wait for it forever ({shown})"
                if tis
                else ("tasks that use it will wait in 'scheduled' forever")
            )
            state, reason = "down", f"pool {name} does not exist: {waits}; {_FIX}"
        else:
            slots = existing[name]
            details["slots"] = slots
            too_big = [ti for ti in tis if int(ti.get("pool_slots") or 1) > slots]
            if too_big:
                need = max(int(ti.get("pool_slots") or 1) for ti in too_big)
                state = "down"
                reason = (
                    f"pool {name} has {slots} slot(s) but {_task_label(too_big[0])} needs {need}:"
                    f" {len(too_big)} task(s) can never start; raise its slots to at least {need}"
                )
            else:
                state, reason = "up", f"pool {name} exists ({slots} slots, {len(tis)} waiting)"
        out.append(HealthState(f"{KIND}:{name}", KIND, state, reason, None, now, None, details))
    return out
