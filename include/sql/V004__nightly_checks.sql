-- analytics_nightly: metric checks, sampling proof, dashboard snapshot. Additive only.

-- When a rerun last replaced a row (created_at keeps the first write).
ALTER TABLE analytics.check_results ADD COLUMN IF NOT EXISTS updated_at timestamptz;
ALTER TABLE analytics.sampling_proofs ADD COLUMN IF NOT EXISTS updated_at timestamptz;
ALTER TABLE analytics.dashboard_snapshots ADD COLUMN IF NOT EXISTS updated_at timestamptz;

-- The proof's legacy exit code (passed 0 / warning 1 / critical 2), the threshold version that
-- judged it, and its per-severity counts.
ALTER TABLE analytics.sampling_proofs ADD COLUMN IF NOT EXISTS exit_code smallint;
ALTER TABLE analytics.sampling_proofs ADD COLUMN IF NOT EXISTS config_version text;
ALTER TABLE analytics.sampling_proofs ADD COLUMN IF NOT EXISTS summary jsonb NOT NULL DEFAULT '{}'::jsonb;

-- History hygiene reads the days already flagged critical per metric; alerting reads the newest
-- judged day per check.
CREATE INDEX IF NOT EXISTS check_results_flagged_idx
    ON analytics.check_results (metric, target_date) WHERE severity = 'critical' AND NOT expected;
CREATE INDEX IF NOT EXISTS check_results_check_date_idx
    ON analytics.check_results (check_name, target_date DESC);
