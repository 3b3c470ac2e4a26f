-- GetAllManufacturers (100 a page) and GetManufacturerDetails: the catalog holds a manufacturer's
-- id and name only; the service prints NHTSA's other fields as null / [].
SELECT mf.manufacturer_id, mf.manufacturer_name
FROM vehicles.manufacturer mf
WHERE (%(mfr_id)s::int IS NULL OR mf.manufacturer_id = %(mfr_id)s::int)
  AND (%(mfr_like)s::text IS NULL OR mf.manufacturer_name ILIKE %(mfr_like)s::text)
ORDER BY mf.manufacturer_id
LIMIT %(limit)s OFFSET %(offset)s
