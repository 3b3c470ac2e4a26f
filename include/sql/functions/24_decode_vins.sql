-- decode_vins: one function of the VIN decoder (20_..24_*.sql, installed in name order; docs/DECODER.md).
-- Installed into staging by build_keys and into live by the swap, like every file here; every
-- table is named {{schema}}.<table>. SQL bodies are checked at call time (this transaction only):
SET LOCAL check_function_bodies = off;

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
