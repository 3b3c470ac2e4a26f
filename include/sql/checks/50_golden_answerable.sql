-- Which golden VINs the staged release could answer: (1) the VIN's model year is not after the
-- release's own year (NHTSA fills model year Y+1 in during year Y: a mid-Y release has only part
-- of it), and (2) the release links a VIN schema to the VIN's WMI for that model year. A golden
-- set is made on one release; an older release cannot know WMIs or model years added later.
-- Parameters: %(wmis)s text[], %(years)s int[] (same length, one entry per golden VIN),
-- %(max_year)s int (the release's year; NULL when the release is unnamed: no limit).
-- Output: the 1-based positions of the answerable VINs.
SELECT v.i
FROM unnest(%(wmis)s::text[], %(years)s::int[]) WITH ORDINALITY AS v(wmi, model_year, i)
WHERE v.model_year <= coalesce(%(max_year)s::int, 9999)
  AND EXISTS (
    SELECT 1
    FROM {{schema}}.wmi w
    JOIN {{schema}}.wmi_vin_schema l ON l.wmi_id = w.wmi_id
    WHERE w.wmi = v.wmi
      AND v.model_year BETWEEN l.year_from AND coalesce(l.year_to, 9999)
)
ORDER BY v.i;
