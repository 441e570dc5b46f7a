"""The inventory_refresh DAG is wired as designed: schedule, mapping, pool, summary rule."""

from __future__ import annotations

from pathlib import Path

import pendulum
import pytest

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "inventory_refresh.py"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["inventory_refresh"]


def pt_ticks(dag, day: str) -> list[str]:
    """Scheduled trigger times falling on PT calendar day ``day``, as PT wall-clock HH:MM."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    timetable = coerce_to_core_timetable(dag.timetable)
    start = pendulum.parse(day, tz="America/Los_Angeles")
    # Walk from the day before, as the scheduler does, and keep the ticks of ``day``.
    restriction = TimeRestriction(earliest=start.subtract(days=1), latest=None, catchup=True)
    info = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    out = []
    while info.run_after < start.add(days=1):
        if info.run_after >= start:
            out.append(info.run_after.in_timezone("America/Los_Angeles").format("HH:mm"))
        info = timetable.next_dagrun_info(
            last_automated_data_interval=info.data_interval, restriction=restriction
        )
    return out


def test_runs_every_two_hours_on_the_pacific_clock(dag):
    assert pt_ticks(dag, "2026-11-20") == [f"{h:02d}:00" for h in range(0, 24, 2)]
    assert dag.catchup is False


def test_runs_stay_on_even_pacific_hours_across_dst(dag):
    # 02:00 PST does not exist on 2026-03-08: that tick runs at 03:00 PDT instead.
    spring = pt_ticks(dag, "2026-03-08")
    assert spring == ["00:00", "03:00", *(f"{h:02d}:00" for h in range(4, 24, 2))]
    fall = pt_ticks(dag, "2026-11-01")  # 01:00-02:00 happens twice
    assert fall == [f"{h:02d}:00" for h in range(0, 24, 2)]


def test_refresh_is_mapped_per_batch_under_the_pool(dag):
    refresh = dag.get_task("refresh_client")
    partial = refresh.partial_kwargs
    assert partial["pool"] == "inventory_api"
    # pool slots = calls in flight inside one instance, so the pool counts API calls
    assert partial["pool_slots"] == partial["concurrency"] >= 1
    assert partial["max_active_tis_per_dagrun"] >= 1
    assert set(refresh.expand_input.value) == {"batch"}
    assert "label" in partial["map_index_template"]
    assert dag.get_task("list_refresh_jobs").downstream_task_ids == {"refresh_client"}


def test_summary_runs_after_failures_and_is_the_only_leaf(dag):
    summary = dag.get_task("summarize_refresh")
    assert summary.trigger_rule == "all_done"
    assert [t.task_id for t in dag.leaves] == ["summarize_refresh"]
    assert set(dag.params.keys()) == {"client_ids", "platforms"}
