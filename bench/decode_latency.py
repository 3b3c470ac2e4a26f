"""Latency of the decoder and dropdowns over a socket, from a separate process (this one).

Usage: .venv/bin/python bench/decode_latency.py --dsn "host=127.0.0.1 user=postgres dbname=dev_decode"
       [--calls 10000] [--vins ../shared/data/vin_ground_truth/dev_vins.csv] [--batch 500] [--schema vehicles]
       [--compare N] [--reference-dsn DSN]

Prints, for the same run: the SELECT 1 round trip (baseline), decode_vin p50/p95/p99 over --calls
calls cycling through real VINs, decode_vins throughput (VINs/s) in batches of --batch, and p99 of
the dropdown calls (makes/models/trims/engines for years and makes taken from the catalog).
--compare N checks first that decode_vins answers exactly as decode_vin per VIN on N VINs (and, with
--reference-dsn, as decode_vin of another database, e.g. one built by an earlier decoder version).
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import time
from pathlib import Path

import psycopg
from psycopg import sql

DEFAULT_VINS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "vin_ground_truth" / "dev_vins.csv"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def timed(cur: psycopg.Cursor, stmt: sql.Composable | str, params: tuple, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        cur.execute(stmt, params)
        cur.fetchall()
        out.append((time.perf_counter() - t) * 1000)
    return out


def line(name: str, ms: list[float]) -> str:
    return (f"{name:<28} n={len(ms):>6}  p50={pct(ms, 50):7.3f} ms  p95={pct(ms, 95):7.3f} ms  "
            f"p99={pct(ms, 99):7.3f} ms  mean={statistics.fmean(ms):7.3f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--vins", type=Path, default=DEFAULT_VINS)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--schema", default="vehicles")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--compare", type=int, default=0, help="VINs to compare batch vs per-VIN decodes on")
    ap.add_argument("--reference-dsn", help="also compare with decode_vin of this database")
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    with open(args.vins, newline="") as fh:
        vins = [r["vin"] for r in csv.DictReader(fh)]
    rnd.shuffle(vins)
    schema = sql.Identifier(args.schema)

    with psycopg.connect(args.dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version")
        print(f"server {cur.fetchone()[0]}; {len(vins)} VINs from {args.vins.name}; calls={args.calls}")
        if args.compare:
            sample = vins[: args.compare]
            one_stmt = sql.SQL("SELECT {}.decode_vin(%s)").format(schema)
            single = [cur.execute(one_stmt, (v,)).fetchone()[0] for v in sample]  # type: ignore[index]
            batch: list[dict] = []
            for i in range(0, len(sample), args.batch):
                many_stmt = sql.SQL("SELECT result FROM {}.decode_vins(%s)").format(schema)
                cur.execute(many_stmt, (sample[i:i + args.batch],))
                batch += [r[0] for r in cur.fetchall()]
            bad = [v for v, a, b in zip(sample, single, batch, strict=True) if a != b]
            print(f"compare: decode_vins vs decode_vin on {len(sample)} VINs: {len(bad)} differ {bad[:5]}")
            if args.reference_dsn:
                with psycopg.connect(args.reference_dsn, autocommit=True) as ref:
                    refs = [ref.execute(one_stmt, (v,)).fetchone()[0] for v in sample]  # type: ignore[index]
                bad = [v for v, a, b in zip(sample, refs, batch, strict=True) if a != b]
                print(f"compare: decode_vins vs reference decode_vin on {len(sample)} VINs: "
                      f"{len(bad)} differ {bad[:5]}")
        # warm-up: plan caches and buffers, as a long-lived app connection has them
        for v in vins[:200]:
            cur.execute(sql.SQL("SELECT {}.decode_vin(%s)").format(schema), (v,))
        base = timed(cur, "SELECT 1", (), min(args.calls, 2000))
        print(line("SELECT 1 (baseline)", base))

        one = sql.SQL("SELECT {}.decode_vin(%s)").format(schema)
        ms = []
        for i in range(args.calls):
            v = vins[i % len(vins)]
            t = time.perf_counter()
            cur.execute(one, (v,))
            cur.fetchone()
            ms.append((time.perf_counter() - t) * 1000)
        print(line("decode_vin", ms))

        many = sql.SQL("SELECT result FROM {}.decode_vins(%s)").format(schema)
        total, t0 = 0, time.perf_counter()
        for i in range(0, min(args.calls, len(vins)), args.batch):
            chunk = vins[i:i + args.batch]
            cur.execute(many, (chunk,))
            total += len(cur.fetchall())
        secs = time.perf_counter() - t0
        print(f"{'decode_vins':<28} {total} VINs in {secs:.2f} s = {total / secs:,.0f} VINs/s "
              f"(batches of {args.batch})")

        cur.execute(sql.SQL("SELECT model_year, make_id, model_id FROM {}.model_year "
                            "WHERE model_year BETWEEN 2015 AND 2025 ORDER BY random() LIMIT 200").format(schema))
        picks = cur.fetchall()
        dd: dict[str, list[float]] = {"dropdown_makes": [], "dropdown_models": [], "dropdown_trims": [],
                                      "dropdown_engines": [], "dropdown_transmissions": []}
        per = max(1, args.calls // (len(dd) * len(picks)))
        for year, make, model in picks:
            dd["dropdown_makes"] += timed(
                cur, sql.SQL("SELECT * FROM {}.dropdown_makes(%s)").format(schema), (year,), per)
            dd["dropdown_models"] += timed(cur, sql.SQL("SELECT * FROM {}.dropdown_models(%s, %s)").format(schema),
                                           (make, year), per)
            for f in ("dropdown_trims", "dropdown_engines", "dropdown_transmissions"):
                stmt = sql.SQL("SELECT * FROM {}.{}(%s, %s, %s)").format(schema, sql.Identifier(f))
                dd[f] += timed(cur, stmt, (make, model, year), per)
        for name, values in dd.items():
            print(line(name, values))
        allv = [x for v in dd.values() for x in v]
        print(line("dropdowns (all)", allv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
