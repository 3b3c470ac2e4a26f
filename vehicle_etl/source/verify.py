"""The verification every restore ends with: required tables and columns present, key tables
non-empty, so a bad backup fails before extraction with a message that names the fix."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import URL

from vehicle_etl import spec
from vehicle_etl.errors import RestoreError, SourceError
from vehicle_etl.source.connect import open_source

log = logging.getLogger(__name__)

# Tables that must hold rows after a restore (an empty Make table means a broken backup).
KEY_TABLES = ("Make", "Model", "Make_Model", "Wmi", "VinSchema", "Wmi_VinSchema", "Pattern", "Element")

def verify_source(url: str | URL, schema: str | None = None) -> dict[str, int]:
    """Required tables and columns present and key tables non-empty; returns the key-table counts."""
    try:
        source = open_source(url, schema=schema)
    except SourceError as exc:
        raise RestoreError(f"restored database cannot be opened: {exc}") from exc
    try:
        source.check(spec.TABLES)
        counts: dict[str, int] = {}
        with source.engine.connect() as conn:
            for name in KEY_TABLES:
                stmt = sa.select(sa.func.count()).select_from(source.table(name, []))
                counts[name] = int(conn.execute(stmt).scalar_one())
    except SourceError as exc:
        raise RestoreError(f"restored database failed verification: {exc}") from exc
    finally:
        source.engine.dispose()
    empty = [n for n, c in counts.items() if c == 0]
    if empty:
        raise RestoreError(
            f"restored database {source.description} has empty key table(s) {', '.join(empty)}: "
            "the backup is incomplete; fetch the release again."
        )
    log.info("verified %s: %s", source.description, ", ".join(f"{k}={v}" for k, v in counts.items()))
    return counts
