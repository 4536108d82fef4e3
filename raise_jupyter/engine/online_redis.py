"""The Redis online store: each key's latest stored values as one packed string per key.

Selected with ``online_store: redis://host:port/db`` in ``<root>/config.yaml`` (or
``$RAISE_ONLINE_STORE``). Lookups return exactly what the SQLite store returns. A value is
``<event><seq>|<json>``: the event time (offset to be non-negative) and the ingest sequence as
20-digit numbers, so that a Lua script compares them as strings and an older event never
replaces a newer one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from raise_jupyter.dtypes import DType
from raise_jupyter.engine.online import EVENT_COLUMN, SEQ_COLUMN, _from_sqlite, _to_sqlite

_OFFSET = 2**63
_NO_EVENT = "0" * 20

# Set each key to its new value when it sorts higher (is newer) than the stored one.
_UPSERT_SCRIPT = """
local written = 0
for i, key in ipairs(KEYS) do
  local new = ARGV[i]
  local old = redis.call('GET', key)
  if (not old) or string.sub(new, 1, 40) > string.sub(old, 1, 40) then
    redis.call('SET', key, new)
    written = written + 1
  end
end
return written
"""


def _encode(value: Any, dtype: DType | None) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _decode(value: Any, dtype: DType) -> Any:
    if value is not None and (dtype.kind == "vector" or dtype.name == "bytes"):
        return base64.b64decode(value)
    return value


class RedisOnlineStore:
    """Latest values per key in Redis, for the online groups of one store root."""

    def __init__(self, url: str, store_id: str) -> None:
        import redis

        self.url = url
        self.client = redis.Redis.from_url(url)
        self.prefix = f"raise:{store_id}"
        self._upsert = self.client.register_script(_UPSERT_SCRIPT)

    def _key(self, group_id: int, key: tuple[Any, ...]) -> str:
        parts = [base64.b64encode(k).decode("ascii") if isinstance(k, bytes) else k for k in key]
        encoded = json.dumps(parts, separators=(",", ":"))
        return f"{self.prefix}:g{group_id}:{encoded}"

    def ensure_table(self, group_id: int, keys: dict[str, DType], columns: dict[str, DType]) -> None:
        """Nothing to create: Redis keys appear on first write."""

    def upsert(self, group_id: int, keys: dict[str, DType], columns: dict[str, DType], data: pa.Table) -> int:
        """Write one row per key of ``data``, replacing only older values; return rows written."""
        key_values = list(zip(*(_to_sqlite(data.column(k), d) for k, d in keys.items()), strict=True))
        events = data.column(EVENT_COLUMN).to_pylist()
        seqs = data.column(SEQ_COLUMN).to_pylist()
        column_values = {c: _to_sqlite(data.column(c), d) for c, d in columns.items()}

        redis_keys = []
        packed = []
        for i, key in enumerate(key_values):
            event = _NO_EVENT if events[i] is None else f"{events[i] + _OFFSET:020d}"
            values = {c: _encode(column_values[c][i], d) for c, d in columns.items()}
            payload = json.dumps({"event": events[i], "values": values}, separators=(",", ":"))
            redis_keys.append(self._key(group_id, key))
            packed.append(f"{event}{seqs[i]:020d}|{payload}")
        if not redis_keys:
            return 0
        return int(self._upsert(keys=redis_keys, args=packed))

    def lookup(
        self, group_id: int, keys: dict[str, DType], columns: dict[str, DType], requests: Sequence[tuple[Any, ...]]
    ) -> tuple[list[int | None], dict[str, pa.Array], list[bool]]:
        """Return event times, column arrays and found flags for ``requests``, in request order."""
        raw = self.client.mget([self._key(group_id, request) for request in requests]) if requests else []
        decoded = [None if value is None else json.loads(value.split(b"|", 1)[1]) for value in raw]
        events = [None if d is None else d["event"] for d in decoded]
        arrays = {
            name: _from_sqlite([None if d is None else _decode(d["values"].get(name), dtype) for d in decoded], dtype)
            for name, dtype in columns.items()
        }
        return events, arrays, [d is not None for d in decoded]

    def key_values(self, arrays: list[pa.Array], dtypes: list[DType]) -> list[tuple[Any, ...]]:
        converted = [_to_sqlite(array, dtype) for array, dtype in zip(arrays, dtypes, strict=True)]
        return list(zip(*converted, strict=True))

    def drop(self, group_id: int) -> None:
        for key in self.client.scan_iter(match=f"{self.prefix}:g{group_id}:*", count=1000):
            self.client.delete(key)
