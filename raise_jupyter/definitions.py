"""Merging requested feature definitions into a group's current ones, and validating the result.

Re-running a definition is safe: an identical one is a no-op, and one that only fills in what
was left unset (a description, tags, or an expression for a stored feature that has no data
yet) updates the feature. Anything else conflicts unless ``replace=True``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace as dataclass_replace

from raise_jupyter.dtypes import dtype_from_sql, parse_dtype
from raise_jupyter.engine import expressions
from raise_jupyter.engine.catalog import FeatureRecord, GroupRecord
from raise_jupyter.engine.reader import GroupLayout
from raise_jupyter.errors import ConflictError, DefinitionError
from raise_jupyter.feature import Feature, FeatureSpec


@dataclass(frozen=True)
class Definition:
    """One feature's complete definition while a change is planned."""

    name: str
    dtype: str
    derived_from: str | None
    description: str | None
    tags: dict[str, str]

    def to_feature(self, group: str) -> Feature:
        return Feature(self.name, self.dtype, self.derived_from, self.description, dict(self.tags), group)


@dataclass
class Plan:
    """Changes to apply to the catalog, computed before anything is written."""

    inserts: list[Definition] = field(default_factory=list)
    updates: list[tuple[FeatureRecord, Definition]] = field(default_factory=list)
    result: list[Definition] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.inserts and not self.updates


def definition_of(record: FeatureRecord) -> Definition:
    return Definition(record.name, record.dtype, record.derived_from, record.description, dict(record.tags))


def feature_of(record: FeatureRecord, group: str) -> Feature:
    return definition_of(record).to_feature(group)


def layout_of(group: GroupRecord, features: Sequence[FeatureRecord]) -> GroupLayout:
    """Return the read layout: keys, event time, stored features, then derived features."""
    definitions = [definition_of(f) for f in features]
    layout = _layout(group.keys or (), group.event_time, definitions)
    stored = [f for f in features if f.derived_from is None]
    since = {f.name: f.since_version for f in stored if f.since_version is not None}
    columns = {f.name: f.column for f in stored if f.column != f.name}
    return dataclass_replace(layout, since=since, columns=columns)


def _layout(keys: Iterable[str], event_time: str | None, definitions: Sequence[Definition]) -> GroupLayout:
    front = [*keys, *([event_time] if event_time else [])]
    by_name = {d.name: d for d in definitions}
    ordered = [by_name[n] for n in front if n in by_name] + [d for d in definitions if d.name not in front]

    stored = {d.name: parse_dtype(d.dtype) for d in ordered if d.derived_from is None}
    derived = {d.name: (d.derived_from, parse_dtype(d.dtype)) for d in ordered if d.derived_from is not None}
    parsed = {name: expressions.parse_expression(expr, what=f"derived feature {name!r}") for name, (expr, _) in derived.items()}
    levels = expressions.dependency_levels(parsed) if parsed else []
    return GroupLayout(stored=stored, derived=derived, levels=levels)  # type: ignore[arg-type]


def _conflict(group: str, existing: Definition, new: FeatureSpec, reason: str) -> ConflictError:
    requested = Definition(
        new.name,
        new.dtype or existing.dtype,
        new.derived_from,
        new.description,
        new.tags or {},
    )
    return ConflictError(
        f"Feature {existing.name!r} of group {group!r} already exists with a different definition "
        f"({reason}).\n"
        f"  existing: {existing.to_feature(group).describe()}\n"
        f"  new:      {requested.to_feature(group).describe()}\n"
        f"Pass replace=True to replace it, or change it with update_feature({existing.name!r}, ...)."
    )


def _merge_one(
    group: str, existing: Definition, spec: FeatureSpec, *, replace: bool, has_data: bool
) -> Definition:
    if replace:
        return Definition(
            existing.name,
            spec.dtype or existing.dtype,
            spec.derived_from,
            spec.description,
            spec.tags or {},
        )

    merged = existing
    if spec.dtype is not None and spec.dtype != existing.dtype:
        raise _conflict(group, existing, spec, f"dtype {existing.dtype} versus {spec.dtype}")

    if spec.derived_from is None and existing.derived_from is not None and not spec.dtype_only:
        raise _conflict(group, existing, spec, "the existing feature is derived, the new one stored")

    if spec.derived_from is not None:
        if existing.derived_from is None and has_data:
            raise _conflict(group, existing, spec, "a stored feature that has data cannot become derived")
        if existing.derived_from is not None and not expressions.same_expression(existing.derived_from, spec.derived_from):
            raise _conflict(group, existing, spec, "different expressions")
        if existing.derived_from is None:
            merged = dataclass_replace(merged, derived_from=spec.derived_from)

    if spec.description is not None and spec.description != existing.description:
        if existing.description:
            raise _conflict(group, existing, spec, "different descriptions")
        merged = dataclass_replace(merged, description=spec.description)

    if spec.tags and spec.tags != existing.tags:
        if existing.tags:
            raise _conflict(group, existing, spec, "different tags")
        merged = dataclass_replace(merged, tags=dict(spec.tags))
    return merged


def plan_changes(
    group: GroupRecord,
    current: Sequence[FeatureRecord],
    specs: Sequence[FeatureSpec],
    *,
    replace: bool,
    has_data: bool,
) -> Plan:
    """Merge ``specs`` into ``current`` and validate the resulting definition of the group."""
    by_lower = {record.name.lower(): record for record in current}
    requested: dict[str, FeatureSpec] = {}
    for spec in specs:
        earlier = requested.get(spec.name.lower())
        if earlier is not None and earlier != spec:
            raise DefinitionError(f"Feature {spec.name!r} is defined twice, differently, in one call.")
        requested[spec.name.lower()] = spec

    plan = Plan()
    definitions = {record.name: definition_of(record) for record in current}
    for lowered, spec in requested.items():
        record = by_lower.get(lowered)
        if record is None:
            definition = Definition(spec.name, spec.dtype or "", spec.derived_from, spec.description, spec.tags or {})
            plan.inserts.append(definition)
            definitions[spec.name] = definition
            continue
        if record.name != spec.name:
            raise DefinitionError(
                f"Feature {spec.name!r} differs only in case from existing feature {record.name!r}; "
                "SQL names ignore case, so use the existing spelling."
            )
        merged = _merge_one(group.name, definitions[record.name], spec, replace=replace, has_data=has_data)
        if replace and has_data and record.derived_from is None and (
            merged.derived_from is not None or merged.dtype != record.dtype
        ):
            raise ConflictError(
                f"Feature {record.name!r} of group {group.name!r} has data, so replace=True cannot "
                f"change its dtype or make it derived. Delete it with delete_feature({record.name!r}) "
                "(its stored values are removed) and create it again."
            )
        if merged != definitions[record.name]:
            plan.updates.append((record, merged))
            definitions[record.name] = merged

    _infer_missing_dtypes(definitions, group)
    plan.inserts = [definitions[d.name] for d in plan.inserts]
    plan.updates = [(record, definitions[record.name]) for record, _ in plan.updates]
    plan.result = list(definitions.values())
    validate_group(group.keys or (), group.event_time, plan.result)
    return plan


def _infer_missing_dtypes(definitions: dict[str, Definition], group: GroupRecord) -> None:
    """Give derived features declared without a dtype the type of their expression."""
    missing = [d for d in definitions.values() if not d.dtype]
    if not missing:
        return
    placeholder = {**definitions, **{d.name: dataclass_replace(d, dtype="float64") for d in missing}}
    layout = _layout(group.keys or (), group.event_time, list(placeholder.values()))
    _check_derived_columns(layout)
    types = _expression_types(layout)
    for definition in missing:
        inferred = dtype_from_sql(types[definition.name])
        if inferred is None:
            raise DefinitionError(
                f"Derived feature {definition.name!r} returns {types[definition.name]}, which has no "
                "Raise dtype; declare a dtype and CAST the expression to it."
            )
        definitions[definition.name] = dataclass_replace(definition, dtype=inferred.name)


def _expression_types(layout: GroupLayout) -> dict[str, str]:
    expressions_by_name = {name: expr for name, (expr, _) in layout.derived.items()}
    return expressions.result_types(layout.stored, expressions_by_name, layout.levels)


def validate_group(keys: Iterable[str], event_time: str | None, definitions: Sequence[Definition]) -> None:
    """Check keys, event time and every derived expression of a complete group definition."""
    by_name = {d.name: d for d in definitions}
    for key in keys:
        definition = by_name.get(key)
        if definition is None:
            continue
        dtype = parse_dtype(definition.dtype)
        if definition.derived_from is not None or not dtype.can_be_key:
            raise DefinitionError(
                f"Feature {key!r} ({definition.dtype}{', derived' if definition.derived_from else ''}) "
                "cannot be a key: keys must be stored int, string, bytes or date features."
            )
    if event_time and event_time in by_name:
        definition = by_name[event_time]
        if definition.derived_from is not None or not parse_dtype(definition.dtype).can_be_event_time:
            raise DefinitionError(
                f"Feature {event_time!r} ({definition.dtype}) cannot be the event time: it must be a "
                "stored timestamp or date feature."
            )

    layout = _layout(keys, event_time, definitions)
    if not layout.derived:
        return
    _check_derived_columns(layout)
    types = _expression_types(layout)
    for name, (expr, dtype) in layout.derived.items():
        expressions.check_result_type(name, types[name], dtype, expr)


def _check_derived_columns(layout: GroupLayout) -> None:
    for name, (expr, _) in layout.derived.items():
        parsed = expressions.parse_expression(expr, what=f"derived feature {name!r}")
        others = [column for column in layout.names if column != name]
        expressions.check_columns(parsed, others, what=f"derived feature {name!r}")
