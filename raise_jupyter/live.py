"""Live tables: an analysis result stored as a table and refreshed on a schedule.

Each refresh writes the result to a new Parquet file under ``<root>/live/<id>/``, renamed into
place once complete, and then points the catalog row at it in one transaction. A reader
therefore sees the previous result or the new one, never a partial file, and a refresh killed
midway leaves the previous result in place. The newest files are kept for readers that opened
an older one, and older ones are deleted.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from raise_jupyter import access, analytics, audit, names, scheduler
from raise_jupyter.access import guarded
from raise_jupyter.analysis import Analysis, analysis_from_spec, check_analysis
from raise_jupyter.engine import tables
from raise_jupyter.engine.catalog import as_utc, utcnow
from raise_jupyter.errors import ConflictError, NotFoundError
from raise_jupyter.results import QueryResult
from raise_jupyter.schedule import parse_schedule

if TYPE_CHECKING:
    import pandas

    from raise_jupyter.group import FeatureGroup
    from raise_jupyter.store import FeatureStore

logger = logging.getLogger(__name__)

KIND = "live_table"
DIRECTORY = "live"
# Result files kept per live table, the current one included.
FILES_KEPT = 3


class LiveTable:
    """A live table of a feature store; see ``FeatureGroup.create_live_table``."""

    def __init__(self, store: FeatureStore, table_id: int) -> None:
        self._store = store
        self._id = table_id

    def _row(self) -> Any:
        with self._store._catalog.read() as conn:
            row = conn.execute(sa.select(tables.live_tables).where(tables.live_tables.c.id == self._id)).first()
        if row is None:
            raise NotFoundError(f"Live table id {self._id} was deleted.")
        return row

    @property
    def name(self) -> str:
        return self._row().name

    @property
    def analysis(self) -> Analysis:
        return analysis_from_spec(self._row().analysis)

    @property
    def refresh_schedule(self) -> str:
        return self._row().refresh

    @property
    def refreshed_at(self) -> dt.datetime | None:
        """Time of the last successful refresh (UTC), None before the first."""
        return as_utc(self._row().refreshed_at)

    @guarded(access.REFRESH, kind=KIND)
    def refresh(self) -> LiveTable:
        """Recompute the table now and replace the stored result atomically."""
        refresh(self._store, self._id, due_at=None)
        return self

    @guarded(access.READ, kind=KIND)
    def read(self) -> QueryResult:
        """Return the stored result (empty before the first refresh or without data)."""
        try:
            return QueryResult(read_table(self._store.root, self._row()))
        except FileNotFoundError:
            # A refresh replaced the file between reading the row and opening the file.
            return QueryResult(read_table(self._store.root, self._row()))

    @guarded(access.READ, kind=KIND)
    def to_pandas(self) -> pandas.DataFrame:
        return self.read().to_pandas()

    @guarded(access.READ, kind=KIND)
    def history(self) -> pandas.DataFrame:
        """Return the refreshes, newest first: start, end, status, rows, due time and error."""
        import pandas as pd

        runs = tables.live_refreshes
        with self._store._catalog.read() as conn:
            rows = conn.execute(sa.select(runs).where(runs.c.live_table_id == self._id).order_by(runs.c.id.desc())).all()
        return pd.DataFrame(
            {
                "started_at": [as_utc(r.started_at) for r in rows],
                "finished_at": [as_utc(r.finished_at) for r in rows],
                "status": [r.status for r in rows],
                "rows": [r.rows for r in rows],
                "due_at": [as_utc(r.due_at) for r in rows],
                "version": [r.table_version for r in rows],
                "error": [r.error for r in rows],
            }
        )

    @guarded(access.DELETE, kind=KIND)
    def delete(self) -> None:
        """Delete the live table, its schedule and its files."""
        with self._store._catalog.write() as conn:
            scheduler.remove_task(conn, KIND, self._id)
            conn.execute(tables.live_tables.delete().where(tables.live_tables.c.id == self._id))
        _remove_files(self._store.root, self._id, keep=set())
        logger.info("Deleted live table id %d", self._id)

    def __repr__(self) -> str:
        row = self._row()
        return f"LiveTable({row.name!r}, {analysis_from_spec(row.analysis)!r}, refresh={row.refresh!r}, rows={row.rows})"

    def _repr_html_(self) -> str:
        import html

        row = self._row()
        title = f"Live table {row.name} ({row.refresh}), refreshed {row.refreshed_at or 'never'}"
        return f"<p><b>{html.escape(title)}</b></p>{self.read()._repr_html_()}"


# -- creation -----------------------------------------------------------------------------------


def create_live_table(
    group: FeatureGroup, name: str, analysis: Analysis, *, refresh_schedule: str | Any, replace: bool
) -> LiveTable:
    """Create or return a live table and compute it once; see ``FeatureGroup.create_live_table``."""
    store = group._store
    table_name = names.validate_live_table_name(name)
    analysis = check_analysis(analysis)
    analysis = analysis.with_feature(analytics.resolve_feature(group.name, analysis.feature))
    analytics.check(group, analysis)
    schedule = parse_schedule(refresh_schedule)
    if table_name in {g.name for g in store.list_feature_groups()}:
        raise ConflictError(f"{table_name!r} is a feature group of this namespace; give the live table another name.")

    values = {"group_id": group._id, "analysis": analysis.to_spec(), "refresh": str(schedule)}
    table_id, created = _save(store, table_name, values, replace=replace)
    live = LiveTable(store, table_id)
    if created:
        live.refresh()
    return live


def _save(store: FeatureStore, name: str, values: dict[str, Any], *, replace: bool) -> tuple[int, bool]:
    """Insert or update the catalog row; return its id and whether the table needs computing."""
    live = tables.live_tables
    now = utcnow()
    with store._catalog.write() as conn:
        row = conn.execute(sa.select(live).where(live.c.namespace == store.namespace, live.c.name == name)).first()
        if row is not None:
            changed = [key for key, value in values.items() if getattr(row, key) != value]
            if not changed:
                audit.unchanged()
                return int(row.id), row.current_path is None
            if not replace:
                raise ConflictError(
                    f"Live table {name!r} exists with a different {', '.join(changed)}; pass replace=True to "
                    "redefine it, or choose another name."
                )
            conn.execute(live.update().where(live.c.id == row.id).values(**values, defined_by=store.user, updated_at=now))
            table_id = int(row.id)
        else:
            result = conn.execute(
                live.insert().values(
                    namespace=store.namespace, name=name, defined_by=store.user, created_at=now, updated_at=now, **values
                )
            )
            table_id = int(result.inserted_primary_key[0])
        scheduler.ensure_task(conn, KIND, table_id, values["refresh"])
    logger.info("Saved live table %s (id %d)", name, table_id)
    return table_id, True


def list_live_tables(store: FeatureStore) -> list[LiveTable]:
    """Return the live tables of the store's namespace, by name."""
    live = tables.live_tables
    with store._catalog.read() as conn:
        ids = conn.execute(sa.select(live.c.id).where(live.c.namespace == store.namespace).order_by(live.c.name)).scalars()
        return [LiveTable(store, int(i)) for i in ids]


def get_live_table(store: FeatureStore, name: str) -> LiveTable:
    """Return the live table called ``name``; raise NotFoundError listing them otherwise."""
    live = tables.live_tables
    with store._catalog.read() as conn:
        table_id = conn.execute(sa.select(live.c.id).where(live.c.namespace == store.namespace, live.c.name == name)).scalar()
    if table_id is None:
        known = ", ".join(t.name for t in list_live_tables(store)) or "(none)"
        raise NotFoundError(f"Live table {name!r} not found in namespace {store.namespace!r}. Live tables: {known}.")
    return LiveTable(store, int(table_id))


# -- refresh ------------------------------------------------------------------------------------


def refresh(store: FeatureStore, table_id: int, *, due_at: dt.datetime | None) -> int:
    """Compute the live table, store the result atomically and return its number of rows."""
    row = LiveTable(store, table_id)._row()
    refresh_id = _start_refresh(store, table_id, due_at)
    try:
        group = store.get_feature_group(store._group_name_by_id(row.group_id, "this live table"))
        result = group.analyze(analysis_from_spec(row.analysis))
        table = result.to_arrow()
        if group.count(as_of=result.version) == 0:
            table = table.slice(0, 0)
        relative = _write_file(store.root, table_id, table)
    except Exception as error:
        _finish_refresh(store, refresh_id, status="failed", error=f"{type(error).__name__}: {error}")
        raise

    with store._catalog.write() as conn:
        current = conn.execute(
            sa.select(tables.live_tables.c.table_version).where(tables.live_tables.c.id == table_id)
        ).scalar()
        superseded = current is not None and result.version < current
        if superseded:
            # A slower refresh finished after one that read a newer table version: keep the newer.
            _finish_refresh(conn, refresh_id, status="superseded", rows=table.num_rows, version=result.version)
        else:
            conn.execute(
                tables.live_tables.update()
                .where(tables.live_tables.c.id == table_id)
                .values(current_path=relative, rows=table.num_rows, table_version=result.version, refreshed_at=utcnow())
            )
            _finish_refresh(conn, refresh_id, status="succeeded", rows=table.num_rows, path=relative, version=result.version)
    _remove_files(store.root, table_id, keep=_recent_paths(store, table_id))
    audit.note(rows=table.num_rows, version=result.version, superseded=superseded)
    if superseded:
        logger.info("Dropped refresh of live table %s from version %d; version %d is newer", row.name, result.version, current)
    else:
        logger.info("Refreshed live table %s: %d rows from version %d", row.name, table.num_rows, result.version)
    return table.num_rows


def _start_refresh(store: FeatureStore, table_id: int, due_at: dt.datetime | None) -> int:
    with store._catalog.write() as conn:
        result = conn.execute(
            tables.live_refreshes.insert().values(
                live_table_id=table_id, due_at=due_at, started_at=utcnow(), status="running", worker=scheduler.make_owner_id()
            )
        )
        return int(result.inserted_primary_key[0])


def _finish_refresh(target: Any, refresh_id: int, *, status: str, **fields: Any) -> None:
    values = {"status": status, "finished_at": utcnow()}
    for key, value in fields.items():
        values["table_version" if key == "version" else key] = value

    def update(conn: sa.Connection) -> None:
        conn.execute(tables.live_refreshes.update().where(tables.live_refreshes.c.id == refresh_id).values(**values))

    if isinstance(target, sa.Connection):
        update(target)
    else:
        with target._catalog.write() as conn:
            update(conn)


def _write_file(root: Path, table_id: int, table: pa.Table) -> str:
    """Write ``table`` to a new file, complete before it appears under its final name."""
    directory = root / DIRECTORY / str(table_id)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}.parquet"
    partial = directory / f".{name}.partial"
    pq.write_table(table, partial)
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, directory / name)
    return f"{DIRECTORY}/{table_id}/{name}"


def _recent_paths(store: FeatureStore, table_id: int) -> set[str]:
    """Return the files to keep: the current one and those of the latest successful refreshes."""
    runs = tables.live_refreshes
    with store._catalog.read() as conn:
        current = conn.execute(
            sa.select(tables.live_tables.c.current_path).where(tables.live_tables.c.id == table_id)
        ).scalar()
        paths = conn.execute(
            sa.select(runs.c.path)
            .where(runs.c.live_table_id == table_id, runs.c.status == "succeeded")
            .order_by(runs.c.id.desc())
            .limit(FILES_KEPT)
        ).scalars()
        return {p for p in [current, *paths] if p}


def _remove_files(root: Path, table_id: int, *, keep: set[str]) -> None:
    directory = root / DIRECTORY / str(table_id)
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        relative = f"{DIRECTORY}/{table_id}/{path.name}"
        if relative in keep:
            continue
        # A partial file may belong to a refresh running right now; leave recent ones alone.
        if path.name.endswith(".partial") and path.stat().st_mtime > utcnow().timestamp() - 3600:
            continue
        path.unlink(missing_ok=True)


def read_table(root: Path, row: Any) -> pa.Table:
    """Return the current result of a live table row, empty before its first refresh."""
    if row.current_path is None:
        return pa.table({})
    return pq.read_table(root / row.current_path)


def view_sql(root: Path, row: Any) -> str | None:
    """Return a SELECT of a live table's current file for ``FeatureStore.sql``, None before a refresh."""
    from raise_jupyter.engine.duck import literal

    if row.current_path is None:
        return None
    return f"SELECT * FROM read_parquet({literal(str(root / row.current_path))})"


def run_task(root: Path, target_id: int, due_at: dt.datetime | None) -> None:
    """Scheduler handler: refresh live table ``target_id`` of the store at ``root``."""
    from raise_jupyter.store import FeatureStore, open_catalog

    live = tables.live_tables
    with open_catalog(root).read() as conn:
        row = conn.execute(sa.select(live.c.namespace, live.c.name, live.c.defined_by).where(live.c.id == target_id)).first()
    if row is None:
        raise NotFoundError(f"Live table id {target_id} no longer exists.")
    store = FeatureStore._for_scheduler(row.namespace, root, row.defined_by)
    with access.guard(store._actor, access.REFRESH, path=row.namespace, kind=KIND, name=row.name):
        refresh(store, target_id, due_at=due_at)


scheduler.register_handler(KIND, run_task)
