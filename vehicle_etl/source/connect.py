"""Open a vPIC source (SQLite file, NHTSA's PostgreSQL dump, SQL Server restore) as one interface.

A source is named by a SQLAlchemy URL or an Airflow connection id. The same `TableSpec`s then
compile to each dialect: vPIC's mixed-case names as they are for SQLite and SQL Server (`dbo`),
lower-cased in schema `vpic` for NHTSA's PostgreSQL dump.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from vehicle_etl.errors import SourceError
from vehicle_etl.spec import TableSpec

log = logging.getLogger(__name__)

Flavor = Literal["sqlite", "postgresql", "mssql"]
DEFAULT_SCHEMA: dict[Flavor, str | None] = {"sqlite": None, "postgresql": "vpic", "mssql": "dbo"}
SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass
class Source:
    engine: Engine
    flavor: Flavor
    schema: str | None
    origin: URL | None = None  # the URL as given (the engine's may be rewritten, e.g. read-only SQLite)
    _metadata: sa.MetaData = field(default_factory=sa.MetaData)

    @property
    def description(self) -> str:
        """The URL with any password hidden: safe for logs, markers and run history."""
        return (self.origin or self.engine.url).render_as_string(hide_password=True)

    def name(self, vpic_name: str) -> str:
        return vpic_name.lower() if self.flavor == "postgresql" else vpic_name

    def table(self, source_table: str, columns: list[str]) -> sa.Table:
        """A lightweight Table for `source_table` with `columns` (vPIC names), as this flavour spells them."""
        name = self.name(source_table)
        key = f"{self.schema}.{name}" if self.schema else name
        if key in self._metadata.tables:
            self._metadata.remove(self._metadata.tables[key])
        return sa.Table(
            name,
            self._metadata,
            *(sa.Column(self.name(c), key=c) for c in columns),
            schema=self.schema,
        )

    def existing_tables(self) -> dict[str, set[str]]:
        """Lower-cased table name -> lower-cased column names, read from the source's catalog."""
        insp = sa.inspect(self.engine)
        try:
            names = insp.get_table_names(schema=self.schema)
        except sa.exc.DBAPIError as exc:
            raise SourceError(f"cannot read the table list of {self.description}: {exc.orig}") from exc
        return {n.lower(): set() for n in names}

    def columns_of(self, table: str) -> set[str]:
        insp = sa.inspect(self.engine)
        return {c["name"].lower() for c in insp.get_columns(self.name(table), schema=self.schema)}

    def check(self, specs: tuple[TableSpec, ...]) -> list[str]:
        """Verify required tables and columns exist; return the optional tables that are absent.

        Raises SourceError naming every missing required table or column at once.
        """
        present = self.existing_tables()
        problems: list[str] = []
        absent_optional: list[str] = []
        for spec in specs:
            if spec.source.lower() not in present:
                if spec.required:
                    problems.append(f"missing table {spec.source}")
                else:
                    absent_optional.append(spec.source)
                continue
            have = self.columns_of(spec.source)
            missing = [c for c in spec.source_columns if c.lower() not in have]
            if missing:
                problems.append(f"table {spec.source} lacks column(s) {', '.join(missing)}")
        if problems:
            raise SourceError(
                f"source {self.description} is not a usable vPIC database: {'; '.join(problems)}. "
                "Point --source / VPIC_SOURCE_URL at a complete vPIC copy (SQLite file, NHTSA's "
                "PostgreSQL dump restored into schema vpic, or a SQL Server restore of the .bak)."
            )
        return absent_optional


def _flavor(url: URL) -> Flavor:
    backend = url.get_backend_name()
    if backend in ("sqlite", "postgresql", "mssql"):
        return backend  # type: ignore[return-value]
    raise SourceError(
        f"unsupported source type {backend!r}: use sqlite:///path, postgresql+psycopg://... "
        "or mssql+pymssql://..."
    )


def _check_sqlite_file(url: URL) -> None:
    path = Path(url.database or "")
    if not url.database or not path.is_file():
        raise SourceError(f"vPIC SQLite file not found: {path}. Check --source / VPIC_SOURCE_URL.")
    with path.open("rb") as fh:
        head = fh.read(16)
    if head != SQLITE_MAGIC:
        hint = " (it looks gzip-compressed: unpack it with gunzip -k first)" if head[:2] == b"\x1f\x8b" else ""
        raise SourceError(f"{path} is not a SQLite database{hint}.")


def open_source(url: str | URL, schema: str | None = None) -> Source:
    """Open a source by SQLAlchemy URL. `schema` overrides the flavour's default (vpic / dbo)."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except sa.exc.ArgumentError as exc:
        raise SourceError(f"not a database URL: {url!r} ({exc})") from exc
    flavor = _flavor(parsed)
    origin = parsed
    if flavor == "sqlite":
        _check_sqlite_file(parsed)
        # Read-only: extraction must never change the source.
        parsed = parsed.set(database=f"file:{parsed.database}?mode=ro", query={"uri": "true"})
    elif flavor == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif flavor == "mssql" and parsed.drivername == "mssql":
        parsed = parsed.set(drivername="mssql+pymssql")
    connect_args = {"login_timeout": 15, "timeout": 3600} if flavor == "mssql" else {}
    if flavor == "postgresql":
        connect_args = {"connect_timeout": 15}
    engine = sa.create_engine(parsed, connect_args=connect_args, pool_pre_ping=True)
    source = Source(engine, flavor, schema if schema is not None else DEFAULT_SCHEMA[flavor], origin)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        raise SourceError(f"cannot connect to source {source.description}: {exc.orig}") from exc
    return source


def url_from_airflow_connection(conn_id: str) -> URL:
    """Build a source URL from an Airflow connection (types mssql, postgres, sqlite)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson
    if conn.conn_type == "sqlite":
        return URL.create("sqlite", database=conn.host)
    drivers = {"mssql": "mssql+pymssql", "postgres": "postgresql+psycopg"}
    if conn.conn_type not in drivers:
        raise SourceError(f"connection {conn_id!r} has type {conn.conn_type!r}; use mssql, postgres or sqlite")
    return URL.create(
        drivers[conn.conn_type],
        username=conn.login,
        password=conn.password,
        host=conn.host,
        port=conn.port,
        database=conn.schema or extra.get("database"),
    )
