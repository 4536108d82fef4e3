"""The process-wide DuckDB connection that runs every query of Raise.

DuckDB is the query engine here, not the store: it reads the Parquet files of Delta table
versions and never opens a database file, so any number of processes can query one store.
Threads get their own cursor from ``connection().cursor()``.
"""

from __future__ import annotations

import threading

import duckdb

_lock = threading.Lock()
_connection: duckdb.DuckDBPyConnection | None = None


def connection() -> duckdb.DuckDBPyConnection:
    """Return the shared in-memory DuckDB connection, creating it on first use."""
    global _connection
    with _lock:
        if _connection is None:
            con = duckdb.connect(
                ":memory:",
                config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
            )
            # All timestamps leave the engine in UTC, whatever the machine's zone.
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET parquet_metadata_cache = true")
            _connection = con
        return _connection


def quote(identifier: str) -> str:
    """Quote an SQL identifier for DuckDB."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    """Quote a string as an SQL literal for DuckDB."""
    return "'" + value.replace("'", "''") + "'"
