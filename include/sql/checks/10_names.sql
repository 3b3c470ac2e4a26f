-- Name and code columns: empty (NULL, '' or whitespace only) and stray (leading/trailing)
-- whitespace of any kind. Extraction trims spaces only, so a tab or newline at either end, or a
-- whitespace-only name (trimmed to ''), shows up here. One scan per table.
-- Output: one row per column: (subject, total, empty, stray, empty_example, stray_example).
SELECT 'make_name' AS subject, count(*) AS total,
       count(*) FILTER (WHERE make_name IS NULL OR make_name !~ '[^[:space:]]') AS empty,
       count(*) FILTER (WHERE make_name ~ '^[[:space:]]|[[:space:]]$') AS stray,
       min(make_id::text) FILTER (WHERE make_name IS NULL OR make_name !~ '[^[:space:]]') AS empty_example,
       min(make_id::text) FILTER (WHERE make_name ~ '^[[:space:]]|[[:space:]]$') AS stray_example
FROM {{schema}}.make
UNION ALL
SELECT 'model_name', count(*),
       count(*) FILTER (WHERE model_name IS NULL OR model_name !~ '[^[:space:]]'),
       count(*) FILTER (WHERE model_name ~ '^[[:space:]]|[[:space:]]$'),
       min(model_id::text) FILTER (WHERE model_name IS NULL OR model_name !~ '[^[:space:]]'),
       min(model_id::text) FILTER (WHERE model_name ~ '^[[:space:]]|[[:space:]]$')
FROM {{schema}}.model
UNION ALL
SELECT 'manufacturer_name', count(*),
       count(*) FILTER (WHERE manufacturer_name IS NULL OR manufacturer_name !~ '[^[:space:]]'),
       count(*) FILTER (WHERE manufacturer_name ~ '^[[:space:]]|[[:space:]]$'),
       min(manufacturer_id::text) FILTER (WHERE manufacturer_name IS NULL OR manufacturer_name !~ '[^[:space:]]'),
       min(manufacturer_id::text) FILTER (WHERE manufacturer_name ~ '^[[:space:]]|[[:space:]]$')
FROM {{schema}}.manufacturer
UNION ALL
SELECT 'vin_schema_name', count(*),
       count(*) FILTER (WHERE schema_name IS NULL OR schema_name !~ '[^[:space:]]'),
       count(*) FILTER (WHERE schema_name ~ '^[[:space:]]|[[:space:]]$'),
       min(vin_schema_id::text) FILTER (WHERE schema_name IS NULL OR schema_name !~ '[^[:space:]]'),
       min(vin_schema_id::text) FILTER (WHERE schema_name ~ '^[[:space:]]|[[:space:]]$')
FROM {{schema}}.vin_schema
UNION ALL
SELECT 'element_name', count(*),
       count(*) FILTER (WHERE element_name IS NULL OR element_name !~ '[^[:space:]]'),
       count(*) FILTER (WHERE element_name ~ '^[[:space:]]|[[:space:]]$'),
       min(element_id::text) FILTER (WHERE element_name IS NULL OR element_name !~ '[^[:space:]]'),
       min(element_id::text) FILTER (WHERE element_name ~ '^[[:space:]]|[[:space:]]$')
FROM {{schema}}.element
UNION ALL
SELECT 'engine_model_name', count(*),
       count(*) FILTER (WHERE engine_model_name IS NULL OR engine_model_name !~ '[^[:space:]]'),
       count(*) FILTER (WHERE engine_model_name ~ '^[[:space:]]|[[:space:]]$'),
       min(engine_model_id::text) FILTER (WHERE engine_model_name IS NULL OR engine_model_name !~ '[^[:space:]]'),
       min(engine_model_id::text) FILTER (WHERE engine_model_name ~ '^[[:space:]]|[[:space:]]$')
FROM {{schema}}.engine_model
UNION ALL
SELECT 'lookup_name', count(*),
       count(*) FILTER (WHERE lookup_name IS NULL OR lookup_name !~ '[^[:space:]]'),
       count(*) FILTER (WHERE lookup_name ~ '^[[:space:]]|[[:space:]]$'),
       min(lookup_table || ':' || lookup_id) FILTER (WHERE lookup_name IS NULL OR lookup_name !~ '[^[:space:]]'),
       min(lookup_table || ':' || lookup_id) FILTER (WHERE lookup_name ~ '^[[:space:]]|[[:space:]]$')
FROM {{schema}}.lookup
UNION ALL
SELECT 'wmi_code', count(*),
       count(*) FILTER (WHERE wmi IS NULL OR wmi !~ '[^[:space:]]'),
       count(*) FILTER (WHERE wmi ~ '^[[:space:]]|[[:space:]]$'),
       min(wmi_id::text) FILTER (WHERE wmi IS NULL OR wmi !~ '[^[:space:]]'),
       min(wmi_id::text) FILTER (WHERE wmi ~ '^[[:space:]]|[[:space:]]$')
FROM {{schema}}.wmi
UNION ALL
SELECT 'pattern_attribute_id', count(*),
       count(*) FILTER (WHERE attribute_id IS NULL OR attribute_id !~ '[^[:space:]]'),
       count(*) FILTER (WHERE attribute_id ~ '^[[:space:]]|[[:space:]]$'),
       min(pattern_id::text) FILTER (WHERE attribute_id IS NULL OR attribute_id !~ '[^[:space:]]'),
       min(pattern_id::text) FILTER (WHERE attribute_id ~ '^[[:space:]]|[[:space:]]$')
FROM {{schema}}.pattern;
