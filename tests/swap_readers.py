"""Readers of every documented kind, and cheap tagged versions, for the swap tests and the bench.

A *tagged version* is a copy of the live catalog into a fresh vehicles_staging in which every
make, model and manufacturer name (in the loaded and the derived tables) ends in " ~V<n>", and
catalog_info.run_id is "copy ~V<n>". A statement that read two versions would return names with
two different tags (e.g. decode_vin's Make from one version and Model from another; decode_vins'
500 results from two). The copy keeps the live tables' indexes and keys and has the function set
installed, like a real build (build_keys), so promoting it runs the real swap end to end.

The reader calls are the app's calls (docs/API.md), autocommit, no think time, no probe before them.
"""

from __future__ import annotations

import csv
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from vehicle_etl import staging as load
from vehicle_etl.config import STAGING_SCHEMA
from vehicle_etl.platform_db import run_in_schema, schema_tables, sql_files

GOLDEN = Path(__file__).resolve().parent / "golden_sample.csv"
TAG = re.compile(r" ~V(\d+)$", re.I)
NAME_COLUMNS = ("make_name", "model_name", "manufacturer_name", "single_make_name")


def tags_of(values: list[str | None]) -> set[str]:
    """The version tags in `values` ('' for a name without one)."""
    out: set[str] = set()
    for v in values:
        if v:
            m = TAG.search(v)
            out.add(m.group(1) if m else "")
    return out


# -- a tagged copy of live as the next staging ---------------------------------------------------
def stage_copy(conn: psycopg.Connection, n: int) -> None:
    """vehicles_staging := the live catalog with names tagged ~V<n> (indexes, keys, functions included)."""
    load.prepare_staging(conn)  # drops leftover staging (detaching what a swap attached) and makes the tables
    live = conn.execute("SELECT live FROM vehicles_store.control").fetchone()[0]  # type: ignore[index]
    src = f"vehicles_v{live}"
    with conn.transaction():
        for t in schema_tables(conn, STAGING_SCHEMA):
            conn.execute(sql.SQL("DROP TABLE {} CASCADE").format(sql.Identifier(STAGING_SCHEMA, t)))
        for t in schema_tables(conn, src):
            cols = [r[0] for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
                "AND attname <> 'version' ORDER BY attnum", (f'{src}."{t}"',))]
            exprs = [sql.SQL("regexp_replace({c}, ' ~V[0-9]+$', '') || {tag}").format(
                c=sql.Identifier(c), tag=sql.Literal(f" ~V{n}")) if c in NAME_COLUMNS
                else sql.Identifier(c) for c in cols]
            if t == "catalog_info":
                exprs = [sql.Literal(f"copy ~V{n}") if c == "run_id" else sql.Identifier(c) for c in cols]
            conn.execute(sql.SQL("CREATE TABLE {} AS SELECT {} FROM {}").format(
                sql.Identifier(STAGING_SCHEMA, t), sql.SQL(", ").join(
                    sql.SQL("{} AS {}").format(e, sql.Identifier(c)) for e, c in zip(exprs, cols, strict=True)),
                sql.Identifier(src, t)))
            for (ddl,) in conn.execute("SELECT pg_get_indexdef(indexrelid) FROM pg_index "
                                       "WHERE indrelid = %s::regclass", (f'{src}."{t}"',)):
                conn.execute(ddl.replace(f" ON {src}.", f" ON {STAGING_SCHEMA}.", 1).encode())
        for path in sql_files("functions"):
            run_in_schema(conn, STAGING_SCHEMA, path.read_text())
    for t in schema_tables(conn, STAGING_SCHEMA):
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(STAGING_SCHEMA, t)))


# -- the readers -------------------------------------------------------------------------------
@dataclass
class Inputs:
    vins: list[str]
    vins500: list[str]
    makes: list[tuple[int, int]]            # (make_id, model_year) with models
    options: list[tuple[int, int, int]]     # (make_id, model_id, model_year)
    tables: list[str]                       # what the reader role may SELECT in vehicles

    @classmethod
    def load(cls, conn: psycopg.Connection) -> Inputs:
        with GOLDEN.open() as f:
            vins = [r["vin"] for r in csv.DictReader(f)][:60]
        vins500 = [v[:12] + f"{i:05d}" for i, v in enumerate((vins * 10)[:500])]
        makes = [(r[0], r[1]) for r in conn.execute(
            "SELECT make_id, model_year FROM vehicles.model_year GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 20")]
        options = [tuple(r) for r in conn.execute(  # type: ignore[misc]
            "SELECT make_id, model_id, model_year FROM vehicles.model_year ORDER BY make_id, model_id, model_year "
            "LIMIT 20")]
        tables = schema_tables(conn, "vehicles")
        return cls(vins, vins500, makes, options, tables)  # type: ignore[arg-type]


def _names(doc: dict) -> list[str | None]:
    return [doc.get("Make"), doc.get("Model"), doc.get("Manufacturer")]


Call = Callable[[psycopg.Connection, int], set[str]]


def kinds(inp: Inputs) -> dict[str, Call]:
    """Each documented reader kind: (conn, i) -> the version tags its one statement returned."""

    def decode_vin(c: psycopg.Connection, i: int) -> set[str]:
        doc = c.execute("SELECT vehicles.decode_vin(%s)", (inp.vins[i % len(inp.vins)],)).fetchone()[0]  # type: ignore[index]
        return tags_of(_names(doc))

    def decode_vins(c: psycopg.Connection, i: int) -> set[str]:
        rows = c.execute("SELECT vin, result FROM vehicles.decode_vins(%s)", (inp.vins500,)).fetchall()
        assert len(rows) == 500, len(rows)
        return tags_of([n for _, doc in rows for n in _names(doc)])

    def dropdown_makes(c: psycopg.Connection, i: int) -> set[str]:
        mk = inp.makes[i % len(inp.makes)]
        return tags_of([r[0] for r in c.execute('SELECT "Make_Name" FROM vehicles.dropdown_makes(%s)', (mk[1],))])

    def dropdown_models(c: psycopg.Connection, i: int) -> set[str]:
        mk = inp.makes[i % len(inp.makes)]
        return tags_of([x for r in c.execute('SELECT "Make_Name", "Model_Name" FROM vehicles.dropdown_models(%s, %s)',
                                             mk) for x in r])

    def dropdown_options(c: psycopg.Connection, i: int) -> set[str]:
        o = inp.options[i % len(inp.options)]
        for fn in ("dropdown_trims", "dropdown_engines", "dropdown_transmissions"):
            c.execute(sql.SQL("SELECT count(*) FROM vehicles.{}(%s, %s, %s)").format(sql.Identifier(fn)), o)
        return set()

    def plain_select(c: psycopg.Connection, i: int) -> set[str]:
        row = c.execute("SELECT (SELECT run_id FROM vehicles.catalog_info), "
                        "(SELECT max(make_name) FROM vehicles.make), "
                        "(SELECT min(model_name) FROM vehicles.model), "
                        "(SELECT max(m.manufacturer_name) FROM vehicles.manufacturer m), "
                        "(SELECT count(*) FROM vehicles.pattern)").fetchone()
        return tags_of(list(row[:4]))  # type: ignore[index]

    def every_table(c: psycopg.Connection, i: int) -> set[str]:
        t = inp.tables[i % len(inp.tables)]
        c.execute(sql.SQL("SELECT * FROM {} LIMIT 5").format(sql.Identifier("vehicles", t))).fetchall()
        return set()

    def prepared_sql(c: psycopg.Connection, i: int) -> set[str]:
        # An explicit server-side PREPARE made once per connection, executed across every swap.
        try:
            doc = c.execute(sql.SQL("EXECUTE app_decode({})").format(
                sql.Literal(inp.vins[i % len(inp.vins)]))).fetchone()[0]  # type: ignore[index]
        except psycopg.errors.InvalidSqlStatementName:
            c.execute("PREPARE app_decode(text) AS SELECT vehicles.decode_vin($1)")
            return set()
        return tags_of(_names(doc))

    return {"decode_vin": decode_vin, "decode_vins": decode_vins, "dropdown_makes": dropdown_makes,
            "dropdown_models": dropdown_models, "dropdown_options": dropdown_options, "plain_select": plain_select,
            "every_table": every_table, "prepared_sql": prepared_sql}


@dataclass
class ReaderStats:
    calls: int = 0
    errors: list[str] = field(default_factory=list)
    mixed: list[tuple[str, set[str]]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    samples: list[tuple[float, float]] = field(default_factory=list)  # (start, seconds)


class Readers:
    """Threads, each one long-lived connection as mvp_platform_reader looping one kind, autocommit,
    statements prepared by psycopg (server-side from the 2nd run on)."""

    def __init__(self, dsn: str, inp: Inputs, kind_names: list[str], deadline_s: float = 300) -> None:
        self.dsn, self.kinds, self.names = dsn, kinds(inp), kind_names
        self.stop = threading.Event()
        self.stats = {f"{k}#{i}": ReaderStats() for i, k in enumerate(kind_names)}
        self.deadline = time.monotonic() + deadline_s  # bounded even if a swap hangs
        self.threads = [threading.Thread(target=self._run, args=(k, f"{k}#{i}"), daemon=True)
                        for i, k in enumerate(kind_names)]
        self.ready = threading.Barrier(len(kind_names) + 1)

    def _run(self, kind: str, key: str) -> None:
        st = self.stats[key]
        call = self.kinds[kind]
        try:
            conn = psycopg.connect(self.dsn, autocommit=True, prepare_threshold=1)
            conn.execute("SET ROLE mvp_platform_reader")
        except BaseException as exc:
            st.errors.append(f"connect: {exc}")
            self.ready.wait()
            return
        with conn:
            try:
                call(conn, 0)
            except BaseException as exc:
                st.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            self.ready.wait()
            i = 1
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                t0 = time.monotonic()
                try:
                    tags = call(conn, i)
                    st.samples.append((t0, time.monotonic() - t0))
                    st.calls += 1
                    st.seen |= tags
                    if len(tags) > 1:
                        st.mixed.append((kind, tags))
                except BaseException as exc:  # any error is a failure of the swap's promise
                    st.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    if conn.closed:  # the server ended the session: counted once, not once per retry
                        return
                i += 1

    def __enter__(self) -> Readers:
        for t in self.threads:
            t.start()
        self.ready.wait(120)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def errors(self) -> list[str]:
        return [e for s in self.stats.values() for e in s.errors]

    def mixed(self) -> list[tuple[str, set[str]]]:
        return [m for s in self.stats.values() for m in s.mixed]

    def seen(self) -> set[str]:
        return {t for s in self.stats.values() for t in s.seen}

    def calls(self) -> int:
        return sum(s.calls for s in self.stats.values())

    def longest(self, since: float = 0.0) -> float:
        return max((d for s in self.stats.values() for t, d in s.samples if t >= since), default=0.0)


class RunIdWatch(threading.Thread):
    """Polls which run id a server serves (its own connection, a separate statement every 10 ms, as an
    app's version check would be) and records when each run id is first seen, on `clock`."""

    def __init__(self, dsn: str, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(daemon=True)
        self.dsn, self.clock, self.stop = dsn, clock, threading.Event()
        self.first_seen: dict[str, float] = {}

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as c:
            while not self.stop.is_set():
                row = c.execute("SELECT run_id FROM vehicles.catalog_info").fetchone()
                if row:
                    self.first_seen.setdefault(row[0], self.clock())
                time.sleep(0.01)
