-- GetModelsForMake(Id) / GetModelsForMake(Id)Year: models of the matching makes (Make_Model), by
-- model id; a year keeps models with that model year (vehicles.model_year); a vehicle type keeps
-- models whose Model pattern is in a schema linked (for the year) to a public WMI of that type.
WITH mk AS (
    SELECT make_id, make_name FROM vehicles.make
    WHERE (%(make_id)s::int IS NULL OR make_id = %(make_id)s::int)
      AND (%(make_like)s::text IS NULL OR make_name ILIKE %(make_like)s::text)
)
SELECT mk.make_id AS "Make_ID", upper(mk.make_name) AS "Make_Name", m.model_id AS "Model_ID",
       m.model_name AS "Model_Name", v.vehicle_type_id AS "VehicleTypeId", v.vehicle_type_name AS "VehicleTypeName"
FROM mk
JOIN vehicles.make_model mm ON mm.make_id = mk.make_id
JOIN vehicles.model m ON m.model_id = mm.model_id
LEFT JOIN LATERAL (
    SELECT DISTINCT vt.lookup_id AS vehicle_type_id, vt.lookup_name AS vehicle_type_name
    FROM vehicles.pattern p
    JOIN vehicles.wmi_vin_schema ws ON ws.vin_schema_id = p.vin_schema_id
    JOIN vehicles.wmi w ON w.wmi_id = ws.wmi_id AND w.public_availability_date <= now()
    JOIN vehicles.lookup vt ON vt.lookup_table = 'VehicleType' AND vt.lookup_id = w.vehicle_type_id
    WHERE %(with_type)s AND p.element_id = 28 AND p.attribute_id = m.model_id::text
      AND (%(year)s::int IS NULL OR %(year)s::int BETWEEN ws.year_from AND coalesce(ws.year_to, 9999))
      AND (%(vt_id)s::int IS NULL OR vt.lookup_id = %(vt_id)s::int)
      AND (%(vt_like)s::text IS NULL OR vt.lookup_name ILIKE %(vt_like)s::text)
) v ON true
WHERE (%(year)s::int IS NULL OR EXISTS (SELECT 1 FROM vehicles.model_year y
                                        WHERE y.make_id = mk.make_id AND y.model_year = %(year)s::int
                                          AND y.model_id = m.model_id))
  AND (NOT %(with_type)s OR v.vehicle_type_id IS NOT NULL)
ORDER BY m.model_id, v.vehicle_type_id
