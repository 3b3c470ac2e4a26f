-- Breaking for the app (3/3): models kept by the new release whose model years shrink: a stored
-- (year, make, model) choice would no longer appear in the year -> make -> model dropdowns.
-- Models removed outright are counted by 10_ids_removed.sql, not here.
-- Parameters: %(limit)s examples. Output: (kind, count, examples json).
WITH lost AS (
    SELECT l.model_id, array_agg(l.model_year ORDER BY l.model_year) AS years
    FROM {{live}}.model_year l
    WHERE EXISTS (SELECT 1 FROM {{schema}}.model m WHERE m.model_id = l.model_id)
      AND NOT EXISTS (SELECT 1 FROM {{schema}}.model_year s
                      WHERE s.model_id = l.model_id AND s.model_year = l.model_year)
    GROUP BY l.model_id
)
SELECT 'model_years_shrunk' AS kind, (SELECT count(*) FROM lost),
       (SELECT coalesce(json_agg(json_build_object('id', x.model_id, 'name', m.model_name, 'years_lost', x.years)
                                 ORDER BY x.model_id), '[]')
        FROM (SELECT * FROM lost ORDER BY model_id LIMIT %(limit)s) x
        JOIN {{schema}}.model m ON m.model_id = x.model_id);
