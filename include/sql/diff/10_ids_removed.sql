-- Breaking for the app (1/3): Make_ID and Model_ID values the live catalog has and the new
-- release does not. The app may have stored them (a user's vehicle keeps its Make_ID/Model_ID);
-- after the swap they resolve only through the id-history lookups (functions/40_id_lookup.sql).
-- Parameters: %(limit)s examples per kind. Output: (kind, count, examples json).
WITH makes AS (
    SELECT l.make_id AS id, l.make_name AS name
    FROM {{live}}.make l
    WHERE NOT EXISTS (SELECT 1 FROM {{schema}}.make s WHERE s.make_id = l.make_id)
), models AS (
    SELECT l.model_id AS id, l.model_name AS name, mk.make_name
    FROM {{live}}.model l
    LEFT JOIN {{live}}.make_model mm ON mm.model_id = l.model_id
    LEFT JOIN {{live}}.make mk ON mk.make_id = mm.make_id
    WHERE NOT EXISTS (SELECT 1 FROM {{schema}}.model s WHERE s.model_id = l.model_id)
)
SELECT 'makes_removed' AS kind, (SELECT count(*) FROM makes),
       (SELECT coalesce(json_agg(json_build_object('id', id, 'name', name) ORDER BY id), '[]')
        FROM (SELECT * FROM makes ORDER BY id LIMIT %(limit)s) x)
UNION ALL
SELECT 'models_removed', (SELECT count(*) FROM models),
       (SELECT coalesce(json_agg(json_build_object('id', id, 'name', name, 'make', make_name) ORDER BY id), '[]')
        FROM (SELECT * FROM models ORDER BY id LIMIT %(limit)s) x);
