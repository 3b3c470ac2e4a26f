"""SQL Server: the T-SQL of a `.bak` restore (generated, quoted, parsed in tests) and running it
through Airflow's MsSqlHook (`RESTORE FILELISTONLY`, then `RESTORE DATABASE ... WITH MOVE, REPLACE`)."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import URL

from vehicle_etl.config import DEFAULT_MSSQL_BACKUPS_DIR, DEFAULT_MSSQL_CONN_ID, Settings  # noqa: F401
from vehicle_etl.errors import RestoreError, TransientRestoreError
from vehicle_etl.source.backups import Backup
from vehicle_etl.source.verify import verify_source

log = logging.getLogger(__name__)


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
    server_dir = server_backups_dir or Settings().mssql.backups_dir
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
