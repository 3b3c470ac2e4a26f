-- VIN decoding at parity with NHTSA's spVinDecode (docs/DECODER.md; ../shared/docs/vpic-decoding.md).
-- Installed into staging by build_keys and into live by the swap: every table is named
-- {{schema}}.<table>, so a call never depends on the caller's search_path, and CREATE OR REPLACE
-- keeps the functions' OIDs across swaps. No temp tables (NHTSA's procedures create up to 20 per
-- decode): a pass is a few indexed queries over precomputed tables (derive/20_decode_support.sql).

-- The swap also installs these into vehicles_previous, which has no tables on the first run:
-- SQL-language bodies are checked at call time instead (this transaction only).
SET LOCAL check_function_bodies = off;

-- NHTSA's check digit (fVINCheckDigit / fVINCheckDigit2): '' unless 17 characters, '?' when a
-- character is not allowed at its position. car_lt NULL selects the first variant (positions 13
-- and 14 numeric unless position 3 is '9'); otherwise position 13 is numeric only for cars, MPVs
-- and light trucks. The character classes keep NHTSA's stray ',' so parity includes its quirks.
CREATE OR REPLACE FUNCTION {{schema}}.vin_check_digit(vin text, car_lt boolean DEFAULT NULL)
RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    weights constant int[] := '{8,7,6,5,4,3,2,10,0,9,8,7,6,5,4,3,2}';
    i int;
    c text;
    cls text;
    val int;
    total int := 0;
    nine boolean;
BEGIN
    IF vin IS NULL OR length(vin) <> 17 THEN
        RETURN '';
    END IF;
    nine := substr(vin, 3, 1) = '9';
    FOR i IN 1..17 LOOP
        c := upper(substr(vin, i, 1));
        cls := CASE
            WHEN i = 10 THEN '^[A-HJ-NPR-TV-Y1-9,]$'
            WHEN car_lt IS NULL AND i IN (13, 14) AND NOT nine THEN '^[0-9]$'
            WHEN car_lt IS NOT NULL AND i = 13 AND NOT nine AND car_lt THEN '^[0-9]$'
            WHEN car_lt IS NOT NULL AND i = 14 AND NOT nine THEN '^[0-9]$'
            WHEN i >= 15 THEN '^[0-9]$'
            ELSE '^[A-HJ-NPR-Z0-9,]$' END;
        IF c !~ cls THEN
            RETURN '?';
        END IF;
        val := CASE
            WHEN c ~ '^[0-9]$' THEN ascii(c) - 48
            WHEN c BETWEEN 'A' AND 'H' THEN ascii(c) - 64
            WHEN c BETWEEN 'J' AND 'N' THEN ascii(c) - 73
            WHEN c = 'P' THEN 7
            WHEN c = 'R' THEN 9
            WHEN c BETWEEN 'S' AND 'Z' THEN ascii(c) - 81
            ELSE -1 END;
        total := total + val * weights[i];
    END LOOP;
    total := total % 11;
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
            SELECT p.element_id, p.attribute_id, p.pattern_id, p.keys, l.year_from AS prio,
                   p.changed_on, p.lit_len, p.sort_keys,
                   CASE WHEN p.is_formula THEN 'Formula Pattern' ELSE 'Pattern' END AS src,
                   CASE WHEN p.is_formula THEN substr(v_keys, strpos(p.keys, '#'),
                        (length(p.keys) - strpos(reverse(p.keys), '#') + 1) - strpos(p.keys, '#') + 1)
                   END AS val,
                   CASE WHEN p.is_formula THEN 3 ELSE 1 END AS ins, p.pattern_id AS ord
            FROM links l
            JOIN {{schema}}.decode_pattern p ON p.vin_schema_id = l.vin_schema_id
            WHERE CASE WHEN p.is_formula THEN translate(v_keys, '0123456789', '##########') LIKE p.like_pat
                       ELSE v_keys LIKE p.like_pat AND (p.regex IS NULL OR v_keys ~ p.regex) END
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
        ), printed AS (
            SELECT de.element_id, de.code, de.output, de.weight,
                   bool_or(coalesce(i.val, i.attribute_id, '') <> '') AS filled,
                   string_agg(DISTINCT regexp_replace(
                       CASE
                           WHEN i.val IS NOT NULL THEN i.val
                           WHEN de.lookup_mode = 'model' THEN
                               (SELECT m.model_name FROM {{schema}}.model m
                                WHERE m.model_id = CASE WHEN i.attribute_id ~ '^[0-9]{1,9}$' THEN i.attribute_id::int END)
                           WHEN de.lookup_mode = 'lookup' THEN
                               (SELECT l.lookup_name FROM {{schema}}.lookup l
                                WHERE l.lookup_table = de.lookup_table AND l.lookup_id = CASE WHEN i.attribute_id ~ '^[0-9]{1,9}$' THEN i.attribute_id::int END)
                           ELSE i.attribute_id
                       END, '[\t\r\n]', ' ', 'g'), '; ') AS val
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
            -- codes 2-5: the characters the WMI's schemas for this year use per position
            -- (NHTSA's fallback for the missing WMIYearValidChars cache: every key, hidden schemas too)
            (SELECT array_agg(x.chars ORDER BY x.pos) FROM (
                SELECT sc.pos, translate('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ',
                           translate('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', string_agg(sc.chars, ''), ''), '') AS chars
                FROM {{schema}}.wmi_vin_schema ws
                JOIN {{schema}}.decode_schema_chars sc ON sc.vin_schema_id = ws.vin_schema_id
                WHERE ws.wmi_id = public_wmi_id
                  AND decode_vin_pass.model_year BETWEEN ws.year_from AND coalesce(ws.year_to, 2999)
                GROUP BY sc.pos) x) AS vc_chars,
            (SELECT array_agg(x.pos ORDER BY x.pos) FROM (
                SELECT DISTINCT sc.pos
                FROM {{schema}}.wmi_vin_schema ws
                JOIN {{schema}}.decode_schema_chars sc ON sc.vin_schema_id = ws.vin_schema_id
                WHERE ws.wmi_id = public_wmi_id
                  AND decode_vin_pass.model_year BETWEEN ws.year_from AND coalesce(ws.year_to, 2999)) x) AS vc_pos,
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
            FOR k IN 1..coalesce(cardinality(r.vc_pos), 0) LOOP
                pos := r.vc_pos[k];
                CONTINUE WHEN pos < 4 OR pos IN (9, 10) OR pos > CASE WHEN length(wmi) = 6 THEN 11 ELSE 14 END
                              OR pos > length(vin) OR r.vc_chars[k] = '';
                IF strpos(r.vc_chars[k], substr(vin, pos, 1)) = 0 THEN
                    n_err := n_err + 1;
                    last_pos := pos;
                    last_repl := r.vc_chars[k];
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
    ELSIF substr(vin, 9, 1) <> {{schema}}.vin_check_digit(vin, coalesce(w.car_lt, false)) THEN
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

-- Batches: one row per input, in input order (duplicates and NULLs kept).
CREATE OR REPLACE FUNCTION {{schema}}.decode_vins(vins text[])
RETURNS TABLE(vin text, result jsonb) LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT u.v, {{schema}}.decode_vin(u.v) FROM unnest(vins) WITH ORDINALITY AS u(v, ord) ORDER BY u.ord
$$;
