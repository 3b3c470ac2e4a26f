"""Decode drift: which answers for the golden VINs change if the staged release goes live.

Each golden VIN is decoded twice, with the live catalog's `decode_vins` and with staging's (both
installed by the pipeline: staging has its functions after build_keys), and the decoded fields
are compared exactly (a change of letter case is a change the app shows). The result is part of
the release diff (vehicle_etl/release/diff.py): an operator sees when a release changes what a known VIN
decodes to, before or after it goes live.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from vehicle_etl.config import Settings
from vehicle_etl.serving import decode

# The decoded fields compared: the golden file's fields (decode.FIELD_CODES), in that order.
FIELDS = tuple(decode.FIELD_CODES.values())


def _has_decoder(conn: psycopg.Connection, schema: str) -> bool:
    found = conn.execute("SELECT to_regprocedure(%s)", (f'"{schema}".decode_vins(text[])',)).fetchone()
    return found is not None and found[0] is not None


def golden_decode_drift(
    conn: psycopg.Connection, staging: str, live: str, golden: Path | None = None, *, limit: int = 10
) -> dict[str, Any]:
    """{vins, changed_vins, fields: {field: VINs changed}, examples: [{vin, field, old, new}]}, or
    {skipped: why} when there is no golden file or either side has no decoder."""
    path = Path(golden or Settings().golden_csv)
    if not path.is_file():
        return {"skipped": f"no golden VIN file at {path}"}
    if not (_has_decoder(conn, live) and _has_decoder(conn, staging)):
        return {"skipped": "live or staging has no decode_vins function"}
    vins = [r["vin"] for r in decode.load_golden(path)]
    before = decode.decode(conn, vins, schema=live)
    after = decode.decode(conn, vins, schema=staging)
    fields: dict[str, int] = {}
    examples: list[dict[str, Any]] = []
    changed = 0
    for vin, old, new in zip(vins, before, after, strict=True):
        diffs = [f for f in FIELDS if (old.get(f) or "") != (new.get(f) or "")]
        changed += bool(diffs)
        for f in diffs:
            fields[f] = fields.get(f, 0) + 1
            if len(examples) < limit:
                examples.append({"vin": vin, "field": f, "old": old.get(f) or "", "new": new.get(f) or ""})
    return {"golden": path.name, "vins": len(vins), "changed_vins": changed,
            "fields": dict(sorted(fields.items(), key=lambda kv: -kv[1])), "examples": examples}
