"""`vehicle-etl serve`: NHTSA's vPIC paths and the app's paths, on a real catalog built from the sample.

Most tests call the ASGI app in-process (Starlette's TestClient, which runs the app's lifespan and
its real connection pool against real PostgreSQL); test_server_process starts the real command as
a process on a free loopback port. Recorded NHTSA answers: tests/data/nhtsa (PROVENANCE.md).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from conftest import TEST_PG, build_catalog, create_database, drop_database, dsn
from starlette.testclient import TestClient

from vehicle_etl.release import channel as release_channel
from vehicle_etl.serving.decode import ensure_reader_role
from vehicle_etl.serving.vpic_api.app import create_app

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "nhtsa"
VIN = "5YJ3A1E12HF000001"  # Tesla Model 3 2017, in the sample
RUN_ID = "api-test-run"
ENVELOPE = ["Count", "Message", "SearchCriteria", "Results"]


@pytest.fixture(scope="module")
def db(sample_url: str) -> Iterator[str]:
    name = create_database("vetl_api")
    try:
        build_catalog(name, sample_url, info=("sample", "test", RUN_ID))  # what the pipeline's swap writes
        with psycopg.connect(dsn(name), autocommit=True) as conn:
            ensure_reader_role(conn)
        yield name
    finally:
        drop_database(name)


@pytest.fixture(scope="module")
def sql(db: str) -> Iterator[psycopg.Connection]:
    # application_name: spared when test_health_and_paths_503... drops the service's connections
    with psycopg.connect(dsn(db), autocommit=True, application_name="keep") as conn:
        yield conn


@pytest.fixture(scope="module")
def client(db: str) -> Iterator[TestClient]:
    with TestClient(create_app(dsn(db), pool_size=4, recheck_seconds=60), raise_server_exceptions=False) as c:
        yield c


def get(client: TestClient, path: str, **params: Any) -> httpx.Response:
    return client.get("/api/vehicles/" + path, params=params)


def body(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    data = r.json()
    assert list(data) == ENVELOPE
    assert isinstance(data["Count"], int) and isinstance(data["Message"], str)
    return data


# --- recorded NHTSA answers: same request, same shape ------------------------------------------------

def fixtures() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) | {"name": p.stem} for p in sorted(FIXTURES.glob("*.json"))]


def local(client: TestClient, rec: dict[str, Any]) -> httpx.Response:
    url = urlsplit(rec["url"])
    path = url.path.removeprefix("/api")
    if rec.get("post_data"):
        return client.post("/api" + path + "?" + url.query, data=rec["post_data"])
    return client.get("/api" + path + "?" + url.query)


@pytest.mark.parametrize("rec", fixtures(), ids=lambda r: r["name"])
def test_shape_matches_recorded_nhtsa_answer(client: TestClient, rec: dict[str, Any]) -> None:
    want = rec["content"]
    got = body(local(client, rec))
    assert got["Message"] == want["Message"]
    assert got["SearchCriteria"] == want["SearchCriteria"]
    if not (got["Results"] and want["Results"]):
        return
    ours, theirs = got["Results"][0], want["Results"][0]
    if "ErrorCode" in theirs:  # the flat decode: every key NHTSA prints, in NHTSA's ordinal order, strings
        assert set(theirs) <= set(ours)
        assert list(ours) == sorted(ours)
        assert all(isinstance(v, str) for r in got["Results"] for v in r.values())
    else:
        assert list(ours) == list(theirs)
    for key, value in theirs.items():
        # the type NHTSA prints; null where the catalog does not hold the field (docs/API.md)
        if value is not None:
            assert ours[key] is None or type(ours[key]) is type(value), (key, ours[key], value)


@pytest.mark.parametrize("name", ["get-models-for-make-year", "get-models-for-makeid-year",
                                  "get-models-for-make-year-vehicletype", "get-models-for-makeid-year-vehicletype"])
def test_values_equal_recorded_answer_where_history_cannot_drift(client: TestClient, name: str) -> None:
    """Tesla's models of 2020/2021, recorded from NHTSA in 2021, are the same on the sample's release."""
    rec = json.loads((FIXTURES / f"{name}.json").read_text())
    got = body(local(client, rec))
    assert got["Results"] == rec["content"]["Results"]
    assert got["Count"] == rec["content"]["Count"]


def test_decode_vin_rows_as_nhtsa_prints_them(client: TestClient) -> None:
    rows = body(get(client, f"DecodeVin/{VIN}", format="json"))["Results"]
    assert [r["VariableId"] for r in rows[:5]] == [142, 143, 144, 156, 191]  # NHTSA's first five
    by = {r["Variable"]: r for r in rows}
    assert list(rows[0]) == ["Value", "ValueId", "Variable", "VariableId"]
    assert by["Make"]["Value"] == "TESLA" and by["Make"]["ValueId"].isdigit()
    assert by["Error Code"]["Value"] == by["Error Code"]["ValueId"] == "0"
    assert by["Vehicle Type"] == {"Value": "PASSENGER CAR", "ValueId": "2", "Variable": "Vehicle Type",
                                  "VariableId": 39}
    assert by["Model Year"]["ValueId"] == ""  # a text variable
    assert by["Suggested VIN"]["Value"] == "" and by["Additional Error Text"]["Value"] is None


# --- the same answers as the SQL functions ---------------------------------------------------------

def test_decode_answers_equal_the_sql_function(client: TestClient, sql: psycopg.Connection) -> None:
    for vin, year in ((VIN, None), (VIN, 2019), ("5YJ3A1E1", None), ("KNDJ23AU4N7000001", None)):
        want = sql.execute("SELECT vehicles.decode_vin(%s, %s)", (vin, year)).fetchone()[0]  # type: ignore[index]
        params = {"format": "json"} | ({"modelyear": year} if year else {})
        got = body(get(client, f"DecodeVinValues/{vin}", **params))["Results"][0]
        assert {k: v for k, v in got.items() if k in want} == want
        assert got["VIN"] == vin.upper()


def test_batch_equals_decode_vin_per_vin(client: TestClient, sql: psycopg.Connection) -> None:
    entries = [(VIN, None), (VIN, 2018), ("5YJ3A1E1", None), ("IOQ" + VIN[3:], None), ("KNDJ23AU4N7000001", 2022)]
    data = ";".join(v if y is None else f"{v}, {y}" for v, y in entries)
    got = body(client.post("/api/vehicles/DecodeVINValuesBatch/", data={"format": "json", "data": data}))
    assert got["Count"] == len(entries) and got["SearchCriteria"] == ""
    for (vin, year), res in zip(entries, got["Results"], strict=True):
        want = sql.execute("SELECT vehicles.decode_vin(%s, %s)", (vin, year)).fetchone()[0]  # type: ignore[index]
        assert {k: v for k, v in res.items() if k in want} == want


@pytest.mark.parametrize(("path", "call", "params"), [
    ("makes", "dropdown_makes(2020, false)", {"model_year": 2020}),
    ("makes", "dropdown_makes(NULL, true)", {"all_types": "true"}),
    ("models", "dropdown_models(441, 2020)", {"make_id": 441, "model_year": 2020}),
    ("trims", "dropdown_trims(441, 17834, 2020)", {"make_id": 441, "model_id": 17834, "model_year": 2020}),
    ("engines", "dropdown_engines(441, 17834, 2020)", {"make_id": 441, "model_id": 17834, "model_year": 2020}),
    ("transmissions", "dropdown_transmissions(441, 17834, 2020)",
     {"make_id": 441, "model_id": 17834, "model_year": 2020}),
])
def test_dropdowns_return_exactly_the_function_rows(client: TestClient, sql: psycopg.Connection, path: str,
                                                    call: str, params: dict[str, Any]) -> None:
    cur = sql.execute(f"SELECT * FROM vehicles.{call}")
    names = [c.name for c in cur.description or []]
    want = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    r = get(client, f"dropdown/{path}", **params)
    assert r.status_code == 200 and r.json() == want
    assert all(list(row) == names for row in r.json())
    if path == "makes":
        assert want  # the comparison compared rows


# --- formats and case-insensitivity --------------------------------------------------------------

def test_xml_is_nhtsas_default_and_csv_has_the_results(client: TestClient) -> None:
    r = get(client, "GetModelsForMakeId/441")
    assert r.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(r.content)
    assert [c.tag for c in root] == ["Count", "Message", "SearchCriteria", "Results"]
    items = list(root.find("Results"))  # type: ignore[arg-type]
    assert len(items) == int(root.findtext("Count")) > 0  # type: ignore[arg-type]
    assert items[0].tag == "MakeModels" and items[0].findtext("Make_Name") == "TESLA"
    assert ET.fromstring(get(client, "GetAllMakes", format="xml").content).find("SearchCriteria") is None  # null

    r = get(client, "GetModelsForMakeId/441", format="CSV")
    assert r.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(r.text)))
    assert lines[0] == ["make_id", "make_name", "model_id", "model_name"]
    assert len(lines) - 1 == body(get(client, "GetModelsForMakeId/441", format="json"))["Count"]
    flat = list(csv.DictReader(io.StringIO(get(client, f"DecodeVinValues/{VIN}", format="csv").text)))
    assert len(flat) == 1 and flat[0]["make"] == "TESLA" and flat[0]["modelyear"] == "2017"


def test_paths_and_parameters_are_case_insensitive(client: TestClient) -> None:
    canonical = client.get(f"/api/vehicles/DecodeVinValues/{VIN}?format=json&modelyear=2017")
    for variant in (f"/API/Vehicles/decodevinvalues/{VIN}?FORMAT=JSON&ModelYear=2017",
                    f"/api/vehicles/DECODEVINVALUES/{VIN.lower()}?Format=json&MODELYEAR=2017"):
        r = client.get(variant)
        assert r.status_code == 200
        assert r.json()["Results"] == canonical.json()["Results"]
    a = client.get("/api/vehicles/getmodelsformakeyear/MAKE/tesla/ModelYear/2020/VehicleType/car?format=json")
    b = client.get("/api/vehicles/GetModelsForMakeYear/make/TESLA/modelyear/2020/vehicletype/Car?format=json")
    assert a.status_code == 200 and a.json()["Results"] == b.json()["Results"] and a.json()["Count"] > 0
    assert client.get("/api/vehicles/getmodelsformakeidyear/MAKEID/441/modelyear/2020?format=json").json()["Count"] > 0


# --- caching -----------------------------------------------------------------------------------

def announce_run(sql: psycopg.Connection, run_id: str) -> None:
    """What a swap changes, and how it tells the service: catalog_info and the NOTIFY, in one transaction."""
    with sql.transaction():
        sql.execute("UPDATE vehicles.catalog_info SET run_id = %s", (run_id,))
        release_channel.announce(sql, "sample", run_id)


def until(check: Any, seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.01)
    return result


def test_version_header_etag_and_304_until_the_release_changes(client: TestClient, sql: psycopg.Connection) -> None:
    path = f"DecodeVinValues/{VIN}"
    r = get(client, path, format="json")
    assert r.headers["X-Vpic-Data-Version"] == f"sample; run={RUN_ID}"
    etag = r.headers["ETag"]
    assert r.headers["Cache-Control"] == "public, no-cache"
    assert get(client, path, format="xml").headers["ETag"] != etag  # one tag per representation
    again = client.get(f"/api/vehicles/{path}", params={"format": "json"}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    try:
        announce_run(sql, "next-run")
        # The client fixture re-checks only every 60 s: the notification is what makes this change.
        after = until(lambda: (a := client.get(f"/api/vehicles/{path}", params={"format": "json"},
                                               headers={"If-None-Match": etag})).status_code == 200 and a)
        assert after.headers["ETag"] != etag
        assert after.headers["X-Vpic-Data-Version"] == "sample; run=next-run"
    finally:
        announce_run(sql, RUN_ID)
        until(lambda: get(client, path, format="json").headers["X-Vpic-Data-Version"] == f"sample; run={RUN_ID}")
    d = get(client, "dropdown/makes", model_year=2020)
    assert client.get("/api/vehicles/dropdown/makes?model_year=2020",
                      headers={"If-None-Match": d.headers["ETag"]}).status_code == 304


# --- bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("vin", "code"), [("5YJ", "6"), ("5YJ3A1E12HF00000O", "400"), ("IOQ3A1E12HF000001", "7"),
                                           ("5YJ3A1E12HF000001" + "Z" * 60, "0"), ("*", "6")])
def test_bad_vins_get_nhtsas_error_codes(client: TestClient, vin: str, code: str) -> None:
    res = body(get(client, f"DecodeVinValues/{vin}", format="json"))["Results"][0]
    assert code in res["ErrorCode"].split(","), res["ErrorCode"]
    assert res["ErrorText"]


@pytest.mark.parametrize("path", ["GetModelsForMake/NO SUCH MAKE", "GetModelsForMakeId/999999999",
                                  "GetVehicleTypesForMake/zzzzqq", "DecodeWMI/QQQ", "DecodeWMI/TOOLONGWMI",
                                  "GetModelsForMake/'; DROP TABLE vehicles.make; --", "GetModelsForMake/%25",
                                  "GetManufacturerDetails/9999999999999", "GetVehicleVariableValuesList/nothing",
                                  "GetAllManufacturers?ManufacturerType=Incomplete&", "GetMakesForVehicleType/_"])
def test_unknown_names_give_count_zero(client: TestClient, sql: psycopg.Connection, path: str) -> None:
    sep = "&" if "?" in path else "?"
    data = body(client.get(f"/api/vehicles/{path}{sep}format=json"))
    assert data["Count"] == 0 and data["Results"] == []
    assert sql.execute("SELECT count(*) FROM vehicles.make").fetchone()[0] > 0  # type: ignore[index]


def test_hostile_requests_get_a_clear_4xx(client: TestClient) -> None:
    cases: list[tuple[httpx.Response, int, str]] = [
        (client.get("/api/vehicles/DecodeVinValues/5YJ%00X?format=json"), 400, "control characters"),
        (client.get("/api/vehicles/GetModelsForMake/TES%0ALA?format=json"), 400, "control characters"),
        (client.get("/api/vehicles/GetAllMakes?format=json&x=" + "a" * 3000), 414, "longer than"),
        (client.get("/api/vehicles/GetModelsForMake/" + "A" * 150 + "?format=json"), 400, "at most 100"),
        (client.get("/api/vehicles/GetAllMakes?format=yaml"), 400, "format must be"),
        (client.get("/api/vehicles/GetModelsForMakeId/99999999999?format=json"), 400, "makeid"),
        (client.get("/api/vehicles/DecodeVinValues/5YJ?modelyear=abc&format=json"), 400, "modelyear"),
        (client.get("/api/vehicles/GetMakesForManufacturerAndYear/988?format=json"), 400, "year"),
        (client.get("/api/vehicles/dropdown/trims?make_id=441"), 400, "model_id"),
        (client.post("/api/vehicles/DecodeVINValuesBatch/", data={"data": ";".join([VIN] * 51)}), 400, "at most 50"),
        (client.post("/api/vehicles/DecodeVINValuesBatch/", data={"data": ""}), 400, "empty"),
        (client.post("/api/vehicles/DecodeVINValuesBatch/", data={"data": f"{VIN},19x5"}), 400, "not a year"),
        (client.post("/api/vehicles/DecodeVINValuesBatch/", data={"data": f"{VIN},²"}), 400, "not a year"),
        (client.post("/api/vehicles/DecodeVINValuesBatch/", data={"data": "A" * 20_000}), 413, "larger than"),
    ]
    for r, status, words in cases:
        assert r.status_code == status, (r.request.url, r.status_code, r.text)
        assert words in r.json()["Message"], r.json()


def test_a_unicode_digit_is_a_name_not_an_id(client: TestClient) -> None:
    """'²' is a digit to str.isdigit() but not to int(): found by schemathesis as a 500."""
    for path in ("GetMakesForVehicleType/²", "GetVehicleTypesForMake/²", "GetWMIsForManufacturer/²",
                 "GetVehicleVariableValuesList/²", "GetManufacturerDetails/²"):
        assert body(get(client, path, format="json"))["Count"] == 0, path


def test_writes_are_impossible_through_the_service(client: TestClient) -> None:
    assert client.delete("/api/vehicles/GetAllMakes").status_code == 405
    assert client.post("/api/vehicles/GetAllMakes").status_code == 405


# --- health ---------------------------------------------------------------------------------------

def test_health_names_the_live_release(client: TestClient) -> None:
    r = get(client, "health")
    assert r.status_code == 200
    h = r.json()
    assert (h["status"], h["database"], h["release"], h["run_id"]) == ("ok", "reachable", "sample", RUN_ID)
    assert h["built_at"]


def test_health_and_paths_503_while_the_database_refuses_connections(client: TestClient, db: str) -> None:
    """The database stops accepting connections and drops the service's: 503, not 500; then recovery."""
    with psycopg.connect(TEST_PG, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false')
        try:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                          "AND pid <> pg_backend_pid() AND application_name <> 'keep'", (db,))
            r = get(client, "health")
            assert r.status_code == 503 and r.json()["database"] == "unreachable"
            d = get(client, f"DecodeVinValues/{VIN}", format="json")
            assert d.status_code == 503 and "unavailable" in d.json()["Message"]
        finally:
            admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')
    deadline = time.monotonic() + 20
    while get(client, "health").status_code != 200:
        assert time.monotonic() < deadline, "the pool did not reconnect"
        time.sleep(0.2)


def test_health_503_when_the_database_is_down_at_start() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    app = create_app(f"host=127.0.0.1 port={port} dbname=x user=x connect_timeout=1", pool_size=1)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/api/vehicles/health")
        assert r.status_code == 503 and r.json()["status"] == "unavailable"
        assert c.get("/api/vehicles/GetAllMakes?format=json").status_code == 503


def test_every_request_runs_as_the_reader_role(db: str) -> None:
    """A login user that is not a member of mvp_platform_reader cannot SET ROLE: the service answers
    503 naming the problem, instead of reading with the login user's own rights."""
    role = f"vetl_api_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(TEST_PG, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'GRANT CONNECT ON DATABASE "{db}" TO "{role}"')
        try:
            info = psycopg.conninfo.conninfo_to_dict(dsn(db)) | {"user": role}
            with TestClient(create_app(psycopg.conninfo.make_conninfo(**info), pool_size=1),
                            raise_server_exceptions=False) as c:
                r = c.get("/api/vehicles/GetAllMakes?format=json")
                assert r.status_code == 503 and "permission denied to set role" in r.json()["Message"]
                admin.execute(f'GRANT mvp_platform_reader TO "{role}"')
                r = c.get("/api/vehicles/GetAllMakes?format=json")
                assert r.status_code == 200 and r.json()["Count"] > 0
        finally:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
            admin.execute(f'REVOKE ALL ON DATABASE "{db}" FROM "{role}"')
            admin.execute(f'DROP ROLE "{role}"')


# --- OpenAPI, schemathesis, and the real process ----------------------------------------------

NHTSA_PATHS = ["DecodeVin", "DecodeVinValues", "DecodeVinExtended", "DecodeVinValuesExtended", "DecodeVINValuesBatch",
               "DecodeWMI", "GetWMIsForManufacturer", "GetAllMakes", "GetMakesForManufacturerAndYear",
               "GetMakesForVehicleType", "GetVehicleTypesForMake", "GetVehicleTypesForMakeId", "GetModelsForMake",
               "GetModelsForMakeId", "GetModelsForMakeYear", "GetModelsForMakeIdYear", "GetVehicleVariableList",
               "GetVehicleVariableValuesList", "GetAllManufacturers", "GetManufacturerDetails"]


def test_openapi_lists_every_path(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    names = {p.split("/")[3] for p in doc["paths"]}
    assert set(NHTSA_PATHS) | {"dropdown", "health"} <= names


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_env(db: str, tmp: Path, **extra: str) -> dict[str, str]:
    info = psycopg.conninfo.conninfo_to_dict(TEST_PG)
    return os.environ | {"MVP_PLATFORM_DB_HOST": str(info.get("host", "127.0.0.1")),
                         "MVP_PLATFORM_DB_PORT": str(info.get("port", "5432")), "MVP_PLATFORM_DB_NAME": db,
                         "MVP_PLATFORM_DB_USER": str(info.get("user", "postgres")),
                         "MVP_PLATFORM_DB_PASSWORD": str(info.get("password", "")), "VEHICLE_ETL_HOME": str(tmp),
                         "VEHICLE_ETL_MARKER_DIR": str(tmp / "markers")} | extra


@contextlib.contextmanager
def serving(db: str, tmp: Path, **extra: str) -> Iterator[str]:
    """`vehicle-etl serve` as a user starts it: a process on loopback, configured by MVP_PLATFORM_DB_*
    (and `extra` settings); stopped by its PID."""
    port = free_port()
    exe = Path(sys.executable).with_name("vehicle-etl")
    log_path = tmp / f"serve-{uuid.uuid4().hex[:6]}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(exe), "serve", "--port", str(port)], env=serve_env(db, tmp, **extra),
                                stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if httpx.get(base + "/api/vehicles/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "serve did not become healthy: " + log_path.read_text()
                time.sleep(0.2)
            yield base
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def server(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(db, tmp_path_factory.mktemp("serve")) as base:
        yield base


def test_server_process(server: str) -> None:
    base = server + "/api/vehicles"
    r = httpx.get(f"{base}/DecodeVinValues/{VIN}?format=json")
    assert r.status_code == 200 and r.json()["Results"][0]["Model"] == "Model 3"
    assert httpx.get(f"{base}/DecodeVinValues/{VIN}?format=json",
                     headers={"If-None-Match": r.headers["ETag"]}).status_code == 304
    b = httpx.post(f"{base}/DecodeVINValuesBatch/", data={"format": "json", "data": f"{VIN};{VIN},2018"})
    assert b.json()["Count"] == 2
    assert httpx.get(f"{base}/dropdown/makes?model_year=2020").json()[0].keys() == {"Make_ID", "Make_Name"}
    assert "server" not in httpx.get(f"{base}/GetAllMakes?format=json").headers
    addr = next((a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
                 if not a[4][0].startswith("127.")), None)
    if addr:  # bound to loopback only: another address of this machine is refused
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://{addr}:{server.rsplit(':', 1)[1]}/api/vehicles/health", timeout=2)


def test_schemathesis_finds_no_server_error(server: str) -> None:
    """Property-based requests generated from the served OpenAPI document, sent to the real process:
    no answer is a 5xx (bad input is a 4xx or NHTSA's answer for it)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(server + "/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call()
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query}: {response.status_code} "
                                f"{response.text[:200]}")

        check()
    assert operations >= 25
    assert not failures, failures[:10]


# --- the answer cache: bounded, per release, invalidated by the swap's NOTIFY -------------------

@contextlib.contextmanager
def make_locked(db: str) -> Iterator[None]:
    """vehicles.make locked against every reader: a request that reads the database waits."""
    with psycopg.connect(dsn(db), autocommit=True) as conn, conn.transaction():
        conn.execute("LOCK TABLE vehicles.make IN ACCESS EXCLUSIVE MODE")
        yield


def answered_without_the_database(url: str) -> bool:
    """Under make_locked: True when answered at once (from the cache), False when the read waited."""
    try:
        r = httpx.get(url, timeout=3.0)
    except httpx.ReadTimeout:
        return False
    assert r.status_code == 200, r.text
    return True


def test_cache_answers_repeats_without_the_database_and_keeps_at_most_its_bound(
        db: str, tmp_path: Path) -> None:
    """A server keeping 2 answers: repeats come from the cache (the database is locked and they
    still answer), the least recently used third is evicted (it waits for the database again)."""
    with serving(db, tmp_path, VPIC_API_CACHE_ENTRIES="2") as base:
        p1, p2, p3 = (f"{base}/api/vehicles/{p}" for p in (
            "GetModelsForMakeId/441?format=json", "GetAllMakes?format=json", "GetModelsForMake/tesla?format=json"))
        first = {p: httpx.get(p) for p in (p1, p2)}
        with make_locked(db):
            assert answered_without_the_database(p1) and answered_without_the_database(p2)
            assert httpx.get(p1).content == first[p1].content
            assert {k: v for k, v in httpx.get(p2).headers.items() if k != "date"} == {
                k: v for k, v in first[p2].headers.items() if k != "date"}
            assert not answered_without_the_database(p3)  # never asked: read from the (locked) database
        until(lambda: httpx.get(p3).status_code == 200)  # now kept; p1 (least recently used) evicted
        with make_locked(db):
            assert answered_without_the_database(p3) and answered_without_the_database(p2)
            assert not answered_without_the_database(p1)
        # the ETag of a kept answer still gives 304
        assert httpx.get(p2, headers={"If-None-Match": first[p2].headers["ETag"]}).status_code == 304


def test_answer_cache_bound_in_bytes() -> None:
    from vehicle_etl.serving.vpic_api.answer_cache import Answer, AnswerCache
    from vehicle_etl.serving.vpic_api.catalog import Version

    v = Version("r", "run", None)
    cache = AnswerCache(max_bytes=64 * 1024)
    cache.learn(v)
    for i in range(100):
        cache.offer((f"/p/{i}".encode(), b""), Answer(v, b"x" * 2000, [], "e", []), cache.generation)
    assert cache.size <= 64 * 1024 and 20 < len(cache) < 32 and cache.evictions == 100 - len(cache)
    assert cache.get((b"/p/99", b"")) is not None and cache.get((b"/p/0", b"")) is None
    cache.offer((b"/big", b""), Answer(v, b"x" * 9000, [], "e", []), cache.generation)  # > an eighth: not kept
    assert cache.get((b"/big", b"")) is None
    # an answer read from another release while the server learned something is never kept
    cache.offer((b"/other", b""), Answer(Version("s", "run2", None), b"y", [], "e", []), cache.generation - 1)
    assert cache.version == v and cache.get((b"/other", b"")) is None
    assert cache.learn(Version("s", "run2", None)) and len(cache) == 0 and cache.size == 0


@pytest.fixture
def two_releases(sample_url: str, tmp_path: Path) -> Iterator[str]:
    """A database with release sample-a as previous and sample-b live; B's make 441 is 'Tesla B'."""
    from vehicle_etl.release import history, swap
    from vehicle_etl.source.connect import open_source
    from vehicle_etl.staging import derived, load

    name = create_database("vetl_api_swap")
    try:
        build_catalog(name, sample_url, info=("sample-a", "t", "run-a"))
        with psycopg.connect(dsn(name), autocommit=True) as conn:
            ensure_reader_role(conn)
            history.ensure_schema(conn)
            load.prepare_staging(conn)
            load.extract_load(open_source(sample_url), dsn(name), 20000)
            derived.repair(conn)
            derived.derive(conn)
            load.build_keys(conn)
            conn.execute("UPDATE vehicles_staging.make SET make_name = make_name || ' B' WHERE make_id = 441")
            # catalog_info goes live with its version, as the pipeline's swap step writes it
            conn.execute("INSERT INTO vehicles_staging.catalog_info (release, source, run_id) "
                         "VALUES ('sample-b', 't', 'run-b')")
            swap.promote(conn)
            ensure_reader_role(conn)  # the reader reads the views of `vehicles`, whichever version is live
        yield name
    finally:
        drop_database(name)


def test_a_swap_reaches_the_running_service_by_notify_and_no_answer_mixes_releases(
        two_releases: str, tmp_path: Path) -> None:
    """Clients hammer kept answers while `vehicle-etl rollback` (the pipeline's swap, with its
    NOTIFY) flips the live release twice. The service re-checks only every 600 s, so only the
    notification can tell it. Every answer's body is the release its header names; once a swap has
    committed, the new release is served within the notification's delivery and never the old again."""
    db = two_releases
    want = {"sample-a": "TESLA", "sample-b": "TESLA B"}
    with serving(db, tmp_path, VPIC_API_RECHECK_SECONDS="600") as base:
        paths = [f"{base}/api/vehicles/GetModelsForMakeId/441?format=json",
                 f"{base}/api/vehicles/GetAllMakes?format=json"]
        seen: list[tuple[float, float, str, str]] = []  # started, ended, release in the header, make 441 in the body
        stop = threading.Event()

        def hammer() -> None:
            with httpx.Client(timeout=10) as c:
                while not stop.is_set():
                    for p in paths:
                        t0 = time.monotonic()
                        r = c.get(p)
                        assert r.status_code == 200, r.text
                        name = next(x["Make_Name"] for x in r.json()["Results"] if x["Make_ID"] == 441)
                        seen.append((t0, time.monotonic(), r.headers["X-Vpic-Data-Version"].split(";")[0], name))

        for p in paths:
            assert httpx.get(p).headers["X-Vpic-Data-Version"] == "sample-b; run=run-b"
        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        swaps: list[tuple[float, float, str]] = []  # rollback started, rollback committed (returned), release
        try:
            time.sleep(0.5)
            for release in ("sample-a", "sample-b"):
                started = time.monotonic()
                out = subprocess.run([str(Path(sys.executable).with_name("vehicle-etl")), "rollback"],
                                     env=serve_env(db, tmp_path), capture_output=True, text=True, timeout=120)
                assert out.returncode == 0, out.stdout + out.stderr
                swaps.append((started, time.monotonic(), release))  # the swap has committed
                time.sleep(2.5)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert len(seen) > 100
        assert all(want[rel] == name for _, _, rel, name in seen), "an answer mixed two releases"
        releases = [rel for _, _, rel, _ in seen]
        assert {"sample-a", "sample-b"} <= set(releases)
        for i, (_, committed, release) in enumerate(swaps):
            until_next = swaps[i + 1][0] if i + 1 < len(swaps) else float("inf")  # the next rollback began
            after = [(t0, t1, rel) for t0, t1, rel, _ in seen if committed + 1.0 < t0 < until_next]
            assert after and all(rel == release for _, _, rel in after), f"old release served after {release}"
            # never back to the old release once a client got the new one
            first_new = min(t1 for t0, t1, rel, _ in seen if rel == release and t0 > swaps[i][0])
            assert all(rel == release for t0, _, rel, _ in seen if first_new < t0 < until_next)
