"""The HTTP API (`vehicle-etl serve`) against the same queries straight over SQL, in one run.

Usage: .venv/bin/python bench/api_latency.py --db DBNAME [--pg "host=127.0.0.1 port=5432 user=postgres"]
       [--seconds 6] [--slice 1] [--concurrency 1,16,64] [--pool 10] [--workers 1] [--cache-mb 64]
       [--vins ../shared/data/vin_ground_truth/dev_vins.csv]

Starts `vehicle-etl serve` as a process on a free loopback port (MVP_PLATFORM_DB_* pointing at DBNAME,
which must hold a live catalog and the reader role), then for each workload and each concurrency
runs, for --seconds each, in turns of --slice seconds (SQL, HTTP unique, HTTP repeated, SQL, ...,
so that the three see the same machine load on a shared box):
  - SQL: N asyncio workers, each on its own psycopg connection, calling the contract function
    (`SELECT vehicles.decode_vin(%s, NULL)`, `decode_vins` of 50 VINs, `dropdown_*`) — what an app
    that talks SQL does;
  - HTTP unique: N workers, each on its own keep-alive HTTP/1.1 connection, calling the NHTSA or
    dropdown path that runs the same function, every request with a query the server has not seen
    (an extra `nocache=<counter>` parameter, which the routes ignore): each one misses the server's
    answer cache and reads the database (the release read with it) — the cold figure, and what
    unique VIN decodes cost;
  - HTTP repeated: the same requests without the counter (dropdowns: one fixed question; decodes:
    50 VINs drawn at random), answered from the answer cache after the warm-up — what the app's
    dropdown traffic, which repeats the same few hundred questions, costs. The batch is a POST and
    is never cached: it has the unique figure only.
The HTTP client is a minimal asyncio protocol (one request in flight per connection, responses
framed by Content-Length), not httpx: httpx costs ~0.5 ms of client CPU per request, more than the
service it measures. Both clients are Python in this one process on uvloop, on the same two cores
as the server and PostgreSQL. Prints p50/p99 (ms) and requests/s per cell, HTTP − SQL at p50, and
the server process's CPU time and run-queue wait (runnable, waiting for a CPU: what other load on
the box costs it) per unique request, from /proc/<pid>/task/*/schedstat; stops the server by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

import httpx
import psycopg
import uvloop

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VINS = ROOT.parent / "shared" / "data" / "vin_ground_truth" / "dev_vins.csv"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


Call = Callable[[], Awaitable[None]]


async def run(calls: list[Call], seconds: float) -> tuple[list[float], float]:
    """Each call made back to back by its own worker for `seconds`; latencies in ms, and seconds taken."""
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def loop(call: Call) -> None:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await call()
            lat.append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in calls))
    return lat, time.perf_counter() - t0


def sched_ms(pid: int) -> tuple[float, float]:
    """CPU time and time spent runnable but waiting for a CPU (run queue) of process `pid` and its
    children (--workers), all their threads, in ms (Linux /proc/<pid>/task/*/schedstat)."""
    run = wait = 0
    pids = [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    for stat in (s for p in pids for s in Path(f"/proc/{p}/task").glob("*/schedstat")):
        on_cpu, queued, _ = stat.read_text().split()
        run, wait = run + int(on_cpu), wait + int(queued)
    return run / 1e6, wait / 1e6


async def in_turns(ways: list[list[Call]], seconds: float, turn: float, server: int
                   ) -> list[tuple[list[float], float, float, float]]:
    """Each way (its workers' calls) for `seconds` in all, in turns of `turn` seconds, one way after
    the other; latencies (ms), requests/s, and the server's CPU and run-queue wait per request (ms)
    of each."""
    done = [([], 0.0, 0.0, 0.0) for _ in ways]  # type: list[tuple[list[float], float, float, float]]
    while done[0][1] < seconds:
        for i, calls in enumerate(ways):
            cpu0, wait0 = sched_ms(server)
            lat, took = await run(calls, min(turn, seconds - done[i][1]))
            cpu1, wait1 = sched_ms(server)
            done[i] = (done[i][0] + lat, done[i][1] + took, done[i][2] + cpu1 - cpu0, done[i][3] + wait1 - wait0)
    return [(lat, len(lat) / took, cpu / len(lat), wait / len(lat)) for lat, took, cpu, wait in done]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(pg: str, db: str, port: int, pool: int, workers: int, cache_mb: float) -> subprocess.Popen[bytes]:
    info = psycopg.conninfo.conninfo_to_dict(pg)
    env = os.environ | {"MVP_PLATFORM_DB_HOST": str(info.get("host", "127.0.0.1")),
                        "MVP_PLATFORM_DB_PORT": str(info.get("port", "5432")), "MVP_PLATFORM_DB_NAME": db,
                        "MVP_PLATFORM_DB_USER": str(info.get("user", "postgres")),
                        "MVP_PLATFORM_DB_PASSWORD": str(info.get("password", "")),
                        "VPIC_API_POOL_SIZE": str(pool), "VPIC_API_CACHE_MB": str(cache_mb)}
    exe = Path(sys.executable).with_name("vehicle-etl")
    env["VPIC_API_WORKERS"] = str(workers)
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


class HttpConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time; the server always sends Content-Length."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buf[:end]).lower() + b"\r\n"
        i = head.find(b"\r\ncontent-length:")
        length = int(head[i + 17:head.find(b"\r\n", i + 2)]) if i >= 0 else 0
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4:end + 4 + length])
        del self.buf[:end + 4 + length]
        self.waiter.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"server closed the connection ({exc})"))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)  # type: ignore[union-attr]
        return await self.waiter


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def post_form(path: str, form: dict[str, str]) -> bytes:
    body = urlencode(form).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def row(cells: list[str]) -> str:
    return " | ".join(cells)


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
    counter = itertools.count()
    batch = ";".join(vins[:50])
    trims = f"/api/vehicles/dropdown/trims?make_id={make_id}&model_id={model_id}&model_year=2020"

    def unique(path: str) -> bytes:
        return get(f"{path}{'&' if '?' in path else '?'}nocache={next(counter)}")

    # name, SQL (statement, params) factory, HTTP unique request factory, HTTP repeated request factory
    Req = Callable[[], bytes]
    workloads: list[tuple[str, Callable[[], tuple[str, tuple]], Req, Req | None]] = [
        ("DecodeVinValues", lambda: ("SELECT vehicles.decode_vin(%s, NULL)", (rnd.choice(vins),)),
         lambda: unique(f"/api/vehicles/DecodeVinValues/{rnd.choice(vins)}?format=json"),
         lambda: get(f"/api/vehicles/DecodeVinValues/{rnd.choice(vins[:50])}?format=json")),
        ("DecodeVINValuesBatch (50)", lambda: ("SELECT result FROM vehicles.decode_vins(%s)", (vins[:50],)),
         lambda: post_form("/api/vehicles/DecodeVINValuesBatch/", {"format": "json", "data": batch}), None),
        ("dropdown/makes (2020)", lambda: ("SELECT * FROM vehicles.dropdown_makes(%s, false)", (2020,)),
         lambda: unique("/api/vehicles/dropdown/makes?model_year=2020"),
         lambda: get("/api/vehicles/dropdown/makes?model_year=2020")),
        ("dropdown/models", lambda: ("SELECT * FROM vehicles.dropdown_models(%s, %s)", (make_id, 2020)),
         lambda: unique(f"/api/vehicles/dropdown/models?make_id={make_id}&model_year=2020"),
         lambda: get(f"/api/vehicles/dropdown/models?make_id={make_id}&model_year=2020")),
        ("dropdown/trims", lambda: ("SELECT * FROM vehicles.dropdown_trims(%s, %s, %s)", (make_id, model_id, 2020)),
         lambda: unique(trims), lambda: get(trims)),
    ]
    port = free_port()
    proc = start_server(args.pg, args.db, port, args.pool, args.workers, args.cache_mb)
    loop = asyncio.get_running_loop()
    print(f"server pid {proc.pid} on 127.0.0.1:{port}, pool {args.pool}, workers {args.workers}, "
          f"cache {args.cache_mb:g} MiB; {args.seconds:g} s per cell and way, in turns of {args.slice:g} s; "
          f"loop {type(loop).__module__}; load {os.getloadavg()[0]:.2f}")
    print(row(["workload", "conns", "SQL p50 / p99 ms", "SQL req/s", "HTTP unique p50 / p99 ms", "req/s",
               "HTTP repeated p50 / p99 ms", "req/s", "unique − SQL p50", "repeated − SQL p50",
               "server CPU / run-queue wait per unique request ms"]))

    def http_calls(conns: list[HttpConn], make: Req, name: str) -> list[Call]:
        def call_on(conn: HttpConn) -> Call:
            async def call() -> None:
                status, content = await conn.request(make())
                if status != 200:
                    raise SystemExit(f"{name}: HTTP {status} {content[:200]!r}")
            return call
        return [call_on(c) for c in conns]

    def sql_calls(conns: list[psycopg.AsyncConnection], sql_call: Callable[[], tuple[str, tuple]]) -> list[Call]:
        def call_on(conn: psycopg.AsyncConnection) -> Call:
            async def call() -> None:
                stmt, params = sql_call()
                cur = await conn.execute(stmt, params)
                await cur.fetchall()
            return call
        return [call_on(c) for c in conns]

    def cell(lat: list[float], rps: float, *_: float) -> list[str]:
        return [f"{pct(lat, 50):.2f} / {pct(lat, 99):.2f}", f"{rps:,.0f}"]

    try:
        for name, sql_call, unique_call, repeated_call in workloads:
            if args.only not in name:
                continue
            for n in args.concurrency:
                sql_conns = [await psycopg.AsyncConnection.connect(dsn, autocommit=True) for _ in range(n)]
                http_conns = [(await loop.create_connection(HttpConn, "127.0.0.1", port))[1] for _ in range(n)]
                ways = [sql_calls(sql_conns, sql_call), http_calls(http_conns, unique_call, name)]
                if repeated_call is not None:
                    ways.append(http_calls(http_conns, repeated_call, name))
                for calls in ways:  # warm-up (plans, caches, and for repeated requests the answer cache)
                    await run(calls[:4], 0.5)
                (sql_lat, sql_rps, *_), misses, *repeated = await in_turns(ways, args.seconds, args.slice, proc.pid)
                u_lat = misses[0]
                for c in sql_conns:
                    await c.close()
                for h in http_conns:
                    h.transport.close()  # type: ignore[union-attr]
                cells = [name, str(n), *cell(sql_lat, sql_rps), *cell(*misses)]
                cells += cell(*repeated[0]) if repeated else ["(POST: not cached)", ""]
                cells.append(f"{pct(u_lat, 50) - pct(sql_lat, 50):+.2f} ms")
                cells.append(f"{pct(repeated[0][0], 50) - pct(sql_lat, 50):+.2f} ms" if repeated else "")
                cells.append(f"{misses[2]:.2f} / {misses[3]:.2f}")
                print("| " + row(cells) + " |", flush=True)
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
    ap.add_argument("--seconds", type=float, default=6.0, help="per cell and way, in all")
    ap.add_argument("--slice", type=float, default=1.0,
                    help="seconds of one turn of a way (SQL, HTTP unique, HTTP repeated)")
    ap.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64])
    ap.add_argument("--pool", type=int, default=10, help="the server's connection pool (VPIC_API_POOL_SIZE)")
    ap.add_argument("--workers", type=int, default=1, help="server processes (vehicle-etl serve --workers)")
    ap.add_argument("--cache-mb", type=float, default=64, help="the server's answer cache (VPIC_API_CACHE_MB)")
    ap.add_argument("--vins", type=Path, default=DEFAULT_VINS)
    ap.add_argument("--only", default="", help="run only the workloads whose name contains this text")
    # the server runs on uvloop (uvicorn's default when installed); the clients too
    return uvloop.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
