"""`vehicle-etl serve`: NHTSA's vPIC REST API and the app's dropdown/health paths, read-only, over
the live catalog (docs/API.md, "HTTP API")."""
