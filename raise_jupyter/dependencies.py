"""What depends on what, computed from the definitions stored in the catalog.

Nothing here is stored as an edge: derived features name their inputs in their expressions,
jobs name their source and target groups, and alerts and live tables store their analysis.
Reading those definitions each time keeps the graph from drifting away from what actually
runs. Training sets are the exception, because a call of ``get_training_data`` leaves no
definition behind, so each call is recorded in the ``training_sets`` table.

The same definitions decide which deletes are rejected (``dependents_of_feature`` and
``dependents_of_group``) and what ``cascade=True`` deletes (``delete_dependents``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from raise_jupyter import scheduler
from raise_jupyter.engine import expressions, tables
from raise_jupyter.engine.catalog import Catalog, FeatureRecord, GroupRecord
from raise_jupyter.errors import DefinitionError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Definitions:
    """The definitions of one namespace, read in one catalog transaction."""

    namespace: str
    groups: dict[int, GroupRecord]
    features: dict[int, list[FeatureRecord]]
    jobs: list[Any]
    alerts: list[Any]
    live_tables: list[Any]
    training_sets: list[Any]

    def group_named(self, name: str) -> GroupRecord | None:
        return next((g for g in self.groups.values() if g.name == name), None)


def load(catalog: Catalog, conn: sa.Connection, namespace: str) -> Definitions:
    """Read the groups, features, jobs, alerts, live tables and training sets of a namespace."""
    groups = {g.id: g for g in catalog.list_groups(conn, namespace)}
    features = {group_id: catalog.list_features(conn, group_id) for group_id in groups}

    def rows(table: sa.Table) -> list[Any]:
        return list(conn.execute(sa.select(table).where(table.c.namespace == namespace).order_by(table.c.id)).all())

    return Definitions(
        namespace=namespace,
        groups=groups,
        features=features,
        jobs=rows(tables.jobs),
        alerts=rows(tables.alerts),
        live_tables=rows(tables.live_tables),
        training_sets=rows(tables.training_sets),
    )


# -- columns each definition uses -----------------------------------------------------------------


def _expression_columns(text: str | None, *, what: str) -> set[str]:
    """Return the lowercased column names an expression uses; none if it no longer parses."""
    if not text:
        return set()
    try:
        return set(expressions.parse_expression(text, what=what).columns)
    except DefinitionError:
        # A stored expression that no longer parses uses nothing that a delete could break.
        return set()


def _by_lower_name(features: Iterable[FeatureRecord]) -> dict[str, FeatureRecord]:
    return {f.name.lower(): f for f in features}


def derived_inputs(feature: FeatureRecord, siblings: list[FeatureRecord]) -> list[FeatureRecord]:
    """Return the features of the same group that a derived feature's expression uses."""
    if feature.derived_from is None:
        return []
    by_lower = _by_lower_name(siblings)
    used = _expression_columns(feature.derived_from, what=f"derived feature {feature.name!r}")
    return [by_lower[c] for c in sorted(used) if c in by_lower and by_lower[c].id != feature.id]


def analysis_columns(spec: Mapping[str, Any]) -> set[str]:
    """Return the lowercased columns an analysis spec uses: its feature, group_by and where."""
    columns = {str(spec.get("feature", "")).lower()}
    columns.update(str(c).lower() for c in spec.get("group_by") or ())
    columns.update(_expression_columns(spec.get("where"), what="the where filter"))
    columns.discard("")
    return columns


def job_source_columns(job: Any, source: Mapping[str, Any]) -> set[str]:
    """Return the lowercased columns a job names for one source; empty when it names none.

    Named columns are the source's ``columns``, those of its ``where`` filter and the input of
    an embedding. A job always reads its source's keys and event time as well, but those
    cannot be deleted.
    """
    # NOTE: the columns a sql_transform query uses are not parsed, so deleting one of them is
    # not rejected. The job's next run then fails its check and names the missing column.
    columns = {str(c).lower() for c in source.get("columns") or ()}
    columns.update(_expression_columns(source.get("where"), what="the source's where filter"))
    transform = job.transform or {}
    if transform.get("kind") == "embedding_inference" and len(job.sources) == 1:
        columns.add(str(transform.get("input_column", "")).lower())
    columns.discard("")
    return columns


# -- dependents of a delete -----------------------------------------------------------------------


@dataclass
class Dependents:
    """Definitions that a delete would break, which ``cascade=True`` deletes first."""

    group: GroupRecord
    features: list[FeatureRecord] = field(default_factory=list)
    alerts: list[Any] = field(default_factory=list)
    live_tables: list[Any] = field(default_factory=list)
    jobs: list[Any] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.features or self.alerts or self.live_tables or self.jobs)

    def describe(self) -> list[str]:
        """Return one phrase per dependent, such as ``"alert ctr-drop"``."""
        return [
            *(f"derived feature {self.group.name}.{f.name}" for f in self.features),
            *(f"alert {row.name}" for row in self.alerts),
            *(f"live table {row.name}" for row in self.live_tables),
            *(f"job {row.name}" for row in self.jobs),
        ]


def dependents_of_feature(definitions: Definitions, group_id: int, name: str) -> Dependents:
    """Return what uses feature ``name`` of a group, directly or through derived features."""
    group = definitions.groups[group_id]
    siblings = definitions.features[group_id]
    used = {name.lower()}
    derived: list[FeatureRecord] = []
    # Grow the set of affected names until no further derived feature uses one of them.
    changed = True
    while changed:
        changed = False
        for feature in siblings:
            if feature.name.lower() in used:
                continue
            inputs = {f.name.lower() for f in derived_inputs(feature, siblings)}
            if inputs & used:
                used.add(feature.name.lower())
                derived.append(feature)
                changed = True

    dependents = Dependents(group, features=derived)
    dependents.alerts = [a for a in definitions.alerts if a.group_id == group_id and analysis_columns(a.analysis) & used]
    dependents.live_tables = [
        t for t in definitions.live_tables if t.group_id == group_id and analysis_columns(t.analysis) & used
    ]
    dependents.jobs = [
        job
        for job in definitions.jobs
        if any(s.get("group") == group.name and job_source_columns(job, s) & used for s in job.sources)
    ]
    return dependents


def dependents_of_group(definitions: Definitions, group_id: int) -> Dependents:
    """Return the alerts, live tables and jobs on a group; its own derived features do not count."""
    group = definitions.groups[group_id]
    return Dependents(
        group,
        alerts=[a for a in definitions.alerts if a.group_id == group_id],
        live_tables=[t for t in definitions.live_tables if t.group_id == group_id],
        jobs=[
            job
            for job in definitions.jobs
            if job.target.get("feature_group") == group.name or any(s.get("group") == group.name for s in job.sources)
        ],
    )


def rejection_message(subject: str, dependents: Dependents) -> str:
    return (
        f"{subject} is used by: {', '.join(dependents.describe())}; delete them first or pass cascade=True."
    )


def delete_dependents(catalog: Catalog, conn: sa.Connection, dependents: Dependents) -> list[int]:
    """Delete the dependents in the caller's transaction; return the ids of the deleted live tables.

    The caller removes the live tables' result files after the transaction commits.
    """
    for feature in dependents.features:
        catalog.delete_feature(conn, feature.id)
    for alert in dependents.alerts:
        scheduler.remove_task(conn, "alert", int(alert.id))
        conn.execute(tables.alerts.delete().where(tables.alerts.c.id == alert.id))
    for live in dependents.live_tables:
        scheduler.remove_task(conn, "live_table", int(live.id))
        conn.execute(tables.live_tables.delete().where(tables.live_tables.c.id == live.id))
    for job in dependents.jobs:
        # A run of this job in progress goes on until it would write; it then finds its run gone and drops its output.
        scheduler.remove_task(conn, "job", int(job.id))
        conn.execute(tables.jobs.delete().where(tables.jobs.c.id == job.id))
    if dependents:
        logger.info("Deleting dependents of group %s: %s", dependents.group.name, ", ".join(dependents.describe()))
    return [int(live.id) for live in dependents.live_tables]
