-- builds: decode_key
-- reads: -
-- priority: 2
-- (The header the loader reads, vehicle_etl/staging/derived.py: the derived tables this file builds, the
-- derived tables it reads (the loaded ones are always there; '-' for none), and its start priority,
-- lower first when two files are ready. A file starts once the files building what it reads have committed.)
--
-- The distinct vPIC keys, parsed once per release (decode_key): the decoder's LIKE prefilter and
-- regex, and the per-position characters and masks the error codes and the dropdown options use.
-- search_path = the staging schema. Helpers live in pg_temp: nothing but tables is left behind.
-- docs/DECODER.md explains each column.

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

-- decode_support and dropdown_options join decode_key: give the planner its statistics.
ANALYZE decode_key;
