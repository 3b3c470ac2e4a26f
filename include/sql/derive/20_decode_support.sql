-- Decoder support tables, precomputed once per release so that decode_vin() does no parsing.
-- search_path = the staging schema. Helpers live in pg_temp: nothing but tables is left behind.
-- Tables: decode_key (one row per distinct vPIC key: LIKE prefilter, regex, per-position
-- characters and masks), decode_schema_key, decode_schema_chars, decode_wmi, decode_element, decode_error_code,
-- decode_template. docs/DECODER.md explains each.

-- Hash joins and sorts over 0.8M patterns spill at the default 4 MB; this transaction only.
SET LOCAL work_mem = '256MB';

-- A bracket class, e.g. "1-58", "CFJM_", or the malformed "1-A-JT", as the characters it admits
-- (letters and digits only, in order). Ranges run in character order over the 33 VIN characters
-- (as NHTSA's fValidCharsInRegEx); after a range a '-' is literal, so "1-A-JT" reads 1..A, J, T
-- (SQL Server's LIKE reading; NHTSA's PostgreSQL port raises an error on that key).
CREATE OR REPLACE FUNCTION pg_temp.vpic_class_chars(cls text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    vin_chars constant text := '0123456789ABCDEFGHJKLMNPRSTUVWXYZ';
    an constant text := '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
    body text := upper(cls);
    neg boolean := false;
    raw text := '';
    p int := 1;
    n int;
    a text;
    b text;
BEGIN
    IF left(body, 1) = '^' THEN
        neg := true;
        body := substr(body, 2);
    END IF;
    n := length(body);
    WHILE p <= n LOOP
        a := substr(body, p, 1);
        IF p + 2 <= n AND substr(body, p + 1, 1) = '-' THEN
            b := substr(body, p + 2, 1);
            IF a COLLATE "C" <= b COLLATE "C" AND a ~ '[0-9A-Z]' AND b ~ '[0-9A-Z]' THEN
                raw := raw || regexp_replace(vin_chars, '[^' || a || '-' || b || ']', '', 'g');
            END IF;
            p := p + 3;
        ELSE
            raw := raw || a;
            p := p + 1;
        END IF;
    END LOOP;
    -- translate() twice keeps the characters of `an` that occur in raw, in order, once each.
    raw := translate(an, translate(an, raw, ''), '');
    IF neg THEN
        raw := translate(vin_chars, raw, '');
    END IF;
    RETURN raw;
END $$;

-- Keys with a bracket class are parsed into tokens (a literal, '*', '#' or a whole class); the
-- other keys (about half) are handled with plain string functions, one row each, no aggregation.
CREATE TEMP TABLE vpic_key_token ON COMMIT DROP AS
SELECT k.keys, t.ord::int AS ord, t.m[1] AS tok
FROM (SELECT DISTINCT upper(keys) AS keys FROM pattern WHERE strpos(keys, '[') > 0) k
CROSS JOIN LATERAL regexp_matches(k.keys, '\[[^]]*\]?|.', 'g') WITH ORDINALITY AS t(m, ord);

-- The characters a token admits as a bitmask over 0-9A-Z (bit i = i-th character); other
-- characters have no bit. Behind error codes 2-5 (decode_schema_chars).
CREATE OR REPLACE FUNCTION pg_temp.vpic_mask(chars text) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(sum(DISTINCT 1::bigint << (strpos('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', c) - 1))
                    FILTER (WHERE c <> '' AND strpos('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', c) > 0), 0)::bigint
    FROM regexp_split_to_table(chars, '') AS c
$$;

CREATE TEMP TABLE vpic_class ON COMMIT DROP AS
SELECT tok, chars, pg_temp.vpic_mask(chars) AS mask
FROM (SELECT tok, pg_temp.vpic_class_chars(trim(trailing ']' FROM substr(tok, 2))) AS chars
      FROM (SELECT DISTINCT tok FROM vpic_key_token WHERE left(tok, 1) = '[') c) c;

-- One key: the LIKE prefix pattern (a class is '_' there and confirmed by the regex), the
-- anchored regex (only for keys with a class), the characters each position admits in NHTSA's
-- strict sense (fValidCharsInKey: '*' admits none, '#' the digits; behind error codes 2-5 and
-- 14) and as bitmasks (masks, positions 1-14; 0 = the position constrains nothing, as '*'
-- or '|'; the dropdowns' compatibility test reads them that way).
CREATE TABLE decode_key AS
SELECT t.keys,
       string_agg(CASE WHEN c.tok IS NOT NULL OR t.tok = '*' THEN '_'
                       WHEN t.tok IN ('%', '_', '\') THEN '\' || t.tok
                       ELSE t.tok END, '' ORDER BY t.ord) || '%' AS like_pat,
       '^' || string_agg(CASE WHEN c.tok IS NOT NULL THEN
                                  CASE WHEN c.chars = '' THEN '[^\s\S]' ELSE '[' || c.chars || ']' END
                              WHEN t.tok = '*' THEN '.'
                              WHEN t.tok ~ '[A-Z0-9#]' THEN t.tok
                              ELSE '\' || t.tok END, '' ORDER BY t.ord) AS regex,
       array_agg(CASE WHEN c.tok IS NOT NULL THEN c.chars
                      WHEN t.tok = '*' THEN ''
                      WHEN t.tok = '#' THEN '0123456789'
                      ELSE t.tok END ORDER BY t.ord) AS pos_chars,
       array_agg(CASE WHEN c.tok IS NOT NULL THEN c.mask
                      WHEN t.tok = '#' THEN 1023
                      WHEN strpos('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', t.tok) > 0
                          THEN 1::bigint << (strpos('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', t.tok) - 1)
                      ELSE 0 END ORDER BY t.ord) AS masks
FROM vpic_key_token t
LEFT JOIN vpic_class c ON c.tok = t.tok
GROUP BY t.keys;

-- Keys without a class: every character is a token. x01 separates the mapped characters.
INSERT INTO decode_key
SELECT k.keys,
       replace(regexp_replace(k.keys, '([%_\\])', '\\\1', 'g'), '*', '_') || '%',
       NULL,
       string_to_array(left(replace(replace(regexp_replace(k.keys, '(.)', E'\\1\x01', 'g'),
                                            E'*\x01', E'\x01'), E'#\x01', E'0123456789\x01'), -1), E'\x01'),
       ARRAY(SELECT CASE WHEN c = '#' THEN 1023
                         WHEN c <> '' AND strpos('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', c) > 0
                             THEN 1::bigint << (strpos('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', c) - 1)
                         ELSE 0 END
             FROM regexp_split_to_table(left(k.keys, 14), '') AS c)
FROM (SELECT DISTINCT upper(keys) AS keys FROM pattern WHERE strpos(keys, '[') = 0 AND keys <> '') k;
CREATE UNIQUE INDEX decode_key_keys_idx ON decode_key (keys);

-- Elements as the decoder outputs them. lookup_mode: how an AttributeId becomes the printed value.
-- A lookup table the source does not have (38 of them in the snapshot) prints the id, as the
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

-- NHTSA's ErrorCode table is not in the snapshot: names and weights as NHTSA publishes them
-- (texts of 9 and 12 and the split of the -100..-300 weights over 2-5 are our best knowledge;
-- docs/DECODER.md). Weights order the passes only.
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

-- The flat DecodeVinValues object with every output key empty; a decode overlays its values.
CREATE TABLE decode_template AS
SELECT jsonb_object_agg(code, '') || jsonb_build_object(
           'VIN', '', 'MakeID', '', 'ModelID', '', 'ManufacturerId', '',
           'ErrorCode', '', 'ErrorText', '', 'SuggestedVIN', '', 'PossibleValues', '',
           'AdditionalErrorText', '', 'VehicleDescriptor', '') AS doc
FROM decode_element WHERE output AND code IS NOT NULL;

-- 30_dropdown_options joins decode_key in the next wave: give the planner its statistics.
ANALYZE decode_key;
