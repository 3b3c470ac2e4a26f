-- Runs after the other function files, in staging (build_keys) and in live (swap): only the
-- documented functions (and the helpers they call, which read only the catalog) are executable,
-- and only by the app's reader role. New functions are executable by PUBLIC by default.
DO $$
BEGIN
    EXECUTE 'REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA {{schema}} FROM PUBLIC';
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mvp_platform_reader') THEN
        EXECUTE 'GRANT EXECUTE ON FUNCTION
            {{schema}}.decode_vin(text, integer), {{schema}}.decode_vins(text[]),
            {{schema}}.dropdown_makes(integer, boolean), {{schema}}.dropdown_models(integer, integer),
            {{schema}}.dropdown_trims(integer, integer, integer),
            {{schema}}.dropdown_engines(integer, integer, integer),
            {{schema}}.dropdown_transmissions(integer, integer, integer),
            {{schema}}.decode_vin_pass(text, text, integer, boolean, boolean, integer),
            {{schema}}.vin_check_digit(text, boolean), {{schema}}.vin_model_year(text, boolean)
            TO mvp_platform_reader';
    END IF;
END $$;
