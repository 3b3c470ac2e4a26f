"""Readers under a real build and swap, called exactly as the app calls the catalog.

Usage: .venv/bin/python bench/swap_under_load.py [--full] [--readers 16,64] [--standby-readers 16]
       [--no-standby] [--json]

Each reader is a process with one long-lived autocommit connection as mvp_platform_reader, looping
with no think time over the app's two hottest calls as docs/API.md shows them:
    SELECT vehicles.decode_vin($1)
    SELECT count(*) FROM vehicles.dropdown_makes($1)
(psycopg prepares them server-side from the 5th run on, as in the app). Nothing else runs on the
reader connections: no probe, no pre-locking. Which version is live is asked by a separate watcher
connection (`SELECT run_id FROM vehicles.catalog_info`, its own statement), as an app would.

Scenarios (one fresh database each, on the test server VEHICLE_ETL_TEST_PG, or on a primary +
hot standby pair started here with the machine's PostgreSQL binaries, default standby settings):
  primary-N   version 1 built, N readers start, `vehicle-etl build-catalog` builds version 2 beside
              them and swaps; then `vehicle-etl rollback` under the same readers.
  standby-16  the same build and swap on the pair's primary, 16 readers on the standby.
Reported per scenario: swap attempts and flip time (from the build's log), reader calls and errors,
p50/p99 before / during the build / after, the longest reader call overlapping the flip and its
ratio to the baseline p99, and the time from the flip's commit until the watcher (on the readers'
server) sees the new version. Finally: decode_vin / dropdown_makes latency of the new design
(views over the version store) against the old one (the same functions over the version's own
tables) on one connection, alternating, in the same run.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

CLI = Path(sys.executable).parent / "vehicle-etl"
DECODE = "SELECT vehicles.decode_vin(%s)"
MAKES = "SELECT count(*) FROM vehicles.dropdown_makes(%s)"
HARD_CAP_S = 1800


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


def reader(n: int, dsn: str, vins: list[str], years: list[int], stop: Any, out: str) -> None:
    samples: list[tuple[float, float, str | None]] = []
    deadline = time.monotonic() + HARD_CAP_S
    i = 0
    with psycopg.connect(dsn, autocommit=True, application_name=f"swap-bench-reader-{n}") as conn:
        conn.execute("SET ROLE mvp_platform_reader")
        while not stop.is_set() and time.monotonic() < deadline:
            t0 = time.time()
            try:
                if i % 2 == 0:
                    conn.execute(DECODE, (vins[(i * 7 + n) % len(vins)],)).fetchone()
                else:
                    conn.execute(MAKES, (years[(i + n) % len(years)],)).fetchone()
                samples.append((t0, time.time(), None))
            except Exception as exc:  # counted: the promise is zero
                samples.append((t0, time.time(), f"{type(exc).__name__}: {exc}"[:200]))
                if conn.closed:
                    break
            i += 1
    with open(out, "w") as f:
        json.dump(samples, f)


def env_for(dsn: str, home: Path) -> dict[str, str]:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    return {**os.environ, "MVP_PLATFORM_DB_HOST": str(info.get("host", "127.0.0.1")),
            "MVP_PLATFORM_DB_PORT": str(info.get("port", "5432")), "MVP_PLATFORM_DB_NAME": str(info["dbname"]),
            "MVP_PLATFORM_DB_USER": str(info.get("user", "postgres")), "MVP_PLATFORM_DB_PASSWORD": "",
            "VEHICLE_ETL_HOME": str(home), "VEHICLE_ETL_MARKER_DIR": str(home / "markers"), "PYTHONUNBUFFERED": "1"}


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run `vehicle-etl ...`; returns (start, end, log). The flip line carries its attempt number."""
    t0 = time.time()
    proc = subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=HARD_CAP_S)
    if proc.returncode != 0:
        raise RuntimeError(f"vehicle-etl {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return t0, time.time(), proc.stdout + proc.stderr


def flip_of(log: str) -> tuple[int, float]:
    m = re.findall(r"flip committed in ([0-9.]+)s \(attempt (\d+)\)", log)
    if not m:
        raise RuntimeError(f"no flip line in the log:\n{log[-2000:]}")
    return int(m[-1][1]), float(m[-1][0])


def inputs(dsn: str) -> tuple[list[str], list[int]]:
    with (ROOT / "tests" / "golden_sample.csv").open() as f:
        vins = [r["vin"] for r in csv.DictReader(f)]
    with psycopg.connect(dsn) as c:
        years = [r[0] for r in c.execute("SELECT DISTINCT model_year FROM vehicles.dropdown_make "
                                         "WHERE model_year BETWEEN 2000 AND 2026 ORDER BY 1")]
    return vins, years or [2020]


def scenario(name: str, primary: str, readers_dsn: str, n: int, source: str, home: Path,
             rollback: bool, release: str = "2026_03", lag_dsn: str | None = None) -> dict[str, Any]:
    env = env_for(primary, home)
    vins, years = inputs(readers_dsn)
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    tmp = Path(tempfile.mkdtemp(prefix="swapbench_"))
    procs = [ctx.Process(target=reader, args=(i, readers_dsn, vins, years, stop, str(tmp / f"{i}.json")))
             for i in range(n)]
    from swap_readers import RunIdWatch  # tests/ is on sys.path (above)

    watcher = RunIdWatch(lag_dsn or readers_dsn, clock=time.time)  # compared with switched_at (epoch)
    watcher.start()
    for p in procs:
        p.start()
    try:
        time.sleep(8)  # baseline: readers only
        b0, b1, log = run_cli(["build-catalog", "--source", source, "--release", release], env)
        attempts, flip_s = flip_of(log)
        with psycopg.connect(primary) as c:
            new_run = c.execute("SELECT run_id FROM vehicles.catalog_info").fetchone()[0]  # type: ignore[index]
            flip_at = c.execute("SELECT extract(epoch FROM switched_at) FROM vehicles_store.control").fetchone()[0]  # type: ignore[index]
        time.sleep(6)  # after
        rb = None
        if rollback:
            r0, r1, rlog = run_cli(["rollback"], env)
            with psycopg.connect(primary) as c:
                row = c.execute("SELECT extract(epoch FROM switched_at) FROM vehicles_store.control").fetchone()
                rb_at = float(row[0])  # type: ignore[index]
            rb = {"attempts": flip_of(rlog)[0], "flip_s": flip_of(rlog)[1], "at": rb_at}
            time.sleep(4)
    finally:
        stop.set()
        for p in procs:
            p.join(120)
            if p.is_alive():
                p.kill()
        watcher.stop.set()
        watcher.join(10)
    samples = [tuple(s) for f in tmp.glob("*.json") for s in json.loads(f.read_text())]
    errors = [s[2] for s in samples if s[2]]
    flip_at = float(flip_at)
    flip_window = (flip_at - flip_s, flip_at)

    def lat(a: float, b: float) -> list[float]:
        return [(e - s) * 1000 for s, e, err in samples if not err and a <= s < b]

    base, during, after = lat(0, b0), lat(b0, b1), lat(b1, b1 + 6)
    overlap = [(e - s) * 1000 for s, e, err in samples
               if not err and s <= flip_window[1] + 0.05 and e >= flip_window[0]]
    out: dict[str, Any] = {
        "scenario": name, "readers": n, "calls": len(samples), "errors": len(errors), "first_errors": errors[:3],
        "swap_attempts": attempts, "flip_ms": round(flip_s * 1000, 1), "build_s": round(b1 - b0, 1),
        "p50_p99_ms": {k: (round(pct(v, 50), 1), round(pct(v, 99), 1), len(v))
                       for k, v in (("before", base), ("during build", during), ("after", after))},
        "longest_call_overlapping_flip_ms": round(max(overlap, default=0.0), 1),
        "calls_overlapping_flip": len(overlap),
        "longest_call_during_build_ms": round(max(during, default=0.0), 1),
        "new_version_seen_after_flip_s": round(watcher.first_seen.get(new_run, float("nan")) - flip_at, 3),
    }
    if rb:
        rb_overlap = [(e - s) * 1000 for s, e, err in samples
                      if not err and s <= rb["at"] + 0.05 and e >= rb["at"] - rb["flip_s"]]
        out["rollback"] = {"attempts": rb["attempts"], "flip_ms": round(rb["flip_s"] * 1000, 1),
                           "errors_during": len([1 for s, e, err in samples if err and s >= r0]),
                           "longest_call_overlapping_flip_ms": round(max(rb_overlap, default=0.0), 1)}
    return out


def old_vs_new(dsn: str, rounds: int = 5, n: int = 200) -> dict[str, Any]:
    """The new design (vehicles.*: views over the store) vs the old (the same function files over
    the live version's own tables, installed into its schema for this comparison), one connection,
    alternating rounds, same run."""
    from vehicle_etl.platform_db import render, sql_files

    vins, years = inputs(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        flat = f"vehicles_v{c.execute('SELECT live FROM vehicles_store.control').fetchone()[0]}"  # type: ignore[index]
        with c.transaction():
            c.execute(f"SET LOCAL search_path TO {flat}, public")
            for p in sql_files("functions"):
                c.execute(render(p.read_text(), flat).encode())
        res: dict[str, Any] = {}
        for label, stmt, arg in (("decode_vin", "SELECT {}.decode_vin(%s)", lambda i: (vins[i % len(vins)],)),
                                 ("dropdown_makes", "SELECT count(*) FROM {}.dropdown_makes(%s)",
                                  lambda i: (years[i % len(years)],))):
            t = {flat: [], "vehicles": []}
            for _ in range(rounds):
                for schema in (flat, "vehicles"):
                    q = stmt.format(schema)
                    for i in range(10):
                        c.execute(q, arg(i))
                    for i in range(n):
                        s0 = time.perf_counter()
                        c.execute(q, arg(i)).fetchone()
                        t[schema].append((time.perf_counter() - s0) * 1000)
            old, new = statistics.median(t[flat]), statistics.median(t["vehicles"])
            res[label] = {"old_ms_p50": round(old, 3), "new_ms_p50": round(new, 3), "ratio_p50": round(new / old, 2),
                          "old_ms_p99": round(pct(t[flat], 99), 3), "new_ms_p99": round(pct(t["vehicles"], 99), 3)}
        # the version stays; only the functions installed for this comparison go
        for (regproc,) in c.execute("SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n "
                                    "ON n.oid = p.pronamespace WHERE n.nspname = %s", (flat,)).fetchall():
            c.execute(f"DROP FUNCTION {regproc}")
    return res


def build_v1(dsn: str, source: str, home: Path) -> None:
    env = env_for(dsn, home)
    run_cli(["build-catalog", "--source", source, "--release", "2026_02"], env)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="the full vPIC snapshot from ../shared (else the sample)")
    ap.add_argument("--readers", default="16,64")
    ap.add_argument("--standby-readers", type=int, default=16)
    ap.add_argument("--no-standby", action="store_true")
    ap.add_argument("--no-primary", action="store_true", help="only the standby scenario")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from conftest import SAMPLE_DB, TEST_PG, full_snapshot
    from standby_cluster import StandbyPair

    source = f"sqlite:///{full_snapshot()}" if args.full else f"sqlite:///{SAMPLE_DB}"
    home = Path(tempfile.mkdtemp(prefix="swapbench_home_"))
    results: list[dict[str, Any]] = []
    latency: dict[str, Any] = {}
    db = f"vetl_swapbench_{uuid.uuid4().hex[:8]}"  # one database: version 1, then one build per scenario
    if args.no_primary:
        args.readers = ""
    with psycopg.connect(TEST_PG, autocommit=True) as a:
        a.execute(f'CREATE DATABASE "{db}"')
    info = psycopg.conninfo.conninfo_to_dict(TEST_PG)
    info["dbname"] = db
    dsn = psycopg.conninfo.make_conninfo(**info)
    try:
        if args.readers:
            build_v1(dsn, source, home / db)
        for k, n in enumerate(int(x) for x in args.readers.split(",") if x):
            results.append(scenario(f"primary-{n}", dsn, dsn, n, source, home / db, rollback=True,
                                    release=f"2026_{3 + k:02d}"))
            print(json.dumps(results[-1]), flush=True)
        if args.readers:
            latency = old_vs_new(dsn)
            print(json.dumps({"old_vs_new": latency}), flush=True)
    finally:
        with psycopg.connect(TEST_PG, autocommit=True) as a:
            a.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    if not args.no_standby:
        pair = StandbyPair()
        try:
            pair.start()
            db = "mvp-platform-vehicles"
            with psycopg.connect(pair.dsn("primary"), autocommit=True) as a:
                a.execute(f'CREATE DATABASE "{db}"')
            primary, standby = pair.dsn("primary", db), pair.dsn("standby", db)
            build_v1(primary, source, home / "standby")
            pair.wait_replayed(120)
            results.append(scenario(f"standby-{args.standby_readers}", primary, standby, args.standby_readers,
                                    source, home / "standby", rollback=True))
            print(json.dumps(results[-1]), flush=True)
        finally:
            pair.stop()
    if not args.json:
        print("\nscenario      readers  calls   errors  attempts  flip ms  longest@flip ms  p99 before/during/after ms"
              "  new version seen s  rollback errors")
        for r in results:
            p = r["p50_p99_ms"]
            print(f"{r['scenario']:<13} {r['readers']:>7} {r['calls']:>7} {r['errors']:>7} {r['swap_attempts']:>9} "
                  f"{r['flip_ms']:>8} {r['longest_call_overlapping_flip_ms']:>16} "
                  f"{p['before'][1]}/{p['during build'][1]}/{p['after'][1]:<12} "
                  f"{r['new_version_seen_after_flip_s']:>10} "
                  f"{r.get('rollback', {}).get('errors_during', '-'):>10}")
        for k, v in latency.items():
            print(f"{k}: old {v['old_ms_p50']} ms, new {v['new_ms_p50']} ms (p50 ratio {v['ratio_p50']}); "
                  f"p99 old {v['old_ms_p99']} new {v['new_ms_p99']}")
    return 0 if all(r["errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
