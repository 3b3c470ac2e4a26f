"""Whole answers of the live release, kept in the server process (an LRU bounded in bytes and entries).

An entry is the exact bytes and headers one database read produced (one snapshot, tagged with the
release it read: catalog.Catalog.read), keyed by the request's raw path and query string and nothing
else (answers do not vary on request headers; If-None-Match is answered from the entry's ETag). The
cache holds one release only: `learn` of another release (or of "unknown") empties it before
anything else can be served, and `offer` stores an answer only if it was read from the release
the cache holds. So a cached answer of an old release is never served once the server knows of the
new one, and no answer can mix two releases (its body, ETag and version header are one read's).

`generation` counts what the server learned; a request notes it before reading. An answer read
from another release than the known one, by a request that began after the known release was
learned, comes from a later snapshot: it is the newer release, and is learned at once (the release
watcher's notification may still be on its way). See release_watch.py for how releases are learned.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from vehicle_etl.serving.vpic_api.catalog import Version

Key = tuple[bytes, bytes]        # the request's raw path and raw query string, as the client sent them
ENTRY_OVERHEAD = 400             # bytes of Python objects per entry besides the body (measured ~350)


@dataclass(frozen=True, slots=True)
class Answer:
    version: Version
    body: bytes
    headers: list[tuple[bytes, bytes]]   # ASGI response headers, content-length included
    etag: str
    not_modified: list[tuple[bytes, bytes]]  # the headers of a 304 for this answer


class AnswerCache:
    def __init__(self, max_bytes: int, max_entries: int = 50_000) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.max_answer = max_bytes // 8  # one huge answer (GetAllMakes as XML) may not flush the rest
        self.version: Version | None = None   # the live release as the server knows it; None: unknown
        self.generation = 0
        self.size = 0
        self.hits = self.misses = self.evictions = 0
        self._entries: OrderedDict[Key, Answer] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def learn(self, version: Version | None) -> bool:
        """The live release is `version` (None: not known, e.g. the database is unreachable). True
        when that is news: every entry of the previous release is dropped before this returns."""
        if version is not None and version.release is None:
            version = None  # no catalog_info row: nothing identifies the data, so nothing is kept
        if version == self.version:
            return False
        self._entries.clear()
        self.size = 0
        self.version = version
        self.generation += 1
        return True

    def learn_if(self, version: Version | None, generation: int) -> bool:
        """`learn`, unless something was learned since `generation` (the caller's read may be older)."""
        if generation != self.generation:
            return False
        self.learn(version)
        return True

    def get(self, key: Key) -> Answer | None:
        if self.version is None:
            return None
        answer = self._entries.get(key)
        if answer is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return answer

    def offer(self, key: Key, answer: Answer, generation: int) -> None:
        """A freshly read answer; `generation` is what the request saw when it began."""
        if answer.version != self.version and (
                generation != self.generation or self.version is None or not self.learn(answer.version)):
            return  # learned something during the read, or nothing is known: keep nothing
        if not self.enabled:
            return
        cost = _cost(key, answer)
        if cost > self.max_answer:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= _cost(key, old)
        self._entries[key] = answer
        self.size += cost
        while self.size > self.max_bytes or len(self._entries) > self.max_entries:
            k, a = self._entries.popitem(last=False)
            self.size -= _cost(k, a)
            self.evictions += 1


def _cost(key: Key, answer: Answer) -> int:
    return (len(answer.body) + len(key[0]) + len(key[1]) + ENTRY_OVERHEAD
            + sum(len(n) + len(v) for n, v in answer.headers))
