"""Build data/golden/golden_vins.csv: the regression set the quality gate decodes before a swap.

    .venv/bin/python scripts/build_golden.py --dsn "host=127.0.0.1 user=postgres dbname=<verified catalog db>"

Takes the rows of ../shared/data/vin_ground_truth/dev_vins.csv whose public expected Make, Model
and ModelYear agree with NHTSA's algorithm on the verified live release (docs/BENCHMARKS.md
explains the rows that do not: release drift, naming, data gaps), keeps every real VIN and at
most --per-make synthetic ones per make, and writes them with the release they were verified on.
A later release that decodes fewer than the gate's threshold of them the same way does not go
live; when NHTSA legitimately renames something, rebuild this file from the new live release.
"""

from __future__ import annotations

import argparse
import csv
import random
from collections import defaultdict
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "data" / "vin_ground_truth" / "dev_vins.csv"
OUT = ROOT / "data" / "golden" / "golden_vins.csv"
FIELDS = (("make", "Make"), ("model", "Model"), ("model_year", "ModelYear"))


def norm(v: str | None) -> str:
    return " ".join((v or "").split()).upper()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--source", default=str(DEV))
    ap.add_argument("--per-make", type=int, default=120)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--release", default="2026_02", help="when the catalog has no catalog_info row")
    args = ap.parse_args()
    with open(args.source, newline="") as fh:
        rows = list(csv.DictReader(fh))
    with psycopg.connect(args.dsn) as conn:
        info = conn.execute("SELECT release FROM vehicles.catalog_info").fetchone()
        release = info[0] if info else args.release
        got = dict(conn.execute("SELECT vin, result FROM vehicles.decode_vins(%s)", ([r["vin"] for r in rows],)))
    agree = []
    for r in rows:
        res = got.get(r["vin"]) or {}
        if all(not r[f] or norm(r[f]) == norm(res.get(code)) for f, code in FIELDS) and r["make"]:
            agree.append(r)
    rng = random.Random(2026)
    by_make: dict[str, list[dict]] = defaultdict(list)
    for r in agree:
        by_make[norm(r["make"])].append(r)
    keep = []
    for _, items in sorted(by_make.items()):
        real = [r for r in items if "synthetic" not in r["source"]]
        synth = [r for r in items if "synthetic" in r["source"]]
        rng.shuffle(synth)
        keep += real + synth[: args.per_make]
    with open(args.out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["vin", "make", "model", "model_year", "verified_release", "source"])
        for r in sorted(keep, key=lambda r: r["vin"]):
            w.writerow([r["vin"], r["make"], r["model"], r["model_year"], release, r["source"].split(";")[0]])
    print(f"{len(rows)} dev VINs, {len(agree)} agree on make/model/year with release {release}; "
          f"kept {len(keep)} in {args.out}")


if __name__ == "__main__":
    main()
