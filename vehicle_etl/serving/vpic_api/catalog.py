"""Reads of the live catalog for the HTTP API: a connection pool, one statement per request.

Every pooled connection is made the read-only role mvp_platform_reader with read-only transactions
(`SET ROLE`, `SET default_transaction_read_only = on`, once, on its first use: `as_reader`), so the
service can do nothing but read. A request is then one statement in its own transaction: the
live release (vehicles.catalog_info) and the answer's rows as one JSON array built by PostgreSQL,
in one row. One statement reads one snapshot, and the views and the (STABLE) contract functions
read the version that snapshot's control row names, so an answer and the release it is tagged
with are always the same release, never parts of two (docs/ARCHITECTURE.md, "The swap"). One
message to PostgreSQL and one back, as for an app's own SQL call.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from vehicle_etl.config import READER_ROLE
from vehicle_etl.platform_db import sql_file

log = logging.getLogger(__name__)


@cache
def query(name: str) -> str:
    return sql_file(f"api/{name}.sql")


@cache
def answer(name: str) -> str:
    """The live release and the query's rows as one JSON array (columns in order, numbers as
    numbers), in one row of one statement: no per-row work in Python, and the dropdown paths send
    this text as it is. The release is NULL without a catalog_info row."""
    return (f"SELECT v.release, v.run_id, v.built_at, a.rows FROM (\n"
            f"SELECT coalesce(json_agg(q), '[]'::json)::text AS rows FROM (\n{query(name)}\n) q\n"
            f") a LEFT JOIN (\n{query('version')}\n) v ON true")


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
        self._readers: weakref.WeakSet[psycopg.AsyncConnection[Any]] = weakref.WeakSet()

    async def open(self) -> None:
        # wait=False: the service starts (and says 503 on /health) while the database is down
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def version(self) -> Version:
        return _version(await self._fetch(query("version")))

    async def read(self, name: str, params: dict[str, Any]) -> tuple[Version, str]:
        """The live release and the rows of the named query (file name under include/sql/api) as a
        JSON array (text), from one statement."""
        row = await self._fetch(answer(name), params)
        return _version(row[:3]), row[3]  # type: ignore[index]

    async def _fetch(self, statement: str, params: dict[str, Any] | None = None) -> Any:
        try:
            async with self.pool.connection() as conn:
                if conn not in self._readers:
                    # Here, not in the pool's configure: a login user that may not be the reader
                    # gets 503 naming the refusal, not a pool timeout.
                    await as_reader(conn)
                    self._readers.add(conn)
                cur = await conn.execute(statement, params)
                return await cur.fetchone()
        except (psycopg.OperationalError, psycopg.errors.InsufficientPrivilege, TimeoutError) as exc:
            raise CatalogUnavailable(str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__,
                                     doubt=not isinstance(exc, TimeoutError)) from exc
        except psycopg.errors.UndefinedTable as exc:
            raise CatalogUnavailable(f"no live catalog: {exc}".splitlines()[0]) from exc


async def as_reader(conn: psycopg.AsyncConnection[Any]) -> None:
    """Make an autocommit connection the reader role, read-only, for the rest of its session."""
    await conn.execute(f"SET ROLE {READER_ROLE}; SET default_transaction_read_only = on")


async def live_version(conn: psycopg.AsyncConnection[Any]) -> Version:
    """The live release read on `conn` (a connection `as_reader` set up outside the pool: the
    release watcher's), exactly as a request reads it."""
    cur = await conn.execute(query("version"))
    return _version(await cur.fetchone())


def _version(row: Any) -> Version:
    return Version(*row) if row else Version(None, None, None)
