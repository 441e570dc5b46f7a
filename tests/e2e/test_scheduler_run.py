"""The DAGs under the real Airflow services (``airflow standalone``: scheduler, dag-processor,
api-server, triggerer; LocalExecutor), the way production runs them:

(a) scheduled ``analytics_hourly`` runs are created for past windows under catchup and succeed;
(b) ``airflow backfill create`` over three windows already ingested leaves the tables unchanged;
(c) ``airflow dags trigger inventory_refresh -c '{"client_ids": [...]}'`` (no logical date) works;
(d) the analytics PostgreSQL going down in the middle of an ingest: the task fails, Airflow
    retries, the window completes with exact counts.

The analytics database lives on its own embedded server here so it can be stopped without taking
Airflow's metadata database with it. Run alone with ``make test-scheduler``.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from include.analytics_ops.migrate import apply_migrations
from include.sandbox import constants as sandbox_constants
from include.sandbox.generator import load_sample_data
from tests.e2e.airflow_services import Standalone

pytestmark = [pytest.mark.e2e, pytest.mark.scheduler]

# Bookkeeping stamps of *when* work ran (now()); every other column must be identical.
VOLATILE = {
    "updated_at",
    "computed_at",
    "refreshed_at",
    "synced_at",
    "ingested_at",
    "evaluated_at",
    "rolled_up_at",
    "traffic_updated_at",
}
# Business and stream-state tables a backfill of ingested windows must leave exactly as they were.
CHECKSUM_TABLES = (
    "analytics.posthog_events",
    "analytics.listing_daily_stats",
    "analytics.user_daily_stats",
    "analytics.development_daily_stats",
    "analytics.leads",
    "analytics.daily_metrics",
    "ops.checkpoints",
    "ops.watermarks",
    "ops.dead_letters",
)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")


@pytest.fixture(scope="module")
def analytics_server():
    """A second embedded PostgreSQL holding only the analytics database."""
    import pgserver
    from pgserver.postgres_server import pg_ctl

    pg_dir = tempfile.mkdtemp(prefix="aops-pg2-", dir="/tmp")
    server = pgserver.get_server(pg_dir, cleanup_mode="stop")
    dsn = server.get_uri()

    def stop():
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)

    def start():
        with server._lock:
            server.ensure_postgres_running()

    server.stop_now, server.start_now = stop, start
    apply_migrations(dsn)
    load_sample_data(dsn)
    yield server, dsn
    server.cleanup()


def _conn_json(dsn: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": info["host"],
            "login": info["user"],
            "schema": info["dbname"],
        }
    )


def _checksums(dsn: str) -> dict[str, str]:
    sums = {}
    with psycopg.connect(dsn) as conn:
        for table in CHECKSUM_TABLES:
            schema, name = table.split(".")
            cols = [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = %s"
                    " AND table_name = %s ORDER BY ordinal_position",
                    (schema, name),
                )
                if r[0] not in VOLATILE
            ]
            row_expr = "concat_ws('|', " + ", ".join(f'"{c}"::text' for c in cols) + ")"
            sums[table] = conn.execute(
                f"SELECT count(*) || ':' || coalesce(md5(string_agg({row_expr}, E'\\n'"
                f" ORDER BY {row_expr})), '') FROM {table}"
            ).fetchone()[0]
    return sums


def _source_uuids(sandbox_url: str, start: datetime, end: datetime) -> set[str]:
    """Every event PostHog (the stand-in) holds for a window, read with one big query."""
    resp = httpx.post(
        f"{sandbox_url}/api/projects/{sandbox_constants.POSTHOG_PROJECT_ID}/query/",
        headers={"Authorization": f"Bearer {sandbox_constants.POSTHOG_API_KEY}"},
        json={
            "query": {
                "kind": "HogQLQuery",
                "query": "SELECT uuid FROM events WHERE created_at >= {s} AND"
                " created_at < {e} ORDER BY uuid LIMIT 50000",
                "values": {"s": start.isoformat(), "e": end.isoformat()},
            },
            "refresh": "force_blocking",
        },
        timeout=60,
    )
    resp.raise_for_status()
    return {row[0] for row in resp.json()["results"]}


def _loaded_uuids(dsn: str, start: datetime, end: datetime) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [
            str(r[0])
            for r in conn.execute(
                "SELECT uuid FROM analytics.posthog_events"
                " WHERE created_at >= %s AND created_at < %s",
                (start, end),
            )
        ]


@pytest.fixture(scope="module")
def services(devenv, _sandbox_process, analytics_server, tmp_path_factory):
    _, dsn = analytics_server
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = now - timedelta(hours=3)
    env = devenv.env(
        AIRFLOW_CONN_ANALYTICS_DB=_conn_json(dsn),
        ANALYTICS_HOURLY_START=_iso(first),  # catchup: exactly the 3 windows before `now`
        POSTHOG_SETTLE_MINUTES="0",
        POSTHOG_INGEST_START=_iso(first - timedelta(hours=1)),
    )
    standalone = Standalone(env, tmp_path_factory.mktemp("standalone") / "standalone.log")
    standalone.start()
    try:
        for dag_id in ("analytics_hourly", "inventory_refresh"):
            standalone.wait_for_dag(dag_id)
        yield standalone, dsn, first, now
    finally:
        standalone.stop()


def _trigger(standalone, dag_id: str, conf: dict) -> str:
    """``airflow dags trigger`` (no logical date); returns the new run id."""
    result = standalone.cli("dags", "trigger", dag_id, "-o", "json", "-c", json.dumps(conf))
    assert result.returncode == 0, result.stdout + result.stderr
    # Airflow may log a warning line before the JSON document.
    payload = next(line for line in result.stdout.splitlines() if line.startswith("[{"))
    return json.loads(payload)[0]["dag_run_id"]


def _succeeded(run_type: str, count: int):
    def check(runs: list[dict]) -> bool:
        mine = [r for r in runs if r["run_type"] == run_type]
        failed = [r for r in mine if r["state"] == "failed"]
        assert not failed, f"{run_type} runs failed: {[r['run_id'] for r in failed]}"
        return len(mine) >= count and all(r["state"] == "success" for r in mine)

    return check


def test_a_catchup_creates_and_succeeds_the_past_windows(services, _sandbox_process):
    standalone, dsn, first, now = services
    assert standalone.cli("dags", "unpause", "analytics_hourly").returncode == 0
    runs = standalone.wait_for_runs(
        "analytics_hourly",
        _succeeded("scheduled", 3),
        timeout=420,
        what="3 successful scheduled runs",
    )
    scheduled = sorted(r["data_interval_start"] for r in runs if r["run_type"] == "scheduled")
    assert len(scheduled) == 3
    assert datetime.fromisoformat(scheduled[0].replace("Z", "+00:00")) == first
    expected = _source_uuids(_sandbox_process.url, first, now)
    loaded = _loaded_uuids(dsn, first, now)
    assert expected and len(loaded) == len(set(loaded)) == len(expected)
    assert set(loaded) == expected


def test_b_backfill_of_ingested_windows_changes_nothing(services):
    standalone, dsn, first, _ = services
    before = _checksums(dsn)
    result = standalone.cli(
        "backfill",
        "create",
        "--dag-id",
        "analytics_hourly",
        "--from-date",
        _iso(first),
        "--to-date",
        _iso(first + timedelta(hours=2)),
        "--reprocess-behavior",
        "completed",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    standalone.wait_for_runs(
        "analytics_hourly",
        _succeeded("backfill", 3),
        timeout=420,
        what="3 successful backfill runs",
    )
    assert _checksums(dsn) == before


def test_c_trigger_inventory_refresh_with_conf_and_no_logical_date(services):
    standalone, dsn, _, _ = services
    clients = ["client-001", "client-002"]
    run_id = _trigger(standalone, "inventory_refresh", {"client_ids": clients})
    assert standalone.cli("dags", "unpause", "inventory_refresh").returncode == 0
    standalone.wait_for_runs(
        "inventory_refresh",
        lambda runs: any(
            r["dag_run_id"] == run_id and r["state"] in ("success", "failed") for r in runs
        ),
        timeout=300,
        what=f"run {run_id} finished",
    )
    run = next(r for r in standalone.dag_runs("inventory_refresh") if r["dag_run_id"] == run_id)
    assert run["state"] == "success" and run["logical_date"] is None
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT client_id, platform, status FROM"
            " analytics.inventory_refresh_results WHERE run_id = %s",
            (run_id,),
        )
        rows = rows.fetchall()
    assert sorted({r[0] for r in rows}) == clients
    assert len(rows) == 6 and {r[2] for r in rows} == {"success"}


def test_d_database_outage_mid_ingest_is_retried_to_an_exact_window(
    services, analytics_server, _sandbox_process
):
    standalone, dsn, first, _ = services
    server, _ = analytics_server
    start, end = first - timedelta(hours=1), first  # a window nobody ingested yet
    _sandbox_process.set_faults(posthog_latency_ms=1500)
    try:
        run_id = _trigger(
            standalone,
            "analytics_hourly",
            {"window_start": start.isoformat(), "window_end": end.isoformat(), "page_size": 20},
        )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # wait until some pages are committed
            with psycopg.connect(dsn) as conn:
                row = conn.execute(
                    "SELECT rows_loaded FROM ops.checkpoints WHERE stream = 'posthog'"
                    " AND window_start = %s AND window_end = %s",
                    (start, end),
                ).fetchone()
            if row and row[0] > 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"ingest never committed a page:\n{standalone.tail()}")
        server.stop_now()
        time.sleep(8)
        server.start_now()
    finally:
        _sandbox_process.set_faults(posthog_latency_ms=0)
    standalone.wait_for_runs(
        "analytics_hourly",
        lambda runs: any(
            r["dag_run_id"] == run_id and r["state"] in ("success", "failed") for r in runs
        ),
        timeout=420,
        what=f"run {run_id} finished",
    )
    run = next(r for r in standalone.dag_runs("analytics_hourly") if r["dag_run_id"] == run_id)
    assert run["state"] == "success", standalone.tail()
    tries = standalone.api(
        "GET", f"/dags/analytics_hourly/dagRuns/{run_id}/taskInstances/ingest_events"
    ).json()["try_number"]
    assert tries >= 2  # the outage failed an attempt; Airflow's retry completed the window
    expected = _source_uuids(_sandbox_process.url, start, end)
    loaded = _loaded_uuids(dsn, start, end)
    assert len(loaded) == len(set(loaded)) == len(expected) and set(loaded) == expected
