"""Settings from the environment, with embedded defaults when nothing is configured.

`env` is the one reader of the environment; every setting a module needs is a field of `Settings`
(one frozen dataclass per concern nested in it: the platform database, the SQL Server restore,
downloads, alerts, the HTTP API). A `Settings()` reads the environment when it is made: code
that has none handed to it makes one at call time, so a changed environment is seen at once.
The names of the variables are documented in .env.example."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "include" / "sql"
SAMPLE_DB = PROJECT_ROOT / "data" / "sample" / "vpic_sample.db"

LIVE_SCHEMA = "vehicles"
STAGING_SCHEMA = "vehicles_staging"
PREVIOUS_SCHEMA = "vehicles_previous"
ETL_SCHEMA = "etl"  # run history; never granted to the app's reader role
READER_ROLE = "mvp_platform_reader"
GOLDEN_CSV = PROJECT_ROOT / "data" / "golden" / "golden_vins.csv"  # the gate's golden VINs (data/golden/)
DEFAULT_MSSQL_CONN_ID = "mssql_source"
DEFAULT_MSSQL_DATABASE = "vPICList_Lite"
DEFAULT_MSSQL_BACKUPS_DIR = "/var/opt/mssql/backups"  # the backups folder as the SQL Server container sees it


def env(name: str, default: str | None = None) -> str | None:
    """The variable's value; `default` when it is unset or empty."""
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_field(name: str, default: str | None = None, cast: Callable[[str], Any] = str, **kw: Any) -> Any:
    return field(default_factory=lambda: None if (v := env(name, default)) is None else cast(v), **kw)


@dataclass(frozen=True)
class PlatformDb:
    """MVP_PLATFORM_DB_*: the platform database; unset host = the embedded PostgreSQL."""

    host: str | None = _env_field("MVP_PLATFORM_DB_HOST")
    port: str = _env_field("MVP_PLATFORM_DB_PORT", "5432")
    name: str = _env_field("MVP_PLATFORM_DB_NAME", "mvp-platform-vehicles")
    user: str = _env_field("MVP_PLATFORM_DB_USER", "mvp_platform_user")
    password: str = _env_field("MVP_PLATFORM_DB_PASSWORD", "", repr=False)


@dataclass(frozen=True)
class MssqlRestore:
    """VPIC_MSSQL_*: restoring a .bak through Airflow's MsSqlHook (vehicle_etl.source.mssql)."""

    conn_id_set: str | None = _env_field("VPIC_MSSQL_CONN_ID")  # as configured (None: the default is used)
    database: str = _env_field("VPIC_MSSQL_DATABASE", DEFAULT_MSSQL_DATABASE)
    backups_dir: str = _env_field("VPIC_MSSQL_BACKUPS_DIR", DEFAULT_MSSQL_BACKUPS_DIR)  # docker-compose mounts it
    login_timeout: int = _env_field("VPIC_MSSQL_LOGIN_TIMEOUT", "15", int)
    restore_timeout: int = _env_field("VPIC_MSSQL_RESTORE_TIMEOUT", "3600", int)

    @property
    def conn_id(self) -> str:
        return self.conn_id_set or DEFAULT_MSSQL_CONN_ID


@dataclass(frozen=True)
class Alerts:
    """ALERT_*: where failure (and, when enabled, success) alerts go (vehicle_etl.notify.alerts)."""

    email_to: tuple[str, ...] = _env_field(
        "ALERT_EMAIL_TO", "", lambda v: tuple(a.strip() for a in v.split(",") if a.strip()))
    email_from: str | None = _env_field("ALERT_EMAIL_FROM")
    smtp_conn_id: str = _env_field("ALERT_SMTP_CONN_ID", "smtp_default")
    webhook_url: str | None = _env_field("ALERT_WEBHOOK_URL")
    on_success: bool = _env_field("ALERT_ON_SUCCESS", "", lambda v: v.strip().lower() in ("1", "true", "yes", "on"))


@dataclass(frozen=True)
class Api:
    """VPIC_API_*: the HTTP API (`vehicle-etl serve`, vehicle_etl.serving.vpic_api)."""

    pool_size: int = _env_field("VPIC_API_POOL_SIZE", "10", int)
    cache_mb: float = _env_field("VPIC_API_CACHE_MB", "64", float)
    cache_entries: int = _env_field("VPIC_API_CACHE_ENTRIES", "50000", int)
    recheck_seconds: float = _env_field("VPIC_API_RECHECK_SECONDS", "5", float)
    workers: int = _env_field("VPIC_API_WORKERS", "1", int)


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know, read from the environment when made."""

    home: Path = field(default_factory=lambda: Path(env("VEHICLE_ETL_HOME", str(PROJECT_ROOT / "var"))))
    source_url: str | None = field(default_factory=lambda: env("VPIC_SOURCE_URL"))
    source_conn_id: str | None = field(default_factory=lambda: env("VPIC_SOURCE_CONN_ID"))
    backups_dir: Path | None = field(
        default_factory=lambda: Path(p) if (p := env("VPIC_BACKUPS_DIR")) else None
    )
    marker_dir: Path | None = field(
        default_factory=lambda: Path(p) if (p := env("VEHICLE_ETL_MARKER_DIR")) else None
    )
    batch_rows: int = field(default_factory=lambda: int(env("VEHICLE_ETL_BATCH_ROWS", "20000") or 20000))
    # Extraction processes: 2 uses both cores of the reference machine; 1 runs in-process.
    workers: int = field(default_factory=lambda: int(env("VEHICLE_ETL_WORKERS", "2") or 2))
    swap_lock_timeout_ms: int = field(
        default_factory=lambda: int(env("VEHICLE_ETL_SWAP_LOCK_TIMEOUT_MS", "500") or 500)
    )
    # Seconds between marking an old version's partitions detached and dropping them (a later
    # run, or `vehicle-etl cleanup`): docs/ARCHITECTURE.md, "Why it cannot deadlock with readers".
    detach_grace_s: float = field(
        default_factory=lambda: float(env("VEHICLE_ETL_DETACH_GRACE_S", "600") or 600)
    )

    # Restoring NHTSA's PostgreSQL dump: the target server (default: vpic_source on the platform server).
    restore_pg_url: str | None = _env_field("VPIC_RESTORE_PG_URL")
    mssql: MssqlRestore = field(default_factory=MssqlRestore)
    # Downloads (vehicle_etl.source.download): NHTSA's folder of zips, and how many releases to keep
    # (kept as text: download.keep_releases() says what is wrong with a bad value).
    download_base_url: str | None = _env_field("VPIC_DOWNLOAD_BASE_URL")
    keep_releases: str = _env_field("VPIC_KEEP_RELEASES", "3")
    # The golden VINs of the gate (vehicle_etl.quality.golden) and the accuracy they must reach.
    golden_csv: Path = _env_field("VEHICLE_ETL_GOLDEN_CSV", str(GOLDEN_CSV), Path)
    golden_min_accuracy: float = _env_field("VEHICLE_ETL_GOLDEN_MIN_ACCURACY", "0.999", float)
    redis_url: str | None = _env_field("MVP_PLATFORM_REDIS_URL")  # the app's cache (vehicle_etl.notify.cache)
    platform: PlatformDb = field(default_factory=PlatformDb)
    alerts: Alerts = field(default_factory=Alerts)
    api: Api = field(default_factory=Api)

    @property
    def markers(self) -> Path:
        return self.marker_dir or self.home / "markers"

    @property
    def embedded_pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def platform_configured(self) -> bool:
        return self.platform.host is not None


def platform_conninfo(settings: Settings) -> str:
    """libpq conninfo for the platform database: MVP_PLATFORM_DB_* when set, else embedded PostgreSQL.

    The password is passed through the environment by libpq's own rules (never logged by us).
    """
    if settings.platform_configured:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=settings.platform.host,
            port=settings.platform.port,
            dbname=settings.platform.name,
            user=settings.platform.user,
            password=settings.platform.password,
            application_name="vehicle-etl",
        )
    from vehicle_etl.embedded import embedded_conninfo

    return embedded_conninfo(settings.embedded_pgdata)


def default_source_url(settings: Settings) -> str:
    """The source when none is named: VPIC_SOURCE_URL, else the real sample shipped in the repo."""
    return settings.source_url or f"sqlite:///{SAMPLE_DB}"
