"""SQL that reads one version of a feature group, with its derived features computed.

The result is a DuckDB ``SELECT`` over the Parquet files of the Delta table version: stored
columns first (vectors cast back to fixed-size arrays, columns added after the version was
written filled with NULL), then one wrapping ``SELECT`` per level of derived features so that a
derived feature can use those of earlier levels.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from raise_jupyter.dtypes import DType
from raise_jupyter.engine import offline
from raise_jupyter.engine.duck import connection, literal, quote

_FILE_COLUMNS_CACHE_SIZE = 512
_file_columns_lock = threading.Lock()
_file_columns: OrderedDict[tuple[str, ...], frozenset[str]] = OrderedDict()


@dataclass(frozen=True)
class GroupLayout:
    """Columns, dtypes and derived expressions of a group, as a read needs them.

    Attributes
    ----------
    stored
        Stored columns (keys, event time and features) and their dtypes, in display order.
    derived
        Derived features: name to (expression, dtype), in display order.
    levels
        Derived feature names by dependency level.
    since
        First table version that contains each stored column's values (see the catalog's
        ``since_version``). Older versions read NULL.
    columns
        Delta column of each stored feature whose column is not named after it.
    """

    stored: dict[str, DType]
    derived: dict[str, tuple[str, DType]] = field(default_factory=dict)
    levels: list[list[str]] = field(default_factory=list)
    since: dict[str, int] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)

    def column(self, name: str) -> str:
        """Return the Delta column of stored feature ``name``."""
        return self.columns.get(name, name)

    @property
    def names(self) -> list[str]:
        return [*self.stored, *self.derived]

    def dtype(self, name: str) -> DType:
        if name in self.stored:
            return self.stored[name]
        return self.derived[name][1]

    def arrow_schema(self, columns: list[str]) -> pa.Schema:
        return pa.schema([pa.field(name, self.dtype(name).arrow_type) for name in columns])


def _columns_in_files(root: Path, paths: list[str]) -> frozenset[str]:
    key = tuple(paths)
    with _file_columns_lock:
        cached = _file_columns.get(key)
        if cached is not None:
            _file_columns.move_to_end(key)
            return cached

    cursor = connection(root).cursor()
    try:
        described = cursor.execute(f"DESCRIBE SELECT * FROM {_parquet_scan(paths)}").fetchall()
    finally:
        cursor.close()
    columns = frozenset(row[0] for row in described)

    with _file_columns_lock:
        _file_columns[key] = columns
        while len(_file_columns) > _FILE_COLUMNS_CACHE_SIZE:
            _file_columns.popitem(last=False)
    return columns


def _parquet_scan(paths: list[str]) -> str:
    files = ", ".join(literal(p) for p in paths)
    return f"read_parquet([{files}], union_by_name = true)"


def _stored_select(root: Path, layout: GroupLayout, files: offline.TableFiles, include_seq: bool) -> str:
    present = _columns_in_files(root, files.paths) if files.paths else frozenset()
    items = []
    if include_seq:
        items.append(f"{quote(offline.SEQ_COLUMN)}" if present else f"CAST(NULL AS BIGINT) AS {quote(offline.SEQ_COLUMN)}")
    for name, dtype in layout.stored.items():
        column = layout.column(name)
        if column not in present or layout.since.get(name, 0) > files.version:
            items.append(f"CAST(NULL AS {dtype.sql_type}) AS {quote(name)}")
        elif dtype.kind == "vector" or column != name:
            items.append(f"CAST({quote(column)} AS {dtype.sql_type}) AS {quote(name)}")
        else:
            items.append(quote(name))

    select_list = ", ".join(items) or "1 AS _raise_empty"
    if not files.paths:
        return f"SELECT {select_list} WHERE false"
    return f"SELECT {select_list} FROM {_parquet_scan(files.paths)}"


def relation_sql(
    root: Path,
    layout: GroupLayout,
    files: offline.TableFiles,
    *,
    columns: list[str] | None = None,
    where: str | None = None,
    include_seq: bool = False,
    sample_rows: int | None = None,
) -> str:
    """Return a SELECT of ``columns`` (all by default) from one table version.

    With ``sample_rows``, stored rows are first reduced to a uniform sample of that many rows,
    so derived features are computed on the sample only.
    """
    sql = _stored_select(root, layout, files, include_seq)
    if sample_rows is not None:
        sql = f"SELECT * FROM ({sql}) AS s USING SAMPLE reservoir({int(sample_rows)} ROWS) REPEATABLE (7)"
    for level in layout.levels:
        derived = ", ".join(
            f"CAST((\n{layout.derived[name][0]}\n) AS {layout.derived[name][1].sql_type}) AS {quote(name)}"
            for name in level
        )
        sql = f"SELECT *, {derived} FROM ({sql}) AS t"

    selected = columns if columns is not None else layout.names
    if include_seq:
        selected = [offline.SEQ_COLUMN, *selected]
    # An empty selection (used for counting rows) still needs one column.
    projection = ", ".join(quote(name) for name in selected) or "1 AS _raise_one"
    condition = f" WHERE (\n{where}\n)" if where else ""
    return f"SELECT {projection} FROM ({sql}) AS t{condition}"


def read_arrow(root: Path, sql: str, schema: pa.Schema | None = None) -> pa.Table:
    """Run ``sql`` on a cursor of the store's connection; return Arrow, cast to ``schema`` if given."""
    cursor = connection(root).cursor()
    try:
        table = cursor.execute(sql).to_arrow_table()
    finally:
        cursor.close()
    if schema is not None and table.schema != schema:
        table = table.cast(schema)
    return table


def resolve_version(as_of: int | str | dt.datetime | dt.date | None) -> int | dt.datetime | None:
    """Turn ``as_of`` (a version number, a datetime or an ISO string) into a table version key."""
    if as_of is None or isinstance(as_of, int):
        return as_of
    if isinstance(as_of, dt.datetime):
        return as_of if as_of.tzinfo else as_of.replace(tzinfo=dt.timezone.utc)
    if isinstance(as_of, dt.date):
        return dt.datetime(as_of.year, as_of.month, as_of.day, tzinfo=dt.timezone.utc)
    if isinstance(as_of, str):
        parsed = dt.datetime.fromisoformat(as_of)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
    raise TypeError(f"as_of must be a version number, datetime or ISO string, got {as_of!r}")
