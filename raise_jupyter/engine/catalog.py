"""The catalog: feature group and feature definitions and the ingest log, in SQL.

By default the catalog is a SQLite file in WAL mode under the store root. Write transactions
start with ``BEGIN IMMEDIATE`` so that concurrent writers queue on SQLite's busy timeout instead
of failing with "database is locked" when a read lock would be upgraded. Any SQLAlchemy URL
works in its place (a team can point ``catalog_url`` at Postgres).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from filelock import FileLock

from raise_jupyter.engine import tables
from raise_jupyter.errors import StoreError

logger = logging.getLogger(__name__)

# Read-only connections that watch for catalog changes, one per thread and catalog.
_watchers = threading.local()

# Newest migration; a test checks that it matches the head of the migration scripts.
CATALOG_REVISION = "0010"

SQLITE_BUSY_TIMEOUT_MS = 60_000
_MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """Return a catalog timestamp as aware UTC, because SQLite returns the stored UTC times naive."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


@dataclass(frozen=True)
class GroupRecord:
    id: int
    namespace: str
    name: str
    keys: tuple[str, ...] | None
    event_time: str | None
    description: str | None
    tags: dict[str, str]
    table_path: str
    created_at: dt.datetime
    updated_at: dt.datetime
    ttl_us: int | None = None
    online: bool = False

    @property
    def ttl(self) -> dt.timedelta | None:
        return dt.timedelta(microseconds=self.ttl_us) if self.ttl_us is not None else None


@dataclass(frozen=True)
class FeatureRecord:
    id: int
    group_id: int
    name: str
    dtype: str
    derived_from: str | None
    description: str | None
    tags: dict[str, str] = field(default_factory=dict)
    position: int = 0
    since_version: int | None = None
    column_name: str | None = None

    @property
    def column(self) -> str:
        """Delta column that contains this stored feature's values."""
        return self.column_name or self.name


@dataclass(frozen=True)
class IngestRecord:
    batch: int
    status: str
    rows: int
    table_version: int | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    ties: bool | None = None
    tie_columns: tuple[str, ...] | None = None


def _group_record(row: Any) -> GroupRecord:
    return GroupRecord(
        id=row.id,
        namespace=row.namespace,
        name=row.name,
        keys=tuple(row.keys) if row.keys is not None else None,
        event_time=row.event_time,
        description=row.description,
        tags=dict(row.tags or {}),
        table_path=row.table_path,
        created_at=row.created_at,
        updated_at=row.updated_at,
        ttl_us=row.ttl_us,
        online=bool(row.online),
    )


def _feature_record(row: Any) -> FeatureRecord:
    return FeatureRecord(
        id=row.id,
        group_id=row.group_id,
        name=row.name,
        dtype=row.dtype,
        derived_from=row.derived_from,
        description=row.description,
        tags=dict(row.tags or {}),
        position=row.position,
        since_version=row.since_version,
        column_name=row.column_name,
    )


def _configure_sqlite(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN instead of the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        if connection.get_execution_options().get("raise_read_only"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


class Catalog:
    """Connection to one store's catalog database.

    Parameters
    ----------
    url
        SQLAlchemy URL of the catalog database.
    lock_path
        File locked while migrations run, so that processes opening a new store at the same
        time do not both create its tables.
    """

    def __init__(self, url: str, *, lock_path: Path) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = sa.create_engine(url)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._lock_path = lock_path
        self._migrate()

    # -- schema ---------------------------------------------------------------------------

    def _current_revision(self) -> str | None:
        with self.read() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    def _migrate(self) -> None:
        if self._current_revision() == CATALOG_REVISION:
            return

        with FileLock(str(self._lock_path)):
            revision = self._current_revision()
            if revision == CATALOG_REVISION:
                return
            if revision is not None and not _is_known_revision(revision):
                raise StoreError(
                    f"The catalog at {self.url} has schema revision {revision!r}, made by a newer "
                    "release of raise-jupyter; upgrade with 'pip install -U raise-jupyter'."
                )
            logger.info("Migrating catalog %s from revision %s to %s", self.url, revision, CATALOG_REVISION)
            upgrade_catalog(self.engine, "head")

    # -- transactions -----------------------------------------------------------------------

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """Open a connection for reads; in WAL mode SQLite readers do not wait for writers."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(raise_read_only=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """Open a write transaction that commits on success and rolls back on error."""
        with self.engine.begin() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()

    def change_token(self) -> int | None:
        """Return a number that changes whenever any connection commits to the catalog.

        SQLite's ``data_version`` of a connection that never writes does that in microseconds,
        so callers can cache definitions. Other databases return None: do not cache.
        """
        if not self.is_sqlite:
            return None
        connections = getattr(_watchers, "connections", None)
        if connections is None:
            connections = _watchers.connections = {}
        watcher = connections.get(self.url)
        if watcher is None:
            # A file: URI decodes %XX and ends the path at "?" or "#", so quote the path.
            path = urllib.parse.quote(str(self.engine.url.database))
            watcher = connections[self.url] = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        return watcher.execute("PRAGMA data_version").fetchone()[0]

    # -- feature groups ---------------------------------------------------------------------

    def get_group(self, conn: sa.Connection, namespace: str, name: str) -> GroupRecord | None:
        t = tables.feature_groups
        row = conn.execute(sa.select(t).where(t.c.namespace == namespace, t.c.name == name)).first()
        return _group_record(row) if row else None

    def get_group_by_id(self, conn: sa.Connection, group_id: int) -> GroupRecord | None:
        t = tables.feature_groups
        row = conn.execute(sa.select(t).where(t.c.id == group_id)).first()
        return _group_record(row) if row else None

    def list_groups(self, conn: sa.Connection, namespace: str) -> list[GroupRecord]:
        t = tables.feature_groups
        rows = conn.execute(sa.select(t).where(t.c.namespace == namespace).order_by(t.c.name))
        return [_group_record(row) for row in rows]

    def insert_group(
        self,
        conn: sa.Connection,
        *,
        namespace: str,
        name: str,
        keys: list[str] | None,
        event_time: str | None,
        description: str | None,
        tags: dict[str, str],
        table_path: str,
        ttl_us: int | None = None,
        online: bool = False,
    ) -> GroupRecord:
        now = utcnow()
        t = tables.feature_groups
        result = conn.execute(
            t.insert().values(
                namespace=namespace,
                name=name,
                keys=keys,
                event_time=event_time,
                description=description,
                tags=tags,
                table_path=table_path,
                ttl_us=ttl_us,
                online=online,
                next_batch=1,
                created_at=now,
                updated_at=now,
            )
        )
        record = self.get_group_by_id(conn, result.inserted_primary_key[0])
        assert record is not None
        return record

    def update_group(self, conn: sa.Connection, group_id: int, **values: Any) -> None:
        t = tables.feature_groups
        conn.execute(t.update().where(t.c.id == group_id).values(**values, updated_at=utcnow()))

    def delete_group(self, conn: sa.Connection, group_id: int) -> None:
        conn.execute(tables.ingests.delete().where(tables.ingests.c.group_id == group_id))
        conn.execute(tables.features.delete().where(tables.features.c.group_id == group_id))
        conn.execute(tables.feature_groups.delete().where(tables.feature_groups.c.id == group_id))

    # -- features ---------------------------------------------------------------------------

    def list_features(self, conn: sa.Connection, group_id: int) -> list[FeatureRecord]:
        t = tables.features
        rows = conn.execute(sa.select(t).where(t.c.group_id == group_id).order_by(t.c.position, t.c.id))
        return [_feature_record(row) for row in rows]

    def insert_feature(
        self,
        conn: sa.Connection,
        group_id: int,
        *,
        name: str,
        dtype: str,
        derived_from: str | None,
        description: str | None,
        tags: dict[str, str],
        since_version: int | None,
        column_name: str | None,
    ) -> None:
        t = tables.features
        position = conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(t.c.position), -1) + 1).where(t.c.group_id == group_id)
        ).scalar()
        now = utcnow()
        conn.execute(
            t.insert().values(
                group_id=group_id,
                name=name,
                dtype=dtype,
                derived_from=derived_from,
                description=description,
                tags=tags,
                position=position,
                since_version=since_version,
                column_name=column_name,
                created_at=now,
                updated_at=now,
            )
        )

    def update_feature(self, conn: sa.Connection, feature_id: int, **values: Any) -> None:
        t = tables.features
        conn.execute(t.update().where(t.c.id == feature_id).values(**values, updated_at=utcnow()))

    def delete_feature(self, conn: sa.Connection, feature_id: int) -> None:
        conn.execute(tables.features.delete().where(tables.features.c.id == feature_id))

    # -- ingests ----------------------------------------------------------------------------

    def begin_ingest(self, group_id: int, rows: int) -> int:
        """Reserve the next batch number of a group and log the ingest as pending."""
        t = tables.feature_groups
        with self.write() as conn:
            # FOR UPDATE matters on Postgres; SQLite's BEGIN IMMEDIATE already serializes writers.
            batch = conn.execute(sa.select(t.c.next_batch).where(t.c.id == group_id).with_for_update()).scalar()
            if batch is None:
                raise StoreError(f"Feature group id {group_id} was deleted while ingesting.")
            conn.execute(t.update().where(t.c.id == group_id).values(next_batch=batch + 1))
            conn.execute(
                tables.ingests.insert().values(
                    group_id=group_id, batch=batch, status="pending", rows=rows, started_at=utcnow()
                )
            )
        return int(batch)

    def finish_ingest(
        self,
        group_id: int,
        batch: int,
        *,
        status: str,
        table_version: int | None,
        ties: bool | None = None,
        tie_columns: list[str] | None = None,
    ) -> None:
        t = tables.ingests
        with self.write() as conn:
            conn.execute(
                t.update()
                .where(t.c.group_id == group_id, t.c.batch == batch)
                .values(
                    status=status,
                    table_version=table_version,
                    finished_at=utcnow(),
                    ties=ties,
                    tie_columns=tie_columns,
                )
            )

    def list_ingests(self, conn: sa.Connection, group_id: int) -> list[IngestRecord]:
        t = tables.ingests
        rows = conn.execute(sa.select(t).where(t.c.group_id == group_id).order_by(t.c.batch))
        return [
            IngestRecord(
                batch=row.batch,
                status=row.status,
                rows=row.rows,
                table_version=row.table_version,
                started_at=row.started_at,
                finished_at=row.finished_at,
                ties=row.ties,
                tie_columns=tuple(row.tie_columns) if row.tie_columns is not None else None,
            )
            for row in rows
        ]


def _alembic_config(engine: sa.Engine, connection: sa.Connection | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    # Alembic's options go through configparser interpolation, so a "%" (as in the URL-escaped
    # path of a root named "josé" or "50%") must be doubled.
    config.set_main_option("script_location", str(_MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def _is_known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(_MIGRATIONS_DIR))
    return any(item.revision == revision for item in script.walk_revisions())


def upgrade_catalog(engine: sa.Engine, revision: str) -> None:
    """Run the catalog migrations up to ``revision`` (``"head"`` for the newest)."""
    from alembic import command

    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            # Table copies in migrations must not cascade deletes through foreign keys. The
            # pragma only takes effect outside a transaction, so it goes to the driver first.
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")
        with conn.begin():
            command.upgrade(_alembic_config(engine, conn), revision)
        if engine.dialect.name == "sqlite":
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = ON")


def head_revision() -> str:
    """Return the newest revision of the migration scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(_MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head
