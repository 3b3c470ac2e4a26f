-- The app's reader may read the id history (the lookup functions are SECURITY INVOKER, as every
-- function of the contract), never write it.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mvp_platform_reader') THEN
        GRANT USAGE ON SCHEMA catalog_ids TO mvp_platform_reader;
        REVOKE CREATE ON SCHEMA catalog_ids FROM mvp_platform_reader;
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA catalog_ids
            FROM mvp_platform_reader;
        GRANT SELECT ON ALL TABLES IN SCHEMA catalog_ids TO mvp_platform_reader;
    END IF;
END $$;
