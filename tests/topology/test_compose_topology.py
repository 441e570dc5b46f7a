"""docker-compose.yaml's deployment, run as processes (tests/topology/conftest.py): every DAG
through the REST API on Celery workers, the scheduler's own hourly window, mapped tasks on both
workers, a deadline in the separate triggerer, and a worker killed mid-ingest."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.topology.compose import REPO_ROOT

pytestmark = [pytest.mark.topology]


def test_services_run_in_their_own_homes_with_generated_configs(deployment):
    homes = {name: spec.root for name, spec in deployment.topo.specs.items()}
    airflow_services = [
        n for n in homes if n.startswith("airflow-") and n not in ("airflow-init", "airflow-cli")
    ]
    assert len(airflow_services) == 6  # api-server, scheduler, dag-processor, triggerer, 2 workers
    assert len({homes[n] for n in airflow_services}) == 6
    for name in airflow_services:
        spec = deployment.topo.specs[name]
        assert spec.env["AIRFLOW_HOME"] == str(spec.root)
        assert (spec.root / "airflow.cfg").exists(), name
        # the container's mounts, as docker-compose.yaml lists them: the repo's code, the shared
        # logs/artifacts/ledger folders
        mounted = {dest: host for host, dest in spec.volumes}
        assert mounted["/opt/airflow/dags"] == REPO_ROOT / "dags", name
        for host, dest in spec.volumes:
            assert (spec.root / dest.removeprefix("/opt/airflow/")).resolve() == host.resolve()


DAG_IDS = ("analytics_hourly", "analytics_nightly", "inventory_refresh", "analytics_weekly",
           "cron_ledger")  # fmt: skip
EVENTS_PER_HOUR = 2000


def _window_rows(dep, start, end) -> int:
    with dep.db() as conn:
        return conn.execute(
            "SELECT count(*) FROM analytics.posthog_events"
            " WHERE created_at >= %s AND created_at < %s",
            (start, end),
        ).fetchone()[0]


def _scheduled_runs(dep, dag_id: str) -> list[dict]:
    runs = dep.api("GET", f"/dags/{dag_id}/dagRuns").json()["dag_runs"]
    return [r for r in runs if r["run_type"] == "scheduled"]


def _drop_scheduled_runs(dep, dag_id: str, wait: bool = True) -> None:
    if wait:
        runs = dep.wait(f"{dag_id}'s latest scheduled run", lambda: _scheduled_runs(dep, dag_id))
    else:
        runs = _scheduled_runs(dep, dag_id)
    for run in runs:
        path = f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}"
        if run["state"] != "success":  # a running run cannot be deleted
            assert dep.api("PATCH", path, json={"state": "success"}).status_code == 200
        resp = dep.api("DELETE", path)
        assert resp.status_code == 204, resp.text


def test_the_scheduler_creates_and_runs_the_scheduled_runs(deployment):
    """Unpaused, each cron DAG gets its latest scheduled run from the scheduler itself; the
    hourly one ingests the last complete hour (catchup from ANALYTICS_HOURLY_START)."""
    dep = deployment
    from include.sandbox.generator import load_sample_data

    load_sample_data(dep.analytics_dsn)  # the sample clients, projects and history
    dep.sandbox("POST", "/_sandbox/faults", {"posthog_events_per_hour": EVENTS_PER_HOUR})
    for dag_id in DAG_IDS:
        dep.wait(
            f"{dag_id} parsed", lambda d=dag_id: dep.api("GET", f"/dags/{d}").status_code == 200
        )
        resp = dep.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        assert resp.status_code == 200, resp.text
    # The nightly's latest tick judges yesterday, a day the sample history does not hold: its
    # freshness gate would (rightly) wait for data for an hour. Its scheduled creation is shown,
    # then the run is dropped; the REST-triggered run below judges a day with data.
    _drop_scheduled_runs(dep, "analytics_nightly")
    start = datetime.fromisoformat(dep.values["ANALYTICS_HOURLY_START"])

    def scheduled_hourly():  # (an hour boundary may pass meanwhile: pick the window)
        runs = _scheduled_runs(dep, "analytics_hourly")
        return next((r for r in runs if datetime.fromisoformat(r["data_interval_start"]) == start),
                    None)  # fmt: skip

    run = dep.wait("the scheduler's own hourly run", scheduled_hourly, timeout=120)
    assert datetime.fromisoformat(run["data_interval_start"]) == start
    dep.wait_run("analytics_hourly", run["dag_run_id"], timeout=300)
    assert _window_rows(dep, start, start + timedelta(hours=1)) == EVENTS_PER_HOUR
    with dep.db() as conn:
        mark = conn.execute(
            "SELECT complete_until FROM ops.watermarks WHERE stream = 'posthog'"
        ).fetchone()
    assert mark is not None and mark[0] >= start + timedelta(hours=1)
    for dag_id in ("inventory_refresh", "analytics_weekly", "cron_ledger"):
        scheduled = dep.wait(f"{dag_id}'s scheduled run", lambda d=dag_id: _scheduled_runs(dep, d))
        dep.wait_run(dag_id, scheduled[0]["dag_run_id"], timeout=300)
    assert dep.topo.procs["airflow-scheduler"].poll() is None  # the scheduler stayed up


def test_every_dag_triggered_through_the_rest_api_succeeds_on_celery(deployment):
    dep = deployment
    start = datetime.fromisoformat(dep.values["ANALYTICS_HOURLY_START"])
    from include.sandbox.generator import write_ladder_file

    with dep.db() as conn:
        clients = conn.execute(
            "SELECT count(*) FROM analytics.client_api_credentials WHERE status = 'connected'"
        ).fetchone()[0]
    ladder = write_ladder_file(Path(dep.values["LEDGER_HOST_DIR"]) / "ladder.jsonl", lines=7)
    # Calls that take a moment, so the mapped refresh batches overlap on the two workers.
    dep.sandbox("POST", "/_sandbox/faults", {"inventory_latency_ms": 1500})
    earlier = start - timedelta(hours=1)
    confs = {
        "analytics_hourly": {
            "window_start": earlier.isoformat().replace("+00:00", "Z"),
            "window_end": start.isoformat().replace("+00:00", "Z"),
        },
        "analytics_nightly": {"target_date": "2026-11-20"},
        "inventory_refresh": {},
        "analytics_weekly": {"week_ending": "2026-11-22"},
        "cron_ledger": {},
    }
    # The refresh first and alone: its two concurrent batches can only go to different workers
    # (one task per worker); then the others side by side.
    runs = {"inventory_refresh": dep.trigger("inventory_refresh", confs.pop("inventory_refresh"))}
    dep.wait_run("inventory_refresh", runs["inventory_refresh"], timeout=420)
    _drop_scheduled_runs(dep, "analytics_nightly", wait=False)  # a 02:00 PT tick meanwhile
    runs.update({dag_id: dep.trigger(dag_id, conf) for dag_id, conf in confs.items()})
    for dag_id, run_id in runs.items():
        dep.wait_run(dag_id, run_id, timeout=420)
    assert _window_rows(dep, earlier, start) == EVENTS_PER_HOUR
    with dep.db() as conn:
        proof = conn.execute(
            "SELECT status FROM analytics.sampling_proofs WHERE target_date = '2026-11-20'"
        ).fetchone()
        refreshed = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'success')"
            " FROM analytics.inventory_refresh_results WHERE run_id = %s",
            (runs["inventory_refresh"],),
        ).fetchone()
        ledger = conn.execute("SELECT count(*) FROM ops.ledger_entries").fetchone()[0]
    assert proof == ("passed",)
    assert refreshed == (clients * 3, clients * 3)
    assert ledger == ladder["lines"] - ladder["malformed"] > 0
    artifacts = Path(dep.values["ARTIFACTS_HOST_DIR"])
    assert (artifacts / "exports" / "metrics-weekly-20261123.csv").exists()

    # The mapped refresh instances ran on both Celery workers.
    tis = dep.api(
        "GET", f"/dags/inventory_refresh/dagRuns/{runs['inventory_refresh']}/taskInstances"
    ).json()["task_instances"]
    mapped = [t for t in tis if t["task_id"] == "refresh_client"]
    assert len(mapped) >= 3, [(t["task_id"], t["map_index"]) for t in tis]
    workers = {
        name
        for name in deployment.topo.procs
        if name.startswith("airflow-worker")
        and "inventory_refresh" in deployment.topo.log_path(name).read_text(errors="replace")
    }
    assert len(workers) == 2, workers


def test_a_deleted_pool_shows_on_the_health_page_and_alerts_within_one_evaluation(deployment):
    dep = deployment
    assert dep.api("DELETE", "/pools/posthog_api").status_code == 204
    start = datetime.fromisoformat(dep.values["ANALYTICS_HOURLY_START"])
    window = (start - timedelta(hours=3), start - timedelta(hours=2))
    run_id = dep.trigger(
        "analytics_hourly",
        {
            "window_start": window[0].isoformat().replace("+00:00", "Z"),
            "window_end": window[1].isoformat().replace("+00:00", "Z"),
        },
    )

    def ingest_waits():
        ti = dep.api(
            "GET", f"/dags/analytics_hourly/dagRuns/{run_id}/taskInstances/ingest_events"
        ).json()
        return ti.get("state") == "scheduled"

    dep.wait("ingest_events waiting on the missing pool", ingest_waits, timeout=120)
    dep.wait_run("cron_ledger", dep.trigger("cron_ledger"), timeout=300)  # one evaluation
    with dep.db() as conn:
        alert = conn.execute(
            "SELECT severity, state, body FROM ops.alerts"
            " WHERE dedup_key = 'health:pool:posthog_api'"
        ).fetchone()
    assert alert is not None and alert[:2] == ("critical", "open"), alert
    assert "pool posthog_api does not exist" in alert[2]
    assert "analytics_hourly.ingest_events" in alert[2]
    page = httpx.get(
        f"{dep.base_url}/analytics-health/api/health.json",
        headers={"Authorization": f"Bearer {dep.token()}"},
        timeout=30,
    )
    assert page.status_code == 200, page.text[:500]
    jobs = {j["key"]: j for j in page.json()["jobs"]}
    assert jobs["pool:posthog_api"]["state"] == "down"
    assert "posthog_api does not exist" in jobs["pool:posthog_api"]["state_reason"]

    # Put it back the documented way: the waiting run proceeds, the next pass resolves the alert.
    cli = dep.topo.spec("airflow-cli")
    cli.argv = [sys.executable, "-m", "include.analytics_ops.pools", "ensure"]
    ensure = dep.topo.run(cli, timeout=300)
    assert ensure.returncode == 0, dep.topo.tail("airflow-cli")
    assert "created pool posthog_api (3 slots)" in dep.topo.tail("airflow-cli")
    dep.wait_run("analytics_hourly", run_id, timeout=300)
    dep.wait_run("cron_ledger", dep.trigger("cron_ledger"), timeout=300)
    with dep.db() as conn:
        state = conn.execute(
            "SELECT state FROM ops.alerts WHERE dedup_key = 'health:pool:posthog_api'"
        ).fetchone()[0]
    assert state == "resolved"


def test_a_worker_killed_mid_ingest_the_window_completes_exactly_once(deployment):
    """SIGKILL of the Celery worker running ``ingest_events`` (a lost node / OOM kill): the
    scheduler notices the dead task, retries it on the other worker, and the window ends with
    every event exactly once. The run overruns its (45 s) deadline meanwhile, which the separate
    triggerer turns into an alert."""
    dep = deployment
    start = datetime.fromisoformat(dep.values["ANALYTICS_HOURLY_START"])
    window = (start - timedelta(hours=2), start - timedelta(hours=1))
    dep.sandbox("POST", "/_sandbox/faults", {"posthog_latency_ms": 700})
    run_id = dep.trigger(
        "analytics_hourly",
        {
            "window_start": window[0].isoformat().replace("+00:00", "Z"),
            "window_end": window[1].isoformat().replace("+00:00", "Z"),
            "page_size": 100,
        },
    )

    # The Celery worker logs each workload it executes with the task's log path.
    marker = f"run_id={run_id}/task_id=ingest_events/attempt=1.log"

    def loading_worker():
        # A page is committed (checkpoint) and more are to come: find who runs it.
        loaded = _window_rows(dep, *window)
        if not 0 < loaded < EVENTS_PER_HOUR // 2:
            return None
        return next(
            (
                name
                for name in dep.topo.procs
                if name.startswith("airflow-worker")
                and dep.topo.procs[name].poll() is None
                and marker in dep.topo.log_path(name).read_text(errors="replace")
            ),
            None,
        )

    victim = dep.wait("ingest_events half-way on a worker", loading_worker, timeout=180, every=0.5)
    dep.topo.kill(victim)
    dep.sandbox("POST", "/_sandbox/faults", {"posthog_latency_ms": None})
    dep.wait_run("analytics_hourly", run_id, timeout=400)

    with dep.db() as conn:
        loaded, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT uuid) FROM analytics.posthog_events"
            " WHERE created_at >= %s AND created_at < %s",
            window,
        ).fetchone()
        attempts = conn.execute(
            "SELECT count(DISTINCT try_number) FROM ops.job_runs"
            " WHERE dag_id = 'analytics_hourly' AND task_id = 'ingest_events' AND run_id = %s",
            (run_id,),
        ).fetchone()[0]
        dead = conn.execute(
            "SELECT count(*) FROM ops.dead_letters WHERE stream = 'posthog'"
        ).fetchone()[0]
        deadline = conn.execute(
            "SELECT severity, source FROM ops.alerts WHERE dedup_key = %s",
            (f"deadline_missed:analytics_hourly:{run_id}",),
        ).fetchone()
    assert loaded == distinct == EVENTS_PER_HOUR
    assert dead == 0
    assert attempts >= 2  # the killed attempt and the one that finished
    assert deadline == ("critical", "deadline")
