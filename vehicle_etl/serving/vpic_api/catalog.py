"""Reads of the live catalog for the HTTP API: a connection pool, one transaction per request.

Every request runs in one READ ONLY REPEATABLE READ transaction as role mvp_platform_reader
(`SET LOCAL ROLE`): the service can do nothing but read, and everything one answer shows comes
from one snapshot. The live release (vehicles.catalog_info) is read before and after the answer's
queries in that transaction; a swap between the two (tables moved under the snapshot) shows as a
difference and the request is run again, so an answer never mixes two releases. Statements go
in one pipeline: one network round trip per request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from vehicle_etl.config import READER_ROLE
from vehicle_etl.platform_db import sql_file

log = logging.getLogger(__name__)

ATTEMPTS = 3  # a swap between the two version reads retries; three swaps in a row are not plausible


@cache
def query(name: str) -> str:
    return sql_file(f"api/{name}.sql")


@cache
def as_json(name: str) -> str:
    """The query's rows as one JSON array built by PostgreSQL (columns in order, numbers as numbers):
    no per-row work in Python, and the dropdown paths send this text as it is."""
    return f"SELECT coalesce(json_agg(q), '[]'::json)::text FROM (\n{query(name)}\n) q"


@dataclass(frozen=True)
class Version:
    release: str | None
    run_id: str | None
    built_at: datetime | None

    @property
    def header(self) -> str:
        """X-Vpic-Data-Version: the live release and the run that built it."""
        return f"{self.release or 'none'}; run={self.run_id or 'none'}"


class CatalogUnavailable(Exception):
    """The platform database cannot be reached or read (the service answers 503).

    `doubt`: the failure says something about the database (connection lost, no live catalog,
    rights changed), so the release the service knows is in doubt; a full pool does not."""

    def __init__(self, message: str, *, doubt: bool = True) -> None:
        super().__init__(message)
        self.doubt = doubt


class Catalog:
    def __init__(self, conninfo: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 5.0) -> None:
        self.pool = AsyncConnectionPool(
            conninfo, min_size=min_size, max_size=max_size, timeout=timeout, open=False,
            kwargs={"autocommit": True}, name="vpic-api",
            reconnect_timeout=30.0)

    async def open(self) -> None:
        # wait=False: the service starts (and says 503 on /health) while the database is down
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def version(self) -> Version:
        version, _ = await self.read([])
        return version

    async def read(self, statements: list[tuple[str, dict[str, Any]]]) -> tuple[Version, list[str]]:
        """Run named queries (file name under include/sql/api, parameters) in one snapshot; each
        answer is its rows as a JSON array (text)."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                before, results, after = await self._read_once(statements)
            except (psycopg.OperationalError, psycopg.errors.InsufficientPrivilege, TimeoutError) as exc:
                raise CatalogUnavailable(str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__,
                                         doubt=not isinstance(exc, TimeoutError)) from exc
            except psycopg.errors.UndefinedTable as exc:
                raise CatalogUnavailable(f"no live catalog: {exc}".splitlines()[0]) from exc
            if before == after:
                return before, results
            log.info("release changed during a read (%s -> %s); reading again (%d)", before, after, attempt)
        raise CatalogUnavailable("the live release kept changing during the read")

    async def _read_once(self, statements: list[tuple[str, dict[str, Any]]]
                         ) -> tuple[Version, list[str], Version]:
        async with self.pool.connection() as conn:
            # On an error the pool rolls back (or discards) the connection when it is returned.
            async with conn.pipeline():
                await _begin(conn)
                v1 = await conn.execute(query("version"))
                curs = []
                for name, params in statements:
                    curs.append(await conn.execute(as_json(name), params))
                v2 = await conn.execute(query("version"))
                await conn.execute("COMMIT")
            before = _version(await v1.fetchone())
            results = [(await c.fetchone())[0] for c in curs]  # type: ignore[index]
            after = _version(await v2.fetchone())
        return before, results, after


async def _begin(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    await conn.execute(f"SET LOCAL ROLE {READER_ROLE}")


async def live_version(conn: psycopg.AsyncConnection[Any]) -> Version:
    """The live release read on `conn` (an autocommit connection outside the pool: the release
    watcher's), as the reader role, exactly as a request reads it."""
    async with conn.pipeline():
        await _begin(conn)
        cur = await conn.execute(query("version"))
        await conn.execute("COMMIT")
    return _version(await cur.fetchone())


def _version(row: Any) -> Version:
    return Version(*row) if row else Version(None, None, None)
