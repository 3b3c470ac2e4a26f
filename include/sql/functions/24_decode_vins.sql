-- decode_vins: one function of the VIN decoder (20_..24_*.sql, installed in name order; docs/DECODER.md).
-- Installed into staging by build_keys and into live by the swap, like every file here; every
-- table is named {{schema}}.<table>. SQL bodies are checked at call time (this transaction only):
SET LOCAL check_function_bodies = off;

-- Batches: one row per input, in input order (duplicates and NULLs kept), each result identical
-- to decode_vin(vin) (tests/integration/test_decode.py, bench/decode_latency.py --compare). One
-- set-based statement does what decode_vin + decode_vin_pass do per VIN: distinct normalised VINs,
-- their model-year passes, pattern matching and ranking per (pass, element), error codes, the best
-- pass. Nothing re-reads a batch-sized CTE per row (quadratic in the batch size): what the later
-- steps test about a pass's winners travels as arrays in one row per pass (pp, pps), and the
-- per-pass figures are joined by pass id; only the release's few conversions (cf) are read per
-- row. Batches are planned for their size (custom plan: the array's length is the row estimate; a
-- generic plan would assume 10 rows and pick quadratic nested loops). docs/DECODER.md "Batches".
CREATE OR REPLACE FUNCTION {{schema}}.decode_vins(vins text[])
RETURNS TABLE(vin text, result jsonb) LANGUAGE plpgsql STABLE PARALLEL SAFE
SET jit = off
SET work_mem = '16MB'  -- a 500-VIN batch's aggregates and sorts stay in memory (4 MB spills)
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
    ), yr AS MATERIALIZED (
        -- per VIN: one vin_model_year call, one probe of decode_wmi and of its links (decode_wmi_link:
        -- the WMI's schema links as arrays); the passes read the WMI's figures from here
        SELECT x.v, x.wmi, dw.wmi_id, {{schema}}.vin_model_year(x.v, coalesce(dw.car_lt, false)) AS y,
               CASE WHEN dw.public_availability_date <= now() THEN dw.wmi_id END AS public_wmi_id,
               dw.car_lt, dw.vehicle_type_id, dw.vehicle_type_name, dw.manufacturer_id, dw.manufacturer_name,
               dw.single_make_id, dw.single_make_name, dw.schema_ids, dw.year_from, dw.year_to, dw.years
        FROM vinw x
        LEFT JOIN LATERAL (  -- index probes (OFFSET 0): a hash of every WMI costs more than a batch's probes
            SELECT d.*, wl.schema_ids, wl.year_from, wl.year_to, wl.years
            FROM {{schema}}.decode_wmi d LEFT JOIN {{schema}}.decode_wmi_link wl ON wl.wmi_id = d.wmi_id
            WHERE d.wmi = x.wmi OFFSET 0) dw ON true
    ), yr2 AS MATERIALIZED (
        -- negative: inconclusive, both cycles are decoded; a conclusive year whose WMI has no schema
        -- link for it but one 30 years away takes that year (alt)
        SELECT x.v, x.wmi, abs(x.y) AS rmy, CASE WHEN x.y < 0 THEN -x.y - 30 END AS omy,
               coalesce(x.y >= 0, true) AS conclusive,
               CASE WHEN a.alt IS NOT NULL AND x.wmi_id IS NOT NULL
                     AND NOT coalesce(x.years @> x.y, false) AND coalesce(x.years @> a.alt, false) THEN a.alt END AS alt
        FROM yr x
        CROSS JOIN LATERAL (SELECT CASE WHEN x.y >= 0 THEN
                                CASE WHEN x.y BETWEEN 1980 AND v_limit - 30 THEN x.y + 30
                                     WHEN x.y BETWEEN 2010 AND v_limit THEN x.y - 30 END END AS alt) a
    ), plan AS (
        -- a VinDescriptor row names the year (one conclusive pass), as in decode_vin
        SELECT x.v, x.wmi, CASE WHEN vd.model_year IS NULL THEN x.omy END AS omy,
               x.conclusive OR vd.model_year IS NOT NULL AS conclusive, coalesce(vd.model_year, x.alt, x.rmy) AS rmy
        FROM yr2 x
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
               y.public_wmi_id, y.car_lt, y.vehicle_type_id, y.vehicle_type_name, y.manufacturer_id,
               y.manufacturer_name, y.single_make_id, y.single_make_name, y.schema_ids, y.year_from, y.year_to,
               yc.masks AS yc_masks
        FROM pass s JOIN yr y ON y.v = s.v
        -- codes 2-5: the release's WMIYearValidChars cache for the pass's WMI and year, if it has them
        LEFT JOIN LATERAL (SELECT c.masks FROM {{schema}}.decode_wmi_year_chars c
                           WHERE c.wmi = s.wmi AND c.year = s.my OFFSET 0) yc ON true
    ), links AS (
        -- the schemas linked to the WMI for the pass's year (every link when the year is unknown):
        -- the links are sorted by YearTo, so those ending before the year are a prefix, skipped
        -- (width_bucket: a binary search); the rest unnested in the select list (no tuplestore per
        -- pass, as a function scan has) and tested
        SELECT u.pid, u.v, u.v_keys, u.vin_schema_id, u.year_from, u.my IS NOT NULL AND u.no_cache AS derive_chars
        FROM (SELECT s.pid, s.v, s.v_keys, s.my, s.yc_masks IS NULL AS no_cache, unnest(s.schema_ids[k.lo:]) AS vin_schema_id,
                     unnest(s.year_from[k.lo:]) AS year_from, unnest(s.year_to[k.lo:]) AS year_to
              FROM ps s
              CROSS JOIN LATERAL (SELECT CASE WHEN s.my IS NULL THEN 1 ELSE width_bucket(s.my - 1, s.year_to) + 1 END AS lo) k
              WHERE s.public_wmi_id IS NOT NULL) u
        WHERE u.my IS NULL OR u.my BETWEEN u.year_from AND u.year_to
    ), hit AS MATERIALIZED (
        -- the matching keys of the pass's schemas, with what the ranking, the formula value and
        -- code 14 need computed once per key, not once per pattern. bits: the positions 4-8 and
        -- 11 the key pins to the VIN's character (bit n = VIN position n), as decode_key.pos_chars
        -- says; a key without a [class] is read directly (token n is character n: '*' pins
        -- nothing, '#' a digit; a position past the VIN's end is never tested), only the others
        -- are looked up in decode_key
        SELECT l.pid, l.year_from AS prio, sk.pattern_ids,
               strpos(sk.keys, '#') > 0 AS is_formula,
               CASE WHEN strpos(sk.keys, '#') > 0 THEN substr(l.v_keys, strpos(sk.keys, '#'),
                    (length(sk.keys) - strpos(reverse(sk.keys), '#') + 1) - strpos(sk.keys, '#') + 1)
               END AS val,
               length(replace(sk.keys, '*', '')) AS lit_len,
               replace(replace(sk.keys, '[', ''), ']', '') AS sort_keys,
               CASE WHEN sk.regex IS NULL THEN
                   CASE WHEN substr(sk.keys, 1, 1) NOT IN ('', '*') AND strpos(CASE substr(sk.keys, 1, 1) WHEN '#' THEN '0123456789' ELSE substr(sk.keys, 1, 1) END, substr(l.v, 4, 1)) > 0 THEN 16 ELSE 0 END
                 | CASE WHEN substr(sk.keys, 2, 1) NOT IN ('', '*') AND strpos(CASE substr(sk.keys, 2, 1) WHEN '#' THEN '0123456789' ELSE substr(sk.keys, 2, 1) END, substr(l.v, 5, 1)) > 0 THEN 32 ELSE 0 END
                 | CASE WHEN substr(sk.keys, 3, 1) NOT IN ('', '*') AND strpos(CASE substr(sk.keys, 3, 1) WHEN '#' THEN '0123456789' ELSE substr(sk.keys, 3, 1) END, substr(l.v, 6, 1)) > 0 THEN 64 ELSE 0 END
                 | CASE WHEN substr(sk.keys, 4, 1) NOT IN ('', '*') AND strpos(CASE substr(sk.keys, 4, 1) WHEN '#' THEN '0123456789' ELSE substr(sk.keys, 4, 1) END, substr(l.v, 7, 1)) > 0 THEN 128 ELSE 0 END
                 | CASE WHEN substr(sk.keys, 5, 1) NOT IN ('', '*') AND strpos(CASE substr(sk.keys, 5, 1) WHEN '#' THEN '0123456789' ELSE substr(sk.keys, 5, 1) END, substr(l.v, 8, 1)) > 0 THEN 256 ELSE 0 END
                 | CASE WHEN substr(sk.keys, 8, 1) NOT IN ('', '*') AND strpos(CASE substr(sk.keys, 8, 1) WHEN '#' THEN '0123456789' ELSE substr(sk.keys, 8, 1) END, substr(l.v, 11, 1)) > 0 THEN 2048 ELSE 0 END
               ELSE (SELECT CASE WHEN strpos(k.pos_chars[1], substr(l.v, 4, 1)) > 0 THEN 16 ELSE 0 END
                          | CASE WHEN strpos(k.pos_chars[2], substr(l.v, 5, 1)) > 0 THEN 32 ELSE 0 END
                          | CASE WHEN strpos(k.pos_chars[3], substr(l.v, 6, 1)) > 0 THEN 64 ELSE 0 END
                          | CASE WHEN strpos(k.pos_chars[4], substr(l.v, 7, 1)) > 0 THEN 128 ELSE 0 END
                          | CASE WHEN strpos(k.pos_chars[5], substr(l.v, 8, 1)) > 0 THEN 256 ELSE 0 END
                          | CASE WHEN strpos(k.pos_chars[8], substr(l.v, 11, 1)) > 0 THEN 2048 ELSE 0 END
                     FROM {{schema}}.decode_key k WHERE k.keys = sk.keys) END AS bits
        FROM links l
        JOIN {{schema}}.decode_schema_key sk ON sk.vin_schema_id = l.vin_schema_id
        WHERE CASE WHEN strpos(sk.keys, '#') > 0 THEN translate(l.v_keys, '0123456789', '##########') LIKE sk.like_pat
                   ELSE l.v_keys LIKE sk.like_pat AND (sk.regex IS NULL OR l.v_keys ~ sk.regex) END
    ), cand AS (
        -- every matching pattern of the schemas linked for the pass's year
        SELECT h.pid, p.element_id, p.attribute_id, p.pattern_id, h.prio,
               coalesce(p.updated_on, p.created_on) AS changed_on, h.is_formula, h.val, h.lit_len, h.sort_keys, h.bits
        FROM hit h
        CROSS JOIN LATERAL unnest(h.pattern_ids) AS u(pattern_id)
        JOIN {{schema}}.pattern p ON p.pattern_id = u.pattern_id
    ), engine AS (
        SELECT DISTINCT ON (c.pid) c.pid, c.attribute_id, c.pattern_id, c.lit_len, c.sort_keys, c.bits
        FROM cand c
        WHERE c.element_id = 18 AND NOT c.is_formula
        ORDER BY c.pid, c.prio DESC, c.changed_on DESC, c.pattern_id DESC
    ), ranked AS (
        SELECT i.*, row_number() OVER (
                   PARTITION BY i.pid, i.element_id
                   ORDER BY i.prio DESC, i.changed_on DESC, i.lit_len, i.sort_keys COLLATE "C", i.ins, i.ord) AS rn
        FROM (
            -- insertion order: patterns, then Engine Model patterns, then formula patterns
            SELECT c.pid, c.element_id, c.attribute_id, c.prio, c.changed_on, c.val,
                   CASE WHEN c.is_formula THEN 3 ELSE 1 END AS ins, c.pattern_id AS ord, c.lit_len, c.sort_keys, c.bits
            FROM cand c
            UNION ALL
            SELECT e.pid, emp.element_id, emp.attribute_id, 50, NULL::timestamp,
                   NULL::text, 2, emp.engine_model_pattern_id, e.lit_len, e.sort_keys, e.bits
            FROM engine e
            JOIN {{schema}}.engine_model em ON lower(trim(em.engine_model_name)) = lower(trim(e.attribute_id))
            JOIN {{schema}}.engine_model_pattern emp ON emp.engine_model_id = em.engine_model_id
            WHERE emp.element_id NOT IN (26, 27, 29, 39)
        ) i
    ), win AS (
        SELECT r.pid, r.element_id, r.attribute_id, r.val, r.prio, r.changed_on, r.bits
        FROM ranked r
        WHERE r.rn = 1 OR r.element_id IN (114, 121, 129, 150, 154, 155, 169, 186)
    ), wf AS (
        -- per pass, what its winners decide: the pattern count, body class and Model, code 14's
        -- bits (the positions 4-8 and 11 some winning key pins; the Make row's key is the Model
        -- winner's, so the winners are every key that counts), the decoded (element, attribute) pairs
        SELECT w.pid, count(*) AS n_pat,
               min(w.attribute_id) FILTER (WHERE w.element_id = 5) AS body_attr,
               count(*) FILTER (WHERE w.element_id = 28) > 0 AS has_model,
               min(w.attribute_id) FILTER (WHERE w.element_id = 28) AS model_attr,
               bit_or(w.bits) AS bits, array_agg(w.element_id) AS els, array_agg(w.attribute_id) AS atts
        FROM win w GROUP BY w.pid
    ), pp AS MATERIALIZED (
        -- one row per pass with its winners' figures: the steps below test its arrays instead of
        -- joining win (a misestimated join of two CTEs is planned as a loop rescanning one of them)
        SELECT s.*, coalesce(f.n_pat, 0) AS n_pat, f.body_attr, coalesce(f.has_model, false) AS has_model,
               CASE WHEN f.model_attr ~ '^[0-9]{1,9}$' THEN f.model_attr::int END AS model_id,
               f.bits, coalesce(f.els, '{}') AS els, coalesce(f.atts, '{}') AS atts
        FROM ps s LEFT JOIN wf f ON f.pid = s.pid
    ), cf AS MATERIALIZED (
        -- the release's conversions, each formula parsed once
        SELECT c.conversion_id, c.from_element_id, c.to_element_id,
               regexp_match(c.formula, '^\s*#x#\s*([*/+-])\s*([0-9]+\.?[0-9]*)\s*$') AS m
        FROM {{schema}}.conversion c
    ), conv AS (
        SELECT DISTINCT ON (w2.pid, c.to_element_id) w2.pid, c.to_element_id AS element_id,
               CASE WHEN c.m IS NULL OR w2.attribute_id !~ '^\s*-?[0-9]+(\.[0-9]*)?\s*$' THEN '0'
                    WHEN c.m[1] = '*' THEN (trim(w2.attribute_id)::numeric * c.m[2]::numeric)::text
                    WHEN c.m[1] = '/' AND c.m[2]::numeric <> 0 THEN (trim(w2.attribute_id)::numeric / c.m[2]::numeric)::text
                    WHEN c.m[1] = '+' THEN (trim(w2.attribute_id)::numeric + c.m[2]::numeric)::text
                    WHEN c.m[1] = '-' THEN (trim(w2.attribute_id)::numeric - c.m[2]::numeric)::text
                    ELSE '0' END AS val
        FROM win w2
        JOIN cf c ON c.from_element_id = w2.element_id
        WHERE NOT EXISTS (SELECT 1 FROM win w3 WHERE w3.pid = w2.pid AND w3.element_id = c.to_element_id)
        ORDER BY w2.pid, c.to_element_id, w2.prio DESC, w2.changed_on DESC, c.conversion_id
    ), pps AS MATERIALIZED (
        -- VehicleSpec*, as in decode_vin_pass, per pass: the sheets of one of the WMI's makes, its
        -- vehicle type, the decoded model and year whose key rows all equal decoded values fill the
        -- elements no winner or conversion filled (lowest sheet id first); kept as arrays
        SELECT p.*, coalesce(sp.els, '{}') AS spec_els, sp.atts AS spec_atts
        FROM pp p
        LEFT JOIN LATERAL (
            SELECT array_agg(x.element_id) AS els, array_agg(x.attribute_id) AS atts
            FROM (SELECT DISTINCT ON (f.element_id) f.element_id, f.attribute_id
                  FROM {{schema}}.decode_spec_key k
                  JOIN {{schema}}.wmi_make wm ON wm.wmi_id = p.public_wmi_id AND wm.make_id = k.make_id
                  JOIN {{schema}}.decode_spec_fill f ON f.vspec_schema_pattern_id = k.vspec_schema_pattern_id
                  WHERE k.model_id = p.model_id AND k.vehicle_type_id = p.vehicle_type_id
                    AND (k.years IS NULL OR p.my = ANY (k.years))
                    AND NOT EXISTS (SELECT 1 FROM unnest(k.key_elements, k.key_values) AS kk(e, a)
                                    WHERE NOT EXISTS (SELECT 1 FROM unnest(p.els, p.atts) AS x(e, a)
                                                      WHERE x.e = kk.e AND x.a = kk.a))
                    AND f.element_id <> ALL (p.els)
                    AND NOT EXISTS (SELECT 1 FROM cf WHERE cf.to_element_id = f.element_id
                                    AND cf.from_element_id = ANY (p.els))  -- conv has it
                  ORDER BY f.element_id, k.vspec_schema_pattern_id) x
        ) sp ON true
    ), items AS (
        -- is_conv: a Conversion's row (not the ModelID)
        SELECT w.pid, w.element_id, w.attribute_id, w.val, false AS is_conv FROM win w
        UNION ALL
        SELECT s.pid, 26, mk.make_id, mk.make_name, false
        FROM pps s
        CROSS JOIN LATERAL (  -- index probes (OFFSET 0), not a hash of every model
            SELECT mk.make_id::text AS make_id, upper(mk.make_name) AS make_name
            FROM {{schema}}.make_model mm JOIN {{schema}}.make mk ON mk.make_id = mm.make_id
            WHERE mm.model_id = s.model_id OFFSET 0) mk
        UNION ALL
        SELECT s.pid, 26, s.single_make_id::text, s.single_make_name, false
        FROM pps s
        WHERE s.public_wmi_id IS NOT NULL AND s.single_make_id IS NOT NULL AND NOT s.has_model
        UNION ALL
        SELECT s.pid, 27, s.manufacturer_id::text, s.manufacturer_name, false
        FROM pps s WHERE s.public_wmi_id IS NOT NULL
        UNION ALL
        SELECT s.pid, 39, s.vehicle_type_id::text, s.vehicle_type_name, false
        FROM pps s WHERE s.public_wmi_id IS NOT NULL
        UNION ALL
        SELECT s.pid, 29, s.my::text, s.my::text, false
        FROM pps s WHERE s.public_wmi_id IS NOT NULL AND s.my IS NOT NULL
        UNION ALL
        SELECT c.pid, c.element_id, c.val, c.val, true FROM conv c
        UNION ALL
        SELECT s.pid, u.e, u.a, NULL, false
        FROM pps s CROSS JOIN LATERAL unnest(s.spec_els, s.spec_atts) AS u(e, a)
        -- DefaultValue fills the elements no winner, conversion or sheet filled: not as items but
        -- through the template of the vehicle type (tvt; the items' values overwrite it), and in
        -- the element weight of the pass (res)
    ), tvt AS MATERIALIZED (
        -- per vehicle type: the empty template with its DefaultValue rows printed in, and their
        -- elements and weights
        SELECT dd.vehicle_type_id, array_agg(dd.element_id) AS els, array_agg(de.weight) AS weights,
               (SELECT t.doc FROM {{schema}}.decode_template t) || jsonb_object_agg(de.code, coalesce(translate(
                   CASE
                       WHEN dd.val IS NOT NULL THEN dd.val
                       WHEN de.lookup_mode = 'model' THEN
                           (SELECT m.model_name FROM {{schema}}.model m
                            WHERE m.model_id = CASE WHEN dd.attribute_id ~ '^[0-9]{1,9}$' THEN dd.attribute_id::int END)
                       WHEN de.lookup_mode = 'lookup' THEN
                           (SELECT l.lookup_name FROM {{schema}}.lookup l
                            WHERE l.lookup_table = de.lookup_table AND l.lookup_id = CASE WHEN dd.attribute_id ~ '^[0-9]{1,9}$' THEN dd.attribute_id::int END)
                       ELSE dd.attribute_id
                   END, E'\t\r\n', '   '), '')) AS doc
        FROM {{schema}}.decode_default dd
        JOIN {{schema}}.decode_element de ON de.element_id = dd.element_id
        WHERE de.output AND de.code IS NOT NULL
        GROUP BY dd.vehicle_type_id
    ), printed AS (
        -- One row per (pass, element) from one source, except the note elements (several winners)
        -- and Make, Manufacturer, ModelYear, VehicleType when a conversion of the release fills one
        -- (none does in vPIC): only those are grouped (joined with '; ', distinct), the others print
        -- as they are
        SELECT i.pid, de.code, de.output, de.weight, coalesce(i.val, i.attribute_id, '') <> '' AS filled,
               translate(  -- tabs and line breaks print as spaces
                   CASE
                       WHEN i.val IS NOT NULL THEN i.val
                       WHEN de.lookup_mode = 'model' THEN
                           (SELECT m.model_name FROM {{schema}}.model m
                            WHERE m.model_id = CASE WHEN i.attribute_id ~ '^[0-9]{1,9}$' THEN i.attribute_id::int END)
                       WHEN de.lookup_mode = 'lookup' THEN
                           (SELECT l.lookup_name FROM {{schema}}.lookup l
                            WHERE l.lookup_table = de.lookup_table AND l.lookup_id = CASE WHEN i.attribute_id ~ '^[0-9]{1,9}$' THEN i.attribute_id::int END)
                       ELSE i.attribute_id
                   END, E'\t\r\n', '   ') AS val
        FROM items i
        JOIN {{schema}}.decode_element de ON de.element_id = i.element_id
        WHERE i.element_id NOT IN (114, 121, 129, 150, 154, 155, 169, 186)
          AND NOT (i.element_id IN (26, 27, 29, 39) AND (SELECT count(*) FROM cf WHERE cf.to_element_id IN (26, 27, 29, 39)) > 0)
        UNION ALL
        SELECT i.pid, de.code, de.output, de.weight,
               bool_or(coalesce(i.val, i.attribute_id, '') <> ''),
               string_agg(DISTINCT translate(
                   CASE
                       WHEN i.val IS NOT NULL THEN i.val
                       WHEN de.lookup_mode = 'model' THEN
                           (SELECT m.model_name FROM {{schema}}.model m
                            WHERE m.model_id = CASE WHEN i.attribute_id ~ '^[0-9]{1,9}$' THEN i.attribute_id::int END)
                       WHEN de.lookup_mode = 'lookup' THEN
                           (SELECT l.lookup_name FROM {{schema}}.lookup l
                            WHERE l.lookup_table = de.lookup_table AND l.lookup_id = CASE WHEN i.attribute_id ~ '^[0-9]{1,9}$' THEN i.attribute_id::int END)
                       ELSE i.attribute_id
                   END, E'\t\r\n', '   '), '; ')
        FROM items i
        JOIN {{schema}}.decode_element de ON de.element_id = i.element_id
        WHERE i.element_id IN (114, 121, 129, 150, 154, 155, 169, 186)
           OR (i.element_id IN (26, 27, 29, 39) AND (SELECT count(*) FROM cf WHERE cf.to_element_id IN (26, 27, 29, 39)) > 0)
        GROUP BY i.pid, de.element_id, de.code, de.output, de.weight
    ), doc AS MATERIALIZED (
        SELECT p.pid,
               coalesce(jsonb_object_agg(p.code, coalesce(p.val, '')) FILTER (WHERE p.output AND p.code IS NOT NULL), '{}') AS doc,
               sum(p.weight) FILTER (WHERE p.filled) AS el_weight
        FROM printed p GROUP BY p.pid
    ), attrs AS (
        SELECT i.pid, min(i.attribute_id) FILTER (WHERE i.element_id = 28 AND NOT i.is_conv) AS model_attr,
               min(i.attribute_id) FILTER (WHERE i.element_id = 26) AS make_attr
        FROM items i WHERE i.element_id IN (26, 28) GROUP BY i.pid
    ), vc0 AS (
        -- codes 2-5 without the cache: the characters the WMI's schemas for the year use per
        -- position (masks); the pass's links for a known year are exactly those schemas
        SELECT l.pid, ARRAY[bit_or(sc.masks[1]), bit_or(sc.masks[2]), bit_or(sc.masks[3]), bit_or(sc.masks[4]),
                            bit_or(sc.masks[5]), bit_or(sc.masks[6]), bit_or(sc.masks[7]), bit_or(sc.masks[8]),
                            bit_or(sc.masks[9]), bit_or(sc.masks[10]), bit_or(sc.masks[11])] AS m
        FROM links l
        JOIN {{schema}}.decode_schema_chars sc ON sc.vin_schema_id = l.vin_schema_id
        WHERE l.derive_chars
        GROUP BY l.pid
    ), vc AS (
        -- the release's WMIYearValidChars cache for the pass's WMI and year wins where it has one
        SELECT s.pid, coalesce(s.yc_masks, v0.m) AS m
        FROM ps s
        LEFT JOIN vc0 v0 ON v0.pid = s.pid
        WHERE v0.pid IS NOT NULL OR s.yc_masks IS NOT NULL
    ), res AS MATERIALIZED (  -- its figures are read several times below: computed once
        SELECT s.pid, s.v, s.pno, s.my, s.conclusive, s.public_wmi_id, s.car_lt, s.vehicle_type_id, s.manufacturer_id,
               -- the element weight: the items' and the DefaultValue rows' the pass prints
               CASE WHEN dw.w IS NULL THEN d.el_weight WHEN d.el_weight IS NULL THEN dw.w ELSE d.el_weight + dw.w END AS el_weight,
               s.n_pat, s.body_attr, a.model_attr, a.make_attr,
               CASE WHEN s.public_wmi_id IS NOT NULL AND s.n_pat > 0 THEN
                   (SELECT coalesce(string_agg(q.pos::text, ',' ORDER BY q.pos), '')
                    FROM (VALUES (4), (5), (6), (7), (8), (11)) q(pos)
                    WHERE q.pos <= least(11, length(s.v)) AND coalesce((s.bits >> q.pos) & 1, 0) = 0)
               ELSE '' END AS unused,
               s.body_attr IN ('69', '84', '86', '88', '97', '105', '113', '124', '126', '127') AS off_road,
               -- code 1, once per pass: a wrong check digit, unless VinException lists the VIN
               length(s.v) >= 17 AND substr(s.v, 9, 1) <> {{schema}}.vin_check_digit(s.v, coalesce(s.car_lt, false))
                   AND NOT EXISTS (SELECT 1 FROM {{schema}}.vin_exception ve WHERE ve.vin = s.v AND ve.check_digit) AS c1,
               e.n_err, e.last_pos, e.last_repl, e.repl_all, e.err_pos,
               -- one wrong position with several candidates: the check digit with '0' there ('0' is
               -- valid at every position 4-8, 11-14), from which each candidate's follows (res2)
               CASE WHEN e.n_err = 1 AND length(e.last_repl) > 1
                    THEN {{schema}}.vin_check_digit(overlay(s.v PLACING '0' FROM e.last_pos FOR 1)) END AS d0
        FROM pps s
        LEFT JOIN doc d ON d.pid = s.pid
        LEFT JOIN attrs a ON a.pid = s.pid
        LEFT JOIN tvt tv ON tv.vehicle_type_id = s.vehicle_type_id AND s.public_wmi_id IS NOT NULL
        CROSS JOIN LATERAL (
            -- the weights of the pass's DefaultValue elements no item filled
            SELECT sum(x.w) AS w
            FROM unnest(tv.els, tv.weights) AS x(e, w)
            WHERE x.e <> ALL (s.els) AND x.e <> ALL (s.spec_els)
              AND NOT EXISTS (SELECT 1 FROM cf WHERE cf.to_element_id = x.e AND cf.from_element_id = ANY (s.els))
        ) dw
        LEFT JOIN vc ON vc.pid = s.pid
        CROSS JOIN LATERAL (
            SELECT count(*) AS n_err, max(x.pos) AS last_pos,
                   (array_agg(x.chars ORDER BY x.pos DESC))[1] AS last_repl,
                   coalesce(string_agg('(' || x.pos || ':' || x.chars || ')', '' ORDER BY x.pos), '') AS repl_all,
                   array_agg(x.pos) AS err_pos
            FROM (SELECT q.pos,
                         (SELECT string_agg(substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', b + 1, 1), '' ORDER BY b)
                          FROM generate_series(0, 35) b WHERE (vc.m[q.pos - 3] >> b) & 1 = 1) AS chars
                  FROM (VALUES (4), (5), (6), (7), (8), (11), (12), (13), (14)) q(pos)
                  WHERE s.public_wmi_id IS NOT NULL AND s.n_pat > 0
                    AND q.pos <= CASE WHEN length(s.wmi) = 6 THEN 11 ELSE 14 END AND q.pos <= length(s.v)
                    AND coalesce(vc.m[q.pos - 3], 0) <> 0
                    AND (strpos('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', substr(s.v, q.pos, 1)) = 0
                         OR (vc.m[q.pos - 3] >> (strpos('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', substr(s.v, q.pos, 1)) - 1)) & 1 = 0)
                  OFFSET 0) x
        ) e
    ), res2 AS (
        SELECT r.*, g.good, g.good_chars, g.good_vin, iv.invalid, iv.inv_pos,
               CASE WHEN substr(r.v, 3, 1) = '9' THEN 15 WHEN r.car_lt THEN 13 ELSE 14 END AS start_pos
        FROM res r
        LEFT JOIN LATERAL (
            -- one wrong position with several candidates: those that make the check digit right,
            -- i.e. vin_check_digit(VIN with the candidate there) = position 9. That check digit is
            -- d0's shifted by the candidate's value times the position's weight: '' (not 17 long)
            -- and '?' (a character elsewhere not allowed) as d0; '?' too when the candidate is not
            -- allowed there (I, O, Q; a letter in 13-14 unless position 3 is '9')
            SELECT count(*) AS good, string_agg(x.c, '' ORDER BY x.k) AS good_chars,
                   (array_agg(overlay(r.v PLACING x.c FROM r.last_pos FOR 1) ORDER BY x.k DESC))[1] AS good_vin
            FROM (SELECT k, substr(r.last_repl, k, 1) AS c
                  FROM generate_series(1, length(r.last_repl)) k
                  WHERE r.n_err = 1 AND length(r.last_repl) > 1) x  -- a one-time filter: no scan otherwise
            WHERE substr(r.v, 9, 1) = CASE
                WHEN r.d0 IN ('', '?') THEN r.d0
                WHEN strpos('IOQ', x.c) > 0
                  OR (r.last_pos IN (13, 14) AND substr(r.v, 3, 1) <> '9' AND strpos('0123456789', x.c) = 0) THEN '?'
                ELSE substr('0123456789X', (strpos('0123456789X', r.d0) - 1
                    + (ARRAY[8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2])[r.last_pos]
                      * (strpos('0123456789', translate(x.c, 'ABCDEFGHJKLMNPRSTUVWXYZ', '12345678123457923456789')) - 1)) % 11 + 1, 1)
                END
        ) g ON true
        CROSS JOIN LATERAL (
            -- code 400: characters not allowed at their position
            SELECT coalesce(string_agg(', ' || j || ':' || substr(r.v, j, 1), '' ORDER BY j), '') AS invalid,
                   array_agg(j) AS inv_pos
            FROM generate_series(1, length(r.v)) j
            -- a one-time filter: the scan only for a VIN with a character some position may refuse
            WHERE (r.v ~ '[^0-9A-HJ-NPR-Z*]' OR substr(r.v, CASE WHEN substr(r.v, 3, 1) = '9' THEN 15 WHEN r.car_lt THEN 13 ELSE 14 END) ~ '[^0-9*]'
                   OR strpos('0123456789X*', substr(r.v, 9, 1)) = 0 OR strpos('123456789ABCDEFGHJKLMNPRSTVWXY', substr(r.v, 10, 1)) = 0)
              AND NOT (j = 9 AND r.off_road IS TRUE)
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
               length(r.v) < 17 AS c6
        FROM res2 r
    ), flags2 AS MATERIALIZED (  -- corrected0 is read twice below
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
        -- materialized: the flags are computed once per pass, not once per error-code row they are
        -- tested against
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
               CASE WHEN sc.public_wmi_id IS NOT NULL THEN sc.vehicle_type_id END AS default_type,
               CASE WHEN sc.public_wmi_id IS NOT NULL THEN sc.my END AS my,
               coalesce(array_to_string(sc.codes, ','), '') AS e_code, coalesce(sc.names, '') AS e_text,
               coalesce(sc.corrected, '') AS e_vin, coalesce(sc.err_bytes, '') AS e_values,
               coalesce(a4.t, '') AS e_addl, coalesce(sc.make_attr, '') AS make_id, coalesce(sc.model_attr, '') AS model_id,
               coalesce(CASE WHEN sc.public_wmi_id IS NOT NULL THEN sc.manufacturer_id::text END, '') AS manuf_id
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
        SELECT DISTINCT ON (p.v) p.*
        FROM passes p
        ORDER BY p.v, p.err DESC, p.elw DESC, p.npat DESC, p.my DESC, p.pno
    )
    SELECT i.raw,
           -- the small objects first: one merge into the ~150-key template per VIN (the vehicle
           -- type's, with its DefaultValue rows printed in, for a public WMI), not two
           coalesce(tv.doc, (SELECT t.doc FROM {{schema}}.decode_template t)) || (coalesce(d.doc, '{}') || jsonb_build_object(
               'ErrorCode', b.e_code, 'ErrorText', b.e_text, 'SuggestedVIN', b.e_vin, 'PossibleValues', b.e_values,
               'AdditionalErrorText', b.e_addl, 'MakeID', b.make_id, 'ModelID', b.model_id, 'ManufacturerId', b.manuf_id,
               'VIN', i.v, 'VehicleDescriptor',
               upper(left(overlay(left(i.v || '*****************', 17) PLACING '*' FROM 9 FOR 1),
                          CASE WHEN substr(i.v, 3, 1) = '9' THEN 14 ELSE 11 END))))
    FROM input i
    JOIN best b ON b.v = i.v
    LEFT JOIN doc d ON d.pid = b.pid
    LEFT JOIN tvt tv ON tv.vehicle_type_id = b.default_type
    ORDER BY i.ord;
    IF mode <> want THEN
        PERFORM set_config('plan_cache_mode', mode, true);
    END IF;
END $$;
