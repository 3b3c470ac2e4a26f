"""Sources and extraction: one code path that compiles for SQLite, PostgreSQL and SQL Server."""

from __future__ import annotations

import gzip
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, postgresql

from vehicle_etl.config import SAMPLE_DB
from vehicle_etl.errors import SourceError
from vehicle_etl.source import extract
from vehicle_etl.source.connect import Source, open_source
from vehicle_etl.spec import COMPLETE_RELEASE_ONLY, TABLES, by_source


def _fake(flavor: str, dialect: sa.engine.Dialect) -> Source:
    """A Source for compiling only (no connection is made for mssql: there is no server here)."""
    engine = sa.create_engine("sqlite://")
    engine.dialect = dialect  # type: ignore[misc]
    schema = {"mssql": "dbo", "postgresql": "vpic"}[flavor]
    return Source(engine, flavor, schema)  # type: ignore[arg-type]


def test_tsql_for_every_table_names_dbo_and_brackets() -> None:
    source = _fake("mssql", mssql.dialect())
    for spec in TABLES:
        text = extract.compile_sql(extract.select_table(source, spec), mssql.dialect())
        assert f"FROM dbo.[{spec.source}]" in text or f"FROM dbo.{spec.source}" in text, text
        for col in spec.columns:
            assert col.target in text
    pattern = extract.compile_sql(extract.select_table(source, by_source("Pattern")), mssql.dialect())
    # SQL Server keywords are bracketed, names trimmed with functions SQL Server has had forever.
    assert "[Keys]" in pattern
    assert "ltrim(rtrim(dbo.[Pattern].[Keys]))" in pattern.replace("\n", " ")


def test_tsql_parses_as_tsql() -> None:
    sqlglot = pytest.importorskip("sqlglot")
    source = _fake("mssql", mssql.dialect())
    for spec in TABLES:
        text = extract.compile_sql(extract.select_table(source, spec), mssql.dialect())
        parsed = sqlglot.parse_one(text, read="tsql")
        assert parsed.find(sqlglot.exp.Table) is not None
    lookup = extract.compile_sql(extract.select_lookup(source, "BodyStyle"), mssql.dialect())
    assert "N'BodyStyle'" in lookup or "'BodyStyle'" in lookup
    sqlglot.parse_one(lookup, read="tsql")


def test_postgres_dump_names_are_lower_case_in_schema_vpic() -> None:
    source = _fake("postgresql", postgresql.dialect())
    text = extract.compile_sql(extract.select_table(source, by_source("Wmi_VinSchema")), postgresql.dialect())
    assert "FROM vpic.wmi_vinschema" in text
    assert "vpic.wmi_vinschema.yearfrom AS year_from" in text


def test_sqlite_stream_is_batched(sample_url: str) -> None:
    source = open_source(sample_url)
    stmt = extract.select_table(source, by_source("Pattern"))
    sizes = [len(b) for b in extract.stream(source, stmt, 500)]
    assert len(sizes) > 1 and max(sizes) == 500
    with sqlite3.connect(SAMPLE_DB) as raw:
        assert sum(sizes) == raw.execute("SELECT count(*) FROM Pattern").fetchone()[0]


def test_names_are_trimmed_at_extraction(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    shutil.copy(SAMPLE_DB, db)
    with sqlite3.connect(db) as raw:
        make_id = raw.execute("SELECT Id FROM Make LIMIT 1").fetchone()[0]
        raw.execute("UPDATE Make SET Name = '  Padded Make  ' WHERE Id = ?", (make_id,))
    source = open_source(f"sqlite:///{db}")
    rows = [r for b in extract.stream(source, extract.select_table(source, by_source("Make")), 1000) for r in b]
    assert (make_id, "Padded Make") in [(r[0], r[1]) for r in rows]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        open_source(f"sqlite:///{tmp_path / 'nope.db'}")


def test_gzip_file_says_unpack_it(tmp_path: Path) -> None:
    gz = tmp_path / "vpic.db"
    with gzip.open(gz, "wb") as fh:
        fh.write(b"not really")
    with pytest.raises(SourceError, match="gunzip"):
        open_source(f"sqlite:///{gz}")


def test_wrong_format_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.db"
    bad.write_text("hello")
    with pytest.raises(SourceError, match="not a SQLite database"):
        open_source(f"sqlite:///{bad}")


def test_unsupported_scheme() -> None:
    with pytest.raises(SourceError, match="unsupported source type"):
        open_source("mysql://u@localhost/vpic")


def test_missing_table_and_column_are_named(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    shutil.copy(SAMPLE_DB, db)
    with sqlite3.connect(db) as raw:
        raw.execute("DROP TABLE Wmi_Make")
        raw.execute("ALTER TABLE Pattern RENAME COLUMN Keys TO KeyText")
    source = open_source(f"sqlite:///{db}")
    with pytest.raises(SourceError) as err:
        source.check(TABLES)
    assert "missing table Wmi_Make" in str(err.value)
    assert "table Pattern lacks column(s) Keys" in str(err.value)


def test_optional_table_absent_is_reported_not_fatal(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    shutil.copy(SAMPLE_DB, db)
    with sqlite3.connect(db) as raw:
        raw.execute("DROP TABLE Conversion")
    # the complete release's own tables are absent from the sample too (optional as well)
    assert open_source(f"sqlite:///{db}").check(TABLES) == ["Conversion"] + [
        t.source for t in TABLES if t.source in COMPLETE_RELEASE_ONLY]
