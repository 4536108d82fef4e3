"""Online serving: each key's latest values, written on ingest and read by key.

``FeatureStore.get_online_features`` reads the embedded SQLite online store of the store root.
Derived features are computed at lookup, from the stored values, in one DuckDB query.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from raise_jupyter import definitions
from raise_jupyter.dtypes import DType
from raise_jupyter.engine import conform, expressions, offline, reader, rowexpr
from raise_jupyter.engine.catalog import GroupRecord
from raise_jupyter.engine.duck import connection, quote
from raise_jupyter.engine.online import EVENT_COLUMN, SEQ_COLUMN, SQLiteOnlineStore
from raise_jupyter.config import setting
from raise_jupyter.errors import DefinitionError, IngestError, QueryError, RaiseWarning, StoreError
from raise_jupyter.results import QueryResult

if TYPE_CHECKING:
    from raise_jupyter.group import FeatureGroup
    from raise_jupyter.store import FeatureStore

logger = logging.getLogger(__name__)

FOUND = "found"
MISSING = "missing"
EXPIRED = "expired"


class OnlineFeatures(QueryResult):
    """Feature values of the requested entities, in request order, with a status per row.

    The ``status`` column (``status__<group>`` when several groups are read) is ``found``,
    ``missing`` (unknown key) or ``expired`` (older than the group's ttl; values are null).
    """


_redis_stores: dict[tuple[str, str], Any] = {}


def online_store(root: Any) -> Any:
    """Return the online store of a store root: SQLite by default, Redis when configured."""
    url = setting(root, "online_store")
    if not url or url == "sqlite":
        return SQLiteOnlineStore(root / "online.db")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise StoreError(f"online_store {url!r} is invalid: use 'sqlite' or a redis:// URL.")
    key = (url, str(root))
    if key not in _redis_stores:
        from raise_jupyter.engine.online_redis import RedisOnlineStore

        _redis_stores[key] = RedisOnlineStore(url, _store_id(root))
    return _redis_stores[key]


def _store_id(root: Any) -> str:
    """Return the store's permanent id, kept in ``<root>/store-id`` so that moving the root keeps it."""
    path = root / "store-id"
    try:
        with open(path, "x", encoding="ascii") as handle:
            handle.write(uuid.uuid4().hex)
    except FileExistsError:
        pass
    return path.read_text(encoding="ascii").strip()


def _stored_columns(layout: reader.GroupLayout, keys: Sequence[str]) -> dict[str, DType]:
    """Return the online table's value columns: physical name to dtype, keys excluded."""
    return {layout.column(n): d for n, d in layout.stored.items() if n not in keys}


def _key_dtypes(layout: reader.GroupLayout, keys: Sequence[str]) -> dict[str, DType]:
    return {k: layout.stored[k] for k in keys}


def write_latest(
    store_root: Any, record: GroupRecord, layout: reader.GroupLayout, data: pa.Table, seq: pa.Array
) -> int:
    """Write each key's latest row of ``data`` (conformed, by feature name) to the online store."""
    keys = list(record.keys or ())
    if not keys or not all(k in layout.stored for k in keys):
        return 0

    table = data.append_column(SEQ_COLUMN, seq)
    order = f"{quote(record.event_time)} DESC NULLS LAST, " if record.event_time else ""
    event = f"epoch_us({quote(record.event_time)})" if record.event_time else "NULL::BIGINT"
    values = [f"{quote(n)} AS {quote(layout.column(n))}" for n in layout.stored if n not in keys and n in data.column_names]
    partition = ", ".join(quote(k) for k in keys)
    sql = (
        f"SELECT {', '.join(quote(k) for k in keys)}, {event} AS {quote(EVENT_COLUMN)}, {quote(SEQ_COLUMN)}"
        f"{''.join(', ' + v for v in values)} FROM batch "
        f"QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {order}{quote(SEQ_COLUMN)} DESC) = 1"
    )
    cursor = connection(store_root).cursor()
    try:
        cursor.register("batch", table)
        latest = cursor.execute(sql).to_arrow_table()
    finally:
        cursor.close()

    columns = {c: d for c, d in _stored_columns(layout, keys).items() if c in latest.column_names}
    return online_store(store_root).upsert(record.id, _key_dtypes(layout, keys), columns, latest)


def materialize(group: FeatureGroup, start: Any = None, end: Any = None) -> int:
    """Load the latest values per key with event time in [start, end] into the online store."""
    record, records = group._load()
    group._require_keys("online serving")
    layout = definitions.layout_of(record, records)
    now = dt.datetime.now(dt.timezone.utc)
    start_time = _as_utc(start, "start")
    end_time = _as_utc(end, "end")
    if end_time is not None and end_time > now:
        warnings.warn(
            f"materialize(end={end!r}) is in the future; using the current time {now.isoformat()} instead.",
            RaiseWarning,
            stacklevel=3,
        )
        end_time = now

    files = offline.table_files(group._path)
    base = reader.GroupLayout(stored=layout.stored, since=layout.since, columns=layout.columns)
    sql = reader.relation_sql(group._store.root, base, files, include_seq=True)
    conditions = []
    if record.event_time and start_time is not None:
        conditions.append(f"{quote(record.event_time)} >= '{start_time.isoformat()}'::TIMESTAMPTZ")
    if record.event_time and end_time is not None:
        conditions.append(f"{quote(record.event_time)} <= '{end_time.isoformat()}'::TIMESTAMPTZ")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    data = reader.read_arrow(group._store.root, f"SELECT * FROM ({sql}) AS t{where}")

    seq = data.column(offline.SEQ_COLUMN)
    data = data.drop_columns([offline.SEQ_COLUMN])
    written = write_latest(group._store.root, record, layout, data, seq) if data.num_rows else 0
    logger.info("Materialized %d keys of %s into the online store", written, group.name)
    return written


def _as_utc(value: Any, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = reader.resolve_version(value)
    except (TypeError, ValueError):
        parsed = None
    if not isinstance(parsed, dt.datetime):
        raise DefinitionError(f"{name} must be a datetime, a date or an ISO 8601 string, got {value!r}.")
    return parsed


def _request_keys(group_name: str, keys: list[str], layout: reader.GroupLayout, entities: Mapping[str, Any]) -> list[pa.Array]:
    arrays = []
    for key in keys:
        if key not in entities:
            raise DefinitionError(
                f"entities has no values for key {key!r} of group {group_name!r}; pass "
                f"entities={{{key!r}: [...]}}. Given: {', '.join(entities) or '(none)'}."
            )
        values = entities[key]
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise DefinitionError(f"entities[{key!r}] must be a list of key values, got {values!r}.")
        try:
            array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(list(values))
            converted = conform.convert_column(key, pa.chunked_array([array]) if isinstance(array, pa.Array) else array, layout.stored[key])
        except (IngestError, pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as error:
            raise DefinitionError(
                f"Values of key {key!r} cannot be used as {layout.stored[key].name} keys of group {group_name!r}: {error}"
            ) from None
        arrays.append(converted.combine_chunks())
    lengths = {len(a) for a in arrays}
    if len(lengths) > 1:
        raise DefinitionError(f"The key lists in entities have different lengths: {sorted(lengths)}.")
    return arrays


def _compile_derived(layout: reader.GroupLayout, names: list[str]) -> dict[str, rowexpr.Compiled] | None:
    """Compile the derived features ``names`` to Python, or return None if one cannot be."""
    kinds = {n.lower(): rowexpr.column_kind(d) for n, d in layout.stored.items()}
    compiled = {}
    for level in layout.levels:
        for name in level:
            if name not in names:
                continue
            expression, dtype = layout.derived[name]
            function = rowexpr.compile_expression(
                expressions.expression_tree(expression), {k: v for k, v in kinds.items() if v}, dtype
            )
            if function is None:
                return None
            compiled[name] = function
            kinds[name.lower()] = rowexpr.column_kind(dtype)
    return compiled


def _derived_values(root: Any, plan: _GroupPlan, values: dict[str, pa.Array], rows: int) -> dict[str, pa.Array]:
    """Compute the plan's derived features in Python when it can, else in DuckDB."""
    if plan.compiled is not None and plan.derived_needed:
        lists = {name.lower(): array.to_pylist() for name, array in values.items()}
        results: dict[str, list[Any]] = {name: [] for name in plan.derived_needed}
        try:
            for i in range(rows):
                row = {name: column[i] for name, column in lists.items()}
                for name in plan.derived_needed:
                    row[name.lower()] = value = plan.compiled[name](row)
                    results[name].append(value)
            return {n: pa.array(v, plan.layout.dtype(n).arrow_type) for n, v in results.items()}
        except rowexpr.Fallback:
            pass
    return _compute_derived(root, plan.layout, values, plan.derived_needed, rows)


def _compute_derived(root: Any, layout: reader.GroupLayout, values: dict[str, pa.Array], names: list[str], rows: int) -> dict[str, pa.Array]:
    """Compute the derived features ``names`` over looked-up values in one DuckDB query."""
    if not names or rows == 0:
        return {n: pa.nulls(rows, layout.dtype(n).arrow_type) for n in names}
    needed = [n for n in layout.stored if n in values]
    # A row-number column gives the query one row per entity even when no column is needed.
    parameters: list[Any] = [list(range(rows))]
    items = ["unnest($1::BIGINT[]) AS __raise_i"]
    for i, name in enumerate(needed, start=1):
        dtype = layout.stored[name]
        if dtype.name in ("float32", "float64"):
            # DuckDB turns NaN inside a list parameter into NULL, so floats travel as text.
            parameters.append([None if v is None else repr(v) for v in values[name].to_pylist()])
            items.append(f"CAST(unnest(${i + 1}::VARCHAR[]) AS {dtype.sql_type}) AS {quote(name)}")
        else:
            parameters.append(values[name].to_pylist())
            items.append(f"unnest(${i + 1}::{dtype.sql_type}[]) AS {quote(name)}")

    sql = f"SELECT {', '.join(items)}"
    for full_level in layout.levels:
        level = [n for n in full_level if n in names]
        if not level:
            continue
        derived = ", ".join(
            f"CAST((\n{layout.derived[n][0]}\n) AS {layout.derived[n][1].sql_type}) AS {quote(n)}" for n in level
        )
        sql = f"SELECT *, {derived} FROM ({sql}) AS t"
    sql = f"SELECT {', '.join(quote(n) for n in names)} FROM ({sql}) AS t"
    sql += " ORDER BY __raise_i"

    cursor = connection(root).cursor()
    try:
        table = cursor.execute(sql, parameters).to_arrow_table()
    except duckdb.Error as error:
        raise QueryError(f"Computing derived features {names} failed: {str(error).strip()}") from None
    finally:
        cursor.close()
    return {n: table.column(n).combine_chunks().cast(layout.dtype(n).arrow_type) for n in names}


@dataclass
class _GroupPlan:
    """Definition of one group as a lookup needs it, cached until the catalog changes."""

    name: str
    record: GroupRecord
    layout: reader.GroupLayout
    keys: list[str]
    names: list[str]
    stored_needed: list[str]
    physical: dict[str, DType]
    derived_needed: list[str]
    # Python versions of the derived expressions, or None when one needs DuckDB.
    compiled: dict[str, rowexpr.Compiled] | None


_plans: dict[tuple[str, str, tuple[str, ...]], tuple[int, list[_GroupPlan]]] = {}
_plans_lock = threading.Lock()
_MAX_PLANS = 256


def _build_plans(store: FeatureStore, features: Sequence[str]) -> list[_GroupPlan]:
    from raise_jupyter.training import _parse_references

    plans = []
    for group_name, (group, names) in _parse_references(store, features).items():
        record, records = group._load()
        keys = group._require_keys("online serving")
        if not record.online:
            raise DefinitionError(
                f"Feature group {group_name!r} is not online; call get_feature_group({group_name!r})"
                ".enable_online() and then .materialize() to load its existing data."
            )
        layout = definitions.layout_of(record, records)
        stored_needed = _stored_needed(layout, names)
        derived_names = [n for n in names if n in layout.derived]
        closure = _derived_closure(layout, derived_names)
        plans.append(
            _GroupPlan(
                name=group_name,
                record=record,
                layout=layout,
                keys=keys,
                names=names,
                stored_needed=stored_needed,
                physical={layout.column(n): layout.stored[n] for n in stored_needed if n not in keys},
                derived_needed=[n for n in layout.derived if n in closure],
                compiled=_compile_derived(layout, [n for n in layout.derived if n in closure]),
            )
        )
    return plans


def _plans_for(store: FeatureStore, features: Sequence[str]) -> list[_GroupPlan]:
    token = store._catalog.change_token()
    key = (str(store.root), store.namespace, tuple(features))
    if token is not None:
        with _plans_lock:
            cached = _plans.get(key)
        if cached is not None and cached[0] == token:
            return cached[1]

    plans = _build_plans(store, features)
    if token is not None:
        with _plans_lock:
            if len(_plans) >= _MAX_PLANS:
                _plans.clear()
            _plans[key] = (token, plans)
    return plans


def get_online_features(
    store: FeatureStore, features: Sequence[str], entities: Mapping[str, Any], *, full_names: bool = False
) -> OnlineFeatures:
    """Look up the latest values of ``features`` for ``entities``; see ``FeatureStore.get_online_features``."""
    if not isinstance(entities, Mapping) or not entities:
        raise DefinitionError(f"entities must be a dict of key name to a list of values, got {entities!r}.")
    if isinstance(features, str) or not isinstance(features, Sequence):
        raise DefinitionError(f"features must be a list such as ['user-signals.ctr'], got {features!r}.")
    plans = _plans_for(store, features)
    now_us = time.time_ns() // 1000
    online = online_store(store.root)

    columns: dict[str, pa.Array] = {}
    entity_columns: dict[str, pa.Array] = {}
    for plan in plans:
        layout = plan.layout
        key_arrays = _request_keys(plan.name, plan.keys, layout, entities)
        rows = len(key_arrays[0])
        if entity_columns and rows != len(next(iter(entity_columns.values()))):
            raise DefinitionError(f"The key lists in entities have different lengths; each needs {rows} values.")
        for key, array in zip(plan.keys, key_arrays, strict=True):
            entity_columns.setdefault(key, array)

        requests = online.key_values(key_arrays, [layout.stored[k] for k in plan.keys])
        events, arrays, found = online.lookup(plan.record.id, _key_dtypes(layout, plan.keys), plan.physical, requests)

        values = {n: arrays[layout.column(n)] for n in plan.stored_needed if n not in plan.keys}
        values.update({k: a for k, a in zip(plan.keys, key_arrays, strict=True) if k in plan.stored_needed})
        status = [FOUND if f else MISSING for f in found]
        ttl_us = plan.record.ttl_us
        if ttl_us is not None and plan.record.event_time:
            for i, event in enumerate(events):
                if event is not None and event < now_us - ttl_us:
                    status[i] = EXPIRED
        values.update(_derived_values(store.root, plan, values, rows))

        # Rows that are missing or expired get no values, derived ones included.
        hidden = pa.array([s != FOUND for s in status])
        for name in plan.names:
            output = f"{plan.name}__{name}" if full_names else name
            if output in columns or output in entity_columns:
                raise DefinitionError(
                    f"Column {output!r} would appear twice in the result (a feature of {plan.name!r} "
                    "named like another feature or a key); pass full_names=True."
                )
            columns[output] = pc.if_else(hidden, pa.scalar(None, values[name].type), values[name])
        status_name = "status" if len(plans) == 1 else f"status__{plan.name}"
        if status_name in columns or status_name in entity_columns:
            status_name = f"_{status_name}"
        columns[status_name] = pa.array(status, pa.string())

    table = pa.table({**entity_columns, **columns})
    return OnlineFeatures(table, versions={})


def _stored_needed(layout: reader.GroupLayout, names: list[str]) -> list[str]:
    from raise_jupyter.training import _needed_columns

    return _needed_columns(layout, names)


def _derived_closure(layout: reader.GroupLayout, names: list[str]) -> set[str]:
    from raise_jupyter.training import _derived_closure as closure

    return closure(layout, names)


__all__ = ["OnlineFeatures", "get_online_features", "materialize", "write_latest"]
