-- Elements (decoded fields) that have patterns in one version and none in the other: a release
-- that loses a whole element (e.g. EngineCylinders) changes what every VIN decodes to, which
-- table-size drift cannot say (the rest of Pattern may still grow). One grouped scan per side.
-- Output: one row per element present on one side only:
--   (element_id, element code (the decoded field's name) or name, live_patterns, staged_patterns).
WITH s AS (SELECT element_id, count(*) AS n FROM {{schema}}.pattern GROUP BY element_id),
     l AS (SELECT element_id, count(*) AS n FROM {{live}}.pattern GROUP BY element_id)
SELECT coalesce(s.element_id, l.element_id) AS element_id,
       coalesce((SELECT coalesce(e.code, e.element_name) FROM {{schema}}.element e WHERE e.element_id = coalesce(s.element_id, l.element_id)),
                (SELECT coalesce(e.code, e.element_name) FROM {{live}}.element e WHERE e.element_id = coalesce(s.element_id, l.element_id)),
                '?') AS element_name,
       coalesce(l.n, 0) AS live_patterns,
       coalesce(s.n, 0) AS staged_patterns
FROM s FULL JOIN l ON l.element_id = s.element_id
WHERE s.element_id IS NULL OR l.element_id IS NULL
ORDER BY 1;
