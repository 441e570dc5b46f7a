-- analytics_hourly / PostHog ingest: additive only (V001/V002 created the tables).

-- A window's rollups (entity stats, leads, daily_metrics traffic) were recomputed after its last
-- load. The watermark only advances over windows that are loaded AND rolled up; a reload of the
-- window clears it again.
ALTER TABLE ops.checkpoints ADD COLUMN IF NOT EXISTS rolled_up_at timestamptz;
CREATE INDEX IF NOT EXISTS checkpoints_stream_start_idx
    ON ops.checkpoints (stream, window_start, window_end);

-- Leads are recomputed per (listing_id, seeker_id) pair from every lead event of the pair.
CREATE INDEX IF NOT EXISTS posthog_events_lead_pair_idx
    ON analytics.posthog_events ((properties ->> 'listing_id'),
                                 (COALESCE(properties ->> 'seeker_id', distinct_id)))
    WHERE event = 'lead_submitted';

-- Health queries: recent attempts of one task.
CREATE INDEX IF NOT EXISTS job_runs_task_finished_idx
    ON ops.job_runs (dag_id, task_id, finished_at DESC);

-- Dead letters are looked up by the PostHog uuid (source_key) when a window is reloaded.
CREATE INDEX IF NOT EXISTS dead_letters_source_key_idx ON ops.dead_letters (stream, source_key);
