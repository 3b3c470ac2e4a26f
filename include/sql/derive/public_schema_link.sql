-- builds: public_schema_link
-- reads: -
-- priority: 1
-- (The header the loader reads, vehicle_etl/staging/derived.py: the derived tables this file builds, the
-- derived tables it reads (the loaded ones are always there; '-' for none), and its start priority,
-- lower first when two files are ready. A file starts once the files building what it reads have committed.)
--
-- The public year ranges of each schema: what the model years and the trim/engine/transmission
-- options use. Hidden schemas (TobeQCed) and WMIs not yet public are left out, as NHTSA's public
-- decoder leaves them out. Open-ended ranges stop at next year, and every year is kept within
-- 1980 .. current year + 2. Its own (fast) file, so the dropdown options need not wait for the
-- model years.

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

