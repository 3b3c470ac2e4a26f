-- Run history: one row per pipeline run, in schema etl (never granted to the app's reader).
CREATE SCHEMA IF NOT EXISTS etl;
CREATE TABLE IF NOT EXISTS etl.run_history (
    run_id       text PRIMARY KEY,
    release      text,
    source       text,                       -- URL with the password hidden
    trigger      text,                       -- cli, scheduled, manual, backfill, ...
    status       text NOT NULL CHECK (status IN ('running', 'success', 'failed', 'noop', 'rolled_back')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    counts       jsonb NOT NULL DEFAULT '{}',  -- platform table -> rows
    durations    jsonb NOT NULL DEFAULT '{}',  -- step -> seconds
    checks       jsonb NOT NULL DEFAULT '[]',  -- quality-gate results [{name, passed, observed, threshold, ...}]
    diff         jsonb,                        -- release diff against the live catalog
    error        text
);
CREATE INDEX IF NOT EXISTS run_history_started_idx ON etl.run_history (started_at DESC);
