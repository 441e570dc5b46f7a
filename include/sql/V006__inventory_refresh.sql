-- inventory_refresh: the recorded work list of each run, and more detail on each outcome.
-- Additive only (V002 created analytics.inventory_refresh_results).

-- One row per Airflow run of inventory_refresh: what list_refresh_jobs decided. summarize_refresh
-- refuses to report on a run without this row (its listing failed), so a failed listing can never
-- turn into a green "0 of 0" run.
CREATE TABLE IF NOT EXISTS analytics.inventory_refresh_runs (
    run_id       text PRIMARY KEY,
    client_count integer     NOT NULL,
    job_count    integer     NOT NULL,
    batch_count  integer     NOT NULL,
    batch_size   integer     NOT NULL,
    platforms    text[]      NOT NULL,
    requested_client_ids text[],            -- NULL = every connected client
    listed_at    timestamptz NOT NULL DEFAULT now()
);

-- The work list: one row per (run, client, platform), with the batch (1-based; mapped
-- refresh_client instance = batch - 1) that refreshes it. Replaced as a whole when the listing
-- task runs again for the same run.
CREATE TABLE IF NOT EXISTS analytics.inventory_refresh_jobs (
    run_id    text        NOT NULL,
    client_id text        NOT NULL,
    platform  text        NOT NULL CHECK (platform IN ('shopify', 'amazon', 'all')),
    batch     integer     NOT NULL CHECK (batch >= 1),
    listed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, client_id, platform)
);
CREATE INDEX IF NOT EXISTS inventory_refresh_jobs_batch_idx
    ON analytics.inventory_refresh_jobs (run_id, batch);

ALTER TABLE analytics.inventory_refresh_results
    ADD COLUMN IF NOT EXISTS batch    integer,
    ADD COLUMN IF NOT EXISTS task_try integer,
    ADD COLUMN IF NOT EXISTS details  jsonb NOT NULL DEFAULT '{}'::jsonb;
