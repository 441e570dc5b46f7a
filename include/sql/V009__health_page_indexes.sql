-- Health page (issue 9): indexes behind include/analytics_ops/health_page/queries.py, so the page
-- answers in milliseconds on a year of history. Additive only.

-- Latest attempt of a DAG (any task) and the DAG list (loose index scan on the leading dag_id).
CREATE INDEX IF NOT EXISTS job_runs_dag_recent_idx ON ops.job_runs (dag_id, started_at DESC);

-- Last failure of a DAG, however old, without walking its successful history.
CREATE INDEX IF NOT EXISTS job_runs_dag_failures_idx ON ops.job_runs (dag_id, started_at DESC)
    WHERE status IN ('failed', 'partial', 'timeout');

-- All attempts of one DAG run (the outcome of the latest run).
CREATE INDEX IF NOT EXISTS job_runs_dag_run_idx ON ops.job_runs (dag_id, run_id);

-- A ledger job is its `job` (lines without one: their `source`), as in the health evaluation:
-- last line / last failure / last success per job.
CREATE INDEX IF NOT EXISTS ledger_entries_job_name_idx
    ON ops.ledger_entries ((coalesce(job, source)), ts DESC);
CREATE INDEX IF NOT EXISTS ledger_entries_job_failures_idx
    ON ops.ledger_entries ((coalesce(job, source)), ts DESC) WHERE exit_code <> 0;

-- "Failing since" / last success of one client x platform.
CREATE INDEX IF NOT EXISTS inventory_refresh_results_client_idx
    ON analytics.inventory_refresh_results (client_id, platform, refreshed_at DESC);
