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

import logging

from sqlalchemy.engine import URL, make_url

from vehicle_etl.config import Settings
from vehicle_etl.errors import RestoreError
from vehicle_etl.source.backups import Backup, check_format, find_backup  # noqa: F401 (the stage's entry points)
from vehicle_etl.source.mssql import make_restore_hook, restore_bak
from vehicle_etl.source.pgdump import default_pg_target, libpq_params, pg_sqlalchemy_url, restore_pgdump

log = logging.getLogger(__name__)

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
        conn_id = settings.mssql.conn_id
        info = make_restore_hook(conn_id).connection
        if (info.host, info.login) == (parsed.host, parsed.username) and info.password:
            return parsed.set(password=info.password)
    return parsed


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
            conn_id=settings.mssql.conn_id,
            database=settings.mssql.database,
            login_timeout=settings.mssql.login_timeout,
            restore_timeout=settings.mssql.restore_timeout,
        )
    raise RestoreError(f"unknown backup kind {backup.kind!r}")
