"""Which release is live, known to the server without a database round trip per request.

One connection outside the pool LISTENs on the channel every swap NOTIFYs inside its transaction
(vehicle_etl/release/channel.py); PostgreSQL delivers the notification at the swap's commit. On each
notification, and every `recheck` seconds without one, the watcher reads the live release on that
same connection (which also proves the connection, and so the subscription, is alive) and tells the
answer cache. Order matters: LISTEN first, then read, so a swap that commits in between is both
seen by the read and notified.

While the watcher has no working connection the release is "unknown" and nothing is cached or
served from the cache: every request reads the database as it would without a cache (and answers
503 when that fails). A swap made without the notification (by hand, or by an older pipeline) is
seen at the next re-check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

from vehicle_etl.serving.vpic_api.answer_cache import AnswerCache
from vehicle_etl.serving.vpic_api.catalog import as_reader, live_version, query

log = logging.getLogger(__name__)


class ReleaseWatch:
    def __init__(self, conninfo: str, cache: AnswerCache, *, recheck: float = 5.0, retry: float = 0.5) -> None:
        self.conninfo = conninfo
        self.cache = cache
        self.recheck = recheck
        self.retry = retry  # also the re-check interval while the release is unknown
        self.notifications = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="vpic-api-release-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.cache.learn(None)

    async def _run(self) -> None:
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, application_name="vpic-api-release-watch")
                try:
                    await as_reader(conn)
                    await conn.execute(query("listen_release"))
                    await self._refresh(conn)
                    log.info("release watch: listening; live release %s",
                             self.cache.version.header if self.cache.version else "unknown")
                    while True:
                        wait = self.recheck if self.cache.version is not None else self.retry
                        async for note in conn.notifies(timeout=wait, stop_after=1):
                            self.notifications += 1
                            log.info("release watch: swap notified (%s)", note.payload)
                        await self._refresh(conn)
                finally:
                    await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection refused or lost, no live catalog, rights changed
                self.cache.learn(None)
                log.warning("release watch: %s; answers are read from the database until it reconnects",
                            str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__)
                await asyncio.sleep(self.retry)

    async def _refresh(self, conn: psycopg.AsyncConnection) -> None:
        # A request may learn a newer release while this read is under way (answer_cache.offer);
        # learn_if refuses to go back to what this (older) read saw, and the read is repeated.
        for _ in range(3):
            generation = self.cache.generation
            version = await live_version(conn)
            if self.cache.learn_if(version, generation):
                return
