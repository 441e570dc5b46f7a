-- Pools are monitored like jobs: a missing pool (or one smaller than a task's pool_slots) leaves
-- tasks 'scheduled' forever with only a scheduler warning, so it gets a `pool:<name>` state.
ALTER TABLE ops.job_health DROP CONSTRAINT IF EXISTS job_health_kind_check;
ALTER TABLE ops.job_health
    ADD CONSTRAINT job_health_kind_check CHECK (kind IN ('dag', 'ledger', 'artifact', 'pool'));
