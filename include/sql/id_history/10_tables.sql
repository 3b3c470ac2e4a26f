-- Id history: every (Make_ID, name) and (Model_ID, name) pair a live catalog has had, with the
-- releases that had it, and the ids the live catalog no longer has. Kept in a schema of its own
-- because the swap moves every table of `vehicles`; this history outlives the versions. Its name
-- does not start with `vehicles`, so nothing that lists catalog versions (vehicles_*) counts it.
-- Read by the app only through vehicles.make_by_id / model_by_id (functions/40_id_lookup.sql).
CREATE SCHEMA IF NOT EXISTS catalog_ids;

CREATE TABLE IF NOT EXISTS catalog_ids.make_name (
    make_id        integer NOT NULL,
    make_name      text    NOT NULL,
    first_release  text    NOT NULL,   -- oldest release (YYYY_MM) live with this name
    last_release   text    NOT NULL,   -- newest release live with this name
    PRIMARY KEY (make_id, make_name)
);

CREATE TABLE IF NOT EXISTS catalog_ids.model_name (
    model_id       integer NOT NULL,
    model_name     text    NOT NULL,
    make_id        integer,            -- the model's make when it last had this name
    first_release  text    NOT NULL,
    last_release   text    NOT NULL,
    PRIMARY KEY (model_id, model_name)
);

-- An id the live catalog had and the current live release lacks; the row goes when the id is
-- live again (a rollback, or a release that has it back).
CREATE TABLE IF NOT EXISTS catalog_ids.retired_id (
    kind        text    NOT NULL CHECK (kind IN ('make', 'model')),
    id          integer NOT NULL,
    retired_in  text    NOT NULL,      -- the release that went live without it
    run_id      text,                  -- the run (or rollback) that made that release live
    retired_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, id)
);
