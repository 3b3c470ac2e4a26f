-- Which model years each model exists in, for the year -> make -> model dropdowns.
-- vPIC has no model-year table: years exist only as the year ranges of the WMI-schema links of
-- the schemas whose Model patterns name the model. Hidden schemas (TobeQCed) and WMIs not yet
-- public are left out, as NHTSA's public decoder leaves them out. Open-ended ranges stop at next
-- year, and every year is kept within 1980 .. current year + 2.
-- Schema/model pairs are made distinct before the year ranges are expanded (far fewer rows).
CREATE TABLE model_year AS
WITH schema_model AS (
    SELECT DISTINCT p.vin_schema_id, p.attribute_id::int AS model_id
    FROM pattern p
    JOIN element e ON e.element_id = p.element_id AND e.code = 'Model'
    WHERE p.attribute_id ~ '^[0-9]{1,9}$'
), public_link AS (
    SELECT ws.vin_schema_id,
           greatest(ws.year_from, 1980) AS y0,
           least(coalesce(ws.year_to, extract(year FROM now())::int + 1),
                 extract(year FROM now())::int + 2) AS y1
    FROM wmi_vin_schema ws
    JOIN wmi w        ON w.wmi_id = ws.wmi_id
    JOIN vin_schema s ON s.vin_schema_id = ws.vin_schema_id AND NOT s.tobe_qced
    WHERE w.public_availability_date <= now()
), model_range AS (
    SELECT DISTINCT sm.model_id, l.y0, l.y1
    FROM schema_model sm JOIN public_link l USING (vin_schema_id)
)
SELECT DISTINCT mm.make_id, r.model_id, y.model_year
FROM model_range r
JOIN make_model mm ON mm.model_id = r.model_id
CROSS JOIN LATERAL generate_series(r.y0, r.y1) AS y(model_year);
