"""The app's read-only role: calls the contract functions and reads the catalog; nothing else."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from conftest import build_catalog, create_database, drop_database, dsn
from test_decode import VIN

from vehicle_etl.serving.decode import ensure_reader_role


@pytest.fixture(scope="module")
def db(sample_url: str) -> Iterator[str]:
    name = create_database("vetl_reader")
    try:
        with psycopg.connect(dsn(name), autocommit=True) as conn:
            ensure_reader_role(conn)  # before the first build: the run order of the pipeline
            conn.execute("CREATE SCHEMA etl")
            conn.execute("CREATE TABLE etl.run_history (id int)")
        build_catalog(name, sample_url)
        with psycopg.connect(dsn(name), autocommit=True) as conn:
            ensure_reader_role(conn)  # idempotent, and now grants on the live catalog
            conn.execute("CREATE SCHEMA vehicles_staging")
            conn.execute("CREATE TABLE vehicles_staging.make (make_id int)")
        yield name
    finally:
        drop_database(name)


@pytest.fixture
def reader(db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn(db), autocommit=True) as conn:
        conn.execute("SET ROLE mvp_platform_reader")
        yield conn


def test_role_is_a_nologin_group(db: str) -> None:
    with psycopg.connect(dsn(db)) as conn:
        row = conn.execute("SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles "
                           "WHERE rolname = 'mvp_platform_reader'").fetchone()
    assert row == (False, False, False, False)


def test_reader_can_decode_and_read_the_catalog(reader: psycopg.Connection) -> None:
    assert reader.execute("SELECT vehicles.decode_vin(%s)->>'Make'", (VIN,)).fetchone()[0] == "TESLA"  # type: ignore[index]
    assert reader.execute("SELECT count(*) FROM vehicles.decode_vins(%s)", ([VIN, VIN],)).fetchone()[0] == 2  # type: ignore[index]
    assert reader.execute("SELECT count(*) FROM vehicles.dropdown_makes()").fetchone()[0] > 0  # type: ignore[index]
    assert reader.execute("SELECT count(*) FROM vehicles.make").fetchone()[0] > 0  # type: ignore[index]
    assert reader.execute("SELECT count(*) FROM vehicles.model_year").fetchone()[0] > 0  # type: ignore[index]


@pytest.mark.parametrize("stmt", [
    "INSERT INTO vehicles.make VALUES (999999, 'X')",
    "UPDATE vehicles.make SET make_name = 'X'",
    "DELETE FROM vehicles.pattern",
    "TRUNCATE vehicles_store.make",
    "CREATE TABLE vehicles.evil (x int)",
    "CREATE TABLE public.evil (x int)",
    "CREATE SCHEMA evil",
    "DROP VIEW vehicles.make",
    "SELECT * FROM vehicles_store.make",  # the version store: only through the views
    "UPDATE vehicles_store.control SET live = 0",
    "SELECT * FROM etl.run_history",
    "SELECT * FROM vehicles_staging.make",
    "CREATE OR REPLACE FUNCTION vehicles.decode_vin(vin text, model_year int DEFAULT NULL) RETURNS jsonb "
    "LANGUAGE sql AS 'SELECT NULL::jsonb'",
])
def test_reader_cannot_write_create_or_read_other_schemas(reader: psycopg.Connection, stmt: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute(stmt)


def test_functions_survive_a_swap_for_an_open_reader_connection(db: str, sample_url: str,
                                                                 reader: psycopg.Connection) -> None:
    before = reader.execute("SELECT vehicles.decode_vin(%s)", (VIN,)).fetchone()[0]  # type: ignore[index]
    build_catalog(db, sample_url)  # a second release goes live while the reader stays connected
    after = reader.execute("SELECT vehicles.decode_vin(%s)", (VIN,)).fetchone()[0]  # type: ignore[index]
    assert after == before
    assert reader.execute("SELECT count(*) FROM vehicles.make").fetchone()[0] > 0  # type: ignore[index]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute("SELECT count(*) FROM vehicles_previous.make")
