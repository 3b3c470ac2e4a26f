-- Which model years each model exists in, for the year -> make -> model dropdowns.
-- vPIC has no model-year table: years exist only as the year ranges of the WMI-schema links of
-- the schemas whose Model patterns name the model. Hidden schemas (TobeQCed) and WMIs not yet
-- public are left out, as NHTSA's public decoder leaves them out. Open-ended ranges stop at next
-- year, and every year is kept within 1980 .. current year + 2.

SET LOCAL work_mem = '256MB';  -- the DISTINCTs below spill to disk at the default 4 MB

-- The public year ranges of each schema (also what the trim/engine/transmission options use).
CREATE TABLE public_schema_link AS
SELECT DISTINCT ws.vin_schema_id,
       greatest(ws.year_from, 1980) AS year_from,
       least(coalesce(ws.year_to, extract(year FROM now())::int + 1),
             extract(year FROM now())::int + 2) AS year_to
FROM wmi_vin_schema ws
JOIN wmi w        ON w.wmi_id = ws.wmi_id
JOIN vin_schema s ON s.vin_schema_id = ws.vin_schema_id AND NOT s.tobe_qced
WHERE w.public_availability_date <= now();
DELETE FROM public_schema_link WHERE year_from > year_to;
CREATE INDEX public_schema_link_idx ON public_schema_link (vin_schema_id, year_from, year_to);
ANALYZE public_schema_link;

-- Schema/model pairs are made distinct before the year ranges are expanded (far fewer rows).
CREATE TABLE model_year AS
WITH schema_model AS (
    SELECT DISTINCT p.vin_schema_id, p.attribute_id::int AS model_id
    FROM pattern p
    WHERE p.element_id = 28 AND p.attribute_id ~ '^[0-9]{1,9}$'
), model_range AS (
    SELECT DISTINCT sm.model_id, l.year_from, l.year_to
    FROM schema_model sm JOIN public_schema_link l USING (vin_schema_id)
)
SELECT DISTINCT mm.make_id, r.model_id, y.model_year
FROM model_range r
JOIN make_model mm ON mm.model_id = r.model_id
CROSS JOIN LATERAL generate_series(r.year_from, r.year_to) AS y(model_year);
