-- The app's read-only role (vehicle_etl/serving/decode.py: ensure_reader_role, run at the start of every
-- run with {{schema}} = the live schema). Idempotent. A NOLOGIN group role: the app's login user
-- is made a member of it (GRANT mvp_platform_reader TO <app user>).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mvp_platform_reader') THEN
        BEGIN
            CREATE ROLE mvp_platform_reader NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created concurrently by another run: roles are cluster-wide
        END;
    END IF;
END $$;

DO $$
DECLARE
    s text;
    live constant text := '{{schema}}';
BEGIN
    -- Nothing outside the live catalog: run history, staging, the previous version and the version
    -- store (the views of the live schema read it with their owner's rights).
    FOREACH s IN ARRAY ARRAY['etl', 'vehicles_staging', 'vehicles_previous', 'vehicles_store'] LOOP
        IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = s) THEN
            EXECUTE format('REVOKE ALL ON SCHEMA %I FROM mvp_platform_reader', s);
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM mvp_platform_reader', s);
            EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM mvp_platform_reader', s);
        END IF;
    END LOOP;
    EXECUTE 'REVOKE CREATE ON SCHEMA public FROM mvp_platform_reader';

    IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = trim(both '"' from live)) THEN
        EXECUTE 'GRANT USAGE ON SCHEMA {{schema}} TO mvp_platform_reader';
        EXECUTE 'REVOKE CREATE ON SCHEMA {{schema}} FROM mvp_platform_reader';
        -- Read the catalog, write nothing.
        EXECUTE 'REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA {{schema}} FROM mvp_platform_reader';
        EXECUTE 'GRANT SELECT ON ALL TABLES IN SCHEMA {{schema}} TO mvp_platform_reader';
        -- Tables the ETL user creates later in the live schema are readable too (the usual path,
        -- tables moved in from staging, is covered by the loader's grant on staging tables).
        EXECUTE 'ALTER DEFAULT PRIVILEGES IN SCHEMA {{schema}} GRANT SELECT ON TABLES TO mvp_platform_reader';
        -- Functions: functions/90_grants.sql, run after it (and whenever the functions are installed).
    END IF;
END $$;
