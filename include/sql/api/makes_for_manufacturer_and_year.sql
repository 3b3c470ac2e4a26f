-- GetMakesForManufacturerAndYear: makes of the manufacturer's public WMIs whose schema links
-- cover the year (vPIC's model years exist only as those ranges).
SELECT DISTINCT mk.make_id AS "MakeId", upper(mk.make_name) AS "MakeName",
       mf.manufacturer_id AS "MfrId", mf.manufacturer_name AS "MfrName"
FROM vehicles.manufacturer mf
JOIN vehicles.wmi w ON w.manufacturer_id = mf.manufacturer_id AND w.public_availability_date <= now()
JOIN vehicles.wmi_make wm ON wm.wmi_id = w.wmi_id
JOIN vehicles.make mk ON mk.make_id = wm.make_id
WHERE (%(mfr_id)s::int IS NULL OR mf.manufacturer_id = %(mfr_id)s::int)
  AND (%(mfr_like)s::text IS NULL OR mf.manufacturer_name ILIKE %(mfr_like)s::text)
  AND EXISTS (SELECT 1 FROM vehicles.wmi_vin_schema ws
              WHERE ws.wmi_id = w.wmi_id AND %(year)s::int BETWEEN ws.year_from AND coalesce(ws.year_to, 9999))
ORDER BY 1, 3
