-- Record the live catalog's ids after a swap or rollback (the release just made live, and the
-- run that did it). Idempotent: running it twice for one live version changes nothing.
-- Parameters: %(release)s, %(run_id)s.
INSERT INTO catalog_ids.make_name AS h (make_id, make_name, first_release, last_release)
SELECT m.make_id, m.make_name, %(release)s, %(release)s FROM vehicles.make m
ON CONFLICT (make_id, make_name) DO UPDATE
    SET first_release = least(h.first_release, EXCLUDED.first_release),
        last_release = greatest(h.last_release, EXCLUDED.last_release);

INSERT INTO catalog_ids.model_name AS h (model_id, model_name, make_id, first_release, last_release)
SELECT m.model_id, m.model_name, mm.make_id, %(release)s, %(release)s
FROM vehicles.model m LEFT JOIN vehicles.make_model mm ON mm.model_id = m.model_id
ON CONFLICT (model_id, model_name) DO UPDATE
    SET make_id = EXCLUDED.make_id,
        first_release = least(h.first_release, EXCLUDED.first_release),
        last_release = greatest(h.last_release, EXCLUDED.last_release);

-- Ids back in the live catalog are no longer retired.
DELETE FROM catalog_ids.retired_id r
WHERE (r.kind = 'make' AND EXISTS (SELECT 1 FROM vehicles.make m WHERE m.make_id = r.id))
   OR (r.kind = 'model' AND EXISTS (SELECT 1 FROM vehicles.model m WHERE m.model_id = r.id));

-- Ids known to the history and absent from live: retired by this release (kept if already retired).
INSERT INTO catalog_ids.retired_id (kind, id, retired_in, run_id)
SELECT DISTINCT 'make', h.make_id, %(release)s, %(run_id)s FROM catalog_ids.make_name h
WHERE NOT EXISTS (SELECT 1 FROM vehicles.make m WHERE m.make_id = h.make_id)
UNION
SELECT DISTINCT 'model', h.model_id, %(release)s, %(run_id)s FROM catalog_ids.model_name h
WHERE NOT EXISTS (SELECT 1 FROM vehicles.model m WHERE m.model_id = h.model_id)
ON CONFLICT (kind, id) DO NOTHING;
