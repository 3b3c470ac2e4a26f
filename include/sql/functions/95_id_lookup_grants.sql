-- Runs after 90_grants.sql (which revokes EXECUTE from PUBLIC on every function of the schema):
-- the stored-id lookups are part of the app's contract (docs/API.md).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mvp_platform_reader') THEN
        EXECUTE 'GRANT EXECUTE ON FUNCTION {{schema}}.make_by_id(integer), {{schema}}.model_by_id(integer)
                 TO mvp_platform_reader';
    END IF;
END $$;
