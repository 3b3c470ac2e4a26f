"""Hostile input and least privilege, against real PostgreSQL.

- hostile release/source arguments are rejected before any SQL or file access (the platform
  database is pointed at a closed port: any SQL attempt would surface as a connection error);
- every SQL text with values is parameterised (an AST guard over vehicle_etl/**/*.py);
- the decoder and dropdown functions turn hostile values into NHTSA-style errors, never exceptions,
  within a statement_timeout;
- the app's reader role can call only the documented functions (complements tests/integration/test_reader_role.py);
- the ETL runs as its own non-superuser role `mvp_platform_etl` (grants in docs/RELIABILITY.md);
- a recognisable password never appears in logs, markers, run history, XCom values or error messages.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import TEST_PG, build_catalog, create_database, drop_database, dsn, settings_for
from psycopg import sql
from test_decode import VIN

from vehicle_etl import cli, pipeline
from vehicle_etl.config import PROJECT_ROOT, SAMPLE_DB, Settings, platform_conninfo
from vehicle_etl.errors import EtlError, SourceError
from vehicle_etl.release import history
from vehicle_etl.serving.decode import ensure_reader_role
from vehicle_etl.source import reference

CLI = Path(sys.executable).parent / "vehicle-etl"
PASSWORD = "Pw-Recognisable-9f3b"
SOURCE_PASSWORD = "Pw-Source-Recognisable-77c1"
ETL_ROLE = "mvp_platform_etl"
DOCUMENTED = {"decode_vin", "decode_vins", "dropdown_makes", "dropdown_models", "dropdown_trims",
              "dropdown_engines", "dropdown_transmissions", "make_by_id", "model_by_id"}
# Helpers the documented functions call (granted in include/sql/functions/90_grants.sql; they read
# only the catalog and write nothing).
HELPERS = {"decode_vin_pass", "vin_check_digit", "vin_model_year"}


# -- hostile arguments: rejected before any SQL or file access ---------------------------------
HOSTILE_RELEASES = ["2026_02; DROP SCHEMA vehicles", "../../etc", "2026_02'--", "x" * 10_000,
                    "2026_02\n", "２０２６_０２", "2026_00", "2026_02 OR 1=1"]
HOSTILE_SOURCES = [
    ("../../etc/passwd", "not a database URL|unsupported source type"),
    ("sqlite:///../../etc/passwd", r"'\.\.' is not allowed"),
    ("sqlite:///" + "x" * 10_000, "at most 500 printable characters"),
    ("postgresql+psycopg://vpic:hunter2@127.0.0.1/vpic", "must not carry a password"),
    ("mssql+pymssql://sa:hunter2@db/vPICList_Lite", "must not carry a password"),
    ("file:///etc/passwd", "unsupported source type 'file'"),
    ("http://example.invalid/vpic.db", "unsupported source type 'http'"),
    ("javascript:alert(1)", "not a database URL|unsupported source type"),
    ("sqlite:///tmp/x.db\n; DROP SCHEMA vehicles", "printable characters"),
    ("conn:mssql_source; DROP SCHEMA vehicles", "invalid Airflow connection reference"),
    ("conn:../../etc", "invalid Airflow connection reference"),
]


@pytest.fixture
def unreachable_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose platform database is a closed port: any SQL attempt fails with a connection error."""
    settings_for("never_created", tmp_path, monkeypatch)
    monkeypatch.setenv("MVP_PLATFORM_DB_PORT", "9")
    return Settings()


@pytest.mark.parametrize("release", HOSTILE_RELEASES, ids=lambda r: repr(r[:24]))
def test_hostile_release_rejected_before_any_sql(unreachable_platform: Settings, release: str) -> None:
    with pytest.raises(EtlError, match=r"invalid release") as info:
        pipeline.build_catalog(unreachable_platform, release=release)
    assert len(str(info.value)) < 200  # a 10 kB value is not echoed back
    assert not (unreachable_platform.home / "markers").exists()


@pytest.mark.parametrize(("source", "message"), HOSTILE_SOURCES, ids=lambda v: repr(str(v)[:24]))
def test_hostile_source_rejected_before_any_sql_or_file_access(
        unreachable_platform: Settings, source: str, message: str) -> None:
    with pytest.raises(SourceError, match=message) as info:
        pipeline.build_catalog(unreachable_platform, source=source)
    assert "hunter2" not in str(info.value) and len(str(info.value)) < 400


def test_hostile_cli_arguments_exit_1_with_one_line(unreachable_platform: Settings,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert cli.main(["build-catalog", "--release", "2026_02; DROP SCHEMA vehicles"]) == 1
    assert cli.main(["build-catalog", "--source", "sqlite:///../../etc/shadow"]) == 1
    assert cli.main(["build-catalog", "--source", "postgresql://u:hunter2@h/d"]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 3 and not any("hunter2" in e for e in errors)
    assert not any(r.exc_info for r in caplog.records)  # no traceback: a clear message


def test_dag_params_validate_release_and_bound_source() -> None:
    """The trigger form rejects what the pipeline would (Airflow validates Params before a run)."""
    from airflow.dag_processing.dagbag import DagBag

    params = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags["vpic_vehicle_etl"].params
    for bad in ("2026_02; DROP SCHEMA vehicles", "../../etc", "x" * 10_000):
        with pytest.raises(Exception, match="(?i)does not match|invalid"):
            params.get_param("release").resolve(bad)
    with pytest.raises(Exception, match="(?i)too long|invalid"):
        params.get_param("source").resolve("sqlite:///" + "x" * 10_000)
    assert params.get_param("release").resolve("2026_02") == "2026_02"










# -- the decoder and dropdowns under hostile values ------------------------------------------------
@pytest.fixture(scope="module")
def catalog_db(sample_url: str) -> Iterator[str]:
    name = create_database("vetl_sec")
    try:
        with psycopg.connect(dsn(name), autocommit=True) as conn:
            ensure_reader_role(conn)
        build_catalog(name, sample_url)
        with psycopg.connect(dsn(name), autocommit=True) as conn:
            ensure_reader_role(conn)
            conn.execute("CREATE SCHEMA IF NOT EXISTS etl")
            conn.execute("CREATE TABLE IF NOT EXISTS etl.run_history (id int)")
        yield name
    finally:
        drop_database(name)


@pytest.fixture
def reader(catalog_db: str) -> Iterator[psycopg.Connection]:
    """The app's view: role mvp_platform_reader, a 2 s statement_timeout (a slow call is an error)."""
    with psycopg.connect(dsn(catalog_db), autocommit=True) as conn:
        conn.execute("SET ROLE mvp_platform_reader")
        conn.execute("SET statement_timeout = '2s'")
        yield conn


HOSTILE_VINS = [
    None, "", " ", "x" * 10_240, "5" * 10_240, "Ä" * 17, "５ＹＪ３Ａ１Ｅ１２ＨＦ０００００１", "5YJ3A1E12HF00000😀",
    "\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14", "5YJ3A1E12HF\t00001",
    "'; DROP SCHEMA vehicles; --", "5YJ3A1E12HF00000'", "%%%%%%%%%%%%%%%%%", "_________________",
    "[A-Z]*.*+?(){}|^$", "5YJ3[^]E12HF000001", "5YJ3A1E12HF\\00001", "5YJ*A1E12HF000001", "\\" * 17,
]
# NHTSA normalises these (upper case, trimmed, first 17 characters): they may decode clean.
NORMALISED_VINS = [VIN.lower() + " ", VIN + VIN]


@pytest.mark.parametrize("vin", HOSTILE_VINS + NORMALISED_VINS, ids=lambda v: repr(v)[:20])
@pytest.mark.parametrize("year", [None, -1, 0, 1899, 2_147_483_647, -2_147_483_648])
def test_decode_vin_hostile_values_give_nhtsa_errors(reader: psycopg.Connection, vin: str | None,
                                                     year: int | None) -> None:
    res = reader.execute("SELECT vehicles.decode_vin(%s, %s)", (vin, year)).fetchone()[0]  # type: ignore[index]
    assert isinstance(res, dict) and res["ErrorCode"] and res["ErrorText"]
    assert "0" not in res["ErrorCode"].split(",") or vin in NORMALISED_VINS  # garbage never decodes clean
    assert all(c.isdigit() for c in res["ErrorCode"].replace(",", ""))


def test_decode_vins_hostile_batch(reader: psycopg.Connection) -> None:
    batch = HOSTILE_VINS * 20 + [VIN]
    rows = reader.execute("SELECT vin, result FROM vehicles.decode_vins(%s)", (batch,)).fetchall()
    assert len(rows) == len(batch)
    assert rows[-1][1]["ErrorCode"] == "0"
    assert all(r[1]["ErrorCode"] for r in rows)
    assert reader.execute("SELECT count(*) FROM vehicles.decode_vins(NULL)").fetchone()[0] == 0  # type: ignore[index]
    assert reader.execute("SELECT count(*) FROM vehicles.decode_vins('{}')").fetchone()[0] == 0  # type: ignore[index]


def test_nul_byte_is_refused_by_the_driver_not_the_server(reader: psycopg.Connection) -> None:
    with pytest.raises(psycopg.DataError, match="NUL"):
        reader.execute("SELECT vehicles.decode_vin(%s)", ("5YJ3A1E12HF\x0000001",))


INTS = [None, -1, 0, 2_147_483_647, -2_147_483_648]


@pytest.mark.parametrize("call", [
    "dropdown_makes(%s)", "dropdown_models(%s, %s)", "dropdown_trims(%s, %s, %s)",
    "dropdown_engines(%s, %s, %s)", "dropdown_transmissions(%s, %s, %s)",
])
def test_dropdowns_hostile_values_return_empty_lists(reader: psycopg.Connection, call: str) -> None:
    n = call.count("%s")
    for value in INTS:
        args = (value,) * n
        if call.startswith("dropdown_makes") and value in (None, 0):
            continue  # NULL and 0 mean "all years" (docs/API.md): a real list
        rows = reader.execute(f"SELECT * FROM vehicles.{call}", args).fetchall()
        assert rows == [], (call, value)


def test_dropdowns_reject_non_integers_at_the_type_boundary(reader: psycopg.Connection) -> None:
    """A string where an integer goes is a typed-parameter error before the function runs."""
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        reader.execute("SELECT * FROM vehicles.dropdown_models(%s::int, NULL)", ("1; DROP SCHEMA vehicles",))


# -- the reader role: only the documented functions ---------------------------------------------------
def test_reader_can_execute_only_documented_functions(catalog_db: str) -> None:
    with psycopg.connect(dsn(catalog_db)) as conn:
        rows = conn.execute(
            "SELECT p.proname, p.oid::regprocedure::text, has_function_privilege('mvp_platform_reader', p.oid, "
            "'EXECUTE'), p.prosecdef FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'vehicles'").fetchall()
        assert {r[0] for r in rows} >= DOCUMENTED
        executable = {r[0] for r in rows if r[2]}
        assert executable <= DOCUMENTED | HELPERS, executable - DOCUMENTED - HELPERS
        assert not [r[1] for r in rows if r[3]], "no SECURITY DEFINER function may run as the ETL's owner"
        # nor a function in another schema the ETL made
        other = conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname IN ('etl', 'vehicles_staging', 'vehicles_previous') "
            "AND has_function_privilege('mvp_platform_reader', p.oid, 'EXECUTE')").fetchall()
        assert other == []


@pytest.mark.parametrize("stmt", [
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_ls_dir('.')",
    "COPY (SELECT 1) TO '/tmp/evil'",
    "ALTER ROLE mvp_platform_reader SUPERUSER",
    "ALTER FUNCTION vehicles.decode_vin(text, integer) SECURITY DEFINER",
    "COMMENT ON SCHEMA vehicles IS 'x'",
])
def test_reader_cannot_escalate(reader: psycopg.Connection, stmt: str) -> None:
    with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedObject)):
        reader.execute(stmt)


def test_reader_cannot_pass_its_privileges_on(reader: psycopg.Connection) -> None:
    reader.execute("GRANT SELECT ON ALL TABLES IN SCHEMA vehicles TO PUBLIC")  # only a WARNING: no grant option
    reader.execute("GRANT EXECUTE ON FUNCTION vehicles.decode_vin(text, integer) TO PUBLIC")
    assert reader.execute("SELECT has_table_privilege('public', 'vehicles.make', 'SELECT'), "
                          "has_function_privilege('public', 'vehicles.decode_vin(text, integer)', 'EXECUTE')"
                          ).fetchone() == (False, False)


def test_a_login_app_user_in_the_reader_group(catalog_db: str) -> None:
    """The app's real login user (a member of the group), over TCP with a password: reads, never writes."""
    user = "vetl_sec_app"
    with psycopg.connect(TEST_PG, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE mvp_platform_reader").format(
            sql.Identifier(user), sql.Literal(PASSWORD)))
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn(catalog_db))
        with psycopg.connect(**{**info, "user": user, "password": PASSWORD}, autocommit=True) as app:
            assert app.execute("SELECT vehicles.decode_vin(%s)->>'Make'", (VIN,)).fetchone()[0] == "TESLA"  # type: ignore[index]
            for stmt in ("DELETE FROM vehicles.make", "SELECT * FROM etl.run_history", "SET ROLE postgres",
                         "CREATE TABLE vehicles.x (i int)", "SELECT vehicles.decode_vin_pass(NULL, NULL, NULL, NULL, "
                         "NULL, NULL) FROM vehicles_previous.make"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    app.execute(stmt)
    finally:
        with psycopg.connect(TEST_PG, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))


# -- the ETL's own role, and no password anywhere -------------------------------------------------
@pytest.fixture
def etl_role_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A fresh database the non-superuser role mvp_platform_etl can build into (grants as documented)."""
    name = create_database("vetl_etlrole")
    with psycopg.connect(TEST_PG, autocommit=True) as admin:
        admin.execute(f"""DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ETL_ROLE}') THEN
                CREATE ROLE {ETL_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
            END IF;
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mvp_platform_reader') THEN
                CREATE ROLE mvp_platform_reader NOLOGIN NOINHERIT;
            END IF; END $$""")
        admin.execute(sql.SQL("ALTER ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
            sql.Identifier(ETL_ROLE), sql.Literal(PASSWORD)))
        admin.execute(sql.SQL("GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {} TO {}").format(
            sql.Identifier(name), sql.Identifier(ETL_ROLE)))
    settings_for(name, tmp_path, monkeypatch)
    monkeypatch.setenv("MVP_PLATFORM_DB_USER", ETL_ROLE)
    monkeypatch.setenv("MVP_PLATFORM_DB_PASSWORD", PASSWORD)  # trust auth on 127.0.0.1: sent, not checked
    try:
        yield Settings()
    finally:
        drop_database(name)


def _scan(texts: dict[str, str]) -> list[str]:
    return [where for where, text in texts.items() if PASSWORD in text or SOURCE_PASSWORD in text]


def test_pipeline_runs_as_a_non_superuser_etl_role_and_never_leaks_a_password(
        etl_role_db: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = etl_role_db
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # 1. A successful run, as a CLI process at DEBUG (its extraction workers' output included).
    ok = subprocess.run([str(CLI), "-v", "build-catalog", "--release", "2026_02", "--json"], env=env,
                        capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stderr[-3000:]
    summary = json.loads(ok.stdout)
    with psycopg.connect(dsn(psycopg.conninfo.conninfo_to_dict(platform_conninfo(settings))["dbname"])) as c:
        owners = c.execute(
            "SELECT DISTINCT r.rolname, r.rolsuper FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_roles r ON r.oid = c.relowner WHERE n.nspname IN ('vehicles', 'etl') AND c.relkind = 'r'"
        ).fetchall()
        assert owners == [(ETL_ROLE, False)]
        assert c.execute("SELECT vehicles.decode_vin(%s)->>'Make'", (VIN,)).fetchone()[0] == "TESLA"  # type: ignore[index]

    # 2. Failing runs in-process at DEBUG: a source server that refuses (its URL carries a password
    #    from the environment), a broken file, and an unreachable platform database.
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    os.environ["VPIC_SOURCE_URL"] = f"postgresql+psycopg://vpic:{SOURCE_PASSWORD}@127.0.0.1:9/vpic"
    try:
        with pytest.raises(SourceError) as info:
            pipeline.build_catalog(Settings(), release="2026_03")
        errors.append(str(info.value))
        assert cli.main(["-v", "build-catalog", "--release", "2026_03"]) == 1  # the same, as logged
        ref = reference.source_ref(Settings(), None, "2026_03")
        xcom = json.dumps(ref.as_dict())  # what the DAG's restore task returns (XCom)
    finally:
        del os.environ["VPIC_SOURCE_URL"]
    bad = tmp_path / "not-vpic.db"
    bad.write_bytes(SAMPLE_DB.read_bytes()[:100] + b"\0" * 4096)
    with pytest.raises(EtlError) as info:
        pipeline.build_catalog(Settings(), source=f"sqlite:///{bad}")
    errors.append(str(info.value))
    os.environ["MVP_PLATFORM_DB_PORT"] = "9"
    try:
        with pytest.raises(psycopg.OperationalError) as op:
            pipeline.build_catalog(Settings())
        errors.append(str(op.value))
        assert cli.main(["status", "--json"]) == 1  # unreachable: reported, not a crash
    finally:
        os.environ["MVP_PLATFORM_DB_PORT"] = "5432"
    assert cli.main(["summary"]) == 1  # the last run failed
    assert cli.main(["status", "--json"]) == 1

    with psycopg.connect(dsn(psycopg.conninfo.conninfo_to_dict(platform_conninfo(settings))["dbname"])) as c:
        history_rows = [json.dumps(r, default=str) for r in history.recent_runs(c, 50)]
        activity = [str(r) for r in c.execute("SELECT * FROM pg_stat_activity").fetchall()]
    assert len(history_rows) == 4 and summary["status"] == "success"  # 1 success, 3 failed
    markers = {str(p): p.read_text() for p in settings.markers.glob("*.json")}
    assert markers
    leaks = _scan({
        "cli stdout": ok.stdout, "cli stderr (DEBUG)": ok.stderr,
        "logs (DEBUG)": "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records),
        "logs formatted": caplog.text, "errors": "\n".join(errors), "xcom": xcom,
        "run history": "\n".join(history_rows), "markers": "\n".join(markers.values()),
        "stdout": capsys.readouterr().out, "pg_stat_activity": "\n".join(activity),
    })
    assert leaks == []
    assert "INFO" in ok.stderr and ok.stderr.count("\n") > 20  # the scan saw real, verbose output
    assert sum(r.levelno >= logging.ERROR for r in caplog.records) >= 1
