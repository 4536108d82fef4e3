"""Point-in-time correct training data: ``FeatureStore.get_training_data``."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from raise_jupyter import definitions, training_sets
from raise_jupyter.dtypes import parse_dtype
from raise_jupyter.engine import conform, expressions, pointintime, reader, sortkey, sources
from raise_jupyter.engine.duck import connection
from raise_jupyter.engine.catalog import FeatureRecord, GroupRecord
from raise_jupyter.errors import ConflictError, DefinitionError, IngestError, NotFoundError, QueryError
from raise_jupyter.results import QueryResult

if TYPE_CHECKING:
    from raise_jupyter.group import FeatureGroup
    from raise_jupyter.store import FeatureStore

logger = logging.getLogger(__name__)

_TIMESTAMP = parse_dtype("timestamp")


class GroupVersions(dict):  # type: ignore[type-arg]
    """Table version of each group read, with a fingerprint of each group's definition.

    Passed back as ``as_of=``, it rebuilds the same training set, or raises ConflictError when
    a group's definition (its features, keys, event time or ttl, or the group itself) changed
    since, because the old values could then no longer be reproduced.
    """

    def __init__(self, versions: dict[str, int], fingerprints: dict[str, str]) -> None:
        super().__init__(versions)
        self.fingerprints = dict(fingerprints)


def _fingerprint(record: GroupRecord, records: list[FeatureRecord]) -> str:
    definition = {
        "group": record.id,
        "keys": list(record.keys or ()),
        "event_time": record.event_time,
        "ttl_us": record.ttl_us,
        "features": sorted(
            (r.name, r.dtype, r.derived_from, r.column, r.since_version) for r in records
        ),
    }
    return hashlib.sha1(json.dumps(definition, sort_keys=True, default=str).encode()).hexdigest()


def _check_fingerprints(as_of: Any, fingerprints: dict[str, str]) -> None:
    if not isinstance(as_of, GroupVersions):
        return
    changed = [name for name, value in fingerprints.items() if as_of.fingerprints.get(name, value) != value]
    if changed:
        raise ConflictError(
            f"The definitions of feature groups {changed} changed after these versions were recorded "
            "(features, keys, event time, ttl, or the group was created again), so the training set "
            "cannot be rebuilt exactly. Pass plain version numbers to read the old rows with today's definitions."
        )


class TrainingData(QueryResult):
    """Spine rows with the feature values as of each row's timestamp.

    Attributes
    ----------
    versions
        Table version of every feature group read; pass it back as ``as_of=`` to rebuild the
        identical training set later.
    timestamp_column
        Spine column used as each row's point in time (None when every group is a snapshot).
    training_set_id
        Id of the catalog record of this call, for ``fs.lineage(f"training:#{id}")``; None
        when recording failed.
    """

    def __init__(
        self,
        table: pa.Table,
        *,
        versions: GroupVersions,
        timestamp_column: str | None,
        training_set_id: int | None = None,
    ) -> None:
        super().__init__(table)
        self.versions: GroupVersions = versions
        self.timestamp_column = timestamp_column
        self.training_set_id = training_set_id


def _parse_references(store: FeatureStore, features: Sequence[str]) -> dict[str, tuple[FeatureGroup, list[str]]]:
    if isinstance(features, str) or not isinstance(features, Sequence) or not features:
        raise DefinitionError(
            f"features must be a non-empty list such as ['user-signals.ctr'], got {features!r}."
        )

    by_group: dict[str, tuple[FeatureGroup, list[str]]] = {}
    for reference in features:
        if not isinstance(reference, str) or "." not in reference:
            raise DefinitionError(
                f"Feature reference {reference!r} is invalid: write 'group.feature', such as "
                "'user-signals.ctr', or 'group.*' for all features of a group."
            )
        group_name, feature = reference.split(".", 1)
        if group_name not in by_group:
            by_group[group_name] = (store.get_feature_group(group_name), [])
        group, names = by_group[group_name]
        record, records = group._load()
        if feature == "*":
            roles = {*(record.keys or ()), record.event_time}
            names.extend(r.name for r in records if r.name not in roles and r.name not in names)
            continue
        known = [r.name for r in records]
        if feature not in known:
            raise NotFoundError(
                f"Feature {feature!r} does not exist in group {group_name!r}."
                f"{expressions.suggest(feature, known)} Features: {', '.join(known) or '(none)'}."
            )
        if feature not in names:
            names.append(feature)
    return by_group


def _timestamp_column(spine: pa.Table, groups: list[FeatureGroup], requested: str | None) -> str | None:
    event_times = {g.event_time for g in groups if g.event_time}
    if not event_times:
        return requested
    if requested is not None:
        if requested not in spine.column_names:
            raise DefinitionError(
                f"timestamp_column {requested!r} is not a spine column.{expressions.suggest(requested, spine.column_names)} "
                f"Spine columns: {', '.join(spine.column_names)}."
            )
        return requested

    named = [c for c in spine.column_names if c in event_times]
    if len(named) == 1:
        return named[0]
    temporal = [f.name for f in spine.schema if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type)]
    if len(temporal) == 1:
        return temporal[0]
    raise DefinitionError(
        "Cannot find the spine column with each row's point in time; pass timestamp_column=... "
        f"(timestamp or date columns of the spine: {', '.join(temporal) or '(none)'})."
    )


def _spine_keys(
    spine: pa.Table, group: FeatureGroup, keys: list[str], key_map: Mapping[str, str], alias: str
) -> dict[str, pa.ChunkedArray]:
    """Return the spine's key columns of one group, converted to the group's key dtypes."""
    record, records = group._load()
    dtypes = {r.name: parse_dtype(r.dtype) for r in records}
    spine_name_of = {key: key for key in keys}
    for spine_column, group_key in key_map.items():
        if group_key in spine_name_of:
            spine_name_of[group_key] = spine_column

    converted = {}
    for index, key in enumerate(keys):
        column = spine_name_of[key]
        if column not in spine.column_names:
            raise DefinitionError(
                f"The spine has no column {column!r} for key {key!r} of group {group.name!r}. Add it, or "
                f"map a spine column to it with key_map={{'spine_column': {key!r}}}. Spine columns: "
                f"{', '.join(spine.column_names)}."
            )
        if key not in dtypes:
            raise DefinitionError(f"Group {group.name!r} has no data yet, so key {key!r} has no dtype.")
        try:
            values = conform.convert_column(column, spine.column(column), dtypes[key])
        except IngestError as error:
            raise DefinitionError(
                f"Spine column {column!r} ({spine.column(column).type}) cannot be compared with key "
                f"{key!r} ({dtypes[key].name}) of group {group.name!r}: {error}"
            ) from None
        converted[f"__raise_{alias}_k{index}"] = values
    return converted


def _needed_columns(layout: reader.GroupLayout, features: list[str]) -> list[str]:
    """Return the stored columns that the requested features need, directly or through derived ones."""
    needed: set[str] = set()
    pending = list(features)
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in layout.stored:
            needed.add(name)
            continue
        expression = layout.derived[name][0]
        parsed = expressions.parse_expression(expression, what=f"derived feature {name!r}")
        lowered = {n.lower(): n for n in layout.names}
        pending.extend(lowered[c] for c in parsed.columns if c in lowered)
    return [n for n in layout.stored if n in needed]


def _as_of_for(as_of: Any, group_name: str) -> Any:
    if isinstance(as_of, Mapping):
        return as_of.get(group_name)
    return as_of


def get_training_data(
    store: FeatureStore,
    spine: Any,
    features: Sequence[str],
    *,
    timestamp_column: str | None = None,
    key_map: Mapping[str, str] | None = None,
    full_names: bool = False,
    as_of: Any = None,
    name: str | None = None,
) -> TrainingData:
    """Join feature values onto ``spine`` as of each row's timestamp; see ``FeatureStore.get_training_data``."""
    set_name = training_sets.validate_name(name)
    # pandas metadata would turn the UTC timestamps back into the spine's own types in to_pandas().
    table = sources.to_arrow_table(spine).replace_schema_metadata(None)
    duplicates = sorted({n for n in table.column_names if table.column_names.count(n) > 1})
    if duplicates:
        raise DefinitionError(f"The spine has duplicate columns {duplicates}; rename them first.")
    by_group = _parse_references(store, features)
    groups = [group for group, _ in by_group.values()]
    ts_column = _timestamp_column(table, groups, timestamp_column)

    outputs_seen: dict[str, str] = {}
    output_types: dict[str, pa.DataType] = {}
    spine_columns: dict[str, Any] = {pointintime.ROW_COLUMN: pa.array(np.arange(table.num_rows, dtype=np.int64))}
    joins = []
    versions: dict[str, int] = {}
    reads: list[training_sets.GroupRead] = []
    fingerprints: dict[str, str] = {}
    for index, (group_name, (group, names)) in enumerate(by_group.items()):
        alias = f"g{index}"
        record, records = group._load()
        fingerprints[group_name] = _fingerprint(record, records)
        keys = group._require_keys("training data")
        layout = definitions.layout_of(record, records)
        spine_columns.update(_spine_keys(table, group, keys, key_map or {}, alias))

        stored = _needed_columns(layout, [*keys, *([record.event_time] if record.event_time else []), *names])
        sub_layout = reader.GroupLayout(
            stored={n: layout.stored[n] for n in stored},
            since=layout.since,
            columns=layout.columns,
        )
        files = group._files(_as_of_for(as_of, group_name), record, stats=record.event_time is not None)
        versions[group_name] = files.version
        reads.append(training_sets.GroupRead(group_name, record.id, record.table_path, files.version))
        stored_sql = reader.relation_sql(store.root, sub_layout, files, include_seq=True)

        derived_needed = [n for n in layout.derived if n in names or n in _derived_closure(layout, names)]
        outputs = []
        for name in names:
            output = f"{group_name}__{name}" if full_names else name
            if output in outputs_seen and not full_names:
                raise DefinitionError(
                    f"Feature {name!r} comes from both {outputs_seen[output]!r} and {group_name!r}; pass "
                    "full_names=True to name columns 'group__feature'."
                )
            if output in table.column_names:
                raise DefinitionError(
                    f"Feature {name!r} of group {group_name!r} has the name of a spine column; rename the "
                    "spine column or pass full_names=True."
                )
            outputs_seen[output] = group_name
            outputs.append((name, output))
            output_types[output] = layout.dtype(name).arrow_type

        joins.append(
            pointintime.GroupJoin(
                alias=alias,
                stored_sql=stored_sql,
                stored=stored,
                keys=keys,
                spine_keys=[f"__raise_{alias}_k{i}" for i in range(len(keys))],
                event_time=record.event_time,
                ttl_us=record.ttl_us,
                compact=_compact_key(group, record, layout, files),
                derived={n: layout.derived[n] for n in derived_needed},
                levels=[[n for n in level if n in derived_needed] for level in layout.levels],
                outputs=outputs,
            )
        )

    _check_fingerprints(as_of, fingerprints)
    if ts_column is not None:
        try:
            utc = conform.convert_column(ts_column, table.column(ts_column), _TIMESTAMP)
        except IngestError as error:
            raise DefinitionError(f"Spine timestamp column {ts_column!r} is invalid: {error}") from None
        spine_columns[pointintime.SPINE_TIME_COLUMN] = utc
        table = table.set_column(table.column_names.index(ts_column), ts_column, utc)

    spine_sort = pointintime.spine_sort_sql(joins) if ts_column is not None else ""
    features_table = _run(store, pa.table(spine_columns), pointintime.training_sql(joins), spine_sort)
    for name in features_table.column_names[1:]:
        table = table.append_column(pa.field(name, output_types[name]), features_table.column(name).cast(output_types[name]))
    logger.info("Built training data: %d rows, %d features from %s", table.num_rows, len(outputs_seen), list(versions))
    references = [f"{group_name}.{feature}" for group_name, (_, names) in by_group.items() for feature in names]
    record_id = training_sets.record(store, name=set_name, features=references, groups=reads, spine_rows=table.num_rows)
    return TrainingData(
        table, versions=GroupVersions(versions, fingerprints), timestamp_column=ts_column, training_set_id=record_id
    )


def _derived_closure(layout: reader.GroupLayout, names: list[str]) -> set[str]:
    closure: set[str] = set()
    pending = [n for n in names if n in layout.derived]
    lowered = {n.lower(): n for n in layout.derived}
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        closure.add(name)
        parsed = expressions.parse_expression(layout.derived[name][0], what=f"derived feature {name!r}")
        pending.extend(lowered[c] for c in parsed.columns if c in lowered)
    return closure


def _compact_key(
    group: FeatureGroup, record: GroupRecord, layout: reader.GroupLayout, files: Any
) -> sortkey.CompactKey | None:
    """Return the BIGINT sort key of the group's table version, when its batches allow one."""
    if record.event_time is None or not record.keys:
        return None
    with group._catalog.read() as conn:
        ingests = group._catalog.list_ingests(conn, record.id)
    return sortkey.compact_key(
        files, ingests, keys=record.keys, event_time=record.event_time, event_column=layout.column(record.event_time)
    )


def _run(store: FeatureStore, spine: pa.Table, sql: str, spine_sort: str) -> pa.Table:
    cursor = connection(store.root).cursor()
    try:
        cursor.register("spine_input", spine)
        # Copying the spine into a table gives DuckDB its real size for planning.
        cursor.execute(f"CREATE TEMP TABLE spine AS SELECT *{spine_sort} FROM spine_input")
        return cursor.execute(sql).to_arrow_table()
    except duckdb.IOException as error:
        raise NotFoundError(f"Files of a feature group version are gone, most likely removed by compact(): {error}") from None
    except duckdb.Error as error:
        raise QueryError(f"Building training data failed: {str(error).strip()}") from None
    finally:
        cursor.close()

