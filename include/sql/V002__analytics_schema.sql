-- analytics: the business data.
CREATE SCHEMA IF NOT EXISTS analytics;

-- One row per Pacific-time calendar day. conversion_rate is always conversions / sessions
-- (never an average of rates), so it is a generated column.
CREATE TABLE analytics.daily_metrics (
    metric_date     date PRIMARY KEY,
    revenue         numeric(14, 2),
    orders          integer,
    sessions        integer,
    conversions     integer,
    conversion_rate double precision GENERATED ALWAYS AS (
        CASE WHEN sessions > 0 THEN conversions::double precision / sessions END) STORED,
    ideas_total     integer,
    ideas_added     integer,
    traffic_updated_at timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE analytics.check_results (
    target_date    date        NOT NULL,
    check_name     text        NOT NULL,
    metric         text        NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('range', 'trend')),
    value          double precision,
    centre         double precision,
    expected_low   double precision,
    expected_high  double precision,
    score          double precision,
    severity       text        NOT NULL CHECK (severity IN ('passed', 'warning', 'critical', 'insufficient_history')),
    explanation    text        NOT NULL DEFAULT '',
    excluded       boolean     NOT NULL DEFAULT false,  -- kept out of later baselines
    expected       boolean     NOT NULL DEFAULT false,  -- marked expected by a person (e.g. promotion)
    config_version text,
    details        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    run_id         text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target_date, check_name)
);

CREATE TABLE analytics.sampling_proofs (
    target_date   date PRIMARY KEY,
    status        text        NOT NULL CHECK (status IN ('passed', 'warning', 'critical')),
    checks        jsonb       NOT NULL DEFAULT '[]'::jsonb,
    anomalies     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    artifact_path text,
    run_id        text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE analytics.dashboard_snapshots (
    snapshot_date date PRIMARY KEY,
    status        text        NOT NULL CHECK (status IN ('complete', 'partial')),
    proof_status  text,
    metrics       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    summary       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    errors        jsonb       NOT NULL DEFAULT '[]'::jsonb,
    artifact_path text,
    run_id        text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Raw PostHog events, exactly once per uuid.
CREATE TABLE analytics.posthog_events (
    uuid        uuid PRIMARY KEY,
    event       text        NOT NULL,
    distinct_id text        NOT NULL,
    "timestamp" timestamptz NOT NULL,
    created_at  timestamptz NOT NULL,
    properties  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    ingested_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX posthog_events_timestamp_idx ON analytics.posthog_events ("timestamp");
CREATE INDEX posthog_events_created_at_idx ON analytics.posthog_events (created_at);

CREATE TABLE analytics.listing_daily_stats (
    listing_id     text    NOT NULL,
    stat_date      date    NOT NULL,
    development_id text,
    views          integer NOT NULL DEFAULT 0,
    unique_viewers integer NOT NULL DEFAULT 0,
    saves          integer NOT NULL DEFAULT 0,
    leads          integer NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (listing_id, stat_date)
);

CREATE TABLE analytics.user_daily_stats (
    user_id     text    NOT NULL,
    user_type   text    NOT NULL,
    stat_date   date    NOT NULL,
    events      integer NOT NULL DEFAULT 0,
    page_views  integer NOT NULL DEFAULT 0,
    sessions    integer NOT NULL DEFAULT 0,
    listings_viewed integer NOT NULL DEFAULT 0,
    leads       integer NOT NULL DEFAULT 0,
    purchases   integer NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, user_type, stat_date)
);

CREATE TABLE analytics.development_daily_stats (
    development_id text    NOT NULL,
    stat_date      date    NOT NULL,
    views          integer NOT NULL DEFAULT 0,
    unique_viewers integer NOT NULL DEFAULT 0,
    leads          integer NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (development_id, stat_date)
);

CREATE TABLE analytics.leads (
    listing_id     text        NOT NULL,
    seeker_id      text        NOT NULL,
    development_id text,
    first_seen_at  timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    lead_count     integer     NOT NULL DEFAULT 1,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (listing_id, seeker_id)
);

-- Idea pool (feeds daily_metrics.ideas_total / ideas_added and the snapshot's idea-pool category).
CREATE TABLE analytics.ideas (
    idea_id    text PRIMARY KEY,
    title      text        NOT NULL,
    status     text        NOT NULL DEFAULT 'new',
    created_at timestamptz NOT NULL
);

CREATE TABLE analytics.clients (
    client_id  text PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- status 'connected' = active.
CREATE TABLE analytics.client_api_credentials (
    client_id  text        NOT NULL REFERENCES analytics.clients (client_id),
    provider   text        NOT NULL DEFAULT 'default',
    status     text        NOT NULL CHECK (status IN ('connected', 'disconnected', 'error', 'pending')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, provider)
);

-- One row per Airflow run x client x platform.
CREATE TABLE analytics.inventory_refresh_results (
    run_id      text        NOT NULL,
    client_id   text        NOT NULL,
    platform    text        NOT NULL CHECK (platform IN ('shopify', 'amazon', 'all')),
    status      text        NOT NULL CHECK (status IN ('success', 'failed')),
    http_status integer,
    skus        integer,
    platforms   integer,
    duration_ms integer,
    attempts    integer     NOT NULL DEFAULT 1,
    error       text,
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, client_id, platform)
);
CREATE INDEX inventory_refresh_results_time_idx ON analytics.inventory_refresh_results (refreshed_at DESC);

CREATE TABLE analytics.projects (
    project_id     bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    repo           text        NOT NULL UNIQUE CHECK (repo ~ '^[^/\s]+/[^/\s]+$'),
    name           text        NOT NULL,
    active         boolean     NOT NULL DEFAULT true,
    last_synced_at timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- GitHub issues and pull requests.
CREATE TABLE analytics.issues (
    project_id      bigint      NOT NULL REFERENCES analytics.projects (project_id),
    number          integer     NOT NULL,
    is_pull_request boolean     NOT NULL DEFAULT false,
    state           text        NOT NULL CHECK (state IN ('open', 'closed')),
    title           text        NOT NULL,
    severity        text CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    is_bug          boolean     NOT NULL DEFAULT false,
    revenue_impact_per_day numeric(14, 2) NOT NULL DEFAULT 0,
    assignee        text,
    labels          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    opened_at       timestamptz NOT NULL,
    closed_at       timestamptz,
    merged_at       timestamptz,
    updated_at      timestamptz,
    synced_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, number)
);
CREATE INDEX issues_open_idx ON analytics.issues (project_id, severity) WHERE state = 'open';

CREATE TABLE analytics.project_health (
    project_id  bigint      NOT NULL REFERENCES analytics.projects (project_id),
    health_date date        NOT NULL,
    score       integer     NOT NULL CHECK (score BETWEEN 0 AND 100),
    status      text        NOT NULL CHECK (status IN ('healthy', 'warning', 'critical')),
    reasons     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    metrics     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, health_date)
);
