-- Options of the app's dropdowns, precomputed per release (search_path = the staging schema).
-- Tables: dropdown_make, model_trim_option, model_engine_option, model_transmission_option.
--
-- A trim, engine or transmission is offered for a model and year only when some VIN could decode
-- to both: within one schema linked (public WMI, schema not hidden) for that year, the option's
-- pattern key and the model's pattern key admit a common character at every position. Sharing a
-- schema is not enough: a schema for two models usually tells their trims apart by key.
-- Years follow model_year (10_model_year.sql): link ranges within 1980 .. next year (+2 at most).

SET LOCAL work_mem = '256MB';

-- Keys compatible: at every position both admit some character (translate() twice keeps the
-- characters of a[i] that b[i] has).
CREATE OR REPLACE FUNCTION pg_temp.keys_compatible(a text[], b text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT NOT EXISTS (
        SELECT 1 FROM generate_series(1, least(cardinality(a), cardinality(b))) i
        WHERE translate(a[i], translate(a[i], b[i], ''), '') = '')
$$;

-- Schema -> years it is public for (same rule as model_year).
CREATE TEMP TABLE dd_schema_year ON COMMIT DROP AS
SELECT DISTINCT ws.vin_schema_id, y.model_year
FROM wmi_vin_schema ws
JOIN vin_schema s ON s.vin_schema_id = ws.vin_schema_id AND NOT s.tobe_qced
JOIN wmi w        ON w.wmi_id = ws.wmi_id
                 AND w.public_availability_date IS NOT NULL AND w.public_availability_date <= now()
CROSS JOIN LATERAL generate_series(
    greatest(ws.year_from, 1980),
    least(coalesce(ws.year_to, extract(year FROM now())::int + 1), extract(year FROM now())::int + 2)
) AS y(model_year);
ANALYZE dd_schema_year;  -- temp tables have no statistics otherwise: the joins below misplan

-- Model patterns with their make and parsed key.
CREATE TEMP TABLE dd_model ON COMMIT DROP AS
SELECT DISTINCT p.vin_schema_id, mm.make_id, mm.model_id, k.keys, k.pos_sets
FROM pattern p
JOIN make_model mm ON mm.model_id = CASE WHEN p.attribute_id ~ '^[0-9]{1,9}$' THEN p.attribute_id::int END
JOIN decode_key k  ON k.keys = upper(p.keys)
WHERE p.element_id = 28
  AND p.vin_schema_id IN (SELECT vin_schema_id FROM dd_schema_year);
ANALYZE dd_model;

-- Option patterns grouped by (schema, key): the attributes one key sets together.
CREATE TEMP TABLE dd_group ON COMMIT DROP AS
SELECT p.vin_schema_id, k.keys, k.pos_sets,
       max(p.attribute_id) FILTER (WHERE p.element_id = 38) AS trim_name,
       max(p.attribute_id) FILTER (WHERE p.element_id = 13) AS displacement_l,
       max(p.attribute_id) FILTER (WHERE p.element_id = 9)  AS cylinders,
       max(p.attribute_id) FILTER (WHERE p.element_id = 18) AS engine_model,
       max(fl.lookup_name) FILTER (WHERE p.element_id = 24) AS fuel_type,
       max(tl.lookup_name) FILTER (WHERE p.element_id = 37) AS transmission_style,
       max(p.attribute_id) FILTER (WHERE p.element_id = 63) AS transmission_speeds
FROM pattern p
JOIN decode_key k ON k.keys = upper(p.keys)
LEFT JOIN lookup fl ON p.element_id = 24 AND fl.lookup_table = 'FuelType'
                   AND fl.lookup_id = CASE WHEN p.attribute_id ~ '^[0-9]{1,9}$' THEN p.attribute_id::int END
LEFT JOIN lookup tl ON p.element_id = 37 AND tl.lookup_table = 'Transmission'
                   AND tl.lookup_id = CASE WHEN p.attribute_id ~ '^[0-9]{1,9}$' THEN p.attribute_id::int END
WHERE p.element_id IN (38, 13, 9, 18, 24, 37, 63)
  AND p.vin_schema_id IN (SELECT vin_schema_id FROM dd_model)
GROUP BY p.vin_schema_id, k.keys, k.pos_sets;
ANALYZE dd_group;

-- Compatibility is decided once per distinct (model key, option key) pair, then applied to the
-- (schema, model, group) pairs.
CREATE TEMP TABLE dd_keypair ON COMMIT DROP AS
SELECT k.mk, k.gk
FROM (SELECT DISTINCT m.keys AS mk, g.keys AS gk
      FROM dd_model m JOIN dd_group g ON g.vin_schema_id = m.vin_schema_id) k
JOIN decode_key a ON a.keys = k.mk
JOIN decode_key b ON b.keys = k.gk
WHERE pg_temp.keys_compatible(a.pos_sets, b.pos_sets);
ANALYZE dd_keypair;

CREATE TEMP TABLE dd_pair ON COMMIT DROP AS
SELECT m.vin_schema_id, m.make_id, m.model_id, g.trim_name, g.displacement_l, g.cylinders, g.engine_model,
       g.fuel_type, g.transmission_style, g.transmission_speeds
FROM dd_model m
JOIN dd_group g    ON g.vin_schema_id = m.vin_schema_id
JOIN dd_keypair kp ON kp.mk = m.keys AND kp.gk = g.keys;
ANALYZE dd_pair;

CREATE TABLE model_trim_option AS
SELECT DISTINCT p.make_id, p.model_id, y.model_year, p.trim_name
FROM dd_pair p JOIN dd_schema_year y ON y.vin_schema_id = p.vin_schema_id
WHERE p.trim_name IS NOT NULL;
CREATE INDEX model_trim_option_idx ON model_trim_option (model_id, model_year);

-- An engine is a key that names at least its displacement, cylinders or engine model.
CREATE TABLE model_engine_option AS
SELECT DISTINCT p.make_id, p.model_id, y.model_year,
       concat_ws(' ', p.displacement_l || 'L', p.cylinders || ' cyl', p.engine_model, p.fuel_type) AS engine_name,
       p.displacement_l, p.cylinders, p.engine_model, p.fuel_type
FROM dd_pair p JOIN dd_schema_year y ON y.vin_schema_id = p.vin_schema_id
WHERE coalesce(p.displacement_l, p.cylinders, p.engine_model) IS NOT NULL;
CREATE INDEX model_engine_option_idx ON model_engine_option (model_id, model_year);

CREATE TABLE model_transmission_option AS
SELECT DISTINCT p.make_id, p.model_id, y.model_year,
       concat_ws(' ', p.transmission_style, p.transmission_speeds || '-speed') AS transmission_name,
       p.transmission_style, p.transmission_speeds
FROM dd_pair p JOIN dd_schema_year y ON y.vin_schema_id = p.vin_schema_id
WHERE coalesce(p.transmission_style, p.transmission_speeds) IS NOT NULL;
CREATE INDEX model_transmission_option_idx ON model_transmission_option (model_id, model_year);

-- Makes per year for dropdown_makes; model_year 0 lists the makes with any year.
CREATE TABLE dropdown_make AS
SELECT y.model_year, y.make_id, upper(m.make_name) AS make_name
FROM (SELECT DISTINCT model_year, make_id FROM model_year
      UNION
      SELECT DISTINCT 0, make_id FROM model_year) y
JOIN make m ON m.make_id = y.make_id;
CREATE INDEX dropdown_make_idx ON dropdown_make (model_year, make_name);
