"""Stage 2, staging: COPY into vehicles_staging (load), repairs and derived tables (derive), keys,
indexes, functions and grants (load.build_keys).

The stage's steps, in the order a run calls them (vehicle_etl.pipeline)."""

from vehicle_etl.staging.derived import derive, repair
from vehicle_etl.staging.load import build_keys, extract_load, prepare_staging

__all__ = ["build_keys", "derive", "extract_load", "prepare_staging", "repair"]
