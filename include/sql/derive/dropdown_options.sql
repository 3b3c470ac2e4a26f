-- builds: model_trim_option, model_engine_option, model_transmission_option
-- reads: public_schema_link, decode_key
-- priority: 3
-- (The header the loader reads, vehicle_etl/staging/derived.py: the derived tables this file builds, the
-- derived tables it reads (the loaded ones are always there; '-' for none), and its start priority,
-- lower first when two files are ready. A file starts once the files building what it reads have committed.)
--
-- Options of the app's dropdowns, precomputed per release (search_path = the staging schema).
-- Tables: model_trim_option, model_engine_option, model_transmission_option (dropdown_make is
-- built with the model years, model_year.sql).
--
-- A trim, engine or transmission is offered for a model and year only when some VIN could decode
-- to both: within one schema linked (public WMI, schema not hidden) for that year, the option's
-- pattern key and the model's pattern key admit a common character at every position. Sharing a
-- schema is not enough: a schema for two models usually tells their trims apart by key.
-- The option tables keep the schema; the year is applied at query time through
-- public_schema_link (public_schema_link.sql), which avoids expanding millions of (option, year) rows.

SET LOCAL work_mem = '256MB';

-- The keys' masks as 14 plain columns for the compatibility test below: decode_key.masks (one
-- bit per character a position admits) with "no constraint" ('*', '|', or past the key's end: 0
-- or NULL there) made all ones (-1), so the test is one AND per position, no array access.
CREATE TEMP TABLE dd_key ON COMMIT DROP AS
SELECT k.keys,
       coalesce(nullif(k.masks[1], 0), -1) AS m1,
       coalesce(nullif(k.masks[2], 0), -1) AS m2,
       coalesce(nullif(k.masks[3], 0), -1) AS m3,
       coalesce(nullif(k.masks[4], 0), -1) AS m4,
       coalesce(nullif(k.masks[5], 0), -1) AS m5,
       coalesce(nullif(k.masks[6], 0), -1) AS m6,
       coalesce(nullif(k.masks[7], 0), -1) AS m7,
       coalesce(nullif(k.masks[8], 0), -1) AS m8,
       coalesce(nullif(k.masks[9], 0), -1) AS m9,
       coalesce(nullif(k.masks[10], 0), -1) AS m10,
       coalesce(nullif(k.masks[11], 0), -1) AS m11,
       coalesce(nullif(k.masks[12], 0), -1) AS m12,
       coalesce(nullif(k.masks[13], 0), -1) AS m13,
       coalesce(nullif(k.masks[14], 0), -1) AS m14
FROM decode_key k;
ANALYZE dd_key;

-- Model patterns (only of schemas some public link uses) with their make and key masks.
CREATE TEMP TABLE dd_model ON COMMIT DROP AS
SELECT DISTINCT p.vin_schema_id, mm.make_id, mm.model_id, k.m1, k.m2, k.m3, k.m4, k.m5, k.m6, k.m7, k.m8, k.m9, k.m10, k.m11, k.m12, k.m13, k.m14
FROM pattern p
JOIN make_model mm ON mm.model_id = CASE WHEN p.attribute_id ~ '^[0-9]{1,9}$' THEN p.attribute_id::int END
JOIN dd_key k ON k.keys = upper(p.keys)
WHERE p.element_id = 28
  AND p.vin_schema_id IN (SELECT vin_schema_id FROM public_schema_link);
ANALYZE dd_model;

-- Option patterns grouped by (schema, key): the attributes one key sets together.
CREATE TEMP TABLE dd_group ON COMMIT DROP AS
SELECT g.*, k.m1, k.m2, k.m3, k.m4, k.m5, k.m6, k.m7, k.m8, k.m9, k.m10, k.m11, k.m12, k.m13, k.m14
FROM (
    SELECT p.vin_schema_id, upper(p.keys) AS keys,
           max(p.attribute_id) FILTER (WHERE p.element_id = 38) AS trim_name,
           max(p.attribute_id) FILTER (WHERE p.element_id = 13) AS displacement_l,
           max(p.attribute_id) FILTER (WHERE p.element_id = 9)  AS cylinders,
           max(p.attribute_id) FILTER (WHERE p.element_id = 18) AS engine_model,
           max(fl.lookup_name) FILTER (WHERE p.element_id = 24) AS fuel_type,
           max(tl.lookup_name) FILTER (WHERE p.element_id = 37) AS transmission_style,
           max(p.attribute_id) FILTER (WHERE p.element_id = 63) AS transmission_speeds
    FROM pattern p
    LEFT JOIN lookup fl ON p.element_id = 24 AND fl.lookup_table = 'FuelType'
                       AND fl.lookup_id = CASE WHEN p.attribute_id ~ '^[0-9]{1,9}$' THEN p.attribute_id::int END
    LEFT JOIN lookup tl ON p.element_id = 37 AND tl.lookup_table = 'Transmission'
                       AND tl.lookup_id = CASE WHEN p.attribute_id ~ '^[0-9]{1,9}$' THEN p.attribute_id::int END
    WHERE p.element_id IN (38, 13, 9, 18, 24, 37, 63)
      AND p.vin_schema_id IN (SELECT vin_schema_id FROM dd_model)
    GROUP BY p.vin_schema_id, upper(p.keys)
) g
JOIN dd_key k ON k.keys = g.keys;
ANALYZE dd_group;

-- Compatible (model, option group) pairs of one schema: at every one of the 14 key positions
-- the two keys admit a common character (m1..m14 of dd_key).
CREATE TEMP TABLE dd_pair ON COMMIT DROP AS
SELECT m.vin_schema_id, m.make_id, m.model_id, g.trim_name, g.displacement_l, g.cylinders, g.engine_model,
       g.fuel_type, g.transmission_style, g.transmission_speeds
FROM dd_model m
JOIN dd_group g ON g.vin_schema_id = m.vin_schema_id
WHERE m.m1 & g.m1 <> 0
  AND m.m2 & g.m2 <> 0
  AND m.m3 & g.m3 <> 0
  AND m.m4 & g.m4 <> 0
  AND m.m5 & g.m5 <> 0
  AND m.m6 & g.m6 <> 0
  AND m.m7 & g.m7 <> 0
  AND m.m8 & g.m8 <> 0
  AND m.m9 & g.m9 <> 0
  AND m.m10 & g.m10 <> 0
  AND m.m11 & g.m11 <> 0
  AND m.m12 & g.m12 <> 0
  AND m.m13 & g.m13 <> 0
  AND m.m14 & g.m14 <> 0;

CREATE TABLE model_trim_option AS
SELECT DISTINCT make_id, model_id, vin_schema_id, trim_name
FROM dd_pair WHERE trim_name IS NOT NULL;
CREATE INDEX model_trim_option_idx ON model_trim_option (model_id, make_id);

-- An engine is a key that names at least its displacement, cylinders or engine model.
CREATE TABLE model_engine_option AS
SELECT DISTINCT make_id, model_id, vin_schema_id,
       concat_ws(' ', displacement_l || 'L', cylinders || ' cyl', engine_model, fuel_type) AS engine_name,
       displacement_l, cylinders, engine_model, fuel_type
FROM dd_pair
WHERE coalesce(displacement_l, cylinders, engine_model) IS NOT NULL;
CREATE INDEX model_engine_option_idx ON model_engine_option (model_id, make_id);

CREATE TABLE model_transmission_option AS
SELECT DISTINCT make_id, model_id, vin_schema_id,
       concat_ws(' ', transmission_style, transmission_speeds || '-speed') AS transmission_name,
       transmission_style, transmission_speeds
FROM dd_pair
WHERE coalesce(transmission_style, transmission_speeds) IS NOT NULL;
CREATE INDEX model_transmission_option_idx ON model_transmission_option (model_id, make_id);
