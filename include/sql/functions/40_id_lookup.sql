-- Stored-id lookups for the app: a Make_ID / Model_ID it kept (a user's vehicle) answers with its
-- current name when the live catalog has it, else its last known name and the release that
-- retired it; every name the id has had (a rename keeps the id), newest first. No row for an id
-- no catalog ever had. Retired ids are never in the dropdowns (those read the live tables only).
-- PL/pgSQL, so the history tables (id_history/10_tables.sql) are looked up when called, not when
-- the function is installed into staging. Contract: docs/API.md "Stored ids".
CREATE OR REPLACE FUNCTION {{schema}}.make_by_id(p_make_id integer)
RETURNS TABLE ("Make_ID" integer, "Make_Name" text, "In_Catalog" boolean, "Known_Names" text[],
               "First_Release" text, "Last_Release" text, "Retired_In" text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY INVOKER
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH hist AS (
        SELECT h.make_name, h.first_release, h.last_release
        FROM catalog_ids.make_name h WHERE h.make_id = p_make_id
    ), cur AS (
        SELECT m.make_name FROM {{schema}}.make m WHERE m.make_id = p_make_id
    )
    SELECT p_make_id,
           coalesce((SELECT c.make_name FROM cur c),
                    (SELECT x.make_name FROM hist x ORDER BY x.last_release DESC, x.first_release DESC LIMIT 1)),
           EXISTS (SELECT 1 FROM cur),
           ARRAY(SELECT n FROM (SELECT c.make_name AS n, 'z' AS o1, 'z' AS o2 FROM cur c
                                UNION SELECT x.make_name, x.last_release, x.first_release FROM hist x) a
                 GROUP BY n ORDER BY max(o1) DESC, max(o2) DESC),
           (SELECT min(x.first_release) FROM hist x),
           (SELECT max(x.last_release) FROM hist x),
           (SELECT r.retired_in FROM catalog_ids.retired_id r
            WHERE r.kind = 'make' AND r.id = p_make_id AND NOT EXISTS (SELECT 1 FROM cur))
    WHERE EXISTS (SELECT 1 FROM cur) OR EXISTS (SELECT 1 FROM hist);
END $$;

CREATE OR REPLACE FUNCTION {{schema}}.model_by_id(p_model_id integer)
RETURNS TABLE ("Model_ID" integer, "Model_Name" text, "Make_ID" integer, "Make_Name" text,
               "In_Catalog" boolean, "Known_Names" text[], "First_Release" text, "Last_Release" text,
               "Retired_In" text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY INVOKER
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH hist AS (
        SELECT h.model_name, h.make_id, h.first_release, h.last_release
        FROM catalog_ids.model_name h WHERE h.model_id = p_model_id
    ), cur AS (
        SELECT m.model_name, mm.make_id FROM {{schema}}.model m
        LEFT JOIN {{schema}}.make_model mm ON mm.model_id = m.model_id
        WHERE m.model_id = p_model_id
    ), best AS (
        SELECT c.model_name, c.make_id FROM cur c
        UNION ALL
        (SELECT x.model_name, x.make_id FROM hist x WHERE NOT EXISTS (SELECT 1 FROM cur)
         ORDER BY x.last_release DESC, x.first_release DESC LIMIT 1)
    )
    SELECT p_model_id, b.model_name, b.make_id,
           coalesce((SELECT mk.make_name FROM {{schema}}.make mk WHERE mk.make_id = b.make_id),
                    (SELECT h.make_name FROM catalog_ids.make_name h WHERE h.make_id = b.make_id
                     ORDER BY h.last_release DESC LIMIT 1)),
           EXISTS (SELECT 1 FROM cur),
           ARRAY(SELECT n FROM (SELECT c.model_name AS n, 'z' AS o1, 'z' AS o2 FROM cur c
                                UNION SELECT x.model_name, x.last_release, x.first_release FROM hist x) a
                 GROUP BY n ORDER BY max(o1) DESC, max(o2) DESC),
           (SELECT min(x.first_release) FROM hist x),
           (SELECT max(x.last_release) FROM hist x),
           (SELECT r.retired_in FROM catalog_ids.retired_id r
            WHERE r.kind = 'model' AND r.id = p_model_id AND NOT EXISTS (SELECT 1 FROM cur))
    FROM best b;
END $$;
