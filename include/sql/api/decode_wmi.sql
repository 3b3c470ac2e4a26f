-- DecodeWMI: the public WMI. CommonName, ParentCompanyName and URL are not in the catalog (null).
SELECT NULL::text AS "CommonName",
       to_char(w.created_on, 'YYYY-MM-DD') AS "CreatedOn",
       to_char(w.public_availability_date, 'YYYY-MM-DD') AS "DateAvailableToPublic",
       upper(mk.make_name) AS "Make",
       mf.manufacturer_name AS "ManufacturerName",
       NULL::text AS "ParentCompanyName",
       NULL::text AS "URL",
       to_char(w.updated_on, 'YYYY-MM-DD') AS "UpdatedOn",
       vt.lookup_name AS "VehicleType"
FROM vehicles.wmi w
LEFT JOIN vehicles.make mk ON mk.make_id = w.make_id
LEFT JOIN vehicles.manufacturer mf ON mf.manufacturer_id = w.manufacturer_id
LEFT JOIN vehicles.lookup vt ON vt.lookup_table = 'VehicleType' AND vt.lookup_id = w.vehicle_type_id
WHERE w.wmi = upper(%(wmi)s) AND w.public_availability_date <= now()
