"""collect_health() against a real PostgreSQL with a week of sample history.

Expected numbers are recomputed here in plain Python from the rows in the database, so a wrong
window, a wrong "final attempt" rule or a lost job shows up as a mismatch.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from include.analytics_ops.health_page.app import to_json
from include.analytics_ops.health_page.queries import HealthSettings, collect_health
from include.analytics_ops.health_page.render import render_page
from include.sandbox.samples.health import insert_sample_history

NOW = datetime(2026, 11, 20, 18, 37, 12, tzinfo=UTC)


def reference_run_stats(conn, dag_id: str, now: datetime, days: int) -> tuple[int, int]:
    """(finished runs, completed runs) of dag_id started in [now - days, now], by final attempt."""
    rows = conn.execute(
        "SELECT run_id, task_id, map_index, try_number, status, started_at FROM ops.job_runs"
        " WHERE dag_id = %s",
        (dag_id,),
    ).fetchall()
    final: dict = {}
    starts: dict = defaultdict(list)
    for run_id, task_id, map_index, try_number, status, started in rows:
        if not (now - timedelta(days=days) <= started <= now):
            continue
        starts[run_id].append(started)
        key = (run_id, task_id, map_index)
        if key not in final or final[key][0] < try_number:
            final[key] = (try_number, status)
    outcome: dict = {}
    for (run_id, _t, _m), (_n, status) in final.items():
        prev = outcome.get(run_id, "completed")
        if status in ("failed", "timeout", "cancelled") or prev == "failed":
            outcome[run_id] = "failed"
        elif status == "running" or prev == "running":
            outcome[run_id] = "running"
        elif status == "partial" or prev == "partial":
            outcome[run_id] = "partial"
        else:
            outcome[run_id] = prev
    finished = [r for r, o in outcome.items() if o != "running"]
    return len(finished), sum(1 for r in finished if outcome[r] == "completed")


@pytest.fixture
def sample(db):
    facts = insert_sample_history(db, NOW)
    return db, facts


def test_jobs_states_and_stats_match_the_history(sample):
    conn, facts = sample
    data = collect_health(conn, now=NOW, settings=HealthSettings())
    jobs = {j["key"]: j for j in data["jobs"]}
    assert set(jobs) == {
        "dag:analytics_hourly",
        "dag:analytics_nightly",
        "dag:inventory_refresh",
        "dag:cron_ledger",
        "ledger:order_check",
        "artifact:sampling_proof",  # a job_health row with no run history of its own
    }
    assert jobs["artifact:sampling_proof"]["state"] == "late"

    nightly = jobs["dag:analytics_nightly"]
    assert nightly["state"] == "late"
    assert nightly["state_source"] == "job_health"
    assert nightly["next_expected"] is not None
    assert nightly["dag_id"] == "analytics_nightly"

    hourly = jobs["dag:analytics_hourly"]
    windows = ((1, "success_rate_24h", "runs_24h"), (7, "success_rate_7d", "runs_7d"))
    for days, rate_key, runs_key in windows:
        n, ok = reference_run_stats(conn, "analytics_hourly", NOW, days)
        assert hourly[runs_key] == n
        assert hourly[rate_key] == round(100.0 * ok / n, 1)
    # The run 5 h ago failed three times; the one 10 h ago recovered on retry (not a failed run).
    assert hourly["failed_7d"] == 1
    assert hourly["last_failure"]["message"] == facts["failure_message"]
    assert hourly["last_failure"]["task_id"] == "ingest_events"
    assert hourly["daily_success_rate"][-1] < 100 < hourly["daily_success_rate"][0] + 1
    # Durations: every hourly run is ingest (40 s) then roll-up starting 4 min in, 25 s long.
    assert hourly["max_duration_seconds"] >= 4 * 60 + 25

    inv = jobs["dag:inventory_refresh"]
    assert inv["last_outcome"] == "partial"
    assert inv["partial_7d"] >= 1

    ledger_job = jobs["ledger:order_check"]
    entries = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE exit_code = 0) FROM ops.ledger_entries"
        " WHERE ts >= %s AND ts <= %s",
        (NOW - timedelta(days=1), NOW),
    ).fetchone()
    assert ledger_job["runs_24h"] == entries[0]
    assert ledger_job["success_rate_24h"] == round(100.0 * entries[1] / entries[0], 1)
    assert ledger_job["state"] == "up"
    assert "Authentication failed" in ledger_job["last_failure"]["message"]

    cron = jobs["dag:cron_ledger"]
    assert cron["state"] == "stuck"
    assert [s["task_id"] for s in cron["stuck"]] == ["evaluate_health"]

    # Worst first: the stuck and late jobs head the list, healthy ones follow.
    assert [j["state"] for j in data["jobs"]][:2] == ["stuck", "late"]


def test_fallback_states_without_job_health_rows(sample):
    conn, _ = sample
    conn.execute("TRUNCATE ops.job_health")
    data = collect_health(conn, now=NOW, settings=HealthSettings())
    jobs = {j["key"]: j for j in data["jobs"]}
    assert all(j["state_source"] == "run history" for j in jobs.values())
    assert jobs["dag:cron_ledger"]["state"] == "stuck"  # running attempt older than 2 h
    assert jobs["dag:analytics_hourly"]["state"] == "up"  # the latest run succeeded
    conn.execute(
        "UPDATE ops.job_runs SET status = 'failed', last_error = 'boom' WHERE dag_id ="
        " 'analytics_hourly' AND started_at = (SELECT max(started_at) FROM ops.job_runs"
        " WHERE dag_id = 'analytics_hourly' AND task_id = 'roll_up_stats')"
    )
    jobs = {j["key"]: j for j in collect_health(conn, now=NOW)["jobs"]}
    assert jobs["dag:analytics_hourly"]["state"] == "down"
    assert jobs["dag:analytics_hourly"]["last_failure"]["message"] == "boom"


def test_ingest_proof_snapshot_inventory_and_alerts(sample):
    conn, _ = sample
    data = collect_health(conn, now=NOW, settings=HealthSettings())
    ingest = data["ingest"]
    (events_24h,) = conn.execute(
        "SELECT count(*) FROM analytics.posthog_events WHERE created_at >= %s AND created_at <= %s",
        (NOW - timedelta(days=1), NOW),
    ).fetchone()
    assert ingest["events_24h"] == events_24h > 0
    assert (
        sum(h["events"] for h in ingest["hourly_events"])
        == conn.execute(
            "SELECT count(*) FROM analytics.posthog_events"
            " WHERE created_at >= %s AND created_at <= %s",
            (ingest["hourly_events"][0]["hour"], NOW),
        ).fetchone()[0]
    )
    assert 0 in [h["events"] for h in ingest["hourly_events"]]  # the empty hour is visible
    assert ingest["dead_letters_waiting"] == 3
    # rate-limit hits of analytics_hourly attempts in the last 24 h (the ingest's
    # posthog_rate_limit_hits); "3" (a string) counts too.
    rows = conn.execute(
        "SELECT stats FROM ops.job_runs WHERE dag_id = 'analytics_hourly'"
        " AND started_at >= %s AND started_at <= %s",
        (NOW - timedelta(days=1), NOW),
    ).fetchall()
    assert ingest["rate_limit_hits_24h"] == sum(
        int(r[0].get("posthog_rate_limit_hits", 0)) for r in rows
    )
    assert ingest["lag_seconds"] == round((NOW - ingest["watermark"]).total_seconds(), 1)

    assert data["sampling_proof"]["status"] == "warning"
    assert data["sampling_proof"]["anomaly_count"] == 1
    assert data["snapshot"]["status"] == "partial"
    assert data["snapshot"]["error_count"] == 1

    inv = data["inventory"]
    assert inv["last_run"]["summary"] == "4 successful, 2 failed out of 6"
    failing = {(c["client_id"], c["platform"]): c for c in inv["failing_clients"]}
    assert set(failing) == {("c3", "shopify"), ("c3", "amazon")}
    since = failing[("c3", "shopify")]["failing_since"]
    last_ok = failing[("c3", "shopify")]["last_success"]
    assert last_ok < since  # failing since the first failure after the last success

    alerts = data["alerts"]
    assert alerts["open_by_severity"] == {"critical": 1, "warning": 2, "info": 1}
    assert [a["severity"] for a in alerts["open"]] == ["critical", "warning", "warning", "info"]

    assert data["overall"]["status"] == "critical"
    texts = " | ".join(p["text"] for p in data["overall"]["problems"])
    assert "analytics_nightly is late" in texts and "cron_ledger is stuck" in texts


def test_empty_database_renders_and_serialises(db):
    data = collect_health(db, now=NOW)
    assert data["jobs"] == [] and data["overall"]["status"] == "ok"
    html = render_page(data)
    assert "Everything is OK" in html
    assert to_json(data).startswith("{")


def test_html_escapes_database_text(sample):
    conn, _ = sample
    conn.execute(
        "UPDATE ops.alerts SET title = '<script>alert(1)</script>' WHERE severity = 'info'"
    )
    html = render_page(collect_health(conn, now=NOW), ui_base="")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="/dags/analytics_nightly"' in html


def test_silences_are_listed_and_mark_the_alerts_they_hold(sample):
    conn, _ = sample
    warning_keys = [
        r[0]
        for r in conn.execute(
            "SELECT dedup_key FROM ops.alerts WHERE state = 'open' AND severity = 'warning'"
            " ORDER BY dedup_key"
        )
    ]
    conn.execute(
        "INSERT INTO ops.alert_silences (pattern, starts_at, ends_at, reason, created_by) VALUES"
        " (%s, %s, %s, 'db <upgrade>', 'ana'),"  # active at NOW, matches one warning exactly
        " ('zzz:*', %s, %s, 'tonight', 'bo'),"  # scheduled
        " ('*', %s, %s, 'over', 'cy')",  # already over at NOW: ignored
        (warning_keys[0], NOW - timedelta(hours=1), NOW + timedelta(hours=1),
         NOW + timedelta(hours=3), NOW + timedelta(hours=4),
         NOW - timedelta(hours=3), NOW - timedelta(hours=2)),
    )  # fmt: skip
    data = collect_health(conn, now=NOW)
    silences = data["alerts"]["silences"]
    assert [(s["pattern"], s["active"]) for s in silences] == [
        (warning_keys[0], True), ("zzz:*", False),
    ]  # fmt: skip
    held = {a["dedup_key"]: a["silenced_by"] for a in data["alerts"]["open"]}
    assert held[warning_keys[0]] == silences[0]["id"]
    assert [k for k, v in held.items() if v] == [warning_keys[0]]
    assert not any(a["flapping_since"] for a in data["alerts"]["open"])
    conn.execute("UPDATE ops.alerts SET flapping_since = %s WHERE dedup_key = %s",
                 (NOW, warning_keys[-1]))  # fmt: skip
    data = collect_health(conn, now=NOW)
    html = render_page(data, ui_base="")
    assert html.count('class="badge flapping"') == 1
    assert 'id="silences"' in html and "db &lt;upgrade&gt;" in html
    assert html.count('class="badge silenced"') == 1
    assert '"silences"' in to_json(data)
