"""Settings from the environment, with embedded defaults when nothing is configured."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "include" / "sql"
SAMPLE_DB = PROJECT_ROOT / "data" / "sample" / "vpic_sample.db"

LIVE_SCHEMA = "vehicles"
STAGING_SCHEMA = "vehicles_staging"
PREVIOUS_SCHEMA = "vehicles_previous"
ETL_SCHEMA = "etl"  # run history; never granted to the app's reader role
READER_ROLE = "mvp_platform_reader"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know, read once from the environment."""

    home: Path = field(default_factory=lambda: Path(_env("VEHICLE_ETL_HOME", str(PROJECT_ROOT / "var"))))
    source_url: str | None = field(default_factory=lambda: _env("VPIC_SOURCE_URL"))
    source_conn_id: str | None = field(default_factory=lambda: _env("VPIC_SOURCE_CONN_ID"))
    backups_dir: Path | None = field(
        default_factory=lambda: Path(p) if (p := _env("VPIC_BACKUPS_DIR")) else None
    )
    marker_dir: Path | None = field(
        default_factory=lambda: Path(p) if (p := _env("VEHICLE_ETL_MARKER_DIR")) else None
    )
    batch_rows: int = field(default_factory=lambda: int(_env("VEHICLE_ETL_BATCH_ROWS", "20000") or 20000))
    # Extraction processes: 2 uses both cores of the reference machine; 1 runs in-process.
    workers: int = field(default_factory=lambda: int(_env("VEHICLE_ETL_WORKERS", "2") or 2))
    swap_lock_timeout_ms: int = field(
        default_factory=lambda: int(_env("VEHICLE_ETL_SWAP_LOCK_TIMEOUT_MS", "500") or 500)
    )
    # Seconds between marking an old version's partitions detached and dropping them (a later
    # run, or `vehicle-etl cleanup`): docs/ARCHITECTURE.md, "Why it cannot deadlock with readers".
    detach_grace_s: float = field(
        default_factory=lambda: float(_env("VEHICLE_ETL_DETACH_GRACE_S", "600") or 600)
    )

    @property
    def markers(self) -> Path:
        return self.marker_dir or self.home / "markers"

    @property
    def embedded_pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def platform_configured(self) -> bool:
        return _env("MVP_PLATFORM_DB_HOST") is not None


def platform_conninfo(settings: Settings) -> str:
    """libpq conninfo for the platform database: MVP_PLATFORM_DB_* when set, else embedded PostgreSQL.

    The password is passed through the environment by libpq's own rules (never logged by us).
    """
    if settings.platform_configured:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=_env("MVP_PLATFORM_DB_HOST"),
            port=_env("MVP_PLATFORM_DB_PORT", "5432"),
            dbname=_env("MVP_PLATFORM_DB_NAME", "mvp-platform-vehicles"),
            user=_env("MVP_PLATFORM_DB_USER", "mvp_platform_user"),
            password=_env("MVP_PLATFORM_DB_PASSWORD") or "",
            application_name="vehicle-etl",
        )
    from vehicle_etl.embedded import embedded_conninfo

    return embedded_conninfo(settings.embedded_pgdata)


def default_source_url(settings: Settings) -> str:
    """The source when none is named: VPIC_SOURCE_URL, else the real sample shipped in the repo."""
    return settings.source_url or f"sqlite:///{SAMPLE_DB}"
