-- Which release is live: X-Vpic-Data-Version and the ETag are built from it.
SELECT release, run_id, built_at FROM vehicles.catalog_info LIMIT 1
