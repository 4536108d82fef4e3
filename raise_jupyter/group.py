"""``FeatureGroup``: definitions, ingest and reads of one feature group.

A ``FeatureGroup`` object holds only the group's identity; every property reads the catalog,
so objects in several kernels always show the current definition.
"""

from __future__ import annotations

import datetime as dt
import logging
import numbers
import os
import random
import threading
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from raise_jupyter import access, audit, definitions, names
from raise_jupyter.access import guarded
from raise_jupyter.dtypes import infer_dtype
from raise_jupyter.engine import conform, expressions, offline, reader, sortkey, sources, tables
from raise_jupyter.engine.catalog import FeatureRecord, GroupRecord
from raise_jupyter.errors import (
    ConflictError,
    DefinitionError,
    IngestError,
    NotFoundError,
    QueryError,
    RaiseError,
    RaiseWarning,
    StoreError,
)
from raise_jupyter.feature import (
    Feature,
    FeatureSpec,
    make_spec,
    read_spec_file,
    specs_from_list,
    specs_from_schema,
)
from raise_jupyter.results import IngestResult

if TYPE_CHECKING:
    from raise_jupyter.analysis import Aggregation, Distribution
    from raise_jupyter.live import LiveTable
    from raise_jupyter.profile import GroupProfile
    from raise_jupyter.results import AnalysisResult
    import pandas
    import polars

    from raise_jupyter.store import FeatureStore

__all__ = ["FeatureGroup"]

logger = logging.getLogger(__name__)

class _Unchanged:
    def __repr__(self) -> str:
        return "<unchanged>"


_UNSET: Any = _Unchanged()
# Attempts at a Delta commit that conflicts with concurrent writers, with growing random waits.
_COMMIT_ATTEMPTS = 10
_COMMIT_BACKOFF_SECONDS = 0.05
DEFAULT_RETENTION = dt.timedelta(days=7)


class FeatureGroup:
    """A named set of features stored as one Delta Lake table.

    Get one from ``FeatureStore.create_feature_group`` or ``get_feature_group``.
    """

    def __init__(self, store: FeatureStore, record: GroupRecord) -> None:
        self._store = store
        self._catalog = store._catalog
        self._id = record.id
        self.name = record.name
        self.namespace = record.namespace
        self._path = store.root / record.table_path

    # -- definition -------------------------------------------------------------------------

    def _record(self) -> GroupRecord:
        with self._catalog.read() as conn:
            record = self._current(self._catalog.get_group_by_id(conn, self._id))
        if record is None:
            raise NotFoundError(f"Feature group {self.name!r} was deleted.")
        return record

    def _load(self) -> tuple[GroupRecord, list[FeatureRecord]]:
        with self._catalog.read() as conn:
            record = self._current(self._catalog.get_group_by_id(conn, self._id))
            features = self._catalog.list_features(conn, self._id) if record else []
        if record is None:
            raise NotFoundError(f"Feature group {self.name!r} was deleted.")
        return record, features

    def _current(self, record: GroupRecord | None) -> GroupRecord | None:
        """Return ``record`` if it is still this group; SQLite reuses the id of a deleted group."""
        if record is None or record.table_path != str(self._path.relative_to(self._store.root)):
            return None
        return record

    @property
    @guarded(access.READ, kind="feature_group")
    def keys(self) -> list[str] | None:
        """Entity key columns, or None if not set."""
        keys = self._record().keys
        return list(keys) if keys is not None else None

    @property
    @guarded(access.READ, kind="feature_group")
    def event_time(self) -> str | None:
        """Column holding each row's event time, or None for a snapshot group."""
        return self._record().event_time

    @property
    @guarded(access.READ, kind="feature_group")
    def description(self) -> str | None:
        return self._record().description

    @property
    @guarded(access.READ, kind="feature_group")
    def ttl(self) -> dt.timedelta | None:
        """How long a row's values stay valid after its event time; None is forever."""
        return self._record().ttl

    @guarded(access.UPDATE, kind="feature_group")
    def set_ttl(self, ttl: dt.timedelta | float | None) -> FeatureGroup:
        """Set the time to live (a timedelta or seconds); it applies to all data, old and new."""
        ttl_us = names.normalize_ttl(ttl)
        if ttl_us is None:
            with self._catalog.write() as conn:
                self._catalog.update_group(conn, self._id, ttl_us=None)
            return self
        self._apply_group_definition(
            keys=None, event_time=None, description=None, tags=None, ttl_us=ttl_us, replace=True
        )
        return self

    @property
    @guarded(access.READ, kind="feature_group")
    def tags(self) -> dict[str, str]:
        return self._record().tags

    @property
    @guarded(access.READ, kind="feature_group")
    def features(self) -> list[Feature]:
        """All features (stored and derived), in definition order."""
        _, records = self._load()
        return [definitions.feature_of(r, self.name) for r in records]

    @property
    @guarded(access.READ, kind="feature_group")
    def schema(self) -> dict[str, str]:
        """Column name to dtype, as reads return them: keys, event time, stored, then derived."""
        record, records = self._load()
        layout = definitions.layout_of(record, records)
        return {name: layout.dtype(name).name for name in layout.names}

    @property
    @guarded(access.READ, kind="feature_group")
    def version(self) -> int:
        """Current table version.

        Version 0 is the empty table made with the group. Each ingest, each batch of new stored
        features and each compaction adds one.
        """
        return offline.latest_version(self._path)

    def __repr__(self) -> str:
        return f"FeatureGroup({self.namespace}/{self.name})"

    def _repr_html_(self) -> str:
        import html

        record, records = self._load()
        rows = "".join(
            f"<tr><td>{html.escape(r.name)}</td><td>{html.escape(r.dtype)}</td>"
            f"<td>{html.escape(r.derived_from or '')}</td><td>{html.escape(r.description or '')}</td></tr>"
            for r in records
        )
        keys = ", ".join(record.keys or []) or "(not set)"
        return (
            f"<p><b>{html.escape(self.namespace)}/{html.escape(self.name)}</b> keys: {html.escape(keys)}, "
            f"event time: {html.escape(record.event_time or '(not set)')}</p>"
            f"<table><tr><th>feature</th><th>dtype</th><th>derived from</th><th>description</th></tr>{rows}</table>"
        )

    def _text_summary(self) -> str:
        """Describe the group in plain text: keys, event time and one line per feature."""
        record, records = self._load()
        keys = ", ".join(record.keys or []) or "(not set)"
        lines = [f"{self.namespace}/{self.name}: keys {keys}, event time {record.event_time or '(not set)'}"]
        width = max((len(r.name) for r in records), default=0)
        for r in records:
            detail = f"= {r.derived_from}" if r.derived_from else (r.description or "")
            lines.append(f"  {r.name:<{width}}  {r.dtype:<9} {detail}".rstrip())
        return "\n".join(lines)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from raise_jupyter.display import rich_bundle

        def panel() -> Any:
            from raise_jupyter.widgets import GroupPanel

            return GroupPanel(self)

        try:
            text = self._text_summary()
        except RaiseError:
            text = repr(self)
        return rich_bundle(panel, text=text, html=self._repr_html_)

    def panel(self) -> Any:
        """Return the interactive ``GroupPanel`` of this group (what displaying the group shows)."""
        from raise_jupyter.widgets import GroupPanel

        return GroupPanel(self)

    @guarded(access.READ, kind="feature_group")
    def feature(self, name: str) -> Feature:
        """Return the feature ``name``; raise NotFoundError with a suggestion if it is missing."""
        features = self.features
        for feature in features:
            if feature.name == name:
                return feature
        known = [f.name for f in features]
        raise NotFoundError(
            f"Feature {name!r} does not exist in group {self.name!r}.{expressions.suggest(name, known)} "
            f"Features: {', '.join(known) or '(none)'}."
        )

    def _has_data(self) -> bool:
        return bool(offline.table_files(self._path).paths)

    def _apply_group_definition(
        self,
        *,
        keys: list[str] | None,
        event_time: str | None,
        description: str | None,
        tags: dict[str, str] | None,
        replace: bool,
        ttl_us: int | None = None,
    ) -> None:
        """Reconcile a repeated ``create_feature_group`` call with the stored definition."""
        requested = {"keys": keys, "event_time": event_time, "description": description, "tags": tags, "ttl_us": ttl_us}
        with self._catalog.write() as conn:
            record = self._catalog.get_group_by_id(conn, self._id)
            if record is None:
                raise NotFoundError(f"Feature group {self.name!r} was deleted.")
            current = {
                "keys": list(record.keys) if record.keys is not None else None,
                "event_time": record.event_time,
                "description": record.description,
                "tags": record.tags or None,
                "ttl_us": record.ttl_us,
            }
            changes = {k: v for k, v in requested.items() if v is not None and v != current[k]}
            if not changes:
                audit.unchanged()
                return

            conflicts = {k: v for k, v in changes.items() if current[k] is not None}
            if conflicts and not replace:
                shown = "\n".join(f"  {k}: existing {current[k]!r}, new {v!r}" for k, v in conflicts.items())
                raise ConflictError(
                    f"Feature group {self.name!r} already exists with a different definition:\n{shown}\n"
                    "Pass replace=True to replace these settings."
                )
            if {"keys", "event_time"} & set(changes) and self._has_data():
                raise ConflictError(
                    f"Keys and event time of feature group {self.name!r} cannot change because it has "
                    "data; create a new group with the keys and event time you need and ingest again."
                )
            features = self._catalog.list_features(conn, self._id)
            self._validate_roles(changes.get("keys", current["keys"]), changes.get("event_time", current["event_time"]), features)
            values = dict(changes)
            if "tags" in values:
                values["tags"] = values["tags"] or {}
            self._catalog.update_group(conn, self._id, **values)
        logger.info("Updated feature group %s: %s", self.name, sorted(changes))

    def _validate_roles(self, keys: Sequence[str] | None, event_time: str | None, features: list[FeatureRecord]) -> None:
        if keys and event_time and event_time in keys:
            raise DefinitionError(f"Column {event_time!r} cannot be both a key and the event time.")
        definitions.validate_group(keys or (), event_time, [definitions.definition_of(f) for f in features])

    @guarded(access.UPDATE, kind="feature_group")
    def set_keys(self, *keys: str) -> FeatureGroup:
        """Set the entity key columns; allowed until the group has data.

        Examples
        --------
        >>> group.set_keys("user_id")              # doctest: +SKIP
        >>> group.set_keys("origin", "dest")       # doctest: +SKIP
        """
        if len(keys) == 1 and not isinstance(keys[0], str):
            keys = tuple(keys[0])
        normalized = names.normalize_keys(list(keys))
        self._apply_group_definition(keys=normalized, event_time=None, description=None, tags=None, replace=True)
        return self

    @guarded(access.UPDATE, kind="feature_group")
    def set_event_time(self, column: str) -> FeatureGroup:
        """Set the event time column; allowed until the group has data."""
        column = names.validate_feature_name(column)
        self._apply_group_definition(keys=None, event_time=column, description=None, tags=None, replace=True)
        return self

    def _require_keys(self, purpose: str) -> list[str]:
        keys = self.keys
        if not keys:
            raise DefinitionError(
                f"Feature group {self.name!r} has no keys, which {purpose} needs. Set them with "
                f"group.set_keys('user_id') before the first ingest, or create the group with keys=[...]."
            )
        return keys

    # -- features ---------------------------------------------------------------------------

    def _define(self, specs: list[FeatureSpec], *, replace: bool) -> list[Feature]:
        if not specs:
            return []
        with self._catalog.write() as conn:
            record = self._catalog.get_group_by_id(conn, self._id)
            if record is None:
                raise NotFoundError(f"Feature group {self.name!r} was deleted.")
            has_data = self._has_data()
            current = self._catalog.list_features(conn, self._id)
            plan = definitions.plan_changes(record, current, specs, replace=replace, has_data=has_data)
            if plan.is_empty:
                audit.unchanged()
                return self._pick(plan, specs)

            # The Delta columns are added inside the catalog transaction, so a failure here
            # rolls the definitions back. A kill between the two leaves an unused Delta column.
            needs_column = [d for d in plan.inserts if d.derived_from is None] + [
                d
                for existing, d in plan.updates
                if d.derived_from is None and (existing.derived_from is not None or existing.dtype != d.dtype)
            ]
            columns, version = self._add_columns(needs_column)
            for definition in plan.inserts:
                self._catalog.insert_feature(
                    conn,
                    self._id,
                    name=definition.name,
                    dtype=definition.dtype,
                    derived_from=definition.derived_from,
                    description=definition.description,
                    tags=definition.tags,
                    since_version=version if definition.name in columns else None,
                    column_name=columns.get(definition.name),
                )
            for existing, definition in plan.updates:
                new_column = definition.name in columns
                self._catalog.update_feature(
                    conn,
                    existing.id,
                    dtype=definition.dtype,
                    derived_from=definition.derived_from,
                    description=definition.description,
                    tags=definition.tags,
                    since_version=version if new_column else existing.since_version,
                    column_name=columns[definition.name] if new_column else existing.column_name,
                )

        logger.info(
            "Defined features of %s: %d created, %d updated", self.name, len(plan.inserts), len(plan.updates)
        )
        audit.note(created=[d.name for d in plan.inserts], updated=[d.name for _, d in plan.updates])
        return self._pick(plan, specs)

    def _pick(self, plan: definitions.Plan, specs: list[FeatureSpec]) -> list[Feature]:
        by_lower = {d.name.lower(): d for d in plan.result}
        return [by_lower[s.name.lower()].to_feature(self.name) for s in specs]

    def _add_columns(self, needed: Sequence[definitions.Definition]) -> tuple[dict[str, str], int]:
        """Add a fresh Delta column for each definition; return their names and the new version.

        A column is named after its feature unless the table already has a column of that name,
        which may hold the values of a deleted feature or of the feature's previous dtype.
        """
        # Delta compares column names without case.
        existing = {column.lower() for column in offline.table_files(self._path).columns}
        columns: dict[str, str] = {}
        fields = []
        for definition in needed:
            column = definition.name
            if column.lower() in existing:
                column = f"{definition.name}__{uuid.uuid4().hex[:8]}"
            columns[definition.name] = column
            fields.append(pa.field(column, definitions.parse_dtype(definition.dtype).storage_type))
        version = offline.add_columns(self._path, fields) if fields else offline.latest_version(self._path)
        return columns, version

    @guarded(access.DEFINE, kind="feature_group")
    def create_feature(
        self,
        name: str,
        dtype: str | None = None,
        *,
        derived_from: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | Sequence[str] | None = None,
        replace: bool = False,
    ) -> Feature:
        """Create a stored feature, or a derived one computed by a SQL expression.

        Parameters
        ----------
        name
            Column name: letters, digits and ``_``.
        dtype
            ``bool``, ``int8`` to ``int64``, ``float32``, ``float64``, ``string``, ``date``,
            ``timestamp`` (UTC), ``bytes``, vectors ``float32[N]`` / ``float64[N]`` / ``int64[N]``,
            or ``list<T>``. A derived feature may omit it to take the expression's type.
        derived_from
            One row-level DuckDB expression over the group's other columns, such as
            ``"clicks / NULLIF(impressions, 0)"``. It is checked now against the group's schema
            and computed whenever the group is read.
        replace
            Replace a different existing definition instead of raising ConflictError.

        Examples
        --------
        >>> group.create_feature("clicks", dtype="int64")                       # doctest: +SKIP
        >>> group.create_feature("ctr", dtype="float64",
        ...                      derived_from="clicks / NULLIF(impressions, 0)")  # doctest: +SKIP
        """
        spec = make_spec(name, dtype, derived_from=derived_from, description=description, tags=tags)
        return self._define([spec], replace=replace)[0]

    @guarded(access.DEFINE, kind="feature_group")
    def create_features_from_schema(
        self, schema: Mapping[str, str | Mapping[str, Any]], *, replace: bool = False
    ) -> list[Feature]:
        """Create features from a dict of name to dtype; features that already match are kept.

        Examples
        --------
        >>> group.create_features_from_schema({"clicks": "int64", "emb": "float32[512]"})  # doctest: +SKIP
        """
        return self._define(specs_from_schema(schema), replace=replace)

    @guarded(access.DEFINE, kind="feature_group")
    def create_features_from_file(self, path: str | os.PathLike[str], *, replace: bool = False) -> list[Feature]:
        """Create features from a YAML or JSON file.

        The file contains a mapping of name to dtype, a list of feature specifications (dicts with
        ``name``, ``dtype``, ``derived_from``, ``description``, ``tags``), or either under a
        ``features:`` key.
        """
        return self._define(read_spec_file(path), replace=replace)

    @guarded(access.DEFINE, kind="feature_group")
    def create_features(self, specs: Sequence[Mapping[str, Any]], *, replace: bool = False) -> list[Feature]:
        """Create features from a list of dicts with ``name``, ``dtype`` and optional fields."""
        return self._define(specs_from_list(specs), replace=replace)

    @guarded(access.UPDATE, kind="feature", name=lambda self, a: f"{self.name}.{a['name']}")
    def update_feature(
        self,
        name: str,
        *,
        dtype: str = _UNSET,
        derived_from: str | None = _UNSET,
        description: str | None = _UNSET,
        tags: Mapping[str, str] | Sequence[str] | None = _UNSET,
    ) -> Feature:
        """Change parts of a feature's definition; arguments left out keep their value.

        ``derived_from=None`` turns a derived feature into a stored one. The dtype of a stored
        feature that has data cannot change.
        """
        current = self.feature(name)
        spec = make_spec(
            name,
            current.dtype if dtype is _UNSET else dtype,
            derived_from=current.derived_from if derived_from is _UNSET else derived_from,
            description=current.description if description is _UNSET else description,
            tags=dict(current.tags) if tags is _UNSET else tags,
        )
        return self._define([spec], replace=True)[0]

    @guarded(access.DELETE, kind="feature", name=lambda self, a: f"{self.name}.{a['name']}")
    def delete_feature(self, name: str, *, cascade: bool = False) -> None:
        """Delete a feature from the group's definition.

        Reads no longer return it, at any table version. The values of a stored feature stay
        in the table's files, in a column that no feature uses. Creating the feature again gives
        it a new column, so old values never reappear. Deleting creates no table version.

        Parameters
        ----------
        name
            The feature to delete; keys and the event time cannot be deleted.
        cascade
            Also delete what uses the feature: derived features computed from it (and from
            those, transitively), alerts and live tables on any of them, and jobs that name one
            of them in a source's ``columns`` or ``where`` filter or as the embedding input.
            Without it, a feature with such dependents raises ConflictError listing them.
            Recorded training sets never block a delete.
        """
        from raise_jupyter import dependencies

        names.validate_feature_name(name)
        with self._catalog.write() as conn:
            record = self._current(self._catalog.get_group_by_id(conn, self._id))
            current = self._catalog.list_features(conn, self._id) if record is not None else []
            target = next((f for f in current if f.name == name), None)
            if record is None or target is None:
                known = [f.name for f in current]
                raise NotFoundError(
                    f"Feature {name!r} does not exist in group {self.name!r}."
                    f"{expressions.suggest(name, known)} Features: {', '.join(known) or '(none)'}."
                )
            if name in (record.keys or ()) or name == record.event_time:
                role = "a key" if name in (record.keys or ()) else "the event time"
                raise DefinitionError(f"Feature {name!r} is {role} of group {self.name!r} and cannot be deleted.")
            snapshot = dependencies.load(self._catalog, conn, self.namespace)
            dependents = dependencies.dependents_of_feature(snapshot, self._id, name)
            if dependents and not cascade:
                raise ConflictError(dependencies.rejection_message(f"Feature '{self.name}.{name}'", dependents))
            if dependents:
                # The audit entry of this delete names what the cascade removed with it.
                audit.note(cascaded=dependents.describe())
            live_ids = dependencies.delete_dependents(self._catalog, conn, dependents)
            self._catalog.delete_feature(conn, target.id)
        self._store._remove_live_files(live_ids)
        logger.info("Deleted feature %s.%s", self.name, name)

    # -- ingest -----------------------------------------------------------------------------

    @guarded(access.INGEST, kind="feature_group")
    def ingest(self, data: Any, *, mode: str = "append") -> IngestResult:
        """Append rows to the group's table in one commit; on any error nothing is written.

        Parameters
        ----------
        data
            A pandas or polars DataFrame, a pyarrow Table, RecordBatch or RecordBatchReader, a
            list of dicts, a dict of columns, or a path or glob of Parquet, CSV or JSON files.

        Notes
        -----
        Columns must be features of the group; absent features are stored as null. Only
        lossless conversions are applied. Naive timestamps are taken as UTC and dates as
        midnight UTC. NaN and infinity in float columns are stored as values, except that
        pandas' NaN marks a missing value and arrives as null. Keys and event time must not be
        null. A group with no features yet gets them inferred from the data (with a warning).

        With ``mode="upsert"``, a row whose keys and event time equal a stored row's replaces
        it in the same commit instead of being added; the data must then have no two rows with
        equal keys and event time.

        Returns
        -------
        IngestResult
            Rows written and the table version holding them.
        """
        if mode not in ("append", "upsert"):
            raise DefinitionError(f"mode must be 'append' or 'upsert', got {mode!r}.")
        table = sources.to_arrow_table(data)
        record, records = self._load()
        if table.num_rows == 0 and table.num_columns == 0:
            return IngestResult(self.name, 0, self.version)
        if table.num_rows >= offline.ROWS_PER_BATCH_LIMIT:
            raise IngestError(f"One ingest takes at most {offline.ROWS_PER_BATCH_LIMIT - 1:,} rows; split the data.")

        inferred = self._infer_features(table, record, records)
        layout = definitions.layout_of(record, [*records, *inferred])
        required = [*(record.keys or ()), *([record.event_time] if record.event_time else [])]
        conform.check_columns(table, layout.stored, derived=layout.derived, required=required)
        conformed = conform.conform(table, layout.stored)
        if table.num_rows == 0:
            return IngestResult(self.name, 0, self.version)
        conform.check_not_null(conformed, record.keys or (), role="key")
        if record.event_time:
            conform.check_not_null(conformed, [record.event_time], role="event time")

        upsert_on = self._upsert_columns(record, conformed) if mode == "upsert" else None
        if inferred:
            self._register_inferred(inferred)
            record, records = self._load()
            layout = definitions.layout_of(record, records)
        try:
            version, batch = self._append(
                conformed, layout, supplied=table.column_names, tie_columns=_tie_columns(record), upsert_on=upsert_on
            )
        except BaseException:
            if inferred:
                self._unregister_inferred(inferred)
            raise
        if record.online:
            self._write_online(record, layout, conformed, batch, version)
        logger.info("Ingested %d rows into %s (version %d)", table.num_rows, self.name, version)
        audit.note(rows=table.num_rows, version=version, mode=mode)
        self._evaluate_alerts()
        return IngestResult(self.name, table.num_rows, version, [f.name for f in inferred])

    def _upsert_columns(self, record: GroupRecord, conformed: pa.Table) -> list[str]:
        """Return the columns an upsert matches rows on: keys and event time, unique in the data."""
        if not record.keys:
            raise DefinitionError(f"Upserts into {self.name!r} need keys; set them with group.set_keys(...).")
        columns = [*record.keys, *([record.event_time] if record.event_time else [])]
        if sortkey.has_ties(conformed, columns):
            counts = conformed.select(columns).group_by(columns).aggregate([([], "count_all")])
            repeated = counts.filter(pc.greater(counts.column("count_all"), 1))
            example = {name: repeated.column(name)[0].as_py() for name in columns}
            raise IngestError(
                f"Upsert data for {self.name!r} has more than one row for {repeated.num_rows:,} "
                f"{'value' if repeated.num_rows == 1 else 'values'} of {', '.join(columns)}, such as {example}; "
                "an upsert needs one row each. Keep one, as with "
                f"df.drop_duplicates({columns!r}, keep='last'), or ingest with mode='append'."
            )
        return columns

    def _evaluate_alerts(self) -> None:
        """Evaluate the on-ingest alerts of this group, if it has any (errors are only logged)."""
        alerts = tables.alerts
        with self._catalog.read() as conn:
            has_alerts = conn.execute(
                sa.select(alerts.c.id).where(alerts.c.group_id == self._id, alerts.c.on_ingest).limit(1)
            ).first()
        if has_alerts is not None:
            from raise_jupyter.alerts import evaluate_after_ingest

            evaluate_after_ingest(self._store, self._id)

    def _infer_features(self, table: pa.Table, record: GroupRecord, records: list[FeatureRecord]) -> list[FeatureRecord]:
        existing = {r.name for r in records}
        roles = [*(record.keys or ()), *([record.event_time] if record.event_time else [])]
        if records:
            candidates = [n for n in roles if n not in existing and n in table.column_names]
        else:
            candidates = list(table.column_names)

        inferred = []
        for position, name in enumerate(candidates):
            names.validate_feature_name(name)
            dtype = infer_dtype(table.column(name).type)
            if name == record.event_time and (dtype is None or dtype.name == "string"):
                dtype = definitions.parse_dtype("timestamp")
            if dtype is None:
                raise IngestError(
                    f"Cannot infer a dtype for column {name!r} ({table.column(name).type}); declare it "
                    f"first, such as group.create_feature({name!r}, dtype='string')."
                )
            inferred.append(FeatureRecord(0, self._id, name, dtype.name, None, None, {}, position))

        if inferred:
            plan_specs = [make_spec(f.name, f.dtype) for f in inferred]
            definitions.plan_changes(record, records, plan_specs, replace=False, has_data=False)
        return inferred

    def _register_inferred(self, inferred: list[FeatureRecord]) -> None:
        # NOTE: a process killed between this and the append leaves these features defined
        # without data; delete_feature() removes them.
        self._define([make_spec(f.name, f.dtype) for f in inferred], replace=False)
        listed = ", ".join(f"{f.name} {f.dtype}" for f in inferred)
        warnings.warn(
            f"Inferred {len(inferred)} features of {self.name!r} from the data: {listed}. Declare "
            "features with create_features_from_schema() to choose their dtypes.",
            RaiseWarning,
            stacklevel=3,
        )

    def _unregister_inferred(self, inferred: list[FeatureRecord]) -> None:
        """Remove features inferred by an ingest whose write failed, so it leaves no trace."""
        names_to_remove = {f.name for f in inferred}
        with self._catalog.write() as conn:
            for record in self._catalog.list_features(conn, self._id):
                if record.name in names_to_remove:
                    self._catalog.delete_feature(conn, record.id)

    def _append(
        self,
        conformed: pa.Table,
        layout: reader.GroupLayout,
        *,
        supplied: list[str],
        tie_columns: list[str] | None,
        upsert_on: list[str] | None = None,
    ) -> tuple[int, int]:
        """Commit ``conformed`` as one batch and return the table version and the batch number.

        While the Delta write runs, another thread checks whether rows of the batch share keys
        and event time, and the catalog records the result for training data's sort key.
        """
        batch = self._catalog.begin_ingest(self._id, conformed.num_rows)
        check = _TieCheck(conformed, tie_columns)
        try:
            version = self._commit(conformed, layout, batch, supplied, upsert_on)
        except BaseException:
            self._catalog.finish_ingest(self._id, batch, status="failed", table_version=None, **check.result())
            raise
        self._catalog.finish_ingest(self._id, batch, status="committed", table_version=version, **check.result())
        return version, batch

    def _write_online(
        self, record: GroupRecord, layout: reader.GroupLayout, conformed: pa.Table, batch: int, version: int
    ) -> None:
        from raise_jupyter import online

        try:
            online.write_latest(self._store.root, record, layout, conformed, offline.seq_values(batch, conformed.num_rows))
        except Exception as error:
            logger.error("Online write of %s version %d failed: %s", self.name, version, error)
            raise StoreError(
                f"The rows were stored offline (version {version}) but the online store of {self.name!r} "
                f"was not updated: {error}. Run group.materialize() to catch up."
            ) from error

    # -- online -----------------------------------------------------------------------------

    @property
    @guarded(access.READ, kind="feature_group")
    def online(self) -> bool:
        """Whether ingests also write each key's latest values to the online store."""
        return self._record().online

    @guarded(access.UPDATE, kind="feature_group")
    def enable_online(self) -> FeatureGroup:
        """Keep each key's latest values in the online store from the next ingest on.

        Call ``materialize()`` to load the data already stored.
        """
        self._require_keys("online serving")
        with self._catalog.write() as conn:
            self._catalog.update_group(conn, self._id, online=True)
        return self

    @guarded(access.UPDATE, kind="feature_group")
    def disable_online(self) -> FeatureGroup:
        """Stop writing to the online store and drop this group's online values."""
        from raise_jupyter import online

        with self._catalog.write() as conn:
            self._catalog.update_group(conn, self._id, online=False)
        online.online_store(self._store.root).drop(self._id)
        return self

    @guarded(access.MATERIALIZE, kind="feature_group")
    def materialize(
        self, start: dt.datetime | str | None = None, end: dt.datetime | str | None = None
    ) -> int:
        """Load each key's latest values with event time in [start, end] into the online store.

        An older event never replaces a newer one already there. An ``end`` in the future is
        clamped to now, with a warning. Returns the number of keys written.
        """
        from raise_jupyter import online

        if not self.online:
            self.enable_online()
        return online.materialize(self, start, end)

    def _check_layout_unchanged(self, layout: reader.GroupLayout, names_written: list[str]) -> None:
        """Raise if another process changed where the written features are stored."""
        record, records = self._load()
        current = definitions.layout_of(record, records)
        changed = [
            name
            for name in names_written
            if name not in current.stored or current.column(name) != layout.column(name)
        ]
        if changed:
            raise ConflictError(
                f"Features {changed} of group {self.name!r} were deleted, made derived or given a new "
                "dtype by another process during this ingest; nothing was written. Ingest again."
            )

    def _commit(
        self, conformed: pa.Table, layout: reader.GroupLayout, batch: int, supplied: list[str], upsert_on: list[str] | None = None
    ) -> int:
        seq = offline.seq_values(batch, conformed.num_rows)
        feature_of_column = {layout.column(name): name for name in conformed.column_names}
        # NOTE: a definition change that lands between this check and the Delta commit still
        # goes unnoticed; the window is the commit itself, a few milliseconds.
        self._check_layout_unchanged(layout, supplied)
        for attempt in range(1, _COMMIT_ATTEMPTS + 1):
            columns = offline.table_files(self._path).columns
            missing = [
                pa.field(column, conformed.schema.field(name).type)
                for column, name in feature_of_column.items()
                if column not in columns
            ]
            if missing:
                # Only after a process was killed between defining a feature and adding its column.
                offline.add_columns(self._path, missing)
                columns = offline.table_files(self._path).columns
            arrays = []
            for column, arrow_type in columns.items():
                if column == offline.SEQ_COLUMN:
                    arrays.append(seq)
                elif column in feature_of_column:
                    arrays.append(conformed.column(feature_of_column[column]))
                else:
                    arrays.append(pa.nulls(conformed.num_rows, _storage_type(arrow_type)))
            schema = pa.schema([pa.field(n, _storage_type(t)) for n, t in columns.items()])
            data = pa.Table.from_arrays(arrays, schema=schema)
            try:
                if upsert_on is not None:
                    return offline.merge(self._path, data, batch, on=[layout.column(name) for name in upsert_on])
                return offline.append(self._path, data, batch)
            except offline.CommitFailedError as error:
                if attempt == _COMMIT_ATTEMPTS:
                    raise StoreError(
                        f"Writing to {self.name!r} failed {attempt} times because other processes wrote at the "
                        f"same time ({error}); nothing of this ingest was written. Ingest again."
                    ) from error
                logger.warning("Commit of batch %d to %s failed (%s); retrying", batch, self.name, error)
                # Random growing waits, so that writers that collided do not collide again.
                time.sleep(random.uniform(0, min(2.0, _COMMIT_BACKOFF_SECONDS * 2**attempt)))
        raise AssertionError("unreachable")

    # -- reads ------------------------------------------------------------------------------

    def _resolve_version(self, as_of: Any, record: GroupRecord) -> int | dt.datetime | None:
        invalid = DefinitionError(
            f"as_of must be a table version number (0 or more), a datetime, a date or an ISO 8601 "
            f"string, got {as_of!r}."
        )
        if isinstance(as_of, numbers.Integral) and not isinstance(as_of, bool):
            as_of = int(as_of)
        if isinstance(as_of, bool) or (isinstance(as_of, int) and as_of < 0):
            raise invalid
        try:
            version = reader.resolve_version(as_of)
        except (ValueError, TypeError):
            raise invalid from None

        created = record.created_at if record.created_at.tzinfo else record.created_at.replace(tzinfo=dt.timezone.utc)
        if isinstance(version, dt.datetime) and version < created:
            raise NotFoundError(
                f"as_of {as_of!r} is before feature group {self.name!r} was created "
                f"({created.isoformat()}); pass a later time or a version number."
            )
        return version

    def _files(self, as_of: Any, record: GroupRecord, *, stats: bool = False) -> offline.TableFiles:
        version = self._resolve_version(as_of, record)
        try:
            files = offline.table_files(self._path, version, stats=stats)
        except (NotFoundError, OverflowError):
            raise NotFoundError(
                f"Feature group {self.name!r} has no table version {as_of!r}; its versions run from 0 "
                f"to {self.version} (see group.history())."
            ) from None

        if version is not None and not all(os.path.exists(path) for path in files.paths):
            raise self._files_gone(files.version)
        return files

    def _files_gone(self, version: int) -> NotFoundError:
        return NotFoundError(
            f"The files of version {version} of feature group {self.name!r} are gone, most likely "
            "removed by compact(); read a newer version."
        )

    def _read(self, sql: str, schema: pa.Schema | None, version: int) -> pa.Table:
        """Run a read query, turning DuckDB's errors into Raise's."""
        try:
            return reader.read_arrow(self._store.root, sql, schema)
        except duckdb.IOException:
            raise self._files_gone(version) from None
        except duckdb.Error as error:
            raise QueryError(f"Reading feature group {self.name!r} failed: {str(error).strip()}") from None

    def _select_sql(
        self, columns: str | Sequence[str] | None, where: str | None, as_of: Any, *, include_seq: bool = False
    ) -> tuple[str, pa.Schema, int]:
        record, records = self._load()
        layout = definitions.layout_of(record, records)
        selected = [] if columns == () else self._check_selection(columns, layout.names)
        if where is not None:
            expressions.check_filter(where, layout)
        files = self._files(as_of, record)
        try:
            sql = reader.relation_sql(
                self._store.root, layout, files, columns=selected, where=where, include_seq=include_seq
            )
        except duckdb.IOException:
            raise self._files_gone(files.version) from None
        schema_columns = [offline.SEQ_COLUMN, *selected] if include_seq else selected
        schema = pa.schema(
            [pa.field(offline.SEQ_COLUMN, pa.int64())] * include_seq
            + [pa.field(n, layout.dtype(n).arrow_type) for n in schema_columns[include_seq:]]
        )
        return sql, schema, files.version

    def _check_selection(self, columns: str | Sequence[str] | None, available: list[str]) -> list[str]:
        if columns is None:
            return available
        if isinstance(columns, str):
            columns = [columns]
        selected = list(columns)
        if not selected:
            raise DefinitionError("columns is empty; pass None to read every column.")
        for name in selected:
            if name not in available:
                raise NotFoundError(
                    f"Column {name!r} is not in group {self.name!r}.{expressions.suggest(name, available)} "
                    f"Columns: {', '.join(available)}."
                )
        return selected

    def _layout_names(self) -> list[str]:
        """Return the names of the group's stored and derived features."""
        record, records = self._load()
        return definitions.layout_of(record, records).names

    def _view_sql(self) -> tuple[str, int]:
        sql, _, version = self._select_sql(None, None, None)
        return sql, version

    @guarded(access.READ, kind="feature_group")
    def to_arrow(
        self,
        columns: str | Sequence[str] | None = None,
        *,
        where: str | None = None,
        as_of: int | str | dt.datetime | None = None,
    ) -> pa.Table:
        """Read the group's rows, with derived features computed.

        Parameters
        ----------
        columns
            Columns to return (stored or derived); all by default.
        where
            A row filter in DuckDB SQL over any column, such as ``"clicks > 10"``.
        as_of
            A table version number (see ``IngestResult.version``), or a datetime or ISO 8601
            string to read the table as it was then (naive values are UTC).

        Examples
        --------
        >>> group.to_arrow(["user_id", "ctr"], where="impressions > 0")  # doctest: +SKIP
        """
        sql, schema, version = self._select_sql(columns, where, as_of)
        if not schema.names:
            # A group without features has no columns to read.
            return schema.empty_table()
        return self._read(sql, schema, version)

    @guarded(access.READ, kind="feature_group")
    def to_pandas(
        self,
        columns: str | Sequence[str] | None = None,
        *,
        where: str | None = None,
        as_of: int | str | dt.datetime | None = None,
    ) -> pandas.DataFrame:
        """Read the group into a pandas DataFrame; see ``to_arrow`` for the parameters."""
        return self.to_arrow(columns, where=where, as_of=as_of).to_pandas()

    @guarded(access.READ, kind="feature_group")
    def to_polars(
        self,
        columns: str | Sequence[str] | None = None,
        *,
        where: str | None = None,
        as_of: int | str | dt.datetime | None = None,
    ) -> polars.DataFrame:
        """Read the group into a polars DataFrame; see ``to_arrow`` for the parameters."""
        try:
            import polars as pl
        except ImportError:
            raise ImportError("to_polars() needs polars: pip install polars") from None
        return pl.from_arrow(self.to_arrow(columns, where=where, as_of=as_of))

    @guarded(access.READ, kind="feature_group")
    def count(self, *, as_of: int | str | dt.datetime | None = None) -> int:
        """Return the number of rows (of a table version with ``as_of``)."""
        sql, _, version = self._select_sql((), None, as_of)
        counted = self._read(f"SELECT count(*) AS n FROM ({sql}) AS t", None, version)
        return int(counted.column("n")[0].as_py())

    # -- analytics --------------------------------------------------------------------------

    @guarded(access.READ, kind="feature_group")
    def profile(self, *, as_of: int | str | dt.datetime | None = None) -> GroupProfile:
        """Summarize every feature: null rate, min, max, mean and a small histogram.

        Groups with more than 50 million feature values (rows times features) are profiled on
        a uniform sample of rows, and ``GroupProfile.note`` states which.

        Examples
        --------
        >>> group.profile().to_pandas()  # doctest: +SKIP
        """
        from raise_jupyter.profile import profile_group

        return profile_group(self, as_of=as_of)


    @guarded(access.READ, kind="feature_group")
    def analyze(self, analysis: Aggregation | Distribution, *, as_of: int | str | dt.datetime | None = None) -> AnalysisResult:
        """Compute an Aggregation or a Distribution of one feature over the group's rows.

        Parameters
        ----------
        analysis
            What to compute; see ``Aggregation`` and ``Distribution``.
        as_of
            A table version, datetime or ISO 8601 string to analyze an earlier state.

        Returns
        -------
        AnalysisResult
            A table with ``to_pandas()``, the values by metric name (``result["avg"]``) and a
            rich display in notebooks.

        Examples
        --------
        >>> group.analyze(Aggregation(feature="ctr", metrics=["avg", "p50", "p99", "null_rate"]))  # doctest: +SKIP
        >>> group.analyze(Distribution(feature="clicks", bins=50))  # doctest: +SKIP
        """
        from raise_jupyter import analytics

        return analytics.analyze(self, analysis, as_of=as_of)

    @guarded(access.DEFINE, kind="live_table", name="name")
    def create_live_table(
        self, name: str, analysis: Aggregation | Distribution, refresh: Any = "hourly", *, replace: bool = False
    ) -> LiveTable:
        """Store an analysis result as a table that is recomputed on a schedule.

        The table is computed once now; after that a running ``raise worker`` or
        ``fs.start_scheduler()`` refreshes it, and ``live.refresh()`` does so at once. Read it
        with ``live.read()`` or by name in ``fs.sql``. Each refresh replaces the result
        atomically, so readers never see a partial one.

        Parameters
        ----------
        name
            Table name, unique in the namespace and not the name of a feature group.
        analysis
            An ``Aggregation`` or ``Distribution`` of one of this group's features.
        refresh
            ``"hourly"``, ``"daily"``, ``"every 10m"``, a five-field cron string or a ``Schedule``.
        replace
            Redefine an existing live table of that name.

        Examples
        --------
        >>> group.create_live_table("daily_metrics",
        ...     analysis=Aggregation(feature="clicks", metrics=["sum"], group_by=["date"]),
        ...     refresh="hourly")  # doctest: +SKIP
        """
        from raise_jupyter import live

        return live.create_live_table(self, name, analysis, refresh_schedule=refresh, replace=replace)

    @guarded(access.READ, kind="feature_group")
    def history(self) -> pandas.DataFrame:
        """Return the table's versions, newest first.

        The columns are ``version``, ``timestamp`` (UTC), ``operation``, ``rows_added`` and
        ``batch`` (the ingest's batch number in the catalog's ingest log). Operations are
        ``INGEST``, ``ADD COLUMN`` (features defined), ``COMPACT`` and ``CREATE TABLE``.
        """
        import pandas as pd

        rows = []
        for entry in offline.history(self._path):
            metrics = entry.get("operationMetrics", {}) or {}
            batch = entry.get(offline.BATCH_METADATA_KEY)
            operation = entry.get(offline.OPERATION_METADATA_KEY) or ("INGEST" if batch else entry.get("operation"))
            rows.append(
                {
                    "version": entry.get("version"),
                    "timestamp": pd.Timestamp(entry.get("timestamp"), unit="ms", tz="UTC"),
                    "operation": operation,
                    "rows_added": metrics.get("num_added_rows") if batch else None,
                    "batch": int(batch) if batch else None,
                }
            )
        frame = pd.DataFrame(rows, columns=["version", "timestamp", "operation", "rows_added", "batch"])
        return frame.astype({"version": "int64", "rows_added": "Int64", "batch": "Int64"})

    @guarded(access.COMPACT, kind="feature_group")
    def compact(self, *, retention: dt.timedelta = DEFAULT_RETENTION) -> dict[str, int]:
        """Merge small files, then delete files no version has referenced for ``retention``.

        Versions whose files are deleted can no longer be read with ``as_of``; the default
        retention of 7 days keeps a week of time travel.

        Returns
        -------
        dict
            ``files_merged``, ``files_written``, ``files_deleted`` and the new ``version``.
        """
        if not isinstance(retention, dt.timedelta) or retention < dt.timedelta(0):
            raise DefinitionError(f"retention must be a non-negative timedelta, got {retention!r}.")
        return offline.compact(self._path, retention=retention)


def _storage_type(arrow_type: Any) -> pa.DataType:
    """Return a pyarrow type for a type from the Delta schema (which may be an arro3 type)."""
    if isinstance(arrow_type, pa.DataType):
        return arrow_type
    return pa.field(arrow_type).type if hasattr(arrow_type, "__arrow_c_schema__") else arrow_type


def _tie_columns(record: GroupRecord) -> list[str] | None:
    """Return the columns a batch's tie check compares: keys and event time, if both exist."""
    if not record.keys or not record.event_time:
        return None
    return [*record.keys, record.event_time]


class _TieCheck:
    """Run ``sortkey.has_ties`` on a batch in a background thread."""

    def __init__(self, table: pa.Table, columns: list[str] | None) -> None:
        self._columns = columns
        self._ties: bool | None = None
        self._thread: threading.Thread | None = None
        if columns:
            self._thread = threading.Thread(target=self._run, args=(table,), name="raise-tie-check", daemon=True)
            self._thread.start()

    def _run(self, table: pa.Table) -> None:
        try:
            self._ties = sortkey.has_ties(table, self._columns or [])
        except Exception as error:  # the check only speeds up reads, so its failure does not fail the ingest
            logger.warning("Could not check the batch for rows with equal keys and event time: %s", error)

    def result(self) -> dict[str, Any]:
        """Wait for the check; return the catalog fields (None when it did not run or failed)."""
        if self._thread is None:
            return {"ties": None, "tie_columns": None}
        self._thread.join()
        if self._ties is None:
            return {"ties": None, "tie_columns": None}
        return {"ties": self._ties, "tie_columns": self._columns}
