-- The versioned catalog store (vehicle_etl/release/store.py, swap.py, cleanup.py; docs/ARCHITECTURE.md "Schemas"). Idempotent.
-- Every catalog table is a LIST-partitioned parent here, partitioned by `version`; a release's
-- tables are its partitions (they stay in their own schema, vehicles_v<N>). The app reads views in
-- `vehicles` (and `vehicles_previous`) that filter the parents by the version this one-row table
-- names: the swap and the rollback are an UPDATE of this row, no DDL on anything a reader touches.
CREATE SCHEMA IF NOT EXISTS vehicles_store;

-- A vacuum that truncates a heap takes an ACCESS EXCLUSIVE lock, which a hot standby replays
-- against the readers of that table (every reader reads this one): never truncate it. Set at
-- creation only: this file runs at every promotion and must take no lock readers conflict with.
CREATE TABLE IF NOT EXISTS vehicles_store.control (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),  -- exactly one row
    live        integer,                                       -- NULL: nothing promoted yet
    previous    integer,
    switched_at timestamptz
) WITH (vacuum_truncate = false);
INSERT INTO vehicles_store.control (one) VALUES (true) ON CONFLICT DO NOTHING;
ANALYZE vehicles_store.control;  -- one row: planned as one row, not as an unknown-size heap

CREATE SEQUENCE IF NOT EXISTS vehicles_store.version_seq;

-- One row per attached version: its schema (by OID, which survives the rename of
-- vehicles_staging to vehicles_v<N>), and the function set the release was built and gated with
-- (rendered for `vehicles`), so a rollback also brings back that version's functions.
CREATE TABLE IF NOT EXISTS vehicles_store.version (
    version          integer PRIMARY KEY,
    schema_oid       oid         NOT NULL,
    run_id           text,
    functions_sql    text        NOT NULL,
    functions_digest text        NOT NULL,
    function_names   text[]      NOT NULL,  -- name(identity arguments) of each function it defines
    attached_at      timestamptz NOT NULL DEFAULT now(),
    detach_started   timestamptz   -- its partitions are marked detached (readers' plans leave them out)
);
-- Columns added after the first databases were made (the table is the ETL's only: its lock is harmless).
ALTER TABLE vehicles_store.version ADD COLUMN IF NOT EXISTS detach_started timestamptz;
ALTER TABLE vehicles_store.version ADD COLUMN IF NOT EXISTS function_names text[] NOT NULL DEFAULT '{}';
