-- GitHub project sync state, daily project metrics and hourly bug-risk snapshots.
-- Additive only: new tables and indexes.

-- One row per project: where the incremental sync stands.
-- since_watermark = the newest `updated_at` seen in a complete sync; the next request asks for
-- `since=since_watermark`. The stored ETag is only sent when it belongs to that same request
-- (etag_since = since_watermark): then an unchanged repo answers 304.
CREATE TABLE IF NOT EXISTS analytics.project_sync_state (
    project_id      bigint      PRIMARY KEY REFERENCES analytics.projects (project_id),
    since_watermark timestamptz,
    etag            text,                   -- ETag of page 1 of the request made with...
    etag_since      timestamptz,            -- ...this `since` (NULL: the full listing)
    last_synced_at  timestamptz,            -- last sync that completed (200 or 304)
    last_checked_at timestamptz,            -- last attempt, whatever its outcome
    last_status     text CHECK (last_status IN ('synced', 'not_modified', 'failed')),
    last_error      text,
    last_http_status integer,
    issues_fetched  integer     NOT NULL DEFAULT 0,
    issues_written  integer     NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Daily metrics per project and PT business date (written by compute_project_metrics).
CREATE TABLE IF NOT EXISTS analytics.project_daily_metrics (
    project_id        bigint      NOT NULL REFERENCES analytics.projects (project_id),
    metric_date       date        NOT NULL,
    open_bugs         integer     NOT NULL DEFAULT 0,
    open_critical     integer     NOT NULL DEFAULT 0,
    open_high         integer     NOT NULL DEFAULT 0,
    open_medium       integer     NOT NULL DEFAULT 0,
    open_low          integer     NOT NULL DEFAULT 0,
    open_unclassified integer     NOT NULL DEFAULT 0,
    bugs_opened       integer     NOT NULL DEFAULT 0,
    bugs_closed       integer     NOT NULL DEFAULT 0,
    closed_by_severity jsonb      NOT NULL DEFAULT '{}'::jsonb,
    prs_opened        integer     NOT NULL DEFAULT 0,
    prs_merged        integer     NOT NULL DEFAULT 0,
    prs_closed_unmerged integer   NOT NULL DEFAULT 0,
    velocity_7d       integer     NOT NULL DEFAULT 0,   -- bugs resolved in the 7 days ending metric_date
    revenue_at_risk   numeric(14, 2) NOT NULL DEFAULT 0,
    sla_breaches      integer     NOT NULL DEFAULT 0,
    sla_breaches_by_severity jsonb NOT NULL DEFAULT '{}'::jsonb,
    sync_status       text,
    last_synced_at    timestamptz,
    run_id            text,
    computed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, metric_date)
);

-- One row per hour of the hourly DAG (its window end): the bug-risk picture at that time.
CREATE TABLE IF NOT EXISTS analytics.bug_risk_snapshots (
    snapshot_hour      timestamptz PRIMARY KEY,
    revenue_at_risk    numeric(14, 2) NOT NULL DEFAULT 0,
    open_bugs          integer     NOT NULL DEFAULT 0,
    open_by_severity   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    velocity_7d        integer     NOT NULL DEFAULT 0,
    sla_breaches       integer     NOT NULL DEFAULT 0,
    sla_breaches_by_severity jsonb NOT NULL DEFAULT '{}'::jsonb,
    unassigned_critical integer    NOT NULL DEFAULT 0,
    critical_in_breach integer     NOT NULL DEFAULT 0,
    per_project        jsonb       NOT NULL DEFAULT '[]'::jsonb,
    details            jsonb       NOT NULL DEFAULT '{}'::jsonb,   -- the bugs behind the alerts
    config             jsonb       NOT NULL DEFAULT '{}'::jsonb,   -- SLA hours, threshold used
    alerts             jsonb       NOT NULL DEFAULT '[]'::jsonb,   -- transitions of the last alert pass
    run_id             text,
    computed_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS issues_closed_at_idx ON analytics.issues (project_id, closed_at)
    WHERE closed_at IS NOT NULL;
