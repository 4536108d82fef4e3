"""The DuckDB connections that run every query of Raise.

DuckDB is the query engine here, not the store: it reads the Parquet files of Delta table
versions and never opens a database file, so any number of processes can query one store.

Queries over a store run on a connection that may read the files of that store's tables and
live tables and nothing else (``enable_external_access`` off, ``allowed_directories`` set to
``<root>/tables/`` and ``<root>/live/``). So even
an expression that slipped past the derived-feature checks cannot read other files. Ingest
reads the user's own files on a separate connection that runs no user SQL. Threads get their own
cursor from ``connection(root).cursor()``.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import duckdb

_lock = threading.Lock()
_store_connections: dict[str, duckdb.DuckDBPyConnection] = {}
_file_connection: duckdb.DuckDBPyConnection | None = None

_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def _new_connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:", config=dict(_CONFIG))
    spill = Path(tempfile.gettempdir()) / "raise-duckdb"
    spill.mkdir(parents=True, exist_ok=True)
    con.execute("SET temp_directory = ?", [str(spill)])
    # All timestamps leave the engine in UTC, whatever the machine's zone.
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET parquet_metadata_cache = true")
    # DuckDB 1.5.5 estimates an Arrow or pandas input at about one row and then picks a nested
    # loop over its ASOF operator, which is far slower on large spines; 0 always uses ASOF.
    con.execute("SET asof_loop_join_threshold = 0")
    return con


def connection(root: Path | None = None) -> duckdb.DuckDBPyConnection:
    """Return the connection that may read the tables and live tables of ``root`` only (no files when None)."""
    key = str(root) if root is not None else ""
    with _lock:
        con = _store_connections.get(key)
        if con is None:
            con = _new_connection()
            # Only the tables and live-table results: the root also contains config.yaml, whose SMTP
            # URL may carry a password, and the catalog.
            directories = []
            if root is not None:
                directories = [f"{root / folder}/" for folder in ("tables", "live")]
                # Spill files of large queries go under the root, not the working directory.
                spill = root / "tmp" / "duckdb"
                spill.mkdir(parents=True, exist_ok=True)
                con.execute("SET temp_directory = ?", [str(spill)])
            con.execute("SET allowed_directories = ?", [directories])
            con.execute("SET enable_external_access = false")
            # No later statement may change a setting, such as the time zone that derived
            # features over timestamps depend on.
            con.execute("SET lock_configuration = true")
            _store_connections[key] = con
        return con


def file_connection() -> duckdb.DuckDBPyConnection:
    """Return the connection that reads the user's files for ingest; it runs no user SQL."""
    global _file_connection
    with _lock:
        if _file_connection is None:
            _file_connection = _new_connection()
        return _file_connection


def quote(identifier: str) -> str:
    """Quote an SQL identifier for DuckDB."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    """Quote a string as an SQL literal for DuckDB."""
    return "'" + value.replace("'", "''") + "'"


def string_literal(value: str) -> str:
    """Return ``value`` as a DuckDB string literal; NUL characters become ``chr(0)``."""
    parts = ["'" + part.replace("'", "''") + "'" for part in str(value).split("\x00")]
    return " || chr(0) || ".join(parts)
