"""Stage 2, staging: COPY into vehicles_staging, derive tables, keys, indexes and grants.

The stage's steps, in the order a run calls them (vehicle_etl.pipeline)."""

from vehicle_etl.staging.load import build_keys, derive, extract_load, prepare_staging, repair

__all__ = ["build_keys", "derive", "extract_load", "prepare_staging", "repair"]
