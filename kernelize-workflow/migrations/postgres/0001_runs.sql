-- Runs, their steps, their history, large outputs, locks and scheduler marks.
-- Times are milliseconds since the Unix epoch.
CREATE TABLE kernelize_runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    trigger_name TEXT NOT NULL,
    definition TEXT NOT NULL,
    params TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    claims BIGINT NOT NULL DEFAULT 0,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX kernelize_runs_claimable ON kernelize_runs (status, created_at);
CREATE INDEX kernelize_runs_workflow ON kernelize_runs (workflow, status, started_at);

CREATE TABLE kernelize_steps (
    run_id TEXT NOT NULL REFERENCES kernelize_runs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    position BIGINT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    error TEXT,
    rows_out BIGINT,
    bytes_out BIGINT,
    output BYTEA,
    output_ref TEXT,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE kernelize_events (
    id BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES kernelize_runs (id) ON DELETE CASCADE,
    step TEXT,
    status TEXT NOT NULL,
    attempt BIGINT,
    at BIGINT NOT NULL,
    error TEXT
);
CREATE INDEX kernelize_events_run ON kernelize_events (run_id, id);

CREATE TABLE kernelize_blobs (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES kernelize_runs (id) ON DELETE CASCADE,
    data BYTEA NOT NULL
);

CREATE TABLE kernelize_locks (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE kernelize_marks (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
