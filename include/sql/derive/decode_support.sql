-- builds: decode_schema_key, decode_schema_chars, decode_wmi, decode_wmi_link, decode_element, decode_error_code, decode_template, decode_wmi_year_chars, decode_default, decode_spec_key, decode_spec_fill
-- reads: decode_key
-- priority: 5
-- (The header the loader reads, vehicle_etl/staging/derived.py: the derived tables this file builds, the
-- derived tables it reads (the loaded ones are always there; '-' for none), and its start priority,
-- lower first when two files are ready. A file starts once the files building what it reads have committed.)
--
-- Decoder support tables, precomputed once per release so that decode_vin() does no parsing,
-- over the parsed keys (decode_key, decode_key.sql). search_path = the staging schema.
-- Tables: decode_schema_key, decode_schema_chars, decode_wmi, decode_wmi_link, decode_element,
-- decode_error_code, decode_template, ... (the header lists them). docs/DECODER.md explains each.

SET LOCAL work_mem = '256MB';

-- Elements as the decoder outputs them. lookup_mode: how an AttributeId becomes the printed value.
-- A lookup table the source does not have (37 of them in the snapshot, besides ErrorCode) prints the id, as the
-- loader warns; a lookup row missing from a present table prints '' (NHTSA's NULL).
CREATE TABLE decode_element AS
SELECT e.element_id, e.code, e.lookup_table, e.weight,
       e.element_id IN (114, 121, 129, 150, 154, 155, 169, 186) AS multi_value,
       CASE
           WHEN e.lookup_table IS NULL OR e.data_type IS DISTINCT FROM 'lookup' THEN 'literal'
           WHEN e.lookup_table = 'Make' THEN 'make'
           WHEN e.lookup_table = 'Model' THEN 'model'
           WHEN e.lookup_table = 'Manufacturer' THEN 'manufacturer'
           WHEN EXISTS (SELECT 1 FROM lookup l WHERE l.lookup_table = e.lookup_table) THEN 'lookup'
           ELSE 'literal'
       END AS lookup_mode,
       (e.decode IS NOT NULL AND NOT e.is_private) AS output
FROM element e;
ALTER TABLE decode_element ADD PRIMARY KEY (element_id);

-- Every (schema, key) once (patterns sharing a key are matched once), with the ids of the
-- patterns a public decode may use: not in hidden (TobeQCed) schemas; Make, Manufacturer,
-- ModelYear and VehicleType never come from patterns. Formula keys ('#') keep every element, as
-- NHTSA's formula step does not filter on Decode/IsPrivate. The decoder reads the pattern rows
-- themselves by primary key: no copy of the 0.8M patterns.
CREATE TEMP TABLE vpic_schema_key ON COMMIT DROP AS
SELECT p.vin_schema_id, upper(p.keys) AS keys,
       array_agg(p.pattern_id) FILTER (
           WHERE p.element_id NOT IN (26, 27, 29, 39) AND s.tobe_qced IS FALSE AND e.element_id IS NOT NULL
             AND (strpos(p.keys, '#') > 0 OR (e.decode IS NOT NULL AND NOT e.is_private))) AS pattern_ids
FROM pattern p
LEFT JOIN vin_schema s ON s.vin_schema_id = p.vin_schema_id
LEFT JOIN element e    ON e.element_id = p.element_id
GROUP BY p.vin_schema_id, upper(p.keys);

CREATE TABLE decode_schema_key AS
SELECT sk.vin_schema_id, sk.keys, k.like_pat, k.regex, sk.pattern_ids
FROM vpic_schema_key sk
JOIN decode_key k ON k.keys = sk.keys
WHERE sk.pattern_ids IS NOT NULL
ORDER BY sk.vin_schema_id;
CREATE INDEX decode_schema_key_idx ON decode_schema_key (vin_schema_id);

-- Characters each VIN position admits per schema, from every key of the schema (all elements,
-- hidden schemas too), as bitmasks over 0-9A-Z: masks[i] is VIN position i + 3. NHTSA's fallback
-- for the missing WMIYearValidChars cache, behind error codes 2-5.
CREATE TABLE decode_schema_chars AS
SELECT sk.vin_schema_id,
       ARRAY[coalesce(bit_or(k.masks[1]), 0), coalesce(bit_or(k.masks[2]), 0), coalesce(bit_or(k.masks[3]), 0),
             coalesce(bit_or(k.masks[4]), 0), coalesce(bit_or(k.masks[5]), 0), coalesce(bit_or(k.masks[6]), 0),
             coalesce(bit_or(k.masks[7]), 0), coalesce(bit_or(k.masks[8]), 0), coalesce(bit_or(k.masks[9]), 0),
             coalesce(bit_or(k.masks[10]), 0), coalesce(bit_or(k.masks[11]), 0), coalesce(bit_or(k.masks[12]), 0),
             coalesce(bit_or(k.masks[13]), 0), coalesce(bit_or(k.masks[14]), 0)] AS masks
FROM vpic_schema_key sk
JOIN decode_key k ON k.keys = sk.keys
GROUP BY sk.vin_schema_id;
ALTER TABLE decode_schema_chars ADD PRIMARY KEY (vin_schema_id);

-- One row per WMI with what every pass needs. public: PublicAvailabilityDate has passed (checked
-- again at decode time against now()). car_lt: passenger car, MPV or light truck (position-7
-- model-year rule, check-digit character rules). single_make: the WMI's only Wmi_Make make.
CREATE TABLE decode_wmi AS
SELECT w.wmi, w.wmi_id, w.public_availability_date,
       w.vehicle_type_id, upper(vt.lookup_name) AS vehicle_type_name,
       (w.vehicle_type_id IN (2, 7) OR (w.vehicle_type_id = 3 AND w.truck_type_id = 1)) IS TRUE AS car_lt,
       w.manufacturer_id, upper(mf.manufacturer_name) AS manufacturer_name,
       sm.make_id AS single_make_id, upper(sm.make_name) AS single_make_name
FROM wmi w
LEFT JOIN lookup vt ON vt.lookup_table = 'VehicleType' AND vt.lookup_id = w.vehicle_type_id
LEFT JOIN manufacturer mf ON mf.manufacturer_id = w.manufacturer_id
LEFT JOIN (  -- grouped once, not per WMI: no indexes exist yet while deriving
    SELECT wm.wmi_id, min(m.make_id) AS make_id, min(m.make_name) AS make_name
    FROM wmi_make wm JOIN make m ON m.make_id = wm.make_id
    GROUP BY wm.wmi_id
    HAVING count(*) = 1
) sm ON sm.wmi_id = w.wmi_id;
CREATE UNIQUE INDEX decode_wmi_wmi_idx ON decode_wmi (wmi);

-- Per WMI its schema links (Wmi_VinSchema) as three arrays sorted by YearTo: schema, YearFrom and
-- YearTo (an open YearTo as 2999, as the decoder reads it), and the years they cover. The batch
-- decoder reads a WMI's links with one probe here instead of one heap visit per link, and skips
-- the links ending before the model year with a binary search (width_bucket over year_to).
CREATE TABLE decode_wmi_link AS
SELECT ws.wmi_id,
       array_agg(ws.vin_schema_id ORDER BY coalesce(ws.year_to, 2999), ws.wmi_vin_schema_id) AS schema_ids,
       array_agg(ws.year_from ORDER BY coalesce(ws.year_to, 2999), ws.wmi_vin_schema_id) AS year_from,
       array_agg(coalesce(ws.year_to, 2999) ORDER BY coalesce(ws.year_to, 2999), ws.wmi_vin_schema_id) AS year_to,
       range_agg(int4range(ws.year_from, coalesce(ws.year_to, 2999), '[]'))
           FILTER (WHERE ws.year_from <= coalesce(ws.year_to, 2999)) AS years
FROM wmi_vin_schema ws
GROUP BY ws.wmi_id;
ALTER TABLE decode_wmi_link ADD PRIMARY KEY (wmi_id);

-- Error code names and weights: the release's ErrorCode table where it has a row (NHTSA's complete
-- release), else these embedded ones as NHTSA publishes them (the snapshots lack the table; texts of
-- 9 and 12 and the split of the -100..-300 weights over 2-5 are our best knowledge; docs/DECODER.md).
-- Weights order the passes only.
CREATE TABLE decode_error_code (
    id      integer PRIMARY KEY,
    name    text    NOT NULL,
    weight  integer NOT NULL,
    additional_text text
);
INSERT INTO decode_error_code VALUES
 (0,   '0 - VIN decoded clean. Check Digit (9th position) is correct', 0, NULL),
 (1,   '1 - Check Digit (9th position) does not calculate properly', -5, NULL),
 (2,   '2 - VIN corrected, error in one position', -100, NULL),
 (3,   '3 - VIN corrected, error in one position (assuming Check Digit is correct)', -150, NULL),
 (4,   '4 - VIN corrected, error in one position only (indicated by ! in Suggested VIN), multiple matches found', -200,
       'In the Possible values section, the Numeric value before the : indicates the position in error and the values after the : indicate the possible values that are allowed in this position.'),
 (5,   '5 - VIN has errors in few positions', -300,
       'In the Possible values section, the Numeric value before the : indicates the position in error and the values after the : indicate the possible values that are allowed in this position.'),
 (6,   '6 - Incomplete VIN', -10, NULL),
 (7,   '7 - Manufacturer is not registered with NHTSA for sale or importation in the U.S. for use on U.S roads; Please contact the manufacturer directly for more information', -10000, NULL),
 (8,   '8 - No detailed data available currently', -1000, NULL),
 (9,   '9 - Glider', 0, NULL),
 (10,  '10 - Off-road Vehicle Warning – This is not a vehicle identification number (VIN) for a motor vehicle. This indicates that the manufacturer did not certify this product as complying with the Federal motor vehicle safety standards which are applicable to motor vehicles as defined at 49 U.S.C. 30102.', 0, NULL),
 (11,  '11 - Incorrect Model Year - Position 10 does not match valid model year codes (I, O, Q, U, Z, 0). Decoded data may not be accurate.', -20, NULL),
 (12,  '12 - Model Year input does not match the Model Year decoded from the VIN. Decoded data may not be accurate.', -20, NULL),
 (14,  '14 - Unable to provide information for some of the characters in the VIN, based on the manufacturer submission.', -30, NULL),
 (400, '400 - Invalid Characters Present', -40, NULL);
-- The release's rows win, per code (a code the release lacks keeps the embedded row). ErrorText
-- prints "<id> - <name>": a release name without that prefix gets it.
UPDATE decode_error_code d
SET name = CASE WHEN e.error_code_name ~ ('^' || e.error_code_id || '\s*-') THEN e.error_code_name
                ELSE e.error_code_id || ' - ' || e.error_code_name END,
    weight = coalesce(e.weight, d.weight),
    additional_text = coalesce(e.additional_error_text, d.additional_text)
FROM error_code e
WHERE e.error_code_id = d.id AND e.error_code_name <> '';
INSERT INTO decode_error_code
SELECT e.error_code_id,
       CASE WHEN e.error_code_name ~ ('^' || e.error_code_id || '\s*-') THEN e.error_code_name
            ELSE e.error_code_id || ' - ' || e.error_code_name END,
       coalesce(e.weight, 0), e.additional_error_text
FROM error_code e
WHERE e.error_code_name <> '' AND NOT EXISTS (SELECT 1 FROM decode_error_code d WHERE d.id = e.error_code_id);

-- NHTSA's valid-character cache (WMIYearValidChars), where the release has it: per WMI and model
-- year the characters VIN positions 4-14 admit, as bitmasks like decode_schema_chars (masks[i] is
-- position i + 3). A (WMI, year) it lists replaces the schema-derived characters for codes 2-5 and
-- the suggestions (spVinDecode_ErrorCode reads the cache first and derives only when it has no row
-- for the WMI and year); WMIs in WMIYearValidChars_CacheExceptions are left to the derivation.
CREATE TABLE decode_wmi_year_chars AS
SELECT c.wmi, c.year,
       ARRAY[
             coalesce(max(c.m) FILTER (WHERE c.position = 4), 0), coalesce(max(c.m) FILTER (WHERE c.position = 5), 0),
             coalesce(max(c.m) FILTER (WHERE c.position = 6), 0), coalesce(max(c.m) FILTER (WHERE c.position = 7), 0),
             coalesce(max(c.m) FILTER (WHERE c.position = 8), 0), coalesce(max(c.m) FILTER (WHERE c.position = 9), 0),
             coalesce(max(c.m) FILTER (WHERE c.position = 10), 0), coalesce(max(c.m) FILTER (WHERE c.position = 11), 0),
             coalesce(max(c.m) FILTER (WHERE c.position = 12), 0), coalesce(max(c.m) FILTER (WHERE c.position = 13), 0),
             coalesce(max(c.m) FILTER (WHERE c.position = 14), 0)] AS masks
FROM (
    SELECT upper(trim(v.wmi)) AS wmi, v.year, v.position,
           bit_or(1::bigint << (strpos('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', upper(v.valid_char)) - 1)) AS m
    FROM wmi_year_valid_chars v
    WHERE v.position BETWEEN 4 AND 14 AND length(v.valid_char) = 1
      AND strpos('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', upper(v.valid_char)) > 0
      AND NOT EXISTS (SELECT 1 FROM wmi_year_valid_chars_exception x WHERE upper(trim(x.wmi)) = upper(trim(v.wmi)))
    GROUP BY upper(trim(v.wmi)), v.year, v.position
) c
GROUP BY c.wmi, c.year;
ALTER TABLE decode_wmi_year_chars ADD PRIMARY KEY (wmi, year);

-- DefaultValue: per vehicle type, the value an element prints when nothing else filled it (the
-- source of most "Not Applicable" answers). A numeric default of a lookup element is a lookup id
-- (printed as its name); any other default prints as written.
CREATE TABLE decode_default AS
SELECT dv.vehicle_type_id, dv.element_id, min(trim(dv.default_value)) AS attribute_id,
       CASE WHEN de.lookup_mode IN ('lookup', 'model') AND min(trim(dv.default_value)) ~ '^[0-9]{1,9}$' THEN NULL
            ELSE min(trim(dv.default_value)) END AS val
FROM default_value dv
JOIN decode_element de ON de.element_id = dv.element_id
WHERE de.output AND de.code IS NOT NULL AND dv.element_id NOT IN (26, 27, 28, 29, 39)
  AND coalesce(trim(dv.default_value), '') <> ''
GROUP BY dv.vehicle_type_id, dv.element_id, de.lookup_mode;
ALTER TABLE decode_default ADD PRIMARY KEY (vehicle_type_id, element_id);

-- The flat DecodeVinValues object with every output key empty; a decode overlays its values.
CREATE TABLE decode_template AS
SELECT jsonb_object_agg(code, '') || jsonb_build_object(
           'VIN', '', 'MakeID', '', 'ModelID', '', 'ManufacturerId', '',
           'ErrorCode', '', 'ErrorText', '', 'SuggestedVIN', '', 'PossibleValues', '',
           'AdditionalErrorText', '', 'VehicleDescriptor', '') AS doc
FROM decode_element WHERE output AND code IS NOT NULL;


-- VehicleSpec*: NHTSA's model-level spec sheets. A sheet (VSpecSchemaPattern) applies to a decode of
-- its make (through the WMI's Wmi_Make), vehicle type, model and, when it lists years, model year,
-- if every key row (IsKey) equals a decoded value; its other rows then fill elements still empty
-- (after conversions, before DefaultValue). Hidden (TobeQCed) sheets are left out. Grouped here
-- once: no indexes exist yet while deriving.
CREATE TABLE decode_spec_key AS
WITH keys AS (
    SELECT vspec_schema_pattern_id,
           array_agg(element_id ORDER BY vehicle_spec_pattern_id) AS key_elements,
           array_agg(attribute_id ORDER BY vehicle_spec_pattern_id) AS key_values
    FROM vehicle_spec_pattern WHERE is_key
    GROUP BY vspec_schema_pattern_id
), years AS (
    SELECT vehicle_spec_schema_id, array_agg(DISTINCT year) AS years
    FROM vehicle_spec_schema_year GROUP BY vehicle_spec_schema_id
)
SELECT sp.vspec_schema_pattern_id, s.make_id, s.vehicle_type_id, m.model_id, y.years, k.key_elements, k.key_values
FROM vspec_schema_pattern sp
JOIN vehicle_spec_schema s ON s.vehicle_spec_schema_id = sp.vehicle_spec_schema_id
JOIN vehicle_spec_schema_model m ON m.vehicle_spec_schema_id = s.vehicle_spec_schema_id
JOIN keys k ON k.vspec_schema_pattern_id = sp.vspec_schema_pattern_id
LEFT JOIN years y ON y.vehicle_spec_schema_id = s.vehicle_spec_schema_id
WHERE NOT s.tobe_qced;
CREATE INDEX decode_spec_key_model_idx ON decode_spec_key (model_id, vehicle_type_id);

CREATE TABLE decode_spec_fill AS
SELECT p.vspec_schema_pattern_id, p.element_id, p.attribute_id
FROM vehicle_spec_pattern p
JOIN decode_element de ON de.element_id = p.element_id
WHERE NOT p.is_key AND de.output AND p.element_id NOT IN (26, 27, 28, 29, 39);
CREATE INDEX decode_spec_fill_idx ON decode_spec_fill (vspec_schema_pattern_id);
