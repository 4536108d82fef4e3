"""The embedded online store: each key's latest stored values in a SQLite file (WAL mode).

One table per feature group, keyed by the group's keys, with the event time and ingest sequence
of the row the values came from. A write replaces a key's values only when its (event time,
sequence) is newer, so an older event never overwrites a newer one, whatever order writes
arrive in. Derived features are not stored: lookups compute them from the stored values.
"""

from __future__ import annotations

import base64
import json
import math
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raise_jupyter.dtypes import DType
from raise_jupyter.engine.duck import quote

BUSY_TIMEOUT_MS = 60_000
EVENT_COLUMN = "__event_us"
_NAN_TEXT = "NaN"
_NEGATIVE_ZERO_TEXT = "negative zero"  # not numeric text, which REAL affinity would convert
SEQ_COLUMN = "__seq"

_local = threading.local()


def _sql_type(dtype: DType) -> str:
    if dtype.kind != "scalar":
        return "BLOB" if dtype.kind == "vector" else "TEXT"
    if dtype.name.startswith("float"):
        return "REAL"
    if dtype.name in ("string",):
        return "TEXT"
    if dtype.name == "bytes":
        return "BLOB"
    return "INTEGER"  # bool, ints, date (days), timestamp (microseconds)


def _to_sqlite(values: pa.ChunkedArray | pa.Array, dtype: DType) -> list[Any]:
    """Return Python values that SQLite stores, for one column."""
    if dtype.name == "timestamp":
        return values.cast(pa.int64()).to_pylist()
    if dtype.name == "date":
        return values.cast(pa.int32()).to_pylist()
    if dtype.name in ("float32", "float64"):
        # SQLite stores NaN as NULL and -0.0 as 0.0, so both are kept as text in the REAL column.
        return [_float_text(v) for v in values.to_pylist()]
    if dtype.kind == "vector":
        assert dtype.element is not None
        element = np.dtype(dtype.element.arrow_type.to_pandas_dtype())
        return [None if v is None else np.asarray(v, dtype=element).tobytes() for v in values.to_pylist()]
    if dtype.kind == "list":
        return _lists_to_json(values, dtype)
    return values.to_pylist()


def _float_text(value: float | None) -> float | str | None:
    if value is None:
        return None
    if value != value:
        return _NAN_TEXT
    if value == 0 and math.copysign(1.0, value) < 0:
        return _NEGATIVE_ZERO_TEXT
    return value


def _lists_to_json(values: pa.ChunkedArray | pa.Array, dtype: DType) -> list[str | None]:
    """Encode list values as JSON arrays of their elements' stored forms."""
    assert dtype.element is not None
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    elements = _to_sqlite(array.flatten(), dtype.element)
    if dtype.element.name == "bytes":
        elements = [None if e is None else base64.b64encode(e).decode("ascii") for e in elements]
    encoded: list[str | None] = []
    position = 0
    for length in pc.list_value_length(array).to_pylist():
        if length is None:
            encoded.append(None)
            continue
        encoded.append(json.dumps(elements[position : position + length]))
        position += length
    return encoded


def _lists_from_json(values: list[Any], dtype: DType) -> pa.Array:
    assert dtype.element is not None
    lists = [None if v is None else json.loads(v) for v in values]
    flat = [e for items in lists if items is not None for e in items]
    if dtype.element.name == "bytes":
        flat = [None if e is None else base64.b64decode(e) for e in flat]
    elements = _from_sqlite(flat, dtype.element)
    lengths = [0 if items is None else len(items) for items in lists]
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    mask = pa.array([items is None for items in lists])
    return pa.ListArray.from_arrays(offsets, elements, mask=mask).cast(dtype.arrow_type)


def _from_sqlite(values: list[Any], dtype: DType) -> pa.Array:
    """Return an Arrow array of ``dtype`` from values read back from SQLite."""
    if dtype.name == "timestamp":
        return pa.array(values, pa.int64()).cast(dtype.arrow_type)
    if dtype.name == "date":
        return pa.array(values, pa.int32()).cast(dtype.arrow_type)
    if dtype.name == "bool":
        return pa.array([None if v is None else bool(v) for v in values], pa.bool_())
    if dtype.name in ("float32", "float64"):
        special = {_NAN_TEXT: math.nan, _NEGATIVE_ZERO_TEXT: -0.0}
        return pa.array([special.get(v, v) if isinstance(v, str) else v for v in values], dtype.arrow_type)
    if dtype.kind == "vector":
        assert dtype.element is not None
        element = np.dtype(dtype.element.arrow_type.to_pandas_dtype())
        lists = [None if v is None else np.frombuffer(v, dtype=element).tolist() for v in values]
        return pa.array(lists, dtype.arrow_type)
    if dtype.kind == "list":
        return _lists_from_json(values, dtype)
    return pa.array(values, dtype.arrow_type)


class SQLiteOnlineStore:
    """Latest values per key for the online groups of one store root, in ``online.db``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread and file: sqlite3 connections must stay in their thread.
        connections = getattr(_local, "connections", None)
        if connections is None:
            connections = _local.connections = {}
        con = connections.get(self.path)
        if con is None:
            con = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
            con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
            connections[self.path] = con
        return con

    @staticmethod
    def table_name(group_id: int) -> str:
        return f"group_{group_id}"

    def ensure_table(self, group_id: int, keys: dict[str, DType], columns: dict[str, DType]) -> None:
        """Create the group's table, and add columns that features defined since need."""
        con = self._connection()
        table = quote(self.table_name(group_id))
        key_defs = ", ".join(f"{quote(k)} {_sql_type(d)} NOT NULL" for k, d in keys.items())
        primary = ", ".join(quote(k) for k in keys)
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {table} ({key_defs}, {quote(EVENT_COLUMN)} INTEGER, "
            f"{quote(SEQ_COLUMN)} INTEGER NOT NULL, PRIMARY KEY ({primary})) WITHOUT ROWID"
        )
        existing = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
        for name, dtype in columns.items():
            if name not in existing:
                try:
                    con.execute(f"ALTER TABLE {table} ADD COLUMN {quote(name)} {_sql_type(dtype)}")
                except sqlite3.OperationalError as error:
                    if "duplicate column" not in str(error):  # another process added it meanwhile
                        raise

    def upsert(
        self,
        group_id: int,
        keys: dict[str, DType],
        columns: dict[str, DType],
        data: pa.Table,
    ) -> int:
        """Write the rows of ``data`` (one per key), replacing only older values; return keys written.

        ``data`` has the key columns, ``EVENT_COLUMN`` (microseconds or null), ``SEQ_COLUMN``
        and the stored columns, named as in ``keys`` and ``columns``.
        """
        self.ensure_table(group_id, keys, columns)
        names = [*keys, EVENT_COLUMN, SEQ_COLUMN, *columns]
        dtypes = {**keys, **columns}
        values = [
            _to_sqlite(data.column(n), dtypes[n]) if n in dtypes else data.column(n).to_pylist() for n in names
        ]
        rows = list(zip(*values, strict=True))

        table = quote(self.table_name(group_id))
        placeholders = ", ".join("?" for _ in names)
        key_list = ", ".join(quote(k) for k in keys)
        updates = ", ".join(f"{quote(n)} = excluded.{quote(n)}" for n in names if n not in keys)
        newer = (
            f"(coalesce(excluded.{quote(EVENT_COLUMN)}, -9223372036854775808), excluded.{quote(SEQ_COLUMN)}) > "
            f"(coalesce({table}.{quote(EVENT_COLUMN)}, -9223372036854775808), {table}.{quote(SEQ_COLUMN)})"
        )
        sql = (
            f"INSERT INTO {table} ({', '.join(quote(n) for n in names)}) VALUES ({placeholders}) "
            f"ON CONFLICT ({key_list}) DO UPDATE SET {updates} WHERE {newer}"
        )
        con = self._connection()
        con.execute("BEGIN IMMEDIATE")
        try:
            before = con.total_changes
            con.executemany(sql, rows)
            written = con.total_changes - before
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return written

    def lookup(
        self, group_id: int, keys: dict[str, DType], columns: dict[str, DType], requests: Sequence[tuple[Any, ...]]
    ) -> tuple[list[int | None], dict[str, pa.Array], list[bool]]:
        """Return event times, column arrays and found flags for ``requests``, in request order.

        ``requests`` contains one tuple of SQLite key values per requested row.
        """
        table = quote(self.table_name(group_id))
        selected = ", ".join([quote(EVENT_COLUMN), *(quote(c) for c in columns)])
        where = " AND ".join(f"{quote(k)} = ?" for k in keys)
        sql = f"SELECT {selected} FROM {table} WHERE {where}"
        con = self._connection()

        found_rows: list[tuple[Any, ...] | None] = []
        try:
            for request in requests:
                found_rows.append(con.execute(sql, request).fetchone())
        except sqlite3.OperationalError as error:
            if "no such table" not in str(error):
                raise
            found_rows = [None] * len(requests)

        events = [row[0] if row else None for row in found_rows]
        arrays = {
            name: _from_sqlite([row[i + 1] if row else None for row in found_rows], dtype)
            for i, (name, dtype) in enumerate(columns.items())
        }
        return events, arrays, [row is not None for row in found_rows]

    def key_values(self, arrays: list[pa.Array], dtypes: list[DType]) -> list[tuple[Any, ...]]:
        """Return request key tuples in the form the table stores them."""
        converted = [_to_sqlite(array, dtype) for array, dtype in zip(arrays, dtypes, strict=True)]
        return list(zip(*converted, strict=True))

    def drop(self, group_id: int) -> None:
        self._connection().execute(f"DROP TABLE IF EXISTS {quote(self.table_name(group_id))}")
