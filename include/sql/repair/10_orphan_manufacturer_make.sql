-- Repairs of known, harmless source faults (each documented in docs/DATA_QUALITY.md).
-- Manufacturer_Make rows that name a make vPIC does not have (3 in the Feb 2026 release): the
-- link can never be shown or decoded, so it is dropped rather than blocking the release.
DELETE FROM manufacturer_make mm
WHERE NOT EXISTS (SELECT 1 FROM make m WHERE m.make_id = mm.make_id);
