"""Accuracy of decode_vin against ../shared/data/vin_ground_truth/dev_vins.csv, per field and per source.

Usage: .venv/bin/python bench/decode_accuracy.py --dsn "host=127.0.0.1 user=postgres dbname=dev_decode"
       [--csv PATH] [--schema vehicles] [--limit N] [--examples 5]

Prints a table (agreement per field, per source) and classifies disagreements:
  naming      - same value after case/punctuation folding or one name contains the other
  empty       - we decode nothing for the field (data gap in the snapshot, or WMI/pattern absent)
  drift       - the expected value exists elsewhere in this release's lookups/patterns but not for this VIN
  other       - anything else (inspect the examples)
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from vehicle_etl.serving.decode import FIELD_CODES, decode, load_golden, normalise  # noqa: E402

DEFAULT_CSV = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "vin_ground_truth" / "dev_vins.csv"


def classify(expected: str, got: str) -> str:
    if not got:
        return "empty"
    e, g = normalise(expected), normalise(got)
    if e.replace(" ", "") == g.replace(" ", "") or e in g or g in e:
        return "naming"
    return "value"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--schema", default="vehicles")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--examples", type=int, default=3)
    args = ap.parse_args()

    rows = load_golden(args.csv)
    if args.limit:
        rows = rows[: args.limit]
    with psycopg.connect(args.dsn) as conn:
        results = decode(conn, [r["vin"] for r in rows], schema=args.schema)

    fields = list(FIELD_CODES)
    agree: dict[tuple[str, str], Counter] = defaultdict(Counter)
    classes: dict[str, Counter] = defaultdict(Counter)
    examples: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row, res in zip(rows, results, strict=True):
        src = row["source"].split(";")[0].split(":")[-1] if row["source"] else "?"
        for f in fields:
            exp = row.get(f, "")
            if not exp:
                continue
            got = res.get(FIELD_CODES[f], "") or ""
            ok = normalise(exp) == normalise(got)
            for key in ((f, src), (f, "ALL")):
                agree[key]["n"] += 1
                agree[key]["ok"] += ok
            if not ok:
                cls = classify(exp, got)
                classes[f][cls] += 1
                if len(examples[(f, cls)]) < args.examples:
                    examples[(f, cls)].append(
                        f"{row['vin']}: expected {exp!r}, got {got!r} (codes {res.get('ErrorCode')})")

    sources = sorted({s for (_, s) in agree if s != "ALL"})
    print(f"{'field':<18}" + "".join(f"{s[:22]:>24}" for s in [*sources, "ALL"]))
    for f in fields:
        line = f"{f:<18}"
        for s in [*sources, "ALL"]:
            c = agree.get((f, s))
            line += f"{'-':>24}" if not c else f"{100 * c['ok'] / c['n']:>10.2f}% ({c['ok']:>5}/{c['n']:>5})"
        print(line)
    print("\nDisagreements by class:")
    for f in fields:
        if classes[f]:
            print(f"  {f:<18} " + ", ".join(f"{k}={v}" for k, v in classes[f].most_common()))
            for cls in classes[f]:
                for ex in examples[(f, cls)]:
                    print(f"      [{cls}] {ex}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
