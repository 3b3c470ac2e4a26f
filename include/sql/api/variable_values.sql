-- GetVehicleVariableValuesList: the values of a lookup variable, by id (a number) or exact name.
WITH e AS (
    SELECT element_id, element_name, lookup_table FROM vehicles.element
    WHERE (%(id)s::int IS NOT NULL AND element_id = %(id)s::int)
       OR (%(id)s::int IS NULL AND lower(element_name) = lower(%(name)s::text))
)
SELECT * FROM (
    SELECT e.element_name AS "ElementName", l.lookup_id AS "Id", l.lookup_name AS "Name"
    FROM e JOIN vehicles.lookup l ON l.lookup_table = e.lookup_table
    UNION ALL
    SELECT e.element_name, mk.make_id, upper(mk.make_name) FROM e JOIN vehicles.make mk ON e.lookup_table = 'Make'
    UNION ALL
    SELECT e.element_name, m.model_id, m.model_name FROM e JOIN vehicles.model m ON e.lookup_table = 'Model'
    UNION ALL
    SELECT e.element_name, mf.manufacturer_id, mf.manufacturer_name
    FROM e JOIN vehicles.manufacturer mf ON e.lookup_table = 'Manufacturer'
) v
ORDER BY "Id"
