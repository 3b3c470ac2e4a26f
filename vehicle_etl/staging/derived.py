"""The derive step: repairs of known source faults, then the derived tables (include/sql/derive),
built inside PostgreSQL from the loaded ones.

Each derive file names the tables it builds and the derived tables it reads in a header, e.g.

    -- builds: model_year, dropdown_make
    -- reads: public_schema_link
    -- priority: 4

and `derive_files` reads those headers: a file starts, on a connection of its own, as soon as
the files building what it reads have committed; of two ready files the lower priority starts
first (the longest, dropdown_options, early), so on two connections the ~8 s of work takes ~4 s.
"""

from __future__ import annotations

import logging
import re
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from vehicle_etl.config import STAGING_SCHEMA
from vehicle_etl.platform_db import run_in_schema, schema_tables, sibling, sql_files
from vehicle_etl.spec import DERIVED_TABLES
from vehicle_etl.staging.load import analyze

log = logging.getLogger(__name__)
_HEADER = re.compile(r"^-- (builds|reads|priority):(.*)$", re.M)


@dataclass(frozen=True)
class DeriveFile:
    name: str               # the file's stem, e.g. model_year
    path: Path
    builds: tuple[str, ...]  # derived tables it creates
    reads: tuple[str, ...]   # derived tables it reads (loaded tables are always there)
    priority: int
    needs: tuple[str, ...] = ()  # the files building what it reads


def derive_files() -> list[DeriveFile]:
    """The derive files with their headers, in start priority; ValueError for a file without one."""
    parsed = []
    for path in sql_files("derive"):
        fields = {k: v.strip() for k, v in _HEADER.findall(path.read_text())}
        if set(fields) != {"builds", "reads", "priority"}:
            raise ValueError(f"{path.name}: the header must say builds:, reads: and priority: (derive.py)")
        names = {k: tuple(t.strip() for t in fields[k].split(",") if t.strip() not in ("", "-"))
                 for k in ("builds", "reads")}
        parsed.append((path, names["builds"], names["reads"], int(fields["priority"])))
    builder = {table: path.stem for path, builds, _, _ in parsed for table in builds}
    unknown = {t for _, _, reads, _ in parsed for t in reads} - set(builder)
    if unknown:
        raise ValueError(f"derive files read {sorted(unknown)}, which no derive file builds")
    files = [DeriveFile(path.stem, path, builds, reads, prio, tuple(sorted({builder[t] for t in reads} - {path.stem})))
             for path, builds, reads, prio in parsed]
    return sorted(files, key=lambda d: (d.priority, d.name))


def repair(conn: psycopg.Connection, schema: str = STAGING_SCHEMA) -> None:
    """Repairs of known, harmless source faults (include/sql/repair), before the key checks."""
    with conn.transaction():
        for path in sql_files("repair"):
            run_in_schema(conn, schema, path.read_text())


def derive(conn: psycopg.Connection, schema: str = STAGING_SCHEMA, workers: int = 2) -> dict[str, float]:
    """Build the derived tables (include/sql/derive/*.sql) from the loaded ones.

    Up to `workers` files run at once, each on a connection of its own (`sibling`) and in its own
    transaction, a file as soon as the files it reads from have committed (their headers, derive_files): the
    statements are single-threaded in PostgreSQL, so this is how the build uses every core.
    """
    seconds: dict[str, float] = {}
    t = time.monotonic()
    # A retried step (Airflow retries a failed task) finds the tables of the files that committed
    # before the failure: derived tables are only ever rebuilt from the loaded ones, so start over.
    existing = set(schema_tables(conn, schema))  # one catalog query, not one per table
    stale = [x for x in DERIVED_TABLES if x in existing]
    if stale:
        with conn.transaction():
            conn.execute(sql.SQL("DROP TABLE {} CASCADE").format(
                sql.SQL(", ").join(sql.Identifier(schema, x) for x in stale)))
        log.info("dropped %d derived tables left by an earlier attempt of this step", len(stale))
    analyze(conn, schema)  # fresh COPYs have no statistics: the derivations' joins would misplan
    seconds["analyze"] = time.monotonic() - t
    steps = derive_files()
    files = {d.name: d.path for d in steps}
    needs = {d.name: d.needs for d in steps}  # in start priority

    def run(c: psycopg.Connection, name: str) -> None:
        started = time.monotonic()
        with c.transaction():
            run_in_schema(c, schema, files[name].read_text())
        seconds[name] = time.monotonic() - started
        log.info("derived %s in %.2fs", name, seconds[name])

    if workers < 2:
        for name in needs:  # the priority order reads every table after it is built (tests/unit/test_derive_order.py)
            run(conn, name)
        return seconds

    def run_own(name: str) -> str:
        with sibling(conn) as c:
            run(c, name)
        return name

    done: set[str] = set()
    waiting = list(needs)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        running: set[Future[str]] = set()
        while waiting or running:
            for name in [n for n in waiting if set(needs[n]) <= done][: workers - len(running)]:
                waiting.remove(name)
                running.add(pool.submit(run_own, name))
            if not running:
                raise RuntimeError(f"derive files {waiting} wait on files that never run (their reads: headers)")
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                done.add(future.result())  # a failed file raises here; the others' transactions end
    return seconds


