"""`vehicle-etl test-connections`: one line per service the ETL talks to.

Each check returns (name, ok, message): ok is True (reachable), False (configured but failing:
the CLI exits non-zero) or None (not configured: skipped). Messages name host, port, database and
user, never a password, and say what to fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vehicle_etl.config import Settings

Check = tuple[str, bool | None, str]


def _timed(name: str, fn: Callable[[], str]) -> Check:
    started = time.monotonic()
    try:
        detail = fn()
    except _Skip as skip:
        return (name, None, str(skip))
    except Exception as exc:  # every failure becomes one readable line
        return (name, False, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    return (name, True, f"{detail} ({(time.monotonic() - started) * 1000:.0f} ms)")


class _Skip(Exception):
    """Raised by a check when the service is not configured."""


def check_sql_server(timeout: int = 10) -> Check:
    """The Airflow connection restores run through (VPIC_MSSQL_CONN_ID, default mssql_source)."""
    from vehicle_etl.source import mssql

    explicit = Settings().mssql.conn_id_set
    conn_id = Settings().mssql.conn_id

    def run() -> str:
        hook = mssql.make_restore_hook(conn_id, login_timeout=timeout, query_timeout=timeout)
        try:
            info = hook.connection
        except Exception as exc:
            if explicit:
                raise RuntimeError(
                    f"Airflow connection {conn_id!r} (VPIC_MSSQL_CONN_ID) is not defined: set "
                    f"AIRFLOW_CONN_{conn_id.upper()} or add it in the Airflow UI"
                ) from exc
            raise _Skip(f"not configured (no Airflow connection {conn_id!r}; needed only for .bak backups)") from exc
        where = f"{info.login}@{info.host}:{info.port or 1433}"
        try:
            conn = hook.get_conn()
        except Exception as exc:
            raise RuntimeError(str(mssql.explain_mssql_error(exc, where, "connect", conn_id, info.host))) from exc
        try:
            cur = conn.cursor()
            cur.execute("SELECT CAST(SERVERPROPERTY('ProductVersion') AS NVARCHAR(128))")
            version = cur.fetchall()[0][0]
        finally:
            conn.close()
        return f"SQL Server {version} at {where} (connection {conn_id})"

    return _timed("SQL Server (vPIC .bak restore)", run)


def check_platform(settings: Settings) -> Check:
    from vehicle_etl.platform_db import connect

    def run() -> str:
        try:
            with connect(settings) as conn:
                row = conn.execute(
                    "SELECT current_setting('server_version'), current_database(), current_user, "
                    "inet_server_port()"
                ).fetchone()
                assert row is not None
        except Exception as exc:
            hint = ("check MVP_PLATFORM_DB_HOST/PORT/NAME/USER/PASSWORD" if settings.platform_configured
                    else f"the embedded server in {settings.embedded_pgdata} did not start")
            raise RuntimeError(f"{str(exc).strip().splitlines()[0]} ({hint})") from exc
        kind = "" if settings.platform_configured else "embedded "
        host = settings.platform.host or "local socket"
        return f"{kind}PostgreSQL {row[0]}, database {row[1]} as {row[2]} on {host}:{row[3]}"

    return _timed("platform PostgreSQL", run)


def check_source(settings: Settings) -> Check:
    """The configured vPIC source (VPIC_SOURCE_URL or VPIC_SOURCE_CONN_ID), when one is configured."""
    from vehicle_etl.source.connect import open_source, url_from_airflow_connection

    def run() -> str:
        if settings.source_url:
            url, label = settings.source_url, "VPIC_SOURCE_URL"
        elif settings.source_conn_id:
            url, label = url_from_airflow_connection(settings.source_conn_id), f"connection {settings.source_conn_id}"
        else:
            raise _Skip("not configured (VPIC_SOURCE_URL / VPIC_SOURCE_CONN_ID unset: backups folder or sample)")
        source = open_source(url)  # connects and runs SELECT 1; errors name the URL without password
        try:
            return f"{source.flavor} source {source.description} ({label})"
        finally:
            source.engine.dispose()

    return _timed("vPIC source", run)


def check_source_postgres(settings: Settings) -> Check:
    """The PostgreSQL server NHTSA's dump is restored into (VPIC_RESTORE_PG_URL), when set."""
    from psycopg.conninfo import make_conninfo

    def run() -> str:
        target = settings.restore_pg_url
        if not target:
            raise _Skip("not configured (VPIC_RESTORE_PG_URL unset: dumps restore into vpic_source on the "
                        "platform server)")
        import psycopg

        from vehicle_etl.source.pgdump import libpq_params, pg_sqlalchemy_url

        params = libpq_params(target)
        shown = pg_sqlalchemy_url(params).render_as_string(hide_password=True)
        # Connect to the maintenance database: the target database is created by the first restore.
        admin = make_conninfo(**{**params, "dbname": "postgres", "connect_timeout": "10"})
        try:
            with psycopg.connect(admin) as conn:
                version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                      (params.get("dbname"),)).fetchone()
        except psycopg.Error as exc:
            raise RuntimeError(f"{str(exc).strip().splitlines()[0]} (check VPIC_RESTORE_PG_URL {shown})") from exc
        state = "exists" if exists else "will be created by the first restore"
        return f"PostgreSQL {version} at {shown}; database {state}"

    return _timed("source PostgreSQL (dump restore)", run)


def check_redis() -> Check:
    from vehicle_etl.notify.cache import redis_url, safe_url

    def run() -> str:
        url = redis_url()
        if not url:
            raise _Skip("not configured (MVP_PLATFORM_REDIS_URL unset: no cache invalidation)")
        import redis

        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        try:
            client.ping()
            version = client.info("server").get("redis_version", "?")
        except redis.RedisError as exc:
            raise RuntimeError(f"{exc} (check MVP_PLATFORM_REDIS_URL {safe_url(url)})") from exc
        finally:
            client.close()
        return f"Redis {version} at {safe_url(url)}"

    return _timed("Redis (cache invalidation)", run)


def check_connections(settings: Settings) -> list[Check]:
    """Every service, one line each; the CLI prints them and exits 1 if any is False."""
    return [
        check_sql_server(),
        check_platform(settings),
        check_source(settings),
        check_source_postgres(settings),
        check_redis(),
    ]

