-- Dropdowns for the app (year -> make -> model -> trim / engine / transmission), over tables
-- precomputed per release (derive/model_year.sql, derive/dropdown_options.sql). Plain SQL
-- functions over indexed tables; names and columns are the contract in docs/API.md.

-- Bodies are checked at call time (this transaction only), so the files can be installed in
-- any order relative to the tables they read.
SET LOCAL check_function_bodies = off;

-- Makes of road vehicles (cars, MPVs, trucks, motorcycles, buses, low-speed vehicles) by default;
-- all_types => also trailer builders, incomplete-vehicle and off-road makes (~9,000 a year).
CREATE OR REPLACE FUNCTION {{schema}}.dropdown_makes(model_year integer DEFAULT NULL, all_types boolean DEFAULT false)
RETURNS TABLE("Make_ID" integer, "Make_Name" text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- sort_key is (make_name, make_id) precomputed: both indexes return rows in that order, so no
    -- sort runs (a partial index for the road makes; the full one, with road, for all_types and
    -- for generic plans of prepared statements)
    SELECT d.make_id, d.make_name
    FROM {{schema}}.dropdown_make d
    WHERE d.model_year = coalesce(dropdown_makes.model_year, 0)
      AND (d.road OR coalesce(dropdown_makes.all_types, false))
    ORDER BY d.sort_key
$$;

CREATE OR REPLACE FUNCTION {{schema}}.dropdown_models(make_id integer, model_year integer DEFAULT NULL)
RETURNS TABLE("Make_ID" integer, "Make_Name" text, "Model_ID" integer, "Model_Name" text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- LATERAL ... LIMIT 1 (model_id is the key) keeps the planner from flattening this into a
    -- hash join that scans all 31k models: a hundred primary-key lookups instead (8 ms -> <1 ms)
    SELECT mk.make_id, upper(mk.make_name), m.model_id, m.model_name
    FROM (SELECT DISTINCT y.model_id
          FROM {{schema}}.model_year y
          WHERE y.make_id = dropdown_models.make_id
            AND (dropdown_models.model_year IS NULL OR y.model_year = dropdown_models.model_year)) ids
    CROSS JOIN LATERAL (SELECT m.model_id, m.model_name FROM {{schema}}.model m
                        WHERE m.model_id = ids.model_id LIMIT 1) m
    JOIN {{schema}}.make mk ON mk.make_id = dropdown_models.make_id
    ORDER BY m.model_name, m.model_id
$$;

-- Options of a model in a year: the option's schema must be publicly linked for that year.
CREATE OR REPLACE FUNCTION {{schema}}.dropdown_trims(make_id integer, model_id integer, model_year integer)
RETURNS TABLE("Make_ID" integer, "Model_ID" integer, "Model_Year" integer, "Trim" text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT DISTINCT o.make_id, o.model_id, dropdown_trims.model_year, o.trim_name
    FROM {{schema}}.model_trim_option o
    WHERE o.model_id = dropdown_trims.model_id AND o.make_id = dropdown_trims.make_id
      AND EXISTS (SELECT 1 FROM {{schema}}.public_schema_link l
                  WHERE l.vin_schema_id = o.vin_schema_id
                    AND dropdown_trims.model_year BETWEEN l.year_from AND l.year_to)
    ORDER BY o.trim_name
$$;

CREATE OR REPLACE FUNCTION {{schema}}.dropdown_engines(make_id integer, model_id integer, model_year integer)
RETURNS TABLE("Make_ID" integer, "Model_ID" integer, "Model_Year" integer, "Engine" text,
              "DisplacementL" text, "EngineCylinders" text, "EngineModel" text, "FuelTypePrimary" text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT DISTINCT o.make_id, o.model_id, dropdown_engines.model_year, o.engine_name,
           o.displacement_l, o.cylinders, o.engine_model, o.fuel_type
    FROM {{schema}}.model_engine_option o
    WHERE o.model_id = dropdown_engines.model_id AND o.make_id = dropdown_engines.make_id
      AND EXISTS (SELECT 1 FROM {{schema}}.public_schema_link l
                  WHERE l.vin_schema_id = o.vin_schema_id
                    AND dropdown_engines.model_year BETWEEN l.year_from AND l.year_to)
    ORDER BY o.engine_name
$$;

CREATE OR REPLACE FUNCTION {{schema}}.dropdown_transmissions(make_id integer, model_id integer, model_year integer)
RETURNS TABLE("Make_ID" integer, "Model_ID" integer, "Model_Year" integer, "Transmission" text,
              "TransmissionStyle" text, "TransmissionSpeeds" text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT DISTINCT o.make_id, o.model_id, dropdown_transmissions.model_year, o.transmission_name,
           o.transmission_style, o.transmission_speeds
    FROM {{schema}}.model_transmission_option o
    WHERE o.model_id = dropdown_transmissions.model_id AND o.make_id = dropdown_transmissions.make_id
      AND EXISTS (SELECT 1 FROM {{schema}}.public_schema_link l
                  WHERE l.vin_schema_id = o.vin_schema_id
                    AND dropdown_transmissions.model_year BETWEEN l.year_from AND l.year_to)
    ORDER BY o.transmission_name
$$;
