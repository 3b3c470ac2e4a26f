-- DecodeVin / DecodeVinExtended: the flat decode as NHTSA's Variable/Value rows. ValueId is the
-- lookup id of a lookup value (Make/Model/Manufacturer from the decode's ids; the value itself when
-- its lookup table is not in the catalog, as decode_vin prints such ids), '' for text variables.
-- Order: the five error variables first (as NHTSA lists them), then by variable id (the catalog
-- has no Element.GroupName, NHTSA's grouping).
WITH r AS (SELECT vehicles.decode_vin(%(vin)s, %(year)s) AS doc)
SELECT CASE WHEN e.element_id IN (142, 144) THEN coalesce(v.value, '') ELSE nullif(v.value, '') END AS "Value",
       CASE
           WHEN e.element_id = 26 THEN nullif(r.doc ->> 'MakeID', '')
           WHEN e.element_id = 27 THEN nullif(r.doc ->> 'ManufacturerId', '')
           WHEN e.element_id = 28 THEN nullif(r.doc ->> 'ModelID', '')
           WHEN e.lookup_table IS NULL THEN ''
           WHEN nullif(v.value, '') IS NULL THEN NULL
           WHEN NOT EXISTS (SELECT 1 FROM vehicles.lookup l WHERE l.lookup_table = e.lookup_table) THEN v.value
           ELSE (SELECT min(l.lookup_id)::text FROM vehicles.lookup l
                 WHERE l.lookup_table = e.lookup_table AND upper(l.lookup_name) = upper(v.value))
       END AS "ValueId",
       e.element_name AS "Variable",
       e.element_id AS "VariableId"
FROM r
CROSS JOIN vehicles.element e
CROSS JOIN LATERAL (SELECT r.doc ->> e.code AS value) v
WHERE (r.doc ? e.code AND e.code NOT IN ('VIN', 'MakeID', 'ModelID', 'ManufacturerId'))
   OR (%(extended)s AND e.element_id IN (96, 97, 98, 186))
ORDER BY coalesce(array_position(ARRAY[142, 143, 144, 156, 191], e.element_id), 1000), e.element_id
