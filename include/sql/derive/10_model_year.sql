-- Which model years each model exists in, for the year -> make -> model dropdowns.
-- vPIC has no model-year table: years exist only as the year ranges of the WMI-schema links of
-- the schemas whose Model patterns name the model. Hidden schemas (TobeQCed) and WMIs not yet
-- public are left out, as NHTSA's public decoder leaves them out. Open-ended ranges stop at next
-- year; all years are kept within 1980 .. current year + 2.
CREATE TABLE model_year AS
SELECT DISTINCT mm.make_id, m.model_id, y.model_year
FROM pattern p
JOIN element e         ON e.element_id = p.element_id AND e.code = 'Model'
JOIN vin_schema s      ON s.vin_schema_id = p.vin_schema_id AND NOT s.tobe_qced
JOIN wmi_vin_schema ws ON ws.vin_schema_id = p.vin_schema_id
JOIN wmi w             ON w.wmi_id = ws.wmi_id
                      AND w.public_availability_date IS NOT NULL
                      AND w.public_availability_date <= now()
JOIN model m           ON m.model_id::text = p.attribute_id
JOIN make_model mm     ON mm.model_id = m.model_id
CROSS JOIN LATERAL generate_series(
    greatest(ws.year_from, 1980),
    least(coalesce(ws.year_to, extract(year FROM now())::int + 1), extract(year FROM now())::int + 2)
) AS y(model_year);
