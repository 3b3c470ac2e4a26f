-- GetVehicleVariableList: the variables DecodeVinExtended reports. Description and GroupName are
-- not in the catalog (null).
SELECT e.data_type AS "DataType", NULL::text AS "Description", NULL::text AS "GroupName",
       e.element_id AS "ID", e.element_name AS "Name"
FROM vehicles.element e
JOIN vehicles.decode_element d ON d.element_id = e.element_id
WHERE d.output OR e.element_id IN (96, 97, 98, 186)
ORDER BY e.element_id
