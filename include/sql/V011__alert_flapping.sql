-- Flap detection (alerts.py): when an alert started flapping; NULL = not flapping. Additive only.
ALTER TABLE ops.alerts ADD COLUMN IF NOT EXISTS flapping_since timestamptz;
CREATE INDEX IF NOT EXISTS alerts_flapping_idx ON ops.alerts (id) WHERE flapping_since IS NOT NULL;
