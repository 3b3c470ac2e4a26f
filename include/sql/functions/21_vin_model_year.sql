-- vin_model_year: one function of the VIN decoder (20_..24_*.sql, installed in name order; docs/DECODER.md).
-- Installed into staging by build_keys and into live by the swap, like every file here; every
-- table is named {{schema}}.<table>. SQL bodies are checked at call time (this transaction only):
SET LOCAL check_function_bodies = off;

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
