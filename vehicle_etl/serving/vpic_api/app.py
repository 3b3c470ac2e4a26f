"""The FastAPI application: NHTSA's vPIC paths, the app's dropdown and health paths.

NHTSA's paths, parameter names and output are reproduced as vpic.nhtsa.dot.gov serves them (path
names and parameter names case-insensitive, `format=json|csv|xml`, XML when no format is given);
what the catalog does not hold is printed as null or answered as NHTSA answers "no results"
(docs/API.md, "HTTP API", lists each case). Nothing here writes: the SQL runs as the read-only role
in a read-only transaction (catalog.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote, urlencode

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vehicle_etl.config import Settings
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
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
INT4 = 2_147_483_647
CACHE_KEY = "vpic_api.cache"  # scope entry: (cache key, cache generation when the request began)


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# --- request guard: limits, control characters, NHTSA's case-insensitive names ------------------

class NhtsaRequests:
    """Pure ASGI middleware: rejects oversized or control-character requests with a clear 4xx
    before any routing, and maps path and query names case-insensitively to the canonical ones."""

    def __init__(self, app: ASGIApp, names: dict[str, str], cache: AnswerCache) -> None:
        self.app = app
        self.names = names
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        qs: bytes = scope.get("query_string", b"")
        if len(raw_path) + len(qs) > MAX_URL:
            await _plain(send, 414, f"request URL longer than {MAX_URL} bytes")
            return
        path: str = scope["path"]
        query = parse_qsl(qs.decode("latin-1"), keep_blank_values=True)
        if _CONTROL.search(path) or any(_CONTROL.search(unquote(k) + v) for k, v in query):
            await _plain(send, 400, "control characters are not allowed in the path or the query")
            return
        scope = dict(scope)
        scope["path"] = self._canonical(path)
        scope["raw_path"] = scope["path"].encode()
        scope["query_string"] = urlencode([(k.lower(), v) for k, v in query]).encode()
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            await _plain(send, 413, f"request body larger than {MAX_BODY} bytes")
            return
        if scope["method"] == "GET" and self.cache.enabled:
            # The route offers its answer to the cache under the request as it came (VpicApp).
            scope[CACHE_KEY] = ((raw_path, qs), self.cache.generation)
        await self.app(scope, _limited(receive), send)

    def _canonical(self, path: str) -> str:
        parts = path.split("/")
        if len(parts) > 3 and parts[1].lower() == "api" and parts[2].lower() == "vehicles":
            parts[1], parts[2] = "api", "vehicles"
            parts[3] = self.names.get(parts[3].lower(), parts[3])
            if parts[3] in ("GetModelsForMakeYear", "GetModelsForMakeIdYear"):
                for i in range(4, len(parts), 2):
                    parts[i] = _MODEL_KEYWORDS.get(parts[i].lower(), parts[i])
        return "/".join(parts)


_MODEL_KEYWORDS = {"make": "make", "makeid": "makeId", "modelyear": "modelyear", "vehicletype": "vehicletype"}


def _limited(receive: Receive) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise BadRequest(f"request body larger than {MAX_BODY} bytes", 413)
        return message

    return wrapped


class VpicApp(FastAPI):
    """FastAPI, with kept answers sent before any middleware, routing or validation runs.

    The cache key is the request as it came: the raw path and query string. An entry exists only
    for a GET that passed NhtsaRequests' checks and got a 200 from its route, and those checks read
    nothing but the path, the query and Content-Length; so a request with the same bytes and no
    body gets the same answer. (Another spelling of the same question, e.g. other letter case, is
    another entry.)"""

    answers: AnswerCache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and self.answers.version is not None:
            answer = self.answers.get((scope.get("raw_path") or scope["path"].encode(), scope["query_string"]))
            if answer is not None:
                inm = None
                for name, value in scope["headers"]:
                    if name == b"if-none-match":
                        inm = value
                    elif name == b"content-length" and value != b"0":
                        break  # a GET with a body: through the checks (413 when too large)
                else:
                    await _cached(send, answer, inm)
                    return
        await super().__call__(scope, receive, send)


async def _cached(send: Send, answer: Answer, if_none_match: bytes | None) -> None:
    if if_none_match is not None and _matches(if_none_match.decode("latin-1"), answer.etag):
        await send({"type": "http.response.start", "status": 304, "headers": answer.not_modified})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": answer.headers})
    await send({"type": "http.response.body", "body": answer.body})


async def _plain(send: Send, status: int, message: str) -> None:
    body = f.envelope([], message, None, 0)
    data, media = f.render(body, "json", "")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media.encode()), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


# --- answers ---------------------------------------------------------------------------------------

def _fmt(value: str | None) -> str:
    if value is None or value == "":
        return f.DEFAULT_FORMAT
    fmt = value.lower()
    if fmt not in f.FORMATS:
        raise BadRequest(f"format must be one of json, csv, xml (got {value!r})")
    return fmt


def _etag(version: Version, request: Request, fmt: str) -> str:
    key = "|".join([version.release or "", version.run_id or "", request.method, request.url.path,
                    "&".join(sorted(f"{k}={v}" for k, v in request.query_params.multi_items())), fmt])
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


def _headers(version: Version, etag: str | None) -> dict[str, str]:
    h = {"X-Vpic-Data-Version": version.header}
    if etag:
        h |= {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    return h


def _text(value: str, what: str) -> str:
    if len(value) > MAX_TEXT:
        raise BadRequest(f"{what} is longer than {MAX_TEXT} characters")
    return value


def _like(text: str) -> str:
    """A contains-pattern for ILIKE with the user's %, _ and \\ taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _id_or_like(text: str) -> tuple[int | None, str | None]:
    """NHTSA's rule for a manufacturer/make/vehicle-type argument: a number is an exact id, text a
    partial (LIKE) name."""
    t = text.strip()
    if t.isdigit():
        n = int(t)
        return (n, None) if n <= INT4 else (-1, None)  # no such id: no results, as NHTSA
    return None, _like(t)


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
        etag = _etag(version, request, fmt)
        return Response(status_code=304, headers=_headers(version, etag)) if _matches(inm, etag) else None

    def keep(self, request: Request, version: Version, response: Response) -> Response:
        """Offer a fresh answer (one read, one release) to the cache; returns it unchanged."""
        noted = request.scope.get(CACHE_KEY)
        if noted is not None and response.status_code == 200:
            key, generation = noted
            etag = response.headers["etag"]
            self.cache.offer(key, Answer(version, bytes(response.body), list(response.raw_headers), etag,
                                         _raw(_headers(version, etag))), generation)
        return response

    def unavailable(self, exc: CatalogUnavailable) -> None:
        if exc.doubt:
            self.cache.learn(None)  # the watcher re-reads the release within its retry interval


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def create_app(conninfo: str | Callable[[], str], *, pool_size: int | None = None, cache_mb: float | None = None,
               cache_entries: int | None = None, recheck_seconds: float | None = None) -> VpicApp:
    """The application over the catalog at `conninfo` (a string, or a callable resolved at startup).

    The answer cache (answer_cache.py) holds up to `cache_mb` MiB and `cache_entries` answers of the
    live release (VPIC_API_CACHE_MB, default 64, 0 turns it off; VPIC_API_CACHE_ENTRIES, default
    50,000); the release watcher re-reads the live release every `recheck_seconds` without a swap
    notification (VPIC_API_RECHECK_SECONDS, default 5)."""
    api = Settings().api
    size = pool_size or api.pool_size
    mb = cache_mb if cache_mb is not None else api.cache_mb
    entries = cache_entries or api.cache_entries
    recheck = recheck_seconds or api.recheck_seconds
    state = Catalogs()
    state.cache = AnswerCache(int(mb * 1024 * 1024), entries)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        info = conninfo() if callable(conninfo) else conninfo
        state.catalog = Catalog(info, max_size=size)
        await state.catalog.open()
        if state.cache.enabled:
            state.watch = ReleaseWatch(info, state.cache, recheck=recheck)
            state.watch.start()
        try:
            yield
        finally:
            if state.watch is not None:
                await state.watch.stop()
            await state.catalog.close()

    app = VpicApp(
        title="MVP Platform vehicle catalog (NHTSA vPIC API, local)",
        version="1",
        description="NHTSA's vPIC REST API served from the platform database's live catalog, and the "
                    "app's dropdown and health paths. Read-only; no authentication. See docs/API.md.",
        lifespan=lifespan, redirect_slashes=False)

    async def vpic(request: Request, fmt_value: str | None, statements: list[tuple[str, dict[str, Any]]],
                   build: Callable[[list[list[dict[str, Any]]]], dict[str, Any]], item: str,
                   cacheable: bool = True) -> Response:
        fmt = _fmt(fmt_value)
        if cacheable and (unchanged := await state.not_modified(request, fmt)) is not None:
            return unchanged
        version, texts = await state.catalog.read(statements)
        data, media = f.render(build([json.loads(t) for t in texts]), fmt, item)
        if not cacheable:
            return Response(data, media_type=media, headers=_headers(version, None))
        response = Response(data, media_type=media, headers=_headers(version, _etag(version, request, fmt)))
        return state.keep(request, version, response)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> Response:
        return JSONResponse(f.envelope([], str(exc), None, 0), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
                             for e in exc.errors())
        return JSONResponse(f.envelope([], f"invalid request: {problems}", None, 0), status_code=400)

    @app.exception_handler(CatalogUnavailable)
    async def unavailable(request: Request, exc: CatalogUnavailable) -> Response:
        log.warning("catalog unavailable: %s", exc)
        state.unavailable(exc)
        return JSONResponse(f.envelope([], f"the vehicle catalog is unavailable: {exc}", None, 0),
                            status_code=503, headers={"Retry-After": "5"})

    _routes(app, vpic)
    _app_routes(app, state)
    names = {r.path.split("/")[3].lower(): r.path.split("/")[3]  # type: ignore[attr-defined]
             for r in app.routes if getattr(r, "path", "").startswith(PREFIX + "/")}
    app.add_middleware(NhtsaRequests, names=names, cache=state.cache)
    app.answers = state.cache
    return app


# --- NHTSA's paths ---------------------------------------------------------------------------------

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


def _flat(doc: dict[str, str], extended: bool) -> tuple[dict[str, str], int]:
    """DecodeVinValues' one result: keys in NHTSA's (ordinal) order, with the keys NHTSA prints
    that the decoder has no value for (NCSA mapping, DriverAssist, ...) as "". Count is the number of
    decoded variables, as NHTSA counts it: not VIN, MakeID, ModelID, ManufacturerId, and the NCSA
    variables only on the extended paths."""
    count = len(doc) - 4 + (len(EXTENDED_KEYS) if extended else 0)
    doc = dict.fromkeys(NHTSA_EMPTY_KEYS, "") | doc
    return dict(sorted(doc.items())), count


# Keys of NHTSA's flat answer (recorded, tests/data/nhtsa/decode-vin.json) that vehicles.decode_vin
# does not print: elements without a decode in the snapshot (NCSA tables, private elements).
EXTENDED_KEYS = ("NCSABodyType", "NCSAMake", "NCSAModel", "NCSANote")
NHTSA_EMPTY_KEYS = (*EXTENDED_KEYS, "AdaptiveHeadlights", "CashForClunkers", "DriverAssist",
                    "NCSAMapExcApprovedBy", "NCSAMapExcApprovedOn", "NCSAMappingException")


def _routes(app: FastAPI, vpic: Vpic) -> None:
    tags = ["NHTSA vPIC"]

    def decode_values(extended: bool) -> Callable[..., Awaitable[Response]]:
        async def handler(request: Request, vin: Vin, modelyear: ModelYear = None, format: Fmt = None) -> Response:
            def build(rows: list[list[dict[str, Any]]]) -> dict[str, Any]:
                doc, count = _flat(rows[0][0]["decode_vin"], extended)
                return f.envelope([doc], f.MSG_DECODE, f"VIN(s): {vin}", count)
            return await vpic(request, format, [("decode_vin_values", {"vin": vin, "year": modelyear})],
                              build, "DecodedVINValues")
        return handler

    def decode_rows(extended: bool) -> Callable[..., Awaitable[Response]]:
        async def handler(request: Request, vin: Vin, modelyear: ModelYear = None, format: Fmt = None) -> Response:
            return await vpic(request, format,
                              [("decode_vin", {"vin": vin, "year": modelyear, "extended": extended})],
                              lambda rows: f.envelope(rows[0], f.MSG_DECODE, f"VIN:{vin}"), "DecodedVariable")
        return handler

    app.get(PREFIX + "/DecodeVin/{vin}", tags=tags, summary="Decode a VIN (variable/value rows)")(decode_rows(False))
    app.get(PREFIX + "/DecodeVinValues/{vin}", tags=tags, summary="Decode a VIN (flat)")(decode_values(False))
    app.get(PREFIX + "/DecodeVinExtended/{vin}", tags=tags, summary="Decode a VIN, extended")(decode_rows(True))
    app.get(PREFIX + "/DecodeVinValuesExtended/{vin}", tags=tags,
            summary="Decode a VIN, extended (flat)")(decode_values(True))

    async def batch(request: Request) -> Response:
        form = await request.form()
        fields = {k.lower(): v for k, v in form.items() if isinstance(v, str)}
        entries = _batch_entries(fields.get("data", ""))

        def build(rows: list[list[dict[str, Any]]]) -> dict[str, Any]:
            docs = [_flat(r["result"], False)[0] for r in rows[0]]
            return f.envelope(docs, f.MSG_DECODE, "")
        return await vpic(request, fields.get("format") or request.query_params.get("format"),
                          [("decode_vin_batch", {"vins": [v for v, _ in entries], "years": [y for _, y in entries]})],
                          build, "DecodedVINValues", cacheable=False)

    for path in ("/DecodeVINValuesBatch", "/DecodeVINValuesBatch/"):
        app.post(PREFIX + path, tags=tags, summary="Decode up to 50 VINs (form field data=VIN[,year];VIN...)",
                 include_in_schema=path.endswith("/"),
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "application/x-www-form-urlencoded": {"schema": {
                         "type": "object", "required": ["data"],
                         "properties": {"data": {"type": "string", "maxLength": MAX_BODY},
                                        "format": {"type": "string", "enum": list(f.FORMATS)}}}}}}})(batch)

    @app.get(PREFIX + "/DecodeWMI/{wmi}", tags=tags, summary="Decode a WMI")
    async def decode_wmi(request: Request, wmi: Name, format: Fmt = None) -> Response:
        return await vpic(request, format, [("decode_wmi", {"wmi": wmi.strip()})],
                          lambda rows: f.envelope(rows[0], f.MSG_RESULTS, f"WMI:{wmi}"), "DecodedWMI")

    async def wmis(request: Request, manufacturer: str | None, vehicletype: str | None, format: str | None) -> Response:
        if not manufacturer and not vehicletype:
            raise BadRequest("give a manufacturer (path) or vehicleType (query)")
        mfr_id, mfr_like = _id_or_like(_text(manufacturer, "manufacturer")) if manufacturer else (None, None)
        vt_id, vt_like = _id_or_like(_text(vehicletype, "vehicleType")) if vehicletype else (None, None)
        criteria = " | ".join(([f"Manufacturer: {manufacturer}"] if manufacturer else [])
                              + ([f"VehicleType: {vehicletype}"] if vehicletype else []))
        return await vpic(request, format, [("wmis_for_manufacturer", {
            "mfr_id": mfr_id, "mfr_like": mfr_like, "vt_id": vt_id, "vt_like": vt_like})],
            lambda rows: f.envelope(rows[0], f.MSG_RESPONSE, criteria), "WMIsForManufacturer")

    @app.get(PREFIX + "/GetWMIsForManufacturer/{manufacturer}", tags=tags, summary="WMIs of a manufacturer")
    async def wmis_for(request: Request, manufacturer: Name, vehicletype: VehicleTypeQ = None,
                       format: Fmt = None) -> Response:
        return await wmis(request, manufacturer, vehicletype, format)

    @app.get(PREFIX + "/GetWMIsForManufacturer", tags=tags, summary="WMIs of a vehicle type")
    async def wmis_type(request: Request, vehicletype: VehicleTypeQ = None, format: Fmt = None) -> Response:
        return await wmis(request, None, vehicletype, format)

    @app.get(PREFIX + "/GetAllMakes", tags=tags, summary="All makes")
    async def all_makes(request: Request, format: Fmt = None) -> Response:
        return await vpic(request, format, [("all_makes", {})],
                          lambda rows: f.envelope(rows[0], f.MSG_RESPONSE, None), "AllVehicleMakes")

    @app.get(PREFIX + "/GetMakesForManufacturerAndYear/{manufacturer}", tags=tags,
             summary="Makes of a manufacturer in a model year")
    async def makes_mfr_year(request: Request, manufacturer: Name,
                             year: Annotated[int, Query(alias="year", ge=1, le=9999)], format: Fmt = None) -> Response:
        mfr_id, mfr_like = _id_or_like(manufacturer)
        return await vpic(request, format, [("makes_for_manufacturer_and_year",
                                             {"mfr_id": mfr_id, "mfr_like": mfr_like, "year": year})],
                          lambda rows: f.envelope(rows[0], f.MSG_RESPONSE,
                                                  f"Manufacturer : {manufacturer}, Year: {year}"),
                          "MakesForMfrAndYear")

    def make_types(make: str | None, make_id: int | None, vt: str | None) -> dict[str, Any]:
        m_id, m_like = (make_id, None) if make_id is not None else (None, _like(make.strip())) if make else (None, None)
        vt_id, vt_like = _id_or_like(vt) if vt else (None, None)
        return {"make_id": m_id, "make_like": m_like, "vt_id": vt_id, "vt_like": vt_like}

    @app.get(PREFIX + "/GetMakesForVehicleType/{vehicletype}", tags=tags, summary="Makes of a vehicle type")
    async def makes_for_type(request: Request, vehicletype: Name, format: Fmt = None) -> Response:
        return await vpic(request, format, [("make_vehicle_types", make_types(None, None, vehicletype))],
                          lambda rows: f.envelope(rows[0], f.MSG_RESPONSE, f"Vehicle Type: {vehicletype}"),
                          "MakesForVehicleType")

    @app.get(PREFIX + "/GetVehicleTypesForMake/{makename}", tags=tags, summary="Vehicle types of makes by name")
    async def types_for_make(request: Request, makename: Name, format: Fmt = None) -> Response:
        return await vpic(request, format, [("make_vehicle_types", make_types(makename, None, None))],
                          lambda rows: f.envelope(rows[0], f.MSG_RESPONSE, f"Make: {makename}"),
                          "VehicleTypesForMake")

    @app.get(PREFIX + "/GetVehicleTypesForMakeId/{makeid}", tags=tags, summary="Vehicle types of a make id")
    async def types_for_make_id(request: Request, makeid: Id, format: Fmt = None) -> Response:
        def build(rows: list[list[dict[str, Any]]]) -> dict[str, Any]:
            res = [{"VehicleTypeId": r["VehicleTypeId"], "VehicleTypeName": r["VehicleTypeName"]} for r in rows[0]]
            return f.envelope(res, f.MSG_RESPONSE, f"Make ID: {makeid}")
        return await vpic(request, format, [("make_vehicle_types", make_types(None, makeid, None))],
                          build, "VehicleTypesForMakeIds")

    def models(request: Request, format: str | None, make: str | None, make_id: int | None, year: int | None,
               vt: str | None, criteria: str, message: str) -> Awaitable[Response]:
        params = make_types(make, make_id, vt) | {"year": year, "with_type": vt is not None}

        def build(rows: list[list[dict[str, Any]]]) -> dict[str, Any]:
            drop = () if vt is not None else ("VehicleTypeId", "VehicleTypeName")
            return f.envelope([{k: v for k, v in r.items() if k not in drop} for r in rows[0]], message, criteria)
        return vpic(request, format, [("models", params)], build, "MakeModels")

    @app.get(PREFIX + "/GetModelsForMake/{makename}", tags=tags, summary="Models of makes by name")
    async def models_for_make(request: Request, makename: Name, format: Fmt = None) -> Response:
        return await models(request, format, makename, None, None, None, f"Make:{makename}", f.MSG_RESPONSE)

    @app.get(PREFIX + "/GetModelsForMakeId/{makeid}", tags=tags, summary="Models of a make id")
    async def models_for_make_id(request: Request, makeid: Id, format: Fmt = None) -> Response:
        return await models(request, format, None, makeid, None, None, f"Make:{makeid}", f.MSG_RESPONSE)

    def by_name(year: bool, vt: bool) -> Callable[..., Awaitable[Response]]:
        async def handler(request: Request, make: Name, modelyear: Year | None = None,
                          vehicletype: Name | None = None, format: Fmt = None) -> Response:
            crit = " | ".join([f"Make:{make}"] + ([f"ModelYear:{modelyear}"] if year else [])
                              + ([f"VehicleType:{vehicletype}"] if vt else []))
            return await models(request, format, make, None, modelyear, vehicletype, crit, f.MSG_RESULTS)
        return handler

    def by_id(year: bool, vt: bool) -> Callable[..., Awaitable[Response]]:
        async def handler(request: Request, makeid: Id, modelyear: Year | None = None,
                          vehicletype: Name | None = None, format: Fmt = None) -> Response:
            crit = " | ".join([f"Make ID:{makeid}"] + ([f"ModelYear:{modelyear}"] if year else [])
                              + ([f"VehicleType:{vehicletype}"] if vt else []))
            return await models(request, format, None, makeid, modelyear, vehicletype, crit, f.MSG_RESULTS)
        return handler

    for year, vt in ((True, False), (True, True), (False, True)):
        tail = ("/modelyear/{modelyear}" if year else "") + ("/vehicletype/{vehicletype}" if vt else "")
        app.get(PREFIX + "/GetModelsForMakeYear/make/{make}" + tail, tags=tags,
                summary="Models of makes by name, year and/or vehicle type")(by_name(year, vt))
        app.get(PREFIX + "/GetModelsForMakeIdYear/makeId/{makeid}" + tail, tags=tags,
                summary="Models of a make id, year and/or vehicle type")(by_id(year, vt))

    @app.get(PREFIX + "/GetVehicleVariableList", tags=tags, summary="The decoded variables")
    async def variables(request: Request, format: Fmt = None) -> Response:
        return await vpic(request, format, [("variables", {})],
                          lambda rows: f.envelope(rows[0], f.MSG_RESULTS, None), "VehicleVariablesList")

    @app.get(PREFIX + "/GetVehicleVariableValuesList/{variable}", tags=tags, summary="Values of a lookup variable")
    async def variable_values(request: Request, variable: Name, format: Fmt = None) -> Response:
        vid = int(variable) if variable.strip().isdigit() and int(variable) <= INT4 else None
        return await vpic(request, format, [("variable_values", {"id": vid, "name": variable.strip()})],
                          lambda rows: f.envelope(rows[0], f.MSG_RESULTS, f"Variable:{variable}"),
                          "VehicleVariableValuesList")

    @app.get(PREFIX + "/GetAllManufacturers", tags=tags, summary="Manufacturers, 100 a page")
    async def all_manufacturers(request: Request,
                                manufacturertype: Annotated[str | None, Query(alias="manufacturertype",
                                                                              max_length=MAX_TEXT)] = None,
                                page: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
                                format: Fmt = None) -> Response:
        # Manufacturer types are not in the catalog: a type filter has no results, as NHTSA for an unknown type.
        params = {"mfr_id": -1 if manufacturertype else None, "mfr_like": None, "limit": 100,
                  "offset": (page - 1) * 100}

        def build(rows: list[list[dict[str, Any]]]) -> dict[str, Any]:
            res = [{"Country": None, "Mfr_CommonName": None, "Mfr_ID": r["manufacturer_id"],
                    "Mfr_Name": r["manufacturer_name"], "VehicleTypes": []} for r in rows[0]]
            return f.envelope(res, f.MSG_RESPONSE, None)
        return await vpic(request, format, [("manufacturers", params)], build, "Manufacturers")

    @app.get(PREFIX + "/GetManufacturerDetails/{manufacturer}", tags=tags, summary="Details of manufacturers")
    async def manufacturer_details(request: Request, manufacturer: Name, format: Fmt = None) -> Response:
        mfr_id, mfr_like = _id_or_like(manufacturer)
        params = {"mfr_id": mfr_id, "mfr_like": mfr_like, "limit": 1000, "offset": 0}

        def build(rows: list[list[dict[str, Any]]]) -> dict[str, Any]:
            res = [dict(DETAIL_TEMPLATE, Mfr_ID=r["manufacturer_id"], Mfr_Name=r["manufacturer_name"],
                        EquipmentItems=[], ManufacturerTypes=[], VehicleTypes=[]) for r in rows[0]]
            return f.envelope(res, f.MSG_RESPONSE, None)
        return await vpic(request, format, [("manufacturers", params)], build, "ManufacturerDetails")


# NHTSA's GetManufacturerDetails keys, in its order; the catalog holds only Mfr_ID and Mfr_Name.
DETAIL_TEMPLATE: dict[str, Any] = dict.fromkeys((
    "Address", "Address2", "City", "ContactEmail", "ContactFax", "ContactPhone", "Country", "DBAs",
    "EquipmentItems", "LastUpdated", "ManufacturerTypes", "Mfr_CommonName", "Mfr_ID", "Mfr_Name",
    "OtherManufacturerDetails", "PostalCode", "PrimaryProduct", "PrincipalFirstName", "PrincipalLastName",
    "PrincipalPosition", "StateProvince", "SubmittedName", "SubmittedOn", "SubmittedPosition", "VehicleTypes"))


def _batch_entries(data: str) -> list[tuple[str, int | None]]:
    """NHTSA's batch input `VIN[,year];VIN[,year]...` (spaces optional); at most 50 entries."""
    entries: list[tuple[str, int | None]] = []
    for part in data.split(";"):
        if not part.strip():
            continue
        vin, _, year = part.partition(",")
        vin, year = vin.strip(), year.strip()
        if _CONTROL.search(part):
            raise BadRequest("control characters are not allowed in data")
        if len(vin) > MAX_TEXT:
            raise BadRequest(f"a VIN in data is longer than {MAX_TEXT} characters")
        if year and not (year.isdigit() and 1 <= int(year) <= 9999):
            raise BadRequest(f"model year {year!r} in data is not a year")
        entries.append((vin, int(year) if year else None))
        if len(entries) > MAX_BATCH:
            raise BadRequest(f"at most {MAX_BATCH} VINs per batch (NHTSA's limit)")
    if not entries:
        raise BadRequest("form field data is empty: give VIN[,modelyear];VIN[,modelyear]...")
    return entries


# --- the app's own paths ---------------------------------------------------------------------------

def _app_routes(app: FastAPI, state: Catalogs) -> None:
    tags = ["MVP Platform app"]

    async def rows(request: Request, name: str, params: dict[str, Any]) -> Response:
        if (unchanged := await state.not_modified(request, "json")) is not None:
            return unchanged
        version, texts = await state.catalog.read([(name, params)])
        return state.keep(request, version, Response(texts[0].encode(), media_type=f.MEDIA_TYPES["json"],
                                                     headers=_headers(version, _etag(version, request, "json"))))

    @app.get(PREFIX + "/dropdown/makes", tags=tags, summary="vehicles.dropdown_makes")
    async def makes(request: Request, model_year: OptYear = None, all_types: bool = False) -> Response:
        return await rows(request, "dropdown_makes", {"model_year": model_year, "all_types": all_types})

    @app.get(PREFIX + "/dropdown/models", tags=tags, summary="vehicles.dropdown_models")
    async def models(request: Request, make_id: IdQ, model_year: OptYear = None) -> Response:
        return await rows(request, "dropdown_models", {"make_id": make_id, "model_year": model_year})

    for option in ("trims", "engines", "transmissions"):
        def handler(name: str) -> Callable[..., Awaitable[Response]]:
            async def options(request: Request, make_id: IdQ, model_id: IdQ, model_year: ReqYear) -> Response:
                return await rows(request, f"dropdown_{name}",
                                  {"make_id": make_id, "model_id": model_id, "model_year": model_year})
            return options
        app.get(PREFIX + f"/dropdown/{option}", tags=tags, summary=f"vehicles.dropdown_{option}")(handler(option))

    @app.get(PREFIX + "/health", tags=tags, summary="Live release and database reachability (503 when not)")
    async def health() -> Response:
        try:
            version = await state.catalog.version()
        except CatalogUnavailable as exc:
            state.unavailable(exc)
            return JSONResponse({"status": "unavailable", "database": "unreachable", "release": None,
                                 "run_id": None, "built_at": None, "error": str(exc)}, status_code=503)
        body = {"status": "ok" if version.release else "no live catalog", "database": "reachable",
                "release": version.release, "run_id": version.run_id,
                "built_at": version.built_at.isoformat() if version.built_at else None}
        return JSONResponse(body, status_code=200 if version.release else 503,
                            headers={"X-Vpic-Data-Version": version.header, "Cache-Control": "no-store"})
