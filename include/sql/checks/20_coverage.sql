-- Links that foreign keys cannot express: WMIs without a make or a VIN schema, schemas no WMI
-- uses, models without a make, lookup-valued pattern attributes that name no lookup row, and
-- model years outside 1980 .. current year + 2. Anti-joins against DISTINCT sets (hash joins):
-- one pass over each big table, no per-row subqueries.
-- Output: one row per check: (subject, total, bad, example).
SELECT 'wmi_without_make' AS subject, count(*) AS total,
       count(*) FILTER (WHERE x.wmi_id IS NULL) AS bad,
       min(w.wmi) FILTER (WHERE x.wmi_id IS NULL) AS example
FROM {{schema}}.wmi w
LEFT JOIN (SELECT DISTINCT wmi_id FROM {{schema}}.wmi_make) x ON x.wmi_id = w.wmi_id
UNION ALL
SELECT 'wmi_without_schema', count(*),
       count(*) FILTER (WHERE x.wmi_id IS NULL),
       min(w.wmi) FILTER (WHERE x.wmi_id IS NULL)
FROM {{schema}}.wmi w
LEFT JOIN (SELECT DISTINCT wmi_id FROM {{schema}}.wmi_vin_schema) x ON x.wmi_id = w.wmi_id
UNION ALL
SELECT 'vin_schema_unlinked', count(*),
       count(*) FILTER (WHERE x.vin_schema_id IS NULL),
       min(s.vin_schema_id::text) FILTER (WHERE x.vin_schema_id IS NULL)
FROM {{schema}}.vin_schema s
LEFT JOIN (SELECT DISTINCT vin_schema_id FROM {{schema}}.wmi_vin_schema) x ON x.vin_schema_id = s.vin_schema_id
UNION ALL
SELECT 'model_without_make', count(*),
       count(*) FILTER (WHERE x.model_id IS NULL),
       min(m.model_id::text) FILTER (WHERE x.model_id IS NULL)
FROM {{schema}}.model m
LEFT JOIN (SELECT DISTINCT model_id FROM {{schema}}.make_model) x ON x.model_id = m.model_id
UNION ALL
-- Lookup-valued pattern attributes: Model/Make/Manufacturer have their own tables, the rest are
-- in `lookup`. Compared as text: a non-numeric attribute of a lookup element is an orphan too.
SELECT 'pattern_lookup_orphans', count(*),
       count(*) FILTER (WHERE r.id IS NULL),
       min(e.code || '=' || p.attribute_id) FILTER (WHERE r.id IS NULL)
FROM {{schema}}.pattern p
JOIN {{schema}}.element e ON e.element_id = p.element_id AND e.data_type = 'lookup' AND e.lookup_table IS NOT NULL
LEFT JOIN (
    SELECT 'Model'::text AS lookup_table, model_id::text AS id FROM {{schema}}.model
    UNION ALL SELECT 'Make', make_id::text FROM {{schema}}.make
    UNION ALL SELECT 'Manufacturer', manufacturer_id::text FROM {{schema}}.manufacturer
    UNION ALL SELECT lookup_table, lookup_id::text FROM {{schema}}.lookup
) r ON r.lookup_table = e.lookup_table AND r.id = p.attribute_id
UNION ALL
SELECT 'model_year_range', count(*),
       count(*) FILTER (WHERE model_year NOT BETWEEN 1980 AND extract(year FROM now())::int + 2),
       min(model_year::text) FILTER (WHERE model_year NOT BETWEEN 1980 AND extract(year FROM now())::int + 2)
FROM {{schema}}.model_year;
