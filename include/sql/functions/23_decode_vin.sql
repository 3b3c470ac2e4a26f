-- decode_vin: one function of the VIN decoder (20_..24_*.sql, installed in name order; docs/DECODER.md).
-- Installed into staging by build_keys and into live by the swap, like every file here; every
-- table is named {{schema}}.<table>. SQL bodies are checked at call time (this transaction only):
SET LOCAL check_function_bodies = off;

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
