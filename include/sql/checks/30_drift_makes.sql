-- Makes that have models in the live catalog but none in the new release: they would vanish
-- from the year -> make -> model dropdowns.
-- Output: one row: (total live makes with models, vanished, first examples).
WITH live_makes AS (
    SELECT DISTINCT mm.make_id FROM {{live}}.make_model mm
),
gone AS (
    SELECT l.make_id FROM live_makes l
    WHERE NOT EXISTS (SELECT 1 FROM {{schema}}.make_model s WHERE s.make_id = l.make_id)
)
SELECT (SELECT count(*) FROM live_makes) AS total,
       (SELECT count(*) FROM gone) AS bad,
       (SELECT string_agg(coalesce(m.make_name, '?') || ' (' || g.make_id || ')', ', ' ORDER BY g.make_id)
        FROM (SELECT make_id FROM gone ORDER BY make_id LIMIT 5) g
        LEFT JOIN {{live}}.make m ON m.make_id = g.make_id) AS example;
