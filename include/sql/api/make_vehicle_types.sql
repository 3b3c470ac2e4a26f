-- GetMakesForVehicleType / GetVehicleTypesForMake / GetVehicleTypesForMakeId: a make has a
-- vehicle type when one of its public WMIs (Wmi_Make) is of that type.
SELECT DISTINCT mk.make_id AS "MakeId", upper(mk.make_name) AS "MakeName",
       vt.lookup_id AS "VehicleTypeId", vt.lookup_name AS "VehicleTypeName"
FROM vehicles.make mk
JOIN vehicles.wmi_make wm ON wm.make_id = mk.make_id
JOIN vehicles.wmi w ON w.wmi_id = wm.wmi_id AND w.public_availability_date <= now()
JOIN vehicles.lookup vt ON vt.lookup_table = 'VehicleType' AND vt.lookup_id = w.vehicle_type_id
WHERE (%(make_id)s::int IS NULL OR mk.make_id = %(make_id)s::int)
  AND (%(make_like)s::text IS NULL OR mk.make_name ILIKE %(make_like)s::text)
  AND (%(vt_id)s::int IS NULL OR vt.lookup_id = %(vt_id)s::int)
  AND (%(vt_like)s::text IS NULL OR vt.lookup_name ILIKE %(vt_like)s::text)
ORDER BY 1, 3
