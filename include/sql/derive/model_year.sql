-- builds: model_year, dropdown_make
-- reads: public_schema_link
-- priority: 4
-- (The header the loader reads, vehicle_etl/staging/derived.py: the derived tables this file builds, the
-- derived tables it reads (the loaded ones are always there; '-' for none), and its start priority,
-- lower first when two files are ready. A file starts once the files building what it reads have committed.)
--
-- Which model years each model exists in, for the year -> make -> model dropdowns, and the makes
-- per year. vPIC has no model-year table: years exist only as the year ranges of the public
-- WMI-schema links (public_schema_link, public_schema_link.sql) of the schemas whose Model
-- patterns name the model.

SET LOCAL work_mem = '256MB';  -- the DISTINCT and the range merges spill to disk at the default 4 MB

-- Each model's years as one multirange: its schemas' overlapping links merged, so expanding
-- them yields every year once and no DISTINCT over the expanded rows is needed.
CREATE TEMP TABLE model_years ON COMMIT DROP AS
SELECT mm.make_id, sm.model_id, range_agg(int4range(l.year_from, l.year_to, '[]')) AS years
FROM (SELECT DISTINCT p.vin_schema_id, p.attribute_id::int AS model_id
      FROM pattern p
      WHERE p.element_id = 28 AND p.attribute_id ~ '^[0-9]{1,9}$') sm
JOIN public_schema_link l ON l.vin_schema_id = sm.vin_schema_id
JOIN make_model mm ON mm.model_id = sm.model_id
GROUP BY mm.make_id, sm.model_id;

CREATE TABLE model_year AS
SELECT r.make_id, r.model_id, y.model_year
FROM model_years r
CROSS JOIN LATERAL unnest(r.years) AS u(span)
CROSS JOIN LATERAL generate_series(lower(u.span), upper(u.span) - 1) AS y(model_year);

-- Makes per year for dropdown_makes; model_year 0 lists the makes with any year. `road`: the make
-- has a WMI for a road vehicle a person maintains (motorcycle 1, passenger car 2, truck 3, bus 5,
-- MPV 7, low-speed vehicle 9). Without it a year lists ~9,000 makes, ~7,000 of them trailer
-- builders, which no dropdown can show; dropdown_makes offers them on request.
CREATE TABLE dropdown_make AS
WITH road_make AS (
    SELECT DISTINCT wm.make_id FROM wmi_make wm JOIN wmi w ON w.wmi_id = wm.wmi_id
    WHERE w.vehicle_type_id IN (1, 2, 3, 5, 7, 9)
), ranked_make AS (
    -- the dropdown's order (name, id) as an integer, ranked once over the makes (not per year):
    -- sorting it is cheap at query time, collated text is not
    SELECT m.make_id, upper(m.make_name) AS make_name,
           row_number() OVER (ORDER BY upper(m.make_name), m.make_id)::int AS sort_key
    FROM make m
), make_years AS (  -- a make's years: its models' year ranges merged
    SELECT r.make_id, range_agg(u.span) AS years
    FROM model_years r CROSS JOIN LATERAL unnest(r.years) AS u(span)
    GROUP BY r.make_id
)
SELECT y.model_year, y.make_id, m.make_name, r.make_id IS NOT NULL AS road, m.sort_key
FROM (SELECT my.make_id, g.model_year
      FROM make_years my
      CROSS JOIN LATERAL unnest(my.years) AS u(span)
      CROSS JOIN LATERAL generate_series(lower(u.span), upper(u.span) - 1) AS g(model_year)
      UNION ALL
      SELECT my.make_id, 0 FROM make_years my) y
JOIN ranked_make m ON m.make_id = y.make_id
LEFT JOIN road_make r ON r.make_id = y.make_id;
CREATE INDEX dropdown_make_idx ON dropdown_make (model_year, sort_key) INCLUDE (make_id, make_name, road);
CREATE INDEX dropdown_make_road_idx ON dropdown_make (model_year, sort_key) INCLUDE (make_id, make_name) WHERE road;
