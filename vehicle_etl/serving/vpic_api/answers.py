"""What every path of the API shares: the limits, the answer's format, ETag and headers (a 304
when the client has the release's answer), parameter checks and types, and the catalog state."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Path, Query, Request
from fastapi.responses import Response

from vehicle_etl.serving.vpic_api import formats as f
from vehicle_etl.serving.vpic_api.answer_cache import Answer, AnswerCache
from vehicle_etl.serving.vpic_api.catalog import Catalog, CatalogUnavailable, Version
from vehicle_etl.serving.vpic_api.release_watch import ReleaseWatch

log = logging.getLogger(__name__)


PREFIX = "/api/vehicles"
MAX_URL = 2048          # bytes of path + query string
MAX_BODY = 16 * 1024    # bytes of a POST body (50 VINs with years are ~1.2 KB)
MAX_BATCH = 50          # NHTSA's limit for DecodeVINValuesBatch
MAX_TEXT = 100          # characters of a name or VIN parameter
CACHE_CONTROL = "public, no-cache"  # store, but revalidate: the ETag changes with the release
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
INT4 = 2_147_483_647
CACHE_KEY = "vpic_api.cache"  # scope entry: (cache key, cache generation when the request began)


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status




def format_of(value: str | None) -> str:
    if value is None or value == "":
        return f.DEFAULT_FORMAT
    fmt = value.lower()
    if fmt not in f.FORMATS:
        raise BadRequest(f"format must be one of json, csv, xml (got {value!r})")
    return fmt


def etag_of(version: Version, request: Request, fmt: str) -> str:
    key = "|".join([version.release or "", version.run_id or "", request.method, request.url.path,
                    "&".join(sorted(f"{k}={v}" for k, v in request.query_params.multi_items())), fmt])
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


def headers_for(version: Version, etag: str | None) -> dict[str, str]:
    h = {"X-Vpic-Data-Version": version.header}
    if etag:
        h |= {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    return h


def text_param(value: str, what: str) -> str:
    if len(value) > MAX_TEXT:
        raise BadRequest(f"{what} is longer than {MAX_TEXT} characters")
    return value


def like_pattern(text: str) -> str:
    """A contains-pattern for ILIKE with the user's %, _ and \\ taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts characters such as '²' that int() refuses."""
    return text.isascii() and text.isdigit()


def id_or_like(text: str) -> tuple[int | None, str | None]:
    """NHTSA's rule for a manufacturer/make/vehicle-type argument: a number is an exact id, text a
    partial (LIKE) name."""
    t = text.strip()
    if is_number(t):
        n = int(t)
        return (n, None) if n <= INT4 else (-1, None)  # no such id: no results, as NHTSA
    return None, like_pattern(t)


class Catalogs:
    """Where the routes find the catalog the lifespan opened and the answers kept (one per application)."""

    catalog: Catalog
    cache: AnswerCache
    watch: ReleaseWatch | None = None

    async def not_modified(self, request: Request, fmt: str) -> Response | None:
        """304 when If-None-Match names this answer of the live release; the release as the
        server knows it, or (unknown: no cache, watcher down) as the database says."""
        inm = request.headers.get("if-none-match")
        if not inm:
            return None
        version = self.cache.version or await self.catalog.version()
        etag = etag_of(version, request, fmt)
        return Response(status_code=304, headers=headers_for(version, etag)) if etag_matches(inm, etag) else None

    def keep(self, request: Request, version: Version, response: Response) -> Response:
        """Offer a fresh answer (one read, one release) to the cache; returns it unchanged."""
        noted = request.scope.get(CACHE_KEY)
        if noted is not None and response.status_code == 200:
            key, generation = noted
            etag = response.headers["etag"]
            self.cache.offer(key, Answer(version, bytes(response.body), list(response.raw_headers), etag,
                                         raw_headers(headers_for(version, etag))), generation)
        return response

    def unavailable(self, exc: CatalogUnavailable) -> None:
        if exc.doubt:
            self.cache.learn(None)  # the watcher re-reads the release within its retry interval


def raw_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]



Fmt = Annotated[str | None, Query(alias="format", description="json, csv or xml (NHTSA's default: xml)",
                                  max_length=10)]
ModelYear = Annotated[int | None, Query(alias="modelyear", ge=1, le=9999)]
Vin = Annotated[str, Path(description="a VIN, full or partial (* for unknown characters)", max_length=MAX_TEXT)]
Name = Annotated[str, Path(max_length=MAX_TEXT)]
Id = Annotated[int, Path(ge=0, le=INT4)]
Year = Annotated[int, Path(ge=1, le=9999)]
Vpic = Callable[..., Awaitable[Response]]
VehicleTypeQ = Annotated[str | None, Query(alias="vehicletype", max_length=MAX_TEXT)]
OptYear = Annotated[int | None, Query(ge=1, le=9999)]
ReqYear = Annotated[int, Query(ge=1, le=9999)]
IdQ = Annotated[int, Query(ge=0, le=INT4)]
