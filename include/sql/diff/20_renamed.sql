-- Breaking for the app (2/3): the same Make_ID / Model_ID under a different name. A change of
-- letter case or surrounding spaces only is not counted (the app compares names case-insensitively
-- and shows what the dropdown returns); the diff's "changed" rows still list it.
-- Parameters: %(limit)s examples per kind. Output: (kind, count, examples json).
WITH makes AS (
    SELECT s.make_id AS id, l.make_name AS old, s.make_name AS new
    FROM {{schema}}.make s JOIN {{live}}.make l ON l.make_id = s.make_id
    WHERE lower(btrim(s.make_name)) IS DISTINCT FROM lower(btrim(l.make_name))
), models AS (
    SELECT s.model_id AS id, l.model_name AS old, s.model_name AS new
    FROM {{schema}}.model s JOIN {{live}}.model l ON l.model_id = s.model_id
    WHERE lower(btrim(s.model_name)) IS DISTINCT FROM lower(btrim(l.model_name))
)
SELECT 'makes_renamed' AS kind, (SELECT count(*) FROM makes),
       (SELECT coalesce(json_agg(json_build_object('id', id, 'old', old, 'new', new) ORDER BY id), '[]')
        FROM (SELECT * FROM makes ORDER BY id LIMIT %(limit)s) x)
UNION ALL
SELECT 'models_renamed', (SELECT count(*) FROM models),
       (SELECT coalesce(json_agg(json_build_object('id', id, 'old', old, 'new', new) ORDER BY id), '[]')
        FROM (SELECT * FROM models ORDER BY id LIMIT %(limit)s) x);
