-- decode_vin_pass: one function of the VIN decoder (20_..24_*.sql, installed in name order; docs/DECODER.md).
-- Installed into staging by build_keys and into live by the swap, like every file here; every
-- table is named {{schema}}.<table>. SQL bodies are checked at call time (this transaction only):
SET LOCAL check_function_bodies = off;

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
