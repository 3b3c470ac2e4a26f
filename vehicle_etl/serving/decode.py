"""VIN decoding through the platform database's SQL functions (include/sql/functions/20_*.sql .. 24_*.sql).

The decoder itself lives in PostgreSQL (the app calls it there); this module is the Python side:
batch decoding for the CLI, the golden-VIN accuracy check of the quality gate, and the reader role.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from vehicle_etl.config import LIVE_SCHEMA, Settings
from vehicle_etl.platform_db import connect, run_in_schema, sql_file

# Golden-file column -> DecodeVinValues key.
FIELD_CODES: dict[str, str] = {
    "make": "Make",
    "model": "Model",
    "model_year": "ModelYear",
    "trim": "Trim",
    "series": "Series",
    "body_class": "BodyClass",
    "drive_type": "DriveType",
    "fuel_type": "FuelTypePrimary",
    "engine_cylinders": "EngineCylinders",
    "displacement_l": "DisplacementL",
}

BATCH = 500  # VINs per decode_vins call: one round trip, bounded statement time


def normalise(value: object) -> str:
    """Compare case- and whitespace-insensitively; numbers as numbers ("2.0" == "2")."""
    text = re.sub(r"\s+", " ", str(value or "")).strip().upper()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return format(float(text), "g")
    return text


def decode(
    conn: psycopg.Connection, vins: list[str], model_year: int | None = None, schema: str = LIVE_SCHEMA
) -> list[dict[str, str]]:
    """Decode VINs with `schema`.decode_vin(s); one dict per input, in order."""
    out: list[dict[str, str]] = []
    if model_year is not None:
        stmt = sql.SQL("SELECT {}.decode_vin(%s, %s)").format(sql.Identifier(schema))
        with conn.cursor() as cur:
            for vin in vins:
                cur.execute(stmt, (vin, model_year))
                out.append(cur.fetchone()[0])  # type: ignore[index]
        return out
    stmt = sql.SQL("SELECT result FROM {}.decode_vins(%s)").format(sql.Identifier(schema))
    with conn.cursor() as cur:
        for i in range(0, len(vins), BATCH):
            cur.execute(stmt, (vins[i : i + BATCH],))
            out.extend(r[0] for r in cur.fetchall())
    return out


def load_golden(csv_path: Path | str) -> list[dict[str, str]]:
    with open(csv_path, newline="") as fh:
        return [dict(r) for r in csv.DictReader(fh)]


@dataclass
class FieldAgreement:
    compared: int = 0
    agreed: int = 0

    @property
    def rate(self) -> float:
        return self.agreed / self.compared if self.compared else 1.0


@dataclass
class AccuracyReport:
    """Per-field agreement of the decoder with a golden file (blank expected values are skipped)."""

    vins: int
    fields: dict[str, FieldAgreement] = field(default_factory=dict)
    disagreements: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def rate(self, name: str) -> float:
        return self.fields[name].rate

    @property
    def min_rate(self) -> float:
        return min((f.rate for f in self.fields.values()), default=1.0)

    def passes(self, threshold: float) -> bool:
        return all(f.rate >= threshold for f in self.fields.values())

    def summary(self) -> str:
        parts = [f"{n} {f.rate:.2%} ({f.agreed}/{f.compared})" for n, f in self.fields.items()]
        return f"{self.vins} VINs: " + ", ".join(parts)


def golden_accuracy(
    conn: psycopg.Connection,
    csv_path: Path | str | Iterable[dict[str, str]],
    schema: str = LIVE_SCHEMA,
    fields: Iterable[str] = ("make", "model", "model_year"),
    examples: int = 10,
) -> AccuracyReport:
    """Decode every VIN of a golden CSV (a path, or its rows) with `schema` and compare the named fields.

    Works on the staging schema after build_keys (the quality gate's use) as on live.
    """
    names = list(fields)
    unknown = [n for n in names if n not in FIELD_CODES]
    if unknown:
        raise ValueError(f"unknown golden fields {unknown}; known: {sorted(FIELD_CODES)}")
    rows = load_golden(csv_path) if isinstance(csv_path, str | Path) else list(csv_path)
    results = decode(conn, [r["vin"] for r in rows], schema=schema)
    report = AccuracyReport(vins=len(rows), fields={n: FieldAgreement() for n in names},
                            disagreements={n: [] for n in names})
    for row, res in zip(rows, results, strict=True):
        for n in names:
            expected = row.get(n) or ""
            if not expected.strip():
                continue
            got = res.get(FIELD_CODES[n]) or ""
            agg = report.fields[n]
            agg.compared += 1
            if normalise(expected) == normalise(got):
                agg.agreed += 1
            elif len(report.disagreements[n]) < examples:
                report.disagreements[n].append(
                    {"vin": row["vin"], "expected": expected, "got": got, "error_code": res.get("ErrorCode", "")}
                )
    return report


def ensure_reader_role(conn: psycopg.Connection, schema: str = LIVE_SCHEMA) -> None:
    """Create/refresh the app's read-only role and its grants (include/sql/roles.sql); idempotent.

    The function grants live in one place, functions/90_grants.sql; they are re-applied here
    when the live functions exist (e.g. the role was dropped and made again).
    """
    with conn.transaction():
        run_in_schema(conn, schema, sql_file("roles.sql"))
        if conn.execute("SELECT to_regprocedure(%s)", (f"{schema}.decode_vin(text,integer)",)).fetchone()[0]:
            run_in_schema(conn, schema, sql_file("functions/90_grants.sql"))


SUMMARY_KEYS = ("Make", "Model", "ModelYear", "Trim", "Series", "BodyClass", "VehicleType",
                "FuelTypePrimary", "EngineCylinders", "DisplacementL", "ErrorCode", "ErrorText")


def cli_decode(settings: Settings, vins: list[str], as_json: bool = False, model_year: int | None = None) -> int:
    """`vehicle-etl decode VIN...`: print decodes; exit 0 when every VIN decoded clean (code 0), else 1."""
    with connect(settings) as conn:
        results = decode(conn, vins, model_year=model_year)
    clean = True
    if as_json:
        json.dump(results if len(results) != 1 else results[0], sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    for vin, res in zip(vins, results, strict=True):
        codes = (res.get("ErrorCode") or "").split(",")
        clean = clean and "0" in codes
        if not as_json:
            print(vin)
            for key in SUMMARY_KEYS:
                if res.get(key):
                    print(f"  {key:<16} {res[key]}")
    return 0 if clean else 1
