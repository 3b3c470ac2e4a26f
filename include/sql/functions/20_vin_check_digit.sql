-- vin_check_digit: one function of the VIN decoder (20_..24_*.sql, installed in name order; docs/DECODER.md).
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
