-- GetWMIsForManufacturer: public WMIs of manufacturers matching by id (a number) or name (LIKE),
-- optionally of a vehicle type matching by id or name.
SELECT c.lookup_name AS "Country",
       to_char(w.created_on, 'YYYY-MM-DD') AS "CreatedOn",
       to_char(w.public_availability_date, 'YYYY-MM-DD') AS "DateAvailableToPublic",
       mf.manufacturer_id AS "Id",
       mf.manufacturer_name AS "Name",
       to_char(w.updated_on, 'YYYY-MM-DD') AS "UpdatedOn",
       vt.lookup_name AS "VehicleType",
       w.wmi AS "WMI"
FROM vehicles.wmi w
JOIN vehicles.manufacturer mf ON mf.manufacturer_id = w.manufacturer_id
LEFT JOIN vehicles.lookup c ON c.lookup_table = 'Country' AND c.lookup_id = w.country_id
LEFT JOIN vehicles.lookup vt ON vt.lookup_table = 'VehicleType' AND vt.lookup_id = w.vehicle_type_id
WHERE w.public_availability_date <= now()
  AND (%(mfr_id)s::int IS NULL OR mf.manufacturer_id = %(mfr_id)s::int)
  AND (%(mfr_like)s::text IS NULL OR mf.manufacturer_name ILIKE %(mfr_like)s::text)
  AND (%(vt_id)s::int IS NULL OR w.vehicle_type_id = %(vt_id)s::int)
  AND (%(vt_like)s::text IS NULL OR vt.lookup_name ILIKE %(vt_like)s::text)
ORDER BY mf.manufacturer_id, w.wmi
