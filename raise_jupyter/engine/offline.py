"""The offline store: one Delta Lake table per feature group.

Every table has the internal column ``_raise_seq`` (ingest batch number times 2**32 plus the row
number in the batch), which orders rows by ingestion. The Delta schema is kept equal to the
group's stored features, so appends never change table metadata and concurrent writers do not
conflict with each other.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import shutil
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Schema, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from raise_jupyter.errors import NotFoundError

logger = logging.getLogger(__name__)

SEQ_COLUMN = "_raise_seq"
BATCH_METADATA_KEY = "raise.batch"
OPERATION_METADATA_KEY = "raise.operation"
ROWS_PER_BATCH_LIMIT = 2**32

# Row groups of about 128k rows keep DuckDB's scans parallel. Appends use Snappy, which writes
# about 20% faster than ZSTD (bench/store_engine.py); compaction rewrites files with ZSTD.
_APPEND_PROPERTIES = WriterProperties(max_row_group_size=131_072, compression="SNAPPY")
_COMPACT_PROPERTIES = WriterProperties(max_row_group_size=131_072, compression="ZSTD")

# DeltaTable objects of the latest versions, refreshed incrementally. Each has its own lock
# because a DeltaTable must not be refreshed and read by two threads at once.
_cache_lock = threading.Lock()
_latest: dict[str, tuple[DeltaTable, threading.RLock]] = {}


@dataclass(frozen=True)
class TableFiles:
    """The Parquet files and schema of one table version."""

    version: int
    paths: list[str]
    columns: dict[str, pa.DataType]
    # Per-file statistics of the Delta log, flattened ("min.<column>", "max.<column>", ...);
    # only when asked for, since building them costs time on tables with many files.
    stats: pa.Table | None = None


def seq_values(batch: int, rows: int) -> pa.Array:
    """Return the ``_raise_seq`` values of a batch of ``rows`` rows."""
    import numpy as np

    return pa.array(np.arange(rows, dtype=np.int64) + (batch << 32), pa.int64())


def create_table(path: Path) -> None:
    """Create an empty table at ``path`` that has only the internal column."""
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([pa.field(SEQ_COLUMN, pa.int64())])
    DeltaTable.create(str(path), schema=schema, mode="ignore", name=path.name)


def add_columns(path: Path, fields: list[pa.Field]) -> int:
    """Add nullable columns to the table schema and return the new table version."""
    with _latest_table(path) as table:
        existing = set(pa.schema(table.schema().to_arrow()).names)
        new_fields = [f.with_nullable(True) for f in fields if f.name not in existing]
        if new_fields:
            delta_fields = Schema.from_arrow(pa.schema(new_fields)).fields
            table.alter.add_columns(delta_fields)
        return table.version()


def append(path: Path, data: pa.Table, batch: int) -> int:
    """Append ``data`` as one commit and return the table version it created."""
    properties = CommitProperties(custom_metadata={BATCH_METADATA_KEY: str(batch)})
    # The cached table object saves reopening the log; an append conflicts with no other
    # append, so its snapshot need not be the newest.
    with _latest_table(path, refresh=False) as table:
        write_deltalake(
            table,
            data,
            mode="append",
            writer_properties=_APPEND_PROPERTIES,
            commit_properties=properties,
        )
    return _find_batch_version(path, batch)


def merge(path: Path, data: pa.Table, batch: int, *, on: list[str]) -> int:
    """Replace the rows of ``data`` whose ``on`` columns match a stored row, insert the others.

    Runs as one Delta commit (MERGE), tagged with ``batch`` like an append, and returns the table
    version it created. ``data`` must not contain two rows with equal ``on`` values.
    """
    from raise_jupyter.engine.duck import quote

    predicate = " AND ".join(f"t.{quote(c)} = s.{quote(c)}" for c in on)
    properties = CommitProperties(custom_metadata={BATCH_METADATA_KEY: str(batch), OPERATION_METADATA_KEY: "UPSERT"})
    with _latest_table(path) as table:
        (
            table.merge(
                source=data,
                predicate=predicate,
                source_alias="s",
                target_alias="t",
                writer_properties=_APPEND_PROPERTIES,
                commit_properties=properties,
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
    return _find_batch_version(path, batch)


def _commit_infos(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """Yield (version, commitInfo) of every commit in the log, newest first.

    This reads ``_delta_log`` itself because ``DeltaTable.history()`` in deltalake 1.6.6
    numbers commits from its snapshot's version, so commits that land during the call get the
    wrong version numbers.
    """
    # NOTE: local file system only; object storage needs the same listing through its client.
    log = path / "_delta_log"
    versions = sorted((int(p.stem) for p in log.glob("*.json") if p.stem.isdigit()), reverse=True)
    for version in versions:
        try:
            lines = (log / f"{version:020d}.json").read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:  # removed by log cleanup after listing
            continue
        info: dict[str, object] = {}
        for line in lines:
            if '"commitInfo"' in line:
                info = json.loads(line).get("commitInfo", {})
                break
        yield version, info


def _find_batch_version(path: Path, batch: int) -> int:
    for version, info in _commit_infos(path):
        if info.get(BATCH_METADATA_KEY) == str(batch):
            return version
    raise NotFoundError(f"Ingest batch {batch} is missing from the commit log of {path}.")


@contextlib.contextmanager
def _latest_table(path: Path, *, refresh: bool = True) -> Iterator[DeltaTable]:
    """Yield the cached table object of ``path``, refreshed to the newest version by default."""
    key = str(path)
    with _cache_lock:
        entry = _latest.get(key)
        if entry is None:
            entry = (_load(path, None), threading.RLock())
            _latest[key] = entry
            fresh = True
        else:
            fresh = False
    table, lock = entry
    with lock:
        if refresh and not fresh:
            table.update_incremental()
        yield table


def _load(path: Path, version: int | str | dt.datetime | None) -> DeltaTable:
    try:
        if version is None:
            return DeltaTable(str(path))
        table = DeltaTable(str(path))
        table.load_as_version(version)
        return table
    except (DeltaError, OSError, ValueError) as error:
        raise NotFoundError(f"Cannot open table version {version!r} of {path}: {error}") from None


def forget(path: Path) -> None:
    """Drop the cached table object of ``path`` (after the table was deleted)."""
    with _cache_lock:
        _latest.pop(str(path), None)


def latest_version(path: Path) -> int:
    with _latest_table(path) as table:
        return table.version()


def table_files(path: Path, version: int | dt.datetime | None = None, *, stats: bool = False) -> TableFiles:
    """Return the files of a version (the latest by default), oldest file first.

    With ``stats=True`` the result also carries each file's statistics from the Delta log.
    """
    if version is None:
        with _latest_table(path) as table:
            return _files_of(table, stats)
    return _files_of(_load(path, version), stats)


def _files_of(table: DeltaTable, stats: bool) -> TableFiles:
    actions = table.get_add_actions(flatten=stats)
    actions = pa.table(actions) if not isinstance(actions, pa.Table) else actions
    if actions.num_rows:
        names = actions.column("path").to_pylist()
        times = actions.column("modification_time").to_pylist()
        ordered = [name for _, name in sorted(zip(times, names))]
    else:
        ordered = []
    # The table URI and the paths of the Delta log are URL-escaped ("with%20space").
    root = Path(urllib.parse.unquote(table.table_uri.removeprefix("file://")))
    paths = [str(root / urllib.parse.unquote(name)) for name in ordered]
    columns = {f.name: f.type for f in pa.schema(table.schema().to_arrow())}
    return TableFiles(version=table.version(), paths=paths, columns=columns, stats=actions if stats else None)


def history(path: Path) -> list[dict[str, object]]:
    """Return the commitInfo of every version, newest first, with its ``version``."""
    return [{**info, "version": version} for version, info in _commit_infos(path)]


def compact(path: Path, *, retention: dt.timedelta) -> dict[str, int]:
    """Merge small files into large ones, then delete files unreferenced for ``retention``.

    Returns the number of files merged (``files_merged``) and written (``files_written``),
    of unreferenced files deleted (``files_deleted``), and the table version afterwards.
    """
    with _latest_table(path) as table:
        metrics = table.optimize.compact(writer_properties=_COMPACT_PROPERTIES, commit_properties=_operation("COMPACT"))
        # vacuum() takes whole hours; rounding up never deletes a file younger than ``retention``.
        hours = max(0, math.ceil(retention.total_seconds() / 3600))
        removed = table.vacuum(retention_hours=hours, dry_run=False, enforce_retention_duration=False)
        summary = {
            "files_merged": int(metrics.get("numFilesRemoved", 0)),
            "files_written": int(metrics.get("numFilesAdded", 0)),
            "files_deleted": len(removed),
            "version": table.version(),
        }
        logger.info("Compacted %s: %s", path, summary)
        return summary


def _operation(name: str) -> CommitProperties:
    """Commit properties that name the Raise operation behind a commit in its history."""
    return CommitProperties(custom_metadata={OPERATION_METADATA_KEY: name})


def delete_table(path: Path, trash: Path) -> None:
    """Move the table out of the way first so no reader sees half a table, then delete it."""
    forget(path)
    if path.exists():
        trash.mkdir(parents=True, exist_ok=True)
        path.rename(trash / f"{path.name}-{uuid.uuid4().hex}")

    # Also clear what earlier deletions left behind when their process was killed.
    if trash.exists():
        for leftover in trash.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)


__all__ = [
    "CommitFailedError",
    "SEQ_COLUMN",
    "TableFiles",
    "add_columns",
    "append",
    "compact",
    "create_table",
    "delete_table",
    "latest_version",
    "merge",
    "seq_values",
    "table_files",
]
