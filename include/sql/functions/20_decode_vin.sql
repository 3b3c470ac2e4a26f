-- VIN decoding at parity with NHTSA's spVinDecode (docs/DECODER.md; ../shared/docs/vpic-decoding.md).
-- Installed into staging by build_keys and into live by the swap: every table is named
-- {{schema}}.<table>, so a call never depends on the caller's search_path, and CREATE OR REPLACE
-- keeps the functions' OIDs across swaps. No temp tables (NHTSA's procedures create up to 20 per
-- decode): a pass is a few indexed queries over precomputed tables (derive/decode_key.sql and
-- derive/decode_support.sql).

-- In `vehicles` the tables are views over the version store (vehicle_etl/release/swap.py), created in the
-- same transaction on the first promotion: SQL-language bodies are checked at call time instead
-- (this transaction only).
SET LOCAL check_function_bodies = off;

-- NHTSA's check digit (fVINCheckDigit / fVINCheckDigit2): '' unless 17 characters, '?' when a
-- character is not allowed at its position. car_lt NULL selects the first variant (positions 13
-- and 14 numeric unless position 3 is '9'); otherwise position 13 is numeric only for cars, MPVs
-- and light trucks. The character classes keep NHTSA's stray ',' so parity includes its quirks.
CREATE OR REPLACE FUNCTION {{schema}}.vin_check_digit(vin text, car_lt boolean DEFAULT NULL)
RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    u text;
    d text;
    total int;
BEGIN
    IF vin IS NULL OR length(vin) <> 17 THEN
        RETURN '';
    END IF;
    u := upper(vin);
    -- one anchored regex for the 17 positions (position 10 the model-year characters, 13-14 per
    -- variant, 15-17 digits) instead of a character loop
    IF u !~ ('^[A-HJ-NPR-Z0-9,]{9}[A-HJ-NPR-TV-Y1-9,][A-HJ-NPR-Z0-9,]{2}'
             || CASE WHEN substr(u, 3, 1) = '9' THEN '[A-HJ-NPR-Z0-9,]{2}'
                     WHEN car_lt IS NULL OR car_lt THEN '[0-9]{2}'
                     ELSE '[A-HJ-NPR-Z0-9,][0-9]' END
             || '[0-9]{3}$') THEN
        RETURN '?';
    END IF;
    -- transliteration (A-H 1-8, J-N 1-5, P 7, R 9, S-Z 2-9; NHTSA's stray ',' counts -1)
    d := translate(u, 'ABCDEFGHJKLMNPRSTUVWXYZ,', '12345678123457923456789?');
    total := ((strpos('?0123456789', substr(d, 1, 1)) - 2) * 8 + (strpos('?0123456789', substr(d, 2, 1)) - 2) * 7
            + (strpos('?0123456789', substr(d, 3, 1)) - 2) * 6 + (strpos('?0123456789', substr(d, 4, 1)) - 2) * 5
            + (strpos('?0123456789', substr(d, 5, 1)) - 2) * 4 + (strpos('?0123456789', substr(d, 6, 1)) - 2) * 3
            + (strpos('?0123456789', substr(d, 7, 1)) - 2) * 2 + (strpos('?0123456789', substr(d, 8, 1)) - 2) * 10
            + (strpos('?0123456789', substr(d, 10, 1)) - 2) * 9 + (strpos('?0123456789', substr(d, 11, 1)) - 2) * 8
            + (strpos('?0123456789', substr(d, 12, 1)) - 2) * 7 + (strpos('?0123456789', substr(d, 13, 1)) - 2) * 6
            + (strpos('?0123456789', substr(d, 14, 1)) - 2) * 5 + (strpos('?0123456789', substr(d, 15, 1)) - 2) * 4
            + (strpos('?0123456789', substr(d, 16, 1)) - 2) * 3 + (strpos('?0123456789', substr(d, 17, 1)) - 2) * 2) % 11;
    IF total < 0 THEN
        total := total + 11;
    END IF;
    RETURN CASE WHEN total = 10 THEN 'X' ELSE total::text END;
END $$;

-- Model year from position 10 (fVinModelYear2): negative when inconclusive.
CREATE OR REPLACE FUNCTION {{schema}}.vin_model_year(vin text, car_lt boolean)
RETURNS integer LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    c text := substr(vin, 10, 1);
    my int;
    conclusive boolean := false;
BEGIN
    IF length(vin) < 10 THEN
        RETURN NULL;
    END IF;
    my := CASE
        WHEN c BETWEEN 'A' AND 'H' THEN 2010 + ascii(c) - 65
        WHEN c BETWEEN 'J' AND 'N' THEN 2010 + ascii(c) - 66
        WHEN c = 'P' THEN 2023
        WHEN c BETWEEN 'R' AND 'T' THEN 2010 + ascii(c) - 68
        WHEN c BETWEEN 'V' AND 'Y' THEN 2010 + ascii(c) - 69
        WHEN c BETWEEN '1' AND '9' THEN 2031 + ascii(c) - 49
    END;
    IF my IS NULL THEN
        RETURN NULL;
    END IF;
    IF car_lt AND substr(vin, 7, 1) ~ '^[0-9]$' THEN
        my := my - 30;
        conclusive := true;
    ELSIF car_lt AND substr(vin, 7, 1) ~ '^[A-Z]$' THEN
        conclusive := true;
    END IF;
    IF my > extract(year FROM now() + interval '2 years') THEN
        my := my - 30;
        conclusive := true;
    END IF;
    RETURN CASE WHEN conclusive THEN my ELSE -my END;
END $$;

-- One decode pass for one model year (spVinDecode_Core + spVinDecode_ErrorCode), as jsonb:
-- the flat values, the error codes and the ranking figures of the pass. One SQL statement does
-- all table work (matching, ranking, engine fill, make, conversions, lookups, valid characters);
-- the error codes are then string work. A generic plan is forced: with custom plans PostgreSQL
-- re-plans that statement (several ms) on every call.
CREATE OR REPLACE FUNCTION {{schema}}.decode_vin_pass(
    vin text, wmi text, model_year integer, conclusive boolean, error12 boolean, caller_year integer)
RETURNS jsonb LANGUAGE plpgsql STABLE PARALLEL SAFE
SET plan_cache_mode = force_generic_plan
SET jit = off  -- a millisecond statement: compiling it would cost more than it can save
AS $$
DECLARE
    w record;
    r record;
    v_keys text := '';
    public_wmi_id int;
    rc text := '';
    corrected text := '';
    err_bytes text := '';
    unused text := '';
    addl text;
    invalid text := '';
    start_pos int;
    j int;
    ch text;
    off_road boolean := false;
    errs text;
    codes int[];
    names text;
    err_value int;
    n_err int := 0;
    last_pos int;
    last_repl text;
    repl_all text := '';
    good int;
    good_chars text;
    good_vin text;
    tmp_vin text;
    k int;
    pos int;
BEGIN
    IF length(vin) > 3 THEN
        v_keys := substr(vin, 4, 5);
        IF length(vin) > 9 THEN
            v_keys := v_keys || '|' || substr(vin, 10, 8);
        END IF;
    END IF;

    SELECT * INTO w FROM {{schema}}.decode_wmi dw WHERE dw.wmi = decode_vin_pass.wmi;
    IF w.wmi_id IS NOT NULL AND w.public_availability_date <= now() THEN
        public_wmi_id := w.wmi_id;
    END IF;

    IF public_wmi_id IS NULL THEN
        rc := ' 7 ';
        SELECT NULL::jsonb AS doc, NULL::bigint AS el_weight, 0::bigint AS n_pat, NULL::text AS model_attr,
               NULL::text AS make_attr, NULL::text AS body_attr INTO r;
    ELSE
        WITH links AS (
            SELECT ws.vin_schema_id, ws.year_from
            FROM {{schema}}.wmi_vin_schema ws
            WHERE ws.wmi_id = public_wmi_id
              AND (decode_vin_pass.model_year IS NULL
                   OR decode_vin_pass.model_year BETWEEN ws.year_from AND coalesce(ws.year_to, 2999))
        ), cand AS (
            -- every matching pattern of the schemas linked for this year
            SELECT p.element_id, p.attribute_id, p.pattern_id, sk.keys, l.year_from AS prio,
                   coalesce(p.updated_on, p.created_on) AS changed_on,
                   length(replace(sk.keys, '*', '')) AS lit_len,
                   replace(replace(sk.keys, '[', ''), ']', '') AS sort_keys,
                   CASE WHEN strpos(sk.keys, '#') > 0 THEN 'Formula Pattern' ELSE 'Pattern' END AS src,
                   CASE WHEN strpos(sk.keys, '#') > 0 THEN substr(v_keys, strpos(sk.keys, '#'),
                        (length(sk.keys) - strpos(reverse(sk.keys), '#') + 1) - strpos(sk.keys, '#') + 1)
                   END AS val,
                   CASE WHEN strpos(sk.keys, '#') > 0 THEN 3 ELSE 1 END AS ins, p.pattern_id AS ord
            FROM links l
            JOIN {{schema}}.decode_schema_key sk ON sk.vin_schema_id = l.vin_schema_id
            CROSS JOIN LATERAL unnest(sk.pattern_ids) AS u(pattern_id)
            JOIN {{schema}}.pattern p ON p.pattern_id = u.pattern_id
            WHERE CASE WHEN strpos(sk.keys, '#') > 0 THEN translate(v_keys, '0123456789', '##########') LIKE sk.like_pat
                       ELSE v_keys LIKE sk.like_pat AND (sk.regex IS NULL OR v_keys ~ sk.regex) END
        ), engine AS (
            -- the Engine Model whose EngineModelPattern rows may fill engine elements
            SELECT c.attribute_id, c.pattern_id, c.keys FROM cand c
            WHERE c.element_id = 18 AND c.src = 'Pattern'
            ORDER BY c.prio DESC, c.changed_on DESC, c.pattern_id DESC LIMIT 1
        ), ranked AS (
            -- one winner per element (multi-value note elements keep all): link YearFrom,
            -- newer change, fewer literal key characters, key text, insertion order
            SELECT i.*, row_number() OVER (
                       PARTITION BY i.element_id
                       ORDER BY i.prio DESC, i.changed_on DESC, i.lit_len, i.sort_keys COLLATE "C", i.ins, i.ord) AS rn
            FROM (
                SELECT * FROM cand
                UNION ALL
                SELECT emp.element_id, emp.attribute_id, e.pattern_id, e.keys, 50,
                       NULL::timestamp, length(replace(e.keys, '*', '')),
                       replace(replace(e.keys, '[', ''), ']', ''),
                       'EngineModelPattern', NULL::text, 2, emp.engine_model_pattern_id
                FROM engine e
                JOIN {{schema}}.engine_model em
                  ON lower(trim(em.engine_model_name)) = lower(trim(e.attribute_id))
                JOIN {{schema}}.engine_model_pattern emp ON emp.engine_model_id = em.engine_model_id
                WHERE emp.element_id NOT IN (26, 27, 29, 39)
            ) i
        ), win AS (
            SELECT element_id, attribute_id, val, src, keys, prio, changed_on
            FROM ranked
            WHERE rn = 1 OR element_id IN (114, 121, 129, 150, 154, 155, 169, 186)
        ), model AS (
            SELECT attribute_id, keys FROM win WHERE element_id = 28 LIMIT 1
        ), conv AS (
            -- unit conversions fill elements still empty; formulas of the form "#x# op number"
            -- are evaluated (all of vPIC's), never executed as SQL
            SELECT DISTINCT ON (c.to_element_id) c.to_element_id AS element_id,
                   CASE WHEN f.m IS NULL OR w2.attribute_id !~ '^\s*-?[0-9]+(\.[0-9]*)?\s*$' THEN '0'
                        WHEN f.m[1] = '*' THEN (trim(w2.attribute_id)::numeric * f.m[2]::numeric)::text
                        WHEN f.m[1] = '/' AND f.m[2]::numeric <> 0 THEN (trim(w2.attribute_id)::numeric / f.m[2]::numeric)::text
                        WHEN f.m[1] = '+' THEN (trim(w2.attribute_id)::numeric + f.m[2]::numeric)::text
                        WHEN f.m[1] = '-' THEN (trim(w2.attribute_id)::numeric - f.m[2]::numeric)::text
                        ELSE '0' END AS val
            FROM win w2
            JOIN {{schema}}.conversion c ON c.from_element_id = w2.element_id
            CROSS JOIN LATERAL (SELECT regexp_match(c.formula, '^\s*#x#\s*([*/+-])\s*([0-9]+\.?[0-9]*)\s*$') AS m) f
            WHERE c.to_element_id NOT IN (SELECT element_id FROM win)
            ORDER BY c.to_element_id, w2.prio DESC, w2.changed_on DESC, c.conversion_id
        ), spec AS (
            -- VehicleSpec*: sheets of the WMI's makes, vehicle type, decoded model and year whose key
            -- rows all equal decoded values fill elements still empty (lowest sheet id first)
            SELECT DISTINCT ON (f.element_id) f.element_id, f.attribute_id
            FROM {{schema}}.decode_spec_key k
            JOIN {{schema}}.wmi_make wm ON wm.wmi_id = public_wmi_id AND wm.make_id = k.make_id
            JOIN {{schema}}.decode_spec_fill f ON f.vspec_schema_pattern_id = k.vspec_schema_pattern_id
            WHERE k.vehicle_type_id = w.vehicle_type_id
              AND k.model_id = (SELECT CASE WHEN m.attribute_id ~ '^[0-9]{1,9}$' THEN m.attribute_id::int END FROM model m)
              AND (k.years IS NULL OR decode_vin_pass.model_year = ANY (k.years))
              AND NOT EXISTS (SELECT 1 FROM unnest(k.key_elements, k.key_values) AS kk(e, a)
                              WHERE NOT EXISTS (SELECT 1 FROM win x WHERE x.element_id = kk.e AND x.attribute_id = kk.a))
              AND f.element_id NOT IN (SELECT element_id FROM win)
              AND f.element_id NOT IN (SELECT element_id FROM conv)
            ORDER BY f.element_id, k.vspec_schema_pattern_id
        ), items AS (
            SELECT element_id, attribute_id, val, src, keys FROM win
            UNION ALL
            -- Make: through the decoded Model, else the WMI's only make
            SELECT 26, mk.make_id::text, upper(mk.make_name), 'pattern - model', m.keys
            FROM model m
            JOIN {{schema}}.make_model mm ON mm.model_id = CASE WHEN m.attribute_id ~ '^[0-9]{1,9}$' THEN m.attribute_id::int END
            JOIN {{schema}}.make mk ON mk.make_id = mm.make_id
            UNION ALL
            SELECT 26, w.single_make_id::text, w.single_make_name, 'Make', NULL
            WHERE w.single_make_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM model)
            UNION ALL
            SELECT 27, w.manufacturer_id::text, w.manufacturer_name, 'Manuf. Name', NULL
            UNION ALL
            SELECT 39, w.vehicle_type_id::text, w.vehicle_type_name, 'VehType', NULL
            UNION ALL
            SELECT 29, decode_vin_pass.model_year::text, decode_vin_pass.model_year::text, 'ModelYear', NULL
            WHERE decode_vin_pass.model_year IS NOT NULL
            UNION ALL
            SELECT element_id, val, val, 'Conversion', NULL FROM conv
            UNION ALL
            SELECT element_id, attribute_id, NULL, 'Vehicle Specs', NULL FROM spec
            UNION ALL
            -- DefaultValue: per vehicle type, elements nothing above filled (after conversions and specs)
            SELECT dd.element_id, dd.attribute_id, dd.val, 'Default', NULL
            FROM {{schema}}.decode_default dd
            WHERE dd.vehicle_type_id = w.vehicle_type_id
              AND dd.element_id NOT IN (SELECT element_id FROM win)
              AND dd.element_id NOT IN (SELECT element_id FROM conv)
              AND dd.element_id NOT IN (SELECT element_id FROM spec)
        ), printed AS (
            SELECT de.element_id, de.code, de.output, de.weight,
                   bool_or(coalesce(i.val, i.attribute_id, '') <> '') AS filled,
                   string_agg(DISTINCT translate(  -- tabs and line breaks print as spaces
                       CASE
                           WHEN i.val IS NOT NULL THEN i.val
                           WHEN de.lookup_mode = 'model' THEN
                               (SELECT m.model_name FROM {{schema}}.model m
                                WHERE m.model_id = CASE WHEN i.attribute_id ~ '^[0-9]{1,9}$' THEN i.attribute_id::int END)
                           WHEN de.lookup_mode = 'lookup' THEN
                               (SELECT l.lookup_name FROM {{schema}}.lookup l
                                WHERE l.lookup_table = de.lookup_table AND l.lookup_id = CASE WHEN i.attribute_id ~ '^[0-9]{1,9}$' THEN i.attribute_id::int END)
                           ELSE i.attribute_id
                       END, E'\t\r\n', '   '), '; ') AS val
            FROM items i
            JOIN {{schema}}.decode_element de ON de.element_id = i.element_id
            GROUP BY de.element_id, de.code, de.output, de.weight
        )
        SELECT
            (SELECT coalesce(jsonb_object_agg(code, coalesce(val, '')) FILTER (WHERE output AND code IS NOT NULL), '{}')
             FROM printed) AS doc,
            (SELECT sum(weight) FROM printed WHERE filled) AS el_weight,
            (SELECT count(*) FROM win WHERE src IN ('Pattern', 'EngineModelPattern', 'Formula Pattern')) AS n_pat,
            (SELECT attribute_id FROM model) AS model_attr,
            (SELECT attribute_id FROM items WHERE element_id = 26 LIMIT 1) AS make_attr,
            (SELECT attribute_id FROM win WHERE element_id = 5 LIMIT 1) AS body_attr,
            -- codes 2-5: the release's WMIYearValidChars cache for this WMI and year when it has
            -- one (decode_wmi_year_chars), else the characters the WMI's schemas for this year use
            -- per position (NHTSA's derivation: every key, hidden schemas too)
            coalesce(
                (SELECT yc.masks FROM {{schema}}.decode_wmi_year_chars yc
                 WHERE yc.wmi = decode_vin_pass.wmi AND yc.year = decode_vin_pass.model_year),
                (SELECT ARRAY[bit_or(sc.masks[1]), bit_or(sc.masks[2]), bit_or(sc.masks[3]), bit_or(sc.masks[4]),
                              bit_or(sc.masks[5]), bit_or(sc.masks[6]), bit_or(sc.masks[7]), bit_or(sc.masks[8]),
                              bit_or(sc.masks[9]), bit_or(sc.masks[10]), bit_or(sc.masks[11])]
                 FROM {{schema}}.wmi_vin_schema ws
                 JOIN {{schema}}.decode_schema_chars sc ON sc.vin_schema_id = ws.vin_schema_id
                 WHERE ws.wmi_id = public_wmi_id
                   AND decode_vin_pass.model_year BETWEEN ws.year_from AND coalesce(ws.year_to, 2999))) AS vc_m,
            -- code 14: positions 4-8 and 11 that no winning key pins to the VIN's character
            (SELECT coalesce(string_agg(q.pos::text, ',' ORDER BY q.pos), '')
             FROM unnest(ARRAY[4, 5, 6, 7, 8, 11]) q(pos)
             WHERE q.pos <= least(11, length(vin))
               AND NOT EXISTS (
                   SELECT 1 FROM items i JOIN {{schema}}.decode_key dk ON dk.keys = i.keys
                   WHERE i.src ILIKE '%pattern%'
                     AND strpos(dk.pos_chars[q.pos - 3], substr(vin, q.pos, 1)) > 0)) AS unused
        INTO r;

        IF r.n_pat = 0 THEN
            rc := ' 8 ';
        ELSE
            FOR pos IN 4..least(CASE WHEN length(wmi) = 6 THEN 11 ELSE 14 END, length(vin)) LOOP
                CONTINUE WHEN pos IN (9, 10) OR coalesce(r.vc_m[pos - 3], 0) = 0;
                k := strpos('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', substr(vin, pos, 1));
                IF k = 0 OR (r.vc_m[pos - 3] >> (k - 1)) & 1 = 0 THEN
                    n_err := n_err + 1;
                    last_pos := pos;
                    last_repl := (SELECT string_agg(substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', b + 1, 1), '' ORDER BY b)
                                  FROM generate_series(0, 35) b WHERE (r.vc_m[pos - 3] >> b) & 1 = 1);
                    repl_all := repl_all || '(' || pos || ':' || last_repl || ')';
                    corrected := overlay(CASE WHEN corrected = '' THEN vin ELSE corrected END PLACING '!' FROM pos FOR 1);
                END IF;
            END LOOP;
            IF n_err = 1 THEN
                IF length(last_repl) = 1 THEN
                    rc := rc || ' 2 ';
                    corrected := overlay(vin PLACING last_repl FROM last_pos FOR 1);
                    err_bytes := repl_all;
                ELSE
                    good := 0;
                    good_chars := '';
                    FOR k IN 1..length(last_repl) LOOP
                        tmp_vin := overlay(vin PLACING substr(last_repl, k, 1) FROM last_pos FOR 1);
                        IF substr(tmp_vin, 9, 1) = {{schema}}.vin_check_digit(tmp_vin) THEN
                            good := good + 1;
                            good_chars := good_chars || substr(last_repl, k, 1);
                            good_vin := tmp_vin;
                        END IF;
                    END LOOP;
                    IF good = 1 THEN
                        rc := rc || ' 3 ';
                        corrected := good_vin;
                        err_bytes := '(' || last_pos || ':' || good_chars || ')';
                    ELSE
                        rc := rc || ' 4 ';
                        err_bytes := '(' || last_pos || ':' || last_repl || ')';
                    END IF;
                END IF;
            ELSIF n_err > 1 THEN
                rc := rc || ' 5 ';
                err_bytes := repl_all;
            END IF;
            unused := r.unused;
            IF unused <> '' THEN
                rc := rc || ' 14 ';
            END IF;
        END IF;
    END IF;

    IF r.body_attr = '64' THEN
        rc := rc || ' 9 ';
    END IF;
    IF r.body_attr IN ('69', '84', '86', '88', '97', '105', '113', '124', '126', '127') THEN
        rc := rc || ' 10 ';
        off_road := true;
    END IF;
    IF decode_vin_pass.model_year IS NULL THEN
        rc := rc || ' 11 ';
    END IF;

    -- Code 400: characters not allowed at their position (VinException is not in the snapshot).
    start_pos := CASE WHEN substr(vin, 3, 1) = '9' THEN 15 WHEN w.car_lt THEN 13 ELSE 14 END;
    FOR j IN 1..length(vin) LOOP
        CONTINUE WHEN j = 9 AND off_road;
        ch := substr(vin, j, 1);
        IF (j <> 9 AND j < start_pos AND ch !~ '^[0-9ABCDEFGHJKLMNPRSTUVWXYZ*]$')
           OR (j <> 9 AND j >= start_pos AND ch !~ '^[0-9*]$')
           OR (j = 9 AND ch !~ '^[0-9X*]$')
           OR (j = 10 AND ch !~ '^[1-9ABCDEFGHJKLMNPRSTVWXY]$') THEN
            invalid := invalid || ', ' || j || ':' || ch;
            corrected := overlay(CASE WHEN corrected = '' THEN vin ELSE corrected END PLACING '!' FROM j FOR 1);
        END IF;
    END LOOP;
    IF invalid <> '' THEN
        rc := rc || ' 400 ';
    END IF;
    IF error12 THEN
        rc := rc || ' 12 ';
    END IF;

    IF length(vin) < 17 THEN
        rc := rc || ' 6 ';
    ELSIF substr(vin, 9, 1) <> {{schema}}.vin_check_digit(vin, coalesce(w.car_lt, false))
          -- VinException: NHTSA accepts these VINs' check digits
          AND NOT EXISTS (SELECT 1 FROM {{schema}}.vin_exception ve
                          WHERE ve.vin = decode_vin_pass.vin AND ve.check_digit) THEN
        rc := rc || ' 1 ';
    END IF;

    errs := trim(replace(replace(replace(rc, ' 9 ', ''), ' 10 ', ''), ' 12 ', ''));
    IF errs = '' OR errs = '14' THEN
        rc := ' 0 ' || rc;
    END IF;
    IF rc LIKE '% 0 %' AND r.model_attr IS NULL THEN
        rc := rc || ' 14 ';
    END IF;

    SELECT array_agg(ec.id ORDER BY ec.id),
           string_agg(trim(ec.name || CASE WHEN off_road AND ec.id = 1
               THEN ' NOTE: Disregard if this is an off-road vehicle PIN, as check digit calculation may not be accurate.'
               ELSE '' END), '; ' ORDER BY ec.id),
           coalesce(sum(ec.weight), 0),
           max(ec.additional_text) FILTER (WHERE ec.id IN (4, 5))
    INTO codes, names, err_value, addl
    FROM {{schema}}.decode_error_code ec
    WHERE rc LIKE '% ' || ec.id || ' %';

    IF 14 = ANY (codes) THEN
        addl := left(trim(coalesce(addl, '') || ' Unused position(s): ' || unused || '. '), 500);
    END IF;
    IF 400 = ANY (codes) THEN
        addl := left(trim(coalesce(addl, '') || ' Invalid character(s): ' || substr(invalid, 3) || '. '), 500);
    END IF;
    IF (w.vehicle_type_id = 10 AND public_wmi_id IS NOT NULL)
       OR r.body_attr IN ('65', '107', '70', '74', '63', '72', '112', '62', '64', '76', '78', '71', '77', '67', '116', '75') THEN
        addl := left(trim(coalesce(addl, '') || ' Incomplete Vehicle Warning - Please be advised that the vehicle may have been altered and may not be an accurate representation of the vehicle in its current condition. '), 500);
    END IF;
    IF NOT conclusive THEN
        addl := left(trim(coalesce(addl, '') || ' The Model Year decoded for this VIN may be incorrect. If you know the Model year, please enter it and decode again to get more accurate information. '), 500);
    END IF;

    RETURN jsonb_build_object(
        'doc', coalesce(r.doc, '{}') || jsonb_build_object(
            'ErrorCode', coalesce(array_to_string(codes, ','), ''),
            'ErrorText', coalesce(names, ''),
            'SuggestedVIN', coalesce(corrected, ''),
            'PossibleValues', coalesce(err_bytes, ''),
            'AdditionalErrorText', coalesce(addl, ''),
            'MakeID', coalesce(r.make_attr, ''),
            'ModelID', coalesce(r.model_attr, ''),
            'ManufacturerId', coalesce(CASE WHEN public_wmi_id IS NOT NULL THEN w.manufacturer_id::text END, '')),
        'err', err_value,
        'elw', r.el_weight,
        'npat', NULLIF(r.n_pat, 0),
        'my', CASE WHEN public_wmi_id IS NOT NULL THEN decode_vin_pass.model_year END,
        'bonus', CASE WHEN public_wmi_id IS NOT NULL AND caller_year = decode_vin_pass.model_year THEN 10000 ELSE 0 END,
        'rc', rc);
END $$;

-- The contract: one flat object keyed by Element.Code, as NHTSA's DecodeVinValues prints it.
CREATE OR REPLACE FUNCTION {{schema}}.decode_vin(vin text, model_year integer DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    v text;
    v_wmi text;
    w record;
    v_limit int := extract(year FROM current_date + interval '2 years')::int;
    rmy int;
    omy int;
    alt int;
    conclusive boolean := true;
    do34 boolean := true;
    passes jsonb[] := '{}';
    p jsonb;
    best jsonb;
    cnt1 int;
    cnt2 int;
    descriptor text;
    v_descr text;
    vd_year int;
BEGIN
    -- As NHTSA: upper-cased and trimmed, at most 17 characters (its varchar(17)); NULL is ''.
    v := left(upper(trim(coalesce(decode_vin.vin, ''))), 17);
    v_wmi := CASE WHEN length(v) > 3 THEN left(v, 3) ELSE v END;
    IF substr(v_wmi, 3, 1) = '9' AND length(v) >= 14 THEN
        v_wmi := v_wmi || substr(v, 12, 3);
    END IF;
    SELECT dw.car_lt INTO w FROM {{schema}}.decode_wmi dw WHERE dw.wmi = v_wmi;

    rmy := {{schema}}.vin_model_year(v, coalesce(w.car_lt, false));
    IF rmy < 0 THEN
        omy := -rmy - 30;
        rmy := -rmy;
        conclusive := false;
    END IF;
    IF conclusive AND rmy IS NOT NULL THEN
        -- A conclusive year whose WMI has no schema for it but has one for the other 30-year
        -- cycle takes the other cycle.
        IF rmy BETWEEN 1980 AND v_limit - 30 THEN
            alt := rmy + 30;
        ELSIF rmy BETWEEN 2010 AND v_limit THEN
            alt := rmy - 30;
        END IF;
        IF alt IS NOT NULL THEN
            SELECT count(*) FILTER (WHERE rmy BETWEEN ws.year_from AND coalesce(ws.year_to, 2999)),
                   count(*) FILTER (WHERE alt BETWEEN ws.year_from AND coalesce(ws.year_to, 2999))
            INTO cnt1, cnt2
            FROM {{schema}}.wmi x JOIN {{schema}}.wmi_vin_schema ws ON ws.wmi_id = x.wmi_id
            WHERE x.wmi = v_wmi;
            IF cnt1 = 0 AND cnt2 > 0 THEN
                rmy := alt;
            END IF;
        END IF;
    END IF;

    -- VinDescriptor: NHTSA's live API takes the model year its descriptor table names for the VIN's
    -- descriptor (positions 1-8, '*', 10-11; 1-14 for a 6-character WMI), one conclusive year. Its
    -- dump's procedure skips this (the erratum); we follow the live API (docs/DECODER.md).
    v_descr := upper(left(overlay(left(v || '*****************', 17) PLACING '*' FROM 9 FOR 1),
                          CASE WHEN substr(v, 3, 1) = '9' THEN 14 ELSE 11 END));
    SELECT vd.model_year INTO vd_year FROM {{schema}}.vin_descriptor vd WHERE vd.descriptor = v_descr;
    IF vd_year IS NOT NULL THEN
        rmy := vd_year;
        omy := NULL;
        conclusive := true;
    END IF;

    IF decode_vin.model_year BETWEEN 1980 AND v_limit THEN
        IF (decode_vin.model_year = rmy OR decode_vin.model_year = omy) IS NOT TRUE THEN
            p := {{schema}}.decode_vin_pass(v, v_wmi, decode_vin.model_year, true, true, decode_vin.model_year);
            passes := passes || p;
            do34 := p->>'rc' LIKE '% 8 %' AND rmy IS NOT NULL;
        END IF;
    END IF;
    IF do34 THEN
        passes := passes || {{schema}}.decode_vin_pass(v, v_wmi, rmy, conclusive,
            coalesce(decode_vin.model_year <> rmy, false), decode_vin.model_year);
        IF omy IS NOT NULL THEN
            passes := passes || {{schema}}.decode_vin_pass(v, v_wmi, omy, conclusive,
                coalesce(decode_vin.model_year <> omy, false), decode_vin.model_year);
        END IF;
    END IF;

    -- Best pass: error weights, element weights, pattern count, model year (NULLs first, as in
    -- NHTSA's PostgreSQL procedure), then the earlier pass.
    SELECT x.p INTO best
    FROM unnest(passes) WITH ORDINALITY AS x(p, ord)
    ORDER BY (x.p->>'err')::int DESC, (x.p->>'elw')::int DESC, (x.p->>'npat')::int DESC,
             (x.p->>'my')::int + (x.p->>'bonus')::int DESC, x.ord
    LIMIT 1;

    descriptor := left(v || '*****************', 17);
    descriptor := upper(left(overlay(descriptor PLACING '*' FROM 9 FOR 1),
                             CASE WHEN substr(descriptor, 3, 1) = '9' THEN 14 ELSE 11 END));
    RETURN (SELECT t.doc FROM {{schema}}.decode_template t) || (best->'doc')
           || jsonb_build_object('VIN', v, 'VehicleDescriptor', descriptor);
END $$;

-- Batches: one row per input, in input order (duplicates and NULLs kept), each result identical
-- to decode_vin(vin) (tests/test_decode_batch.py, bench/decode_accuracy.py --compare). One
-- set-based statement does what decode_vin + decode_vin_pass do per VIN: distinct normalised VINs, their model-year passes,
-- pattern matching and ranking per (pass, element), error codes, the best pass. No correlated
-- subquery reads a CTE (that would be quadratic in the batch size): per-pass figures are grouped
-- and joined by pass id. Batches are planned for their size (custom plan: the array's length is
-- the row estimate; a generic plan would assume 10 rows and pick quadratic nested loops).
CREATE OR REPLACE FUNCTION {{schema}}.decode_vins(vins text[])
RETURNS TABLE(vin text, result jsonb) LANGUAGE plpgsql STABLE PARALLEL SAFE
SET jit = off
AS $$
DECLARE
    v_limit int := extract(year FROM current_date + interval '2 years')::int;
    mode text := current_setting('plan_cache_mode');
    want constant text := 'force_custom_plan';
BEGIN
    IF mode <> want THEN
        PERFORM set_config('plan_cache_mode', want, true);
    END IF;
    RETURN QUERY
    WITH input AS (
        SELECT u.ord, u.raw, left(upper(trim(coalesce(u.raw, ''))), 17) AS v
        FROM unnest(decode_vins.vins) WITH ORDINALITY AS u(raw, ord)
    ), vin3 AS (
        SELECT DISTINCT i.v, CASE WHEN length(i.v) > 3 THEN left(i.v, 3) ELSE i.v END AS w3 FROM input i
    ), vinw AS (
        SELECT x.v, CASE WHEN substr(x.w3, 3, 1) = '9' AND length(x.v) >= 14 THEN x.w3 || substr(x.v, 12, 3)
                         ELSE x.w3 END AS wmi
        FROM vin3 x
    ), yr AS MATERIALIZED (  -- one vin_model_year call per VIN
        SELECT x.v, x.wmi, dw.wmi_id, {{schema}}.vin_model_year(x.v, coalesce(dw.car_lt, false)) AS y
        FROM vinw x LEFT JOIN {{schema}}.decode_wmi dw ON dw.wmi = x.wmi
    ), yr2 AS MATERIALIZED (
        -- negative: inconclusive, both cycles are decoded; a conclusive year may take the other cycle
        SELECT x.v, x.wmi, x.wmi_id, abs(x.y) AS rmy, CASE WHEN x.y < 0 THEN -x.y - 30 END AS omy,
               coalesce(x.y >= 0, true) AS conclusive,
               CASE WHEN x.y >= 0 THEN
                   CASE WHEN x.y BETWEEN 1980 AND v_limit - 30 THEN x.y + 30
                        WHEN x.y BETWEEN 2010 AND v_limit THEN x.y - 30 END END AS alt
        FROM yr x
    ), other_cycle AS (
        -- per distinct (WMI, year): no schema link for the year, but one 30 years away
        SELECT DISTINCT x.wmi_id, x.rmy, x.alt
        FROM yr2 x
        WHERE x.alt IS NOT NULL AND x.wmi_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM {{schema}}.wmi_vin_schema ws WHERE ws.wmi_id = x.wmi_id
                          AND x.rmy BETWEEN ws.year_from AND coalesce(ws.year_to, 2999))
          AND EXISTS (SELECT 1 FROM {{schema}}.wmi_vin_schema ws WHERE ws.wmi_id = x.wmi_id
                      AND x.alt BETWEEN ws.year_from AND coalesce(ws.year_to, 2999))
    ), plan AS (
        -- a VinDescriptor row names the year (one conclusive pass), as in decode_vin
        SELECT x.v, x.wmi, CASE WHEN vd.model_year IS NULL THEN x.omy END AS omy,
               x.conclusive OR vd.model_year IS NOT NULL AS conclusive, coalesce(vd.model_year, oc.alt, x.rmy) AS rmy
        FROM yr2 x
        LEFT JOIN other_cycle oc ON oc.wmi_id = x.wmi_id AND oc.rmy = x.rmy AND oc.alt = x.alt
        LEFT JOIN {{schema}}.vin_descriptor vd
          ON vd.descriptor = upper(left(overlay(left(x.v || '*****************', 17) PLACING '*' FROM 9 FOR 1),
                                        CASE WHEN substr(x.v, 3, 1) = '9' THEN 14 ELSE 11 END))
    ), pass AS (
        SELECT (row_number() OVER ())::int AS pid, q.* FROM (
            SELECT p.v, p.wmi, 1 AS pno, p.rmy AS my, p.conclusive FROM plan p
            UNION ALL
            SELECT p.v, p.wmi, 2, p.omy, p.conclusive FROM plan p WHERE p.omy IS NOT NULL) q
    ), ps AS (
        SELECT s.*,
               CASE WHEN length(s.v) > 3 THEN substr(s.v, 4, 5)
                    || CASE WHEN length(s.v) > 9 THEN '|' || substr(s.v, 10, 8) ELSE '' END ELSE '' END AS v_keys,
               CASE WHEN dw.public_availability_date <= now() THEN dw.wmi_id END AS public_wmi_id,
               dw.car_lt, dw.vehicle_type_id, dw.vehicle_type_name, dw.manufacturer_id, dw.manufacturer_name,
               dw.single_make_id, dw.single_make_name
        FROM pass s LEFT JOIN {{schema}}.decode_wmi dw ON dw.wmi = s.wmi
    ), links AS (
        SELECT s.pid, s.v_keys, ws.vin_schema_id, ws.year_from, s.my IS NOT NULL AS my_known
        FROM ps s JOIN {{schema}}.wmi_vin_schema ws ON ws.wmi_id = s.public_wmi_id
        WHERE s.my IS NULL OR s.my BETWEEN ws.year_from AND coalesce(ws.year_to, 2999)
    ), cand AS (
        -- every matching pattern of the schemas linked for the pass's year
        SELECT l.pid, p.element_id, p.attribute_id, p.pattern_id, sk.keys, l.year_from AS prio,
               coalesce(p.updated_on, p.created_on) AS changed_on,
               strpos(sk.keys, '#') > 0 AS is_formula,
               CASE WHEN strpos(sk.keys, '#') > 0 THEN substr(l.v_keys, strpos(sk.keys, '#'),
                    (length(sk.keys) - strpos(reverse(sk.keys), '#') + 1) - strpos(sk.keys, '#') + 1)
               END AS val
        FROM links l
        JOIN {{schema}}.decode_schema_key sk ON sk.vin_schema_id = l.vin_schema_id
        CROSS JOIN LATERAL unnest(sk.pattern_ids) AS u(pattern_id)
        JOIN {{schema}}.pattern p ON p.pattern_id = u.pattern_id
        WHERE CASE WHEN strpos(sk.keys, '#') > 0 THEN translate(l.v_keys, '0123456789', '##########') LIKE sk.like_pat
                   ELSE l.v_keys LIKE sk.like_pat AND (sk.regex IS NULL OR l.v_keys ~ sk.regex) END
    ), engine AS (
        SELECT DISTINCT ON (c.pid) c.pid, c.attribute_id, c.pattern_id, c.keys
        FROM cand c
        WHERE c.element_id = 18 AND NOT c.is_formula
        ORDER BY c.pid, c.prio DESC, c.changed_on DESC, c.pattern_id DESC
    ), ranked AS (
        SELECT i.*, row_number() OVER (
                   PARTITION BY i.pid, i.element_id
                   ORDER BY i.prio DESC, i.changed_on DESC, length(replace(i.keys, '*', '')),
                            replace(replace(i.keys, '[', ''), ']', '') COLLATE "C", i.ins, i.ord) AS rn
        FROM (
            SELECT c.pid, c.element_id, c.attribute_id, c.keys, c.prio, c.changed_on,
                   CASE WHEN c.is_formula THEN 'Formula Pattern' ELSE 'Pattern' END AS src, c.val,
                   CASE WHEN c.is_formula THEN 3 ELSE 1 END AS ins, c.pattern_id AS ord
            FROM cand c
            UNION ALL
            SELECT e.pid, emp.element_id, emp.attribute_id, e.keys, 50, NULL::timestamp,
                   'EngineModelPattern', NULL::text, 2, emp.engine_model_pattern_id
            FROM engine e
            JOIN {{schema}}.engine_model em ON lower(trim(em.engine_model_name)) = lower(trim(e.attribute_id))
            JOIN {{schema}}.engine_model_pattern emp ON emp.engine_model_id = em.engine_model_id
            WHERE emp.element_id NOT IN (26, 27, 29, 39)
        ) i
    ), win AS (
        SELECT r.pid, r.element_id, r.attribute_id, r.val, r.src, r.keys, r.prio, r.changed_on
        FROM ranked r
        WHERE r.rn = 1 OR r.element_id IN (114, 121, 129, 150, 154, 155, 169, 186)
    ), model AS (
        SELECT w.pid, w.attribute_id, w.keys FROM win w WHERE w.element_id = 28
    ), conv AS (
        SELECT DISTINCT ON (w2.pid, c.to_element_id) w2.pid, c.to_element_id AS element_id,
               CASE WHEN f.m IS NULL OR w2.attribute_id !~ '^\s*-?[0-9]+(\.[0-9]*)?\s*$' THEN '0'
                    WHEN f.m[1] = '*' THEN (trim(w2.attribute_id)::numeric * f.m[2]::numeric)::text
                    WHEN f.m[1] = '/' AND f.m[2]::numeric <> 0 THEN (trim(w2.attribute_id)::numeric / f.m[2]::numeric)::text
                    WHEN f.m[1] = '+' THEN (trim(w2.attribute_id)::numeric + f.m[2]::numeric)::text
                    WHEN f.m[1] = '-' THEN (trim(w2.attribute_id)::numeric - f.m[2]::numeric)::text
                    ELSE '0' END AS val
        FROM win w2
        JOIN {{schema}}.conversion c ON c.from_element_id = w2.element_id
        CROSS JOIN LATERAL (SELECT regexp_match(c.formula, '^\s*#x#\s*([*/+-])\s*([0-9]+\.?[0-9]*)\s*$') AS m) f
        WHERE NOT EXISTS (SELECT 1 FROM win w3 WHERE w3.pid = w2.pid AND w3.element_id = c.to_element_id)
        ORDER BY w2.pid, c.to_element_id, w2.prio DESC, w2.changed_on DESC, c.conversion_id
    ), spec AS (
        -- VehicleSpec*, as in decode_vin_pass
        SELECT DISTINCT ON (s.pid, f.element_id) s.pid, f.element_id, f.attribute_id
        FROM ps s
        JOIN model m ON m.pid = s.pid
        JOIN {{schema}}.decode_spec_key k
          ON k.model_id = CASE WHEN m.attribute_id ~ '^[0-9]{1,9}$' THEN m.attribute_id::int END
         AND k.vehicle_type_id = s.vehicle_type_id
        JOIN {{schema}}.wmi_make wm ON wm.wmi_id = s.public_wmi_id AND wm.make_id = k.make_id
        JOIN {{schema}}.decode_spec_fill f ON f.vspec_schema_pattern_id = k.vspec_schema_pattern_id
        WHERE (k.years IS NULL OR s.my = ANY (k.years))
          AND NOT EXISTS (SELECT 1 FROM unnest(k.key_elements, k.key_values) AS kk(e, a)
                          WHERE NOT EXISTS (SELECT 1 FROM win x WHERE x.pid = s.pid AND x.element_id = kk.e
                                            AND x.attribute_id = kk.a))
          AND NOT EXISTS (SELECT 1 FROM win x WHERE x.pid = s.pid AND x.element_id = f.element_id)
          AND NOT EXISTS (SELECT 1 FROM conv c WHERE c.pid = s.pid AND c.element_id = f.element_id)
        ORDER BY s.pid, f.element_id, k.vspec_schema_pattern_id
    ), items AS (
        SELECT w.pid, w.element_id, w.attribute_id, w.val, w.src, w.keys FROM win w
        UNION ALL
        SELECT m.pid, 26, mk.make_id::text, upper(mk.make_name), 'pattern - model', m.keys
        FROM model m
        JOIN {{schema}}.make_model mm ON mm.model_id = CASE WHEN m.attribute_id ~ '^[0-9]{1,9}$' THEN m.attribute_id::int END
        JOIN {{schema}}.make mk ON mk.make_id = mm.make_id
        UNION ALL
        SELECT s.pid, 26, s.single_make_id::text, s.single_make_name, 'Make', NULL
        FROM ps s
        WHERE s.public_wmi_id IS NOT NULL AND s.single_make_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM model m WHERE m.pid = s.pid)
        UNION ALL
        SELECT s.pid, 27, s.manufacturer_id::text, s.manufacturer_name, 'Manuf. Name', NULL
        FROM ps s WHERE s.public_wmi_id IS NOT NULL
        UNION ALL
        SELECT s.pid, 39, s.vehicle_type_id::text, s.vehicle_type_name, 'VehType', NULL
        FROM ps s WHERE s.public_wmi_id IS NOT NULL
        UNION ALL
        SELECT s.pid, 29, s.my::text, s.my::text, 'ModelYear', NULL
        FROM ps s WHERE s.public_wmi_id IS NOT NULL AND s.my IS NOT NULL
        UNION ALL
        SELECT c.pid, c.element_id, c.val, c.val, 'Conversion', NULL FROM conv c
        UNION ALL
        SELECT sp.pid, sp.element_id, sp.attribute_id, NULL, 'Vehicle Specs', NULL FROM spec sp
        UNION ALL
        SELECT s.pid, dd.element_id, dd.attribute_id, dd.val, 'Default', NULL
        FROM ps s
        JOIN {{schema}}.decode_default dd ON dd.vehicle_type_id = s.vehicle_type_id
        WHERE s.public_wmi_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM win w WHERE w.pid = s.pid AND w.element_id = dd.element_id)
          AND NOT EXISTS (SELECT 1 FROM conv c WHERE c.pid = s.pid AND c.element_id = dd.element_id)
          AND NOT EXISTS (SELECT 1 FROM spec sp WHERE sp.pid = s.pid AND sp.element_id = dd.element_id)
    ), printed AS (
        SELECT i.pid, de.element_id, de.code, de.output, de.weight,
               bool_or(coalesce(i.val, i.attribute_id, '') <> '') AS filled,
               string_agg(DISTINCT translate(  -- tabs and line breaks print as spaces
                   CASE
                       WHEN i.val IS NOT NULL THEN i.val
                       WHEN de.lookup_mode = 'model' THEN
                           (SELECT m.model_name FROM {{schema}}.model m
                            WHERE m.model_id = CASE WHEN i.attribute_id ~ '^[0-9]{1,9}$' THEN i.attribute_id::int END)
                       WHEN de.lookup_mode = 'lookup' THEN
                           (SELECT l.lookup_name FROM {{schema}}.lookup l
                            WHERE l.lookup_table = de.lookup_table AND l.lookup_id = CASE WHEN i.attribute_id ~ '^[0-9]{1,9}$' THEN i.attribute_id::int END)
                       ELSE i.attribute_id
                   END, E'\t\r\n', '   '), '; ') AS val
        FROM items i
        JOIN {{schema}}.decode_element de ON de.element_id = i.element_id
        GROUP BY i.pid, de.element_id, de.code, de.output, de.weight
    ), doc AS MATERIALIZED (
        SELECT p.pid,
               coalesce(jsonb_object_agg(p.code, coalesce(p.val, '')) FILTER (WHERE p.output AND p.code IS NOT NULL), '{}') AS doc,
               sum(p.weight) FILTER (WHERE p.filled) AS el_weight
        FROM printed p GROUP BY p.pid
    ), fig AS (
        SELECT w.pid, count(*) AS n_pat,
               min(w.attribute_id) FILTER (WHERE w.element_id = 5) AS body_attr
        FROM win w GROUP BY w.pid
    ), attrs AS (
        SELECT i.pid, min(i.attribute_id) FILTER (WHERE i.element_id = 28 AND i.src <> 'Conversion') AS model_attr,
               min(i.attribute_id) FILTER (WHERE i.element_id = 26) AS make_attr
        FROM items i GROUP BY i.pid
    ), pinned AS (
        -- code 14: positions 4-8 and 11 that some winning key pins to the VIN's character, as
        -- bits (bit n = VIN position n); one expression per item, no row per position
        SELECT i.pid,
               bit_or(CASE WHEN strpos(dk.pos_chars[1], substr(s.v, 4, 1)) > 0 THEN 16 ELSE 0 END
                    | CASE WHEN strpos(dk.pos_chars[2], substr(s.v, 5, 1)) > 0 THEN 32 ELSE 0 END
                    | CASE WHEN strpos(dk.pos_chars[3], substr(s.v, 6, 1)) > 0 THEN 64 ELSE 0 END
                    | CASE WHEN strpos(dk.pos_chars[4], substr(s.v, 7, 1)) > 0 THEN 128 ELSE 0 END
                    | CASE WHEN strpos(dk.pos_chars[5], substr(s.v, 8, 1)) > 0 THEN 256 ELSE 0 END
                    | CASE WHEN strpos(dk.pos_chars[8], substr(s.v, 11, 1)) > 0 THEN 2048 ELSE 0 END) AS bits
        FROM items i
        JOIN ps s ON s.pid = i.pid
        JOIN {{schema}}.decode_key dk ON dk.keys = i.keys
        WHERE i.src ILIKE '%pattern%'
        GROUP BY i.pid
    ), vc0 AS (
        -- codes 2-5: the characters the WMI's schemas for the year use per position (masks); the
        -- pass's links for a known year are exactly those schemas
        SELECT l.pid, ARRAY[bit_or(sc.masks[1]), bit_or(sc.masks[2]), bit_or(sc.masks[3]), bit_or(sc.masks[4]),
                            bit_or(sc.masks[5]), bit_or(sc.masks[6]), bit_or(sc.masks[7]), bit_or(sc.masks[8]),
                            bit_or(sc.masks[9]), bit_or(sc.masks[10]), bit_or(sc.masks[11])] AS m
        FROM links l
        JOIN {{schema}}.decode_schema_chars sc ON sc.vin_schema_id = l.vin_schema_id
        WHERE l.my_known
        GROUP BY l.pid
    ), vc AS (
        -- the release's WMIYearValidChars cache for the pass's WMI and year wins where it has one
        SELECT s.pid, coalesce(yc.masks, v0.m) AS m
        FROM ps s
        LEFT JOIN vc0 v0 ON v0.pid = s.pid
        LEFT JOIN {{schema}}.decode_wmi_year_chars yc ON yc.wmi = s.wmi AND yc.year = s.my
        WHERE v0.pid IS NOT NULL OR yc.wmi IS NOT NULL
    ), res AS MATERIALIZED (  -- its figures are read several times below: computed once
        SELECT s.pid, s.v, s.pno, s.my, s.conclusive, s.public_wmi_id, s.car_lt, s.vehicle_type_id, s.manufacturer_id,
               d.el_weight, coalesce(f.n_pat, 0) AS n_pat, f.body_attr, a.model_attr, a.make_attr,
               CASE WHEN s.public_wmi_id IS NOT NULL AND coalesce(f.n_pat, 0) > 0 THEN
                   (SELECT coalesce(string_agg(q.pos::text, ',' ORDER BY q.pos), '')
                    FROM unnest(ARRAY[4, 5, 6, 7, 8, 11]) q(pos)
                    WHERE q.pos <= least(11, length(s.v)) AND coalesce((pn.bits >> q.pos) & 1, 0) = 0)
               ELSE '' END AS unused,
               f.body_attr IN ('69', '84', '86', '88', '97', '105', '113', '124', '126', '127') AS off_road,
               e.n_err, e.last_pos, e.last_repl, e.repl_all, e.err_pos
        FROM ps s
        LEFT JOIN doc d ON d.pid = s.pid
        LEFT JOIN fig f ON f.pid = s.pid
        LEFT JOIN attrs a ON a.pid = s.pid
        LEFT JOIN pinned pn ON pn.pid = s.pid
        LEFT JOIN vc ON vc.pid = s.pid
        CROSS JOIN LATERAL (
            SELECT count(*) AS n_err, max(x.pos) AS last_pos,
                   (array_agg(x.chars ORDER BY x.pos DESC))[1] AS last_repl,
                   coalesce(string_agg('(' || x.pos || ':' || x.chars || ')', '' ORDER BY x.pos), '') AS repl_all,
                   array_agg(x.pos) AS err_pos
            FROM (SELECT q.pos,
                         (SELECT string_agg(substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', b + 1, 1), '' ORDER BY b)
                          FROM generate_series(0, 35) b WHERE (vc.m[q.pos - 3] >> b) & 1 = 1) AS chars
                  FROM unnest(ARRAY[4, 5, 6, 7, 8, 11, 12, 13, 14]) q(pos)
                  WHERE s.public_wmi_id IS NOT NULL AND coalesce(f.n_pat, 0) > 0
                    AND q.pos <= CASE WHEN length(s.wmi) = 6 THEN 11 ELSE 14 END AND q.pos <= length(s.v)
                    AND coalesce(vc.m[q.pos - 3], 0) <> 0
                    AND (strpos('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', substr(s.v, q.pos, 1)) = 0
                         OR (vc.m[q.pos - 3] >> (strpos('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', substr(s.v, q.pos, 1)) - 1)) & 1 = 0)
                 ) x
        ) e
    ), res2 AS (
        SELECT r.*, g.good, g.good_chars, g.good_vin, iv.invalid, iv.inv_pos,
               CASE WHEN substr(r.v, 3, 1) = '9' THEN 15 WHEN r.car_lt THEN 13 ELSE 14 END AS start_pos
        FROM res r
        LEFT JOIN LATERAL (
            -- one wrong position with several candidates: those that make the check digit right
            SELECT count(*) AS good, string_agg(x.c, '' ORDER BY x.k) AS good_chars,
                   (array_agg(x.t ORDER BY x.k DESC))[1] AS good_vin
            FROM (SELECT k, substr(r.last_repl, k, 1) AS c, overlay(r.v PLACING substr(r.last_repl, k, 1) FROM r.last_pos FOR 1) AS t
                  FROM generate_series(1, length(r.last_repl)) k
                  WHERE r.n_err = 1 AND length(r.last_repl) > 1) x  -- a one-time filter: no scan otherwise
            WHERE substr(x.t, 9, 1) = {{schema}}.vin_check_digit(x.t)
        ) g ON true
        CROSS JOIN LATERAL (
            -- code 400: characters not allowed at their position
            SELECT coalesce(string_agg(', ' || j || ':' || substr(r.v, j, 1), '' ORDER BY j), '') AS invalid,
                   array_agg(j) AS inv_pos
            FROM generate_series(1, length(r.v)) j
            WHERE NOT (j = 9 AND r.off_road IS TRUE)
              AND ((j <> 9 AND j < CASE WHEN substr(r.v, 3, 1) = '9' THEN 15 WHEN r.car_lt THEN 13 ELSE 14 END
                        AND strpos('0123456789ABCDEFGHJKLMNPRSTUVWXYZ*', substr(r.v, j, 1)) = 0)
                   OR (j <> 9 AND j >= CASE WHEN substr(r.v, 3, 1) = '9' THEN 15 WHEN r.car_lt THEN 13 ELSE 14 END
                        AND strpos('0123456789*', substr(r.v, j, 1)) = 0)
                   OR (j = 9 AND strpos('0123456789X*', substr(r.v, j, 1)) = 0)
                   OR (j = 10 AND strpos('123456789ABCDEFGHJKLMNPRSTVWXY', substr(r.v, j, 1)) = 0))
        ) iv
    ), flags AS (
        SELECT r.*,
               r.public_wmi_id IS NULL AS c7,
               r.public_wmi_id IS NOT NULL AND r.n_pat = 0 AS c8,
               r.n_err = 1 AND length(r.last_repl) = 1 AS c2,
               r.n_err = 1 AND length(r.last_repl) > 1 AND r.good = 1 AS c3,
               r.n_err = 1 AND length(r.last_repl) > 1 AND r.good IS DISTINCT FROM 1 AS c4,
               r.n_err > 1 AS c5,
               r.unused <> '' AS c14a,
               r.my IS NULL AS c11,
               r.invalid <> '' AS c400,
               length(r.v) < 17 AS c6,
               length(r.v) >= 17 AND substr(r.v, 9, 1) <> {{schema}}.vin_check_digit(r.v, coalesce(r.car_lt, false))
                   AND NOT EXISTS (SELECT 1 FROM {{schema}}.vin_exception ve WHERE ve.vin = r.v AND ve.check_digit) AS c1
        FROM res2 r
    ), flags2 AS (
        SELECT f.*,
               NOT (f.c1 OR f.c2 OR f.c3 OR f.c4 OR f.c5 OR f.c6 OR f.c7 OR f.c8 OR f.c11 OR f.c400) AS c0,
               -- SuggestedVIN: the one-position corrections, '!' at every wrong position
               CASE WHEN f.n_err = 0 THEN ''
                    WHEN f.c2 THEN overlay(f.v PLACING f.last_repl FROM f.last_pos FOR 1)
                    WHEN f.c3 THEN f.good_vin
                    ELSE (SELECT string_agg(CASE WHEN j = ANY (f.err_pos) THEN '!' ELSE substr(f.v, j, 1) END, '' ORDER BY j)
                          FROM generate_series(1, length(f.v)) j) END AS corrected0,
               CASE WHEN f.c2 OR f.c5 THEN f.repl_all
                    WHEN f.c3 THEN '(' || f.last_pos || ':' || f.good_chars || ')'
                    WHEN f.c4 THEN '(' || f.last_pos || ':' || f.last_repl || ')'
                    ELSE '' END AS err_bytes
        FROM flags f
    ), coded AS MATERIALIZED (
        -- materialized: the flags (two check-digit calls among them) are computed once per pass,
        -- not once per error-code row they are tested against
        SELECT f.*,
               f.c14a OR (f.c0 AND f.model_attr IS NULL) AS c14,
               ARRAY[CASE WHEN f.c0 THEN 0 END, CASE WHEN f.c1 THEN 1 END, CASE WHEN f.c2 THEN 2 END,
                     CASE WHEN f.c3 THEN 3 END, CASE WHEN f.c4 THEN 4 END, CASE WHEN f.c5 THEN 5 END,
                     CASE WHEN f.c6 THEN 6 END, CASE WHEN f.c7 THEN 7 END, CASE WHEN f.c8 THEN 8 END,
                     CASE WHEN f.body_attr = '64' THEN 9 END, CASE WHEN f.off_road THEN 10 END,
                     CASE WHEN f.c11 THEN 11 END, CASE WHEN f.c14a OR (f.c0 AND f.model_attr IS NULL) THEN 14 END,
                     CASE WHEN f.c400 THEN 400 END] AS code_ids,
               CASE WHEN f.c400 THEN
                   (SELECT string_agg(CASE WHEN j = ANY (f.inv_pos) THEN '!'
                                           ELSE substr(CASE WHEN f.corrected0 = '' THEN f.v ELSE f.corrected0 END, j, 1) END,
                                      '' ORDER BY j)
                    FROM generate_series(1, length(f.v)) j)
               ELSE f.corrected0 END AS corrected
        FROM flags2 f
    ), scored AS (
        SELECT c.*, ec.codes, ec.names, ec.err_value, ec.addl
        FROM coded c
        CROSS JOIN LATERAL (
            SELECT array_agg(x.id ORDER BY x.id) AS codes,
                   string_agg(trim(x.name || CASE WHEN c.off_road AND x.id = 1
                       THEN ' NOTE: Disregard if this is an off-road vehicle PIN, as check digit calculation may not be accurate.'
                       ELSE '' END), '; ' ORDER BY x.id) AS names,
                   coalesce(sum(x.weight), 0) AS err_value,
                   max(x.additional_text) FILTER (WHERE x.id IN (4, 5)) AS addl
            FROM {{schema}}.decode_error_code x
            WHERE x.id = ANY (c.code_ids)
        ) ec
    ), passes AS (
        -- the pass's figures and its error fields; its element values (doc) stay in `doc` until
        -- the best pass is known, so no wide row is carried through the flags and sorts above
        SELECT sc.pid, sc.v, sc.pno, sc.err_value AS err, sc.el_weight AS elw, NULLIF(sc.n_pat, 0) AS npat,
               CASE WHEN sc.public_wmi_id IS NOT NULL THEN sc.my END AS my,
               jsonb_build_object(
                   'ErrorCode', coalesce(array_to_string(sc.codes, ','), ''),
                   'ErrorText', coalesce(sc.names, ''),
                   'SuggestedVIN', coalesce(sc.corrected, ''),
                   'PossibleValues', coalesce(sc.err_bytes, ''),
                   'AdditionalErrorText', coalesce(a4.t, ''),
                   'MakeID', coalesce(sc.make_attr, ''),
                   'ModelID', coalesce(sc.model_attr, ''),
                   'ManufacturerId', coalesce(CASE WHEN sc.public_wmi_id IS NOT NULL THEN sc.manufacturer_id::text END, '')) AS extra
        FROM scored sc
        CROSS JOIN LATERAL (SELECT CASE WHEN sc.c14 THEN left(trim(coalesce(sc.addl, '') || ' Unused position(s): ' || sc.unused || '. '), 500)
                                        ELSE sc.addl END AS t) a1
        CROSS JOIN LATERAL (SELECT CASE WHEN sc.c400 THEN left(trim(coalesce(a1.t, '') || ' Invalid character(s): ' || substr(sc.invalid, 3) || '. '), 500)
                                        ELSE a1.t END AS t) a2
        CROSS JOIN LATERAL (SELECT CASE WHEN (sc.vehicle_type_id = 10 AND sc.public_wmi_id IS NOT NULL)
                                          OR sc.body_attr IN ('65', '107', '70', '74', '63', '72', '112', '62', '64', '76', '78', '71', '77', '67', '116', '75')
                                        THEN left(trim(coalesce(a2.t, '') || ' Incomplete Vehicle Warning - Please be advised that the vehicle may have been altered and may not be an accurate representation of the vehicle in its current condition. '), 500)
                                        ELSE a2.t END AS t) a3
        CROSS JOIN LATERAL (SELECT CASE WHEN NOT sc.conclusive
                                        THEN left(trim(coalesce(a3.t, '') || ' The Model Year decoded for this VIN may be incorrect. If you know the Model year, please enter it and decode again to get more accurate information. '), 500)
                                        ELSE a3.t END AS t) a4
    ), best AS (
        -- error weights, element weights, pattern count, model year (NULLs first), the earlier pass
        SELECT DISTINCT ON (p.v) p.v, p.pid, p.extra
        FROM passes p
        ORDER BY p.v, p.err DESC, p.elw DESC, p.npat DESC, p.my DESC, p.pno
    )
    SELECT i.raw,
           -- the small objects first: one merge into the ~150-key template per VIN, not two
           (SELECT t.doc FROM {{schema}}.decode_template t) || (coalesce(d.doc, '{}') || b.extra
           || jsonb_build_object('VIN', i.v, 'VehicleDescriptor',
                  upper(left(overlay(left(i.v || '*****************', 17) PLACING '*' FROM 9 FOR 1),
                             CASE WHEN substr(i.v, 3, 1) = '9' THEN 14 ELSE 11 END))))
    FROM input i
    JOIN best b ON b.v = i.v
    LEFT JOIN doc d ON d.pid = b.pid
    ORDER BY i.ord;
    IF mode <> want THEN
        PERFORM set_config('plan_cache_mode', mode, true);
    END IF;
END $$;
