"""The HTTP API (`vehicle-etl serve`) against the same queries straight over SQL, in one run.

Usage: .venv/bin/python bench/api_latency.py --db DBNAME [--pg "host=127.0.0.1 port=5432 user=postgres"]
       [--seconds 6] [--concurrency 1,16,64] [--pool 10] [--vins ../shared/data/vin_ground_truth/dev_vins.csv]

Starts `vehicle-etl serve` as a process on a free loopback port (MVP_PLATFORM_DB_* pointing at DBNAME,
which must hold a live catalog and the reader role), then for each workload and each concurrency
runs, for --seconds each and side by side in time:
  - SQL: N asyncio workers, each on its own psycopg connection, calling the contract function
    (`SELECT vehicles.decode_vin(%s, NULL)`, `decode_vins` of 50 VINs, `dropdown_*`) — what an app
    that talks SQL does;
  - HTTP: N asyncio workers sharing an httpx client with N keep-alive connections, calling the
    NHTSA path or dropdown path that runs the same function (plus, in the service, its transaction,
    role and release reads).
Both clients are Python in this one process, on the same cores as the server and PostgreSQL: the
ratio HTTP/SQL at 1 connection is the service's overhead; at 16/64 everything shares two cores.
Prints p50/p99 (ms) and requests/s per cell and the HTTP − SQL difference at p50; stops the server
by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VINS = ROOT.parent / "shared" / "data" / "vin_ground_truth" / "dev_vins.csv"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


async def run(n: int, seconds: float, make_worker: Callable[[int], Awaitable[Callable[[], Awaitable[None]]]],
              ) -> tuple[list[float], float]:
    """n workers each calling its request function back to back for `seconds`; latencies in ms."""
    calls = [await make_worker(i) for i in range(n)]
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def loop(call: Callable[[], Awaitable[None]]) -> None:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await call()
            lat.append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in calls))
    return lat, len(lat) / (time.perf_counter() - t0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(pg: str, db: str, port: int, pool: int) -> subprocess.Popen[bytes]:
    info = psycopg.conninfo.conninfo_to_dict(pg)
    env = os.environ | {"MVP_PLATFORM_DB_HOST": str(info.get("host", "127.0.0.1")),
                        "MVP_PLATFORM_DB_PORT": str(info.get("port", "5432")), "MVP_PLATFORM_DB_NAME": db,
                        "MVP_PLATFORM_DB_USER": str(info.get("user", "postgres")),
                        "MVP_PLATFORM_DB_PASSWORD": str(info.get("password", "")),
                        "VPIC_API_POOL_SIZE": str(pool)}
    exe = Path(sys.executable).with_name("vehicle-etl")
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"vehicle-etl serve exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/vehicles/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("vehicle-etl serve did not become healthy in 60 s")
        time.sleep(0.3)


def load_vins(path: Path, k: int, seed: int) -> list[str]:
    with path.open(newline="") as fh:
        vins = [r["vin"] for r in csv.DictReader(fh)]
    random.Random(seed).shuffle(vins)
    return vins[:k]


async def main_async(args: argparse.Namespace) -> int:
    dsn = psycopg.conninfo.make_conninfo(args.pg, dbname=args.db)
    vins = load_vins(args.vins, 5000, 1)
    with psycopg.connect(dsn) as conn:
        # HONDA when the catalog has it (a make with many models), else the first make of 2020
        make_id = conn.execute('SELECT "Make_ID" FROM vehicles.dropdown_makes(2020) '
                               'ORDER BY "Make_Name" <> \'HONDA\', "Make_Name" LIMIT 1').fetchone()[0]  # type: ignore[index]
        model_id = conn.execute("SELECT \"Model_ID\" FROM vehicles.dropdown_models(%s, 2020) LIMIT 1",
                                (make_id,)).fetchone()[0]  # type: ignore[index]
    rnd = random.Random(2)
    batch = ";".join(vins[:50])

    # (name, SQL statement + params factory, HTTP request factory)
    Http = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
    workloads: list[tuple[str, Callable[[], tuple[str, tuple]], Http]] = [
        ("DecodeVinValues", lambda: ("SELECT vehicles.decode_vin(%s, NULL)", (rnd.choice(vins),)),
         lambda c: c.get(f"/api/vehicles/DecodeVinValues/{rnd.choice(vins)}?format=json")),
        ("DecodeVINValuesBatch (50)", lambda: ("SELECT result FROM vehicles.decode_vins(%s)", (vins[:50],)),
         lambda c: c.post("/api/vehicles/DecodeVINValuesBatch/", data={"format": "json", "data": batch})),
        ("dropdown/makes", lambda: ("SELECT * FROM vehicles.dropdown_makes(%s, false)", (2020,)),
         lambda c: c.get("/api/vehicles/dropdown/makes?model_year=2020")),
        ("dropdown/models", lambda: ("SELECT * FROM vehicles.dropdown_models(%s, %s)", (make_id, 2020)),
         lambda c: c.get(f"/api/vehicles/dropdown/models?make_id={make_id}&model_year=2020")),
        ("dropdown/trims", lambda: ("SELECT * FROM vehicles.dropdown_trims(%s, %s, %s)", (make_id, model_id, 2020)),
         lambda c: c.get(f"/api/vehicles/dropdown/trims?make_id={make_id}&model_id={model_id}&model_year=2020")),
    ]
    port = free_port()
    proc = start_server(args.pg, args.db, port, args.pool)
    print(f"server pid {proc.pid} on 127.0.0.1:{port}, pool {args.pool}; {args.seconds:g} s per cell; "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"{'workload':<27} {'conns':>5} | {'SQL p50':>8} {'p99':>8} {'req/s':>7} | "
          f"{'HTTP p50':>8} {'p99':>8} {'req/s':>7} | {'+p50 ms':>7} {'ratio':>5}")
    try:
        for name, sql_call, http_call in workloads:
            for n in args.concurrency:
                conns: list[psycopg.AsyncConnection] = []

                async def sql_worker(i: int, conns: list[psycopg.AsyncConnection] = conns,
                                     sql_call: Callable[[], tuple[str, tuple]] = sql_call
                                     ) -> Callable[[], Awaitable[None]]:
                    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
                    conns.append(conn)

                    async def call() -> None:
                        stmt, params = sql_call()
                        cur = await conn.execute(stmt, params)
                        await cur.fetchall()
                    return call

                await run(min(n, 4), 0.5, sql_worker)  # warm-up (plans, caches) on both sides alike
                for c in conns:
                    await c.close()
                conns.clear()
                sql_lat, sql_rps = await run(n, args.seconds, sql_worker)
                for c in conns:
                    await c.close()

                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                             limits=httpx.Limits(max_connections=n,
                                                                 max_keepalive_connections=n)) as client:
                    async def http_worker(i: int, client: httpx.AsyncClient = client, http_call: Http = http_call,
                                          name: str = name) -> Callable[[], Awaitable[None]]:
                        async def call() -> None:
                            r = await http_call(client)
                            if r.status_code != 200:
                                raise SystemExit(f"{name}: HTTP {r.status_code} {r.text[:200]}")
                        return call

                    await run(min(n, 4), 0.5, http_worker)
                    http_lat, http_rps = await run(n, args.seconds, http_worker)
                d = pct(http_lat, 50) - pct(sql_lat, 50)
                print(f"{name:<27} {n:>5} | {pct(sql_lat, 50):8.2f} {pct(sql_lat, 99):8.2f} {sql_rps:7.0f} | "
                      f"{pct(http_lat, 50):8.2f} {pct(http_lat, 99):8.2f} {http_rps:7.0f} | "
                      f"{d:7.2f} {pct(http_lat, 50) / pct(sql_lat, 50):5.2f}", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="database holding a live catalog")
    ap.add_argument("--pg", default="host=127.0.0.1 port=5432 user=postgres")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64])
    ap.add_argument("--pool", type=int, default=10, help="the server's connection pool (VPIC_API_POOL_SIZE)")
    ap.add_argument("--vins", type=Path, default=DEFAULT_VINS)
    return asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
