"""NHTSA's vPIC paths, parameter names and answers, as vpic.nhtsa.dot.gov serves them (docs/API.md,
"HTTP API", lists each case), over the live catalog."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from vehicle_etl.serving.vpic_api import formats as f
from vehicle_etl.serving.vpic_api.answers import (
    CONTROL_CHARS,
    INT4,
    MAX_BATCH,
    MAX_BODY,
    MAX_TEXT,
    PREFIX,
    BadRequest,
    Fmt,
    Id,
    ModelYear,
    Name,
    VehicleTypeQ,
    Vin,
    Vpic,
    Year,
    id_or_like,
    is_number,
    like_pattern,
    text_param,
)

log = logging.getLogger(__name__)


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


def add_nhtsa_routes(app: FastAPI, vpic: Vpic) -> None:
    tags = ["NHTSA vPIC"]

    def decode_values(extended: bool) -> Callable[..., Awaitable[Response]]:
        async def handler(request: Request, vin: Vin, modelyear: ModelYear = None, format: Fmt = None) -> Response:
            def build(rows: list[dict[str, Any]]) -> dict[str, Any]:
                doc, count = _flat(rows[0]["decode_vin"], extended)
                return f.envelope([doc], f.MSG_DECODE, f"VIN(s): {vin}", count)
            return await vpic(request, format, "decode_vin_values", {"vin": vin, "year": modelyear},
                              build, "DecodedVINValues")
        return handler

    def decode_rows(extended: bool) -> Callable[..., Awaitable[Response]]:
        async def handler(request: Request, vin: Vin, modelyear: ModelYear = None, format: Fmt = None) -> Response:
            return await vpic(request, format,
                              "decode_vin", {"vin": vin, "year": modelyear, "extended": extended},
                              lambda rows: f.envelope(rows, f.MSG_DECODE, f"VIN:{vin}"), "DecodedVariable")
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

        def build(rows: list[dict[str, Any]]) -> dict[str, Any]:
            docs = [_flat(r["result"], False)[0] for r in rows]
            return f.envelope(docs, f.MSG_DECODE, "")
        return await vpic(request, fields.get("format") or request.query_params.get("format"),
                          "decode_vin_batch", {"vins": [v for v, _ in entries], "years": [y for _, y in entries]},
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
        return await vpic(request, format, "decode_wmi", {"wmi": wmi.strip()},
                          lambda rows: f.envelope(rows, f.MSG_RESULTS, f"WMI:{wmi}"), "DecodedWMI")

    async def wmis(request: Request, manufacturer: str | None, vehicletype: str | None, format: str | None) -> Response:
        if not manufacturer and not vehicletype:
            raise BadRequest("give a manufacturer (path) or vehicleType (query)")
        mfr_id, mfr_like = id_or_like(text_param(manufacturer, "manufacturer")) if manufacturer else (None, None)
        vt_id, vt_like = id_or_like(text_param(vehicletype, "vehicleType")) if vehicletype else (None, None)
        criteria = " | ".join(([f"Manufacturer: {manufacturer}"] if manufacturer else [])
                              + ([f"VehicleType: {vehicletype}"] if vehicletype else []))
        return await vpic(request, format, "wmis_for_manufacturer", {
            "mfr_id": mfr_id, "mfr_like": mfr_like, "vt_id": vt_id, "vt_like": vt_like},
            lambda rows: f.envelope(rows, f.MSG_RESPONSE, criteria), "WMIsForManufacturer")

    @app.get(PREFIX + "/GetWMIsForManufacturer/{manufacturer}", tags=tags, summary="WMIs of a manufacturer")
    async def wmis_for(request: Request, manufacturer: Name, vehicletype: VehicleTypeQ = None,
                       format: Fmt = None) -> Response:
        return await wmis(request, manufacturer, vehicletype, format)

    @app.get(PREFIX + "/GetWMIsForManufacturer", tags=tags, summary="WMIs of a vehicle type")
    async def wmis_type(request: Request, vehicletype: VehicleTypeQ = None, format: Fmt = None) -> Response:
        return await wmis(request, None, vehicletype, format)

    @app.get(PREFIX + "/GetAllMakes", tags=tags, summary="All makes")
    async def all_makes(request: Request, format: Fmt = None) -> Response:
        return await vpic(request, format, "all_makes", {},
                          lambda rows: f.envelope(rows, f.MSG_RESPONSE, None), "AllVehicleMakes")

    @app.get(PREFIX + "/GetMakesForManufacturerAndYear/{manufacturer}", tags=tags,
             summary="Makes of a manufacturer in a model year")
    async def makes_mfr_year(request: Request, manufacturer: Name,
                             year: Annotated[int, Query(alias="year", ge=1, le=9999)], format: Fmt = None) -> Response:
        mfr_id, mfr_like = id_or_like(manufacturer)
        return await vpic(request, format, "makes_for_manufacturer_and_year",
                          {"mfr_id": mfr_id, "mfr_like": mfr_like, "year": year},
                          lambda rows: f.envelope(rows, f.MSG_RESPONSE,
                                                  f"Manufacturer : {manufacturer}, Year: {year}"),
                          "MakesForMfrAndYear")

    def make_types(make: str | None, make_id: int | None, vt: str | None) -> dict[str, Any]:
        if make_id is not None:
            m_id, m_like = make_id, None
        else:
            m_id, m_like = (None, like_pattern(make.strip())) if make else (None, None)
        vt_id, vt_like = id_or_like(vt) if vt else (None, None)
        return {"make_id": m_id, "make_like": m_like, "vt_id": vt_id, "vt_like": vt_like}

    @app.get(PREFIX + "/GetMakesForVehicleType/{vehicletype}", tags=tags, summary="Makes of a vehicle type")
    async def makes_for_type(request: Request, vehicletype: Name, format: Fmt = None) -> Response:
        return await vpic(request, format, "make_vehicle_types", make_types(None, None, vehicletype),
                          lambda rows: f.envelope(rows, f.MSG_RESPONSE, f"Vehicle Type: {vehicletype}"),
                          "MakesForVehicleType")

    @app.get(PREFIX + "/GetVehicleTypesForMake/{makename}", tags=tags, summary="Vehicle types of makes by name")
    async def types_for_make(request: Request, makename: Name, format: Fmt = None) -> Response:
        return await vpic(request, format, "make_vehicle_types", make_types(makename, None, None),
                          lambda rows: f.envelope(rows, f.MSG_RESPONSE, f"Make: {makename}"),
                          "VehicleTypesForMake")

    @app.get(PREFIX + "/GetVehicleTypesForMakeId/{makeid}", tags=tags, summary="Vehicle types of a make id")
    async def types_for_make_id(request: Request, makeid: Id, format: Fmt = None) -> Response:
        def build(rows: list[dict[str, Any]]) -> dict[str, Any]:
            res = [{"VehicleTypeId": r["VehicleTypeId"], "VehicleTypeName": r["VehicleTypeName"]} for r in rows]
            return f.envelope(res, f.MSG_RESPONSE, f"Make ID: {makeid}")
        return await vpic(request, format, "make_vehicle_types", make_types(None, makeid, None),
                          build, "VehicleTypesForMakeIds")

    def models(request: Request, format: str | None, make: str | None, make_id: int | None, year: int | None,
               vt: str | None, criteria: str, message: str) -> Awaitable[Response]:
        params = make_types(make, make_id, vt) | {"year": year, "with_type": vt is not None}

        def build(rows: list[dict[str, Any]]) -> dict[str, Any]:
            drop = () if vt is not None else ("VehicleTypeId", "VehicleTypeName")
            return f.envelope([{k: v for k, v in r.items() if k not in drop} for r in rows], message, criteria)
        return vpic(request, format, "models", params, build, "MakeModels")

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
        return await vpic(request, format, "variables", {},
                          lambda rows: f.envelope(rows, f.MSG_RESULTS, None), "VehicleVariablesList")

    @app.get(PREFIX + "/GetVehicleVariableValuesList/{variable}", tags=tags, summary="Values of a lookup variable")
    async def variable_values(request: Request, variable: Name, format: Fmt = None) -> Response:
        vid = int(variable) if is_number(variable.strip()) and int(variable) <= INT4 else None
        return await vpic(request, format, "variable_values", {"id": vid, "name": variable.strip()},
                          lambda rows: f.envelope(rows, f.MSG_RESULTS, f"Variable:{variable}"),
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

        def build(rows: list[dict[str, Any]]) -> dict[str, Any]:
            res = [{"Country": None, "Mfr_CommonName": None, "Mfr_ID": r["manufacturer_id"],
                    "Mfr_Name": r["manufacturer_name"], "VehicleTypes": []} for r in rows]
            return f.envelope(res, f.MSG_RESPONSE, None)
        return await vpic(request, format, "manufacturers", params, build, "Manufacturers")

    @app.get(PREFIX + "/GetManufacturerDetails/{manufacturer}", tags=tags, summary="Details of manufacturers")
    async def manufacturer_details(request: Request, manufacturer: Name, format: Fmt = None) -> Response:
        mfr_id, mfr_like = id_or_like(manufacturer)
        params = {"mfr_id": mfr_id, "mfr_like": mfr_like, "limit": 1000, "offset": 0}

        def build(rows: list[dict[str, Any]]) -> dict[str, Any]:
            res = [dict(DETAIL_TEMPLATE, Mfr_ID=r["manufacturer_id"], Mfr_Name=r["manufacturer_name"],
                        EquipmentItems=[], ManufacturerTypes=[], VehicleTypes=[]) for r in rows]
            return f.envelope(res, f.MSG_RESPONSE, None)
        return await vpic(request, format, "manufacturers", params, build, "ManufacturerDetails")


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
        if CONTROL_CHARS.search(part):
            raise BadRequest("control characters are not allowed in data")
        if len(vin) > MAX_TEXT:
            raise BadRequest(f"a VIN in data is longer than {MAX_TEXT} characters")
        if year and not (is_number(year) and 1 <= int(year) <= 9999):
            raise BadRequest(f"model year {year!r} in data is not a year")
        entries.append((vin, int(year) if year else None))
        if len(entries) > MAX_BATCH:
            raise BadRequest(f"at most {MAX_BATCH} VINs per batch (NHTSA's limit)")
    if not entries:
        raise BadRequest("form field data is empty: give VIN[,modelyear];VIN[,modelyear]...")
    return entries
