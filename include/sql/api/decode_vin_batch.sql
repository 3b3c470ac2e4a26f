-- DecodeVINValuesBatch: one row per input, in order; a VIN with its own year goes through
-- decode_vin(vin, year), the others through the set-based decode_vins (identical answers, DECODER.md).
WITH input AS (
    SELECT t.vin, t.year, t.ord
    FROM unnest(%(vins)s::text[], %(years)s::int[]) WITH ORDINALITY AS t(vin, year, ord)
), plain AS (
    SELECT d.n, d.result
    FROM vehicles.decode_vins(ARRAY(SELECT vin FROM input WHERE year IS NULL ORDER BY ord))
         WITH ORDINALITY AS d(vin, result, n)
), plain_ord AS (
    SELECT ord, row_number() OVER (ORDER BY ord) AS n FROM input WHERE year IS NULL
)
SELECT i.ord, CASE WHEN i.year IS NULL THEN p.result ELSE vehicles.decode_vin(i.vin, i.year) END AS result
FROM input i
LEFT JOIN plain_ord po ON po.ord = i.ord
LEFT JOIN plain p ON p.n = po.n
ORDER BY i.ord
