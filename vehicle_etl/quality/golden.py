"""The golden VINs of the gate: the decoder's hook when installed, else the accuracy of `decode_vin`
over the golden CSV (Settings.golden_csv) against its threshold."""

from __future__ import annotations

import csv
import importlib
import logging
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from vehicle_etl.config import Settings
from vehicle_etl.platform_db import render, sql_file
from vehicle_etl.quality.results import CheckResult
from vehicle_etl.releases import is_release

log = logging.getLogger(__name__)


# hook(conn, schema) -> (observed, threshold) or (observed, threshold, detail)
GoldenHook = Callable[[psycopg.Connection, str], tuple[Any, ...]]


def default_golden(release: str | None = None) -> GoldenHook | None:
    """The golden-VIN hook, resolved lazily so quality.py never imports decode at import time.

    1. `vehicle_etl.serving.decode.golden_gate(conn, schema) -> (observed, threshold)` when it exists;
    2. else `decode.golden_accuracy` over VEHICLE_ETL_GOLDEN_CSV (default data/golden/golden_vins.csv,
       scripts/build_golden.py), restricted to the VINs the staged release could answer (`answerable`:
       it links a schema to the VIN's WMI for its model year; the shipped sample covers a few makes,
       an older release lacks newer WMIs and years, and a release losing WMIs is the drift checks'
       business), the lowest agreement of Make, Model and ModelYear against
       VEHICLE_ETL_GOLDEN_MIN_ACCURACY (default 0.999);
    3. else None: the check is reported as skipped.
    """
    try:
        decode = importlib.import_module("vehicle_etl.serving.decode")
    except ImportError:
        return None
    hook = getattr(decode, "golden_gate", None)
    if callable(hook):
        return hook
    accuracy = getattr(decode, "golden_accuracy", None)
    csv_path = Settings().golden_csv
    if not callable(accuracy) or not csv_path.is_file():
        return None
    threshold = Settings().golden_min_accuracy

    def from_csv(conn: psycopg.Connection, schema: str) -> tuple[float, float, str]:
        with csv_path.open(newline="") as fh:
            every = list(csv.DictReader(fh))
        rows = answerable(conn, schema, every, release)
        detail = (f"{len(rows)} of {len(every)} golden VINs counted; {len(every) - len(rows)} have a model year after "
                  f"release {release or '(unnamed)'} or one it does not link for their WMI (it cannot know them)")
        if not rows:
            log.warning("golden VINs: none of %s can be answered by %s; nothing to compare", csv_path, schema)
            return 1.0, threshold, detail
        report = accuracy(conn, rows, schema=schema)
        log.info("golden VINs on %s: %s (%s)", schema, report.summary(), detail)
        worst = [f"{n}: {d['vin']} expected {d['expected']!r}, got {d['got']!r}"
                 for n, ds in report.disagreements.items() for d in ds[:2]]
        return report.min_rate, threshold, detail + ("; e.g. " + "; ".join(worst[:4]) if worst else "")

    return from_csv


def answerable(
    conn: psycopg.Connection, schema: str, rows: list[dict[str, str]], release: str | None = None
) -> list[dict[str, str]]:
    """The golden rows the release in `schema` could answer (checks/50_golden_answerable.sql): the
    VIN's model year is not after the year of `release` (YYYY_MM), and the release links a VIN
    schema to the VIN's WMI for that model year. A row without a model year counts when the
    release has its WMI at all."""
    wmis = [_wmi_of(r["vin"]) for r in rows]
    years = [int(r["model_year"]) if (r.get("model_year") or "").strip().isdigit() else None for r in rows]
    keep = {i for (i,) in conn.execute(render(sql_file("checks/50_golden_answerable.sql"), schema=schema).encode(),
                                       {"wmis": wmis, "years": [y or 0 for y in years],
                                        "max_year": int(release[:4]) if is_release(release) else None})}
    if any(y is None for y in years):
        known = {w for (w,) in conn.execute(sql.SQL("SELECT wmi FROM {}.wmi").format(sql.Identifier(schema)))}
        keep |= {i + 1 for i, (w, y) in enumerate(zip(wmis, years, strict=True)) if y is None and w in known}
    return [r for i, r in enumerate(rows, start=1) if i in keep]


def _wmi_of(vin: str) -> str:
    vin = vin.strip().upper()
    return vin[:3] + vin[11:14] if len(vin) >= 14 and vin[2] == "9" else vin[:3]


def golden_check(conn: psycopg.Connection, schema: str, golden: GoldenHook | None) -> CheckResult:
    """Decode the golden VIN set with the staged data; the accuracy must reach the threshold."""
    if golden is None:
        return CheckResult("golden_vin_accuracy", True, "no hook", "-", False,
                           "skipped: no golden-VIN hook (decode.golden_gate, or VEHICLE_ETL_GOLDEN_CSV)")
    try:
        with conn.transaction():
            observed, threshold, *extra = golden(conn, schema)
    except Exception as exc:  # a decoder that cannot run on this data must not go live
        log.exception("golden-VIN check raised")
        return CheckResult("golden_vin_accuracy", False, "error", "-", True, f"{type(exc).__name__}: {exc}"[:500])
    detail = str(extra[0]) if extra else ""
    if observed < threshold:
        detail = "golden VINs decode worse than required" + (f"; {detail}" if detail else "")
    return CheckResult("golden_vin_accuracy", observed >= threshold, round(observed, 4), threshold, True, detail)
