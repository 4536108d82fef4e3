"""Lineage: the graph of what feeds a feature, group, job, alert, live table or training set,
and what it feeds.

``FeatureStore.lineage`` builds the graph of one namespace from its stored definitions (see
``dependencies``) and keeps the part upstream and downstream of the requested node. Edges point
the way data flows: from an input to what is computed from it.

References name the node to start from:

- ``"group.feature"`` or ``"feature:group.feature"``: a feature;
- ``"group"`` or ``"group:NAME"``: a feature group;
- ``"job:NAME"``, ``"alert:NAME"``, ``"live:NAME"``: a job, alert or live table;
- ``"training:NAME"`` (the newest training set of that name) or ``"training:#ID"``.

The objects themselves (a ``FeatureGroup``, ``Feature``, ``Job``, ``Alert``, ``LiveTable`` or
``TrainingData``) work too.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from raise_jupyter.dependencies import (
    Definitions,
    analysis_columns,
    derived_inputs,
    job_source_columns,
    load,
)
from raise_jupyter.engine.expressions import suggest
from raise_jupyter.errors import DefinitionError, NotFoundError

if TYPE_CHECKING:
    import pandas

    from raise_jupyter.store import FeatureStore

__all__ = ["Edge", "Lineage", "Node"]

logger = logging.getLogger(__name__)

FEATURE, GROUP, JOB, LIVE_TABLE, ALERT, TRAINING_SET = "feature", "group", "job", "live_table", "alert", "training_set"
KINDS = (GROUP, FEATURE, JOB, LIVE_TABLE, ALERT, TRAINING_SET)
_PREFIXES = {"feature": FEATURE, "group": GROUP, "job": JOB, "alert": ALERT, "live": LIVE_TABLE, "training": TRAINING_SET}
_REFERENCE_HELP = (
    "Pass 'group.feature', 'group', 'job:NAME', 'alert:NAME', 'live:NAME', 'training:NAME' or 'training:#ID'."
)


@dataclass(frozen=True)
class Node:
    """A feature, group, job, live table, alert or training set of a namespace.

    ``note`` marks a node that no longer matches the catalog, such as ``"deleted"`` for a
    feature that only a training set's record still names.
    """

    kind: str
    name: str
    namespace: str
    note: str | None = None

    @property
    def kind_label(self) -> str:
        return self.kind.replace("_", " ")

    @property
    def label(self) -> str:
        return f"{self.name} ({self.note})" if self.note else self.name

    def __str__(self) -> str:
        return f"{self.kind_label} {self.label}"


@dataclass(frozen=True)
class Edge:
    """Data flowing from ``source`` to ``target``.

    ``relation`` is ``"contains"`` (group to feature), ``"derived_from"`` (input to derived
    feature), ``"reads"`` (into a job or live table), ``"writes"`` (job to target group),
    ``"watches"`` (into an alert) or ``"trains_on"`` (into a training set, with the table
    ``version`` it read).
    """

    source: Node
    target: Node
    relation: str
    version: int | None = None

    @property
    def label(self) -> str:
        return f"{self.relation} v{self.version}" if self.version is not None else self.relation


# -- the namespace graph ----------------------------------------------------------------------------


def training_set_name(row: Any) -> str:
    """Return a training set's node name: its name and id, or only the id when unnamed."""
    return f"{row.name} #{row.id}" if row.name else f"#{row.id}"


def graph_edges(definitions: Definitions) -> list[Edge]:
    """Return every edge of a namespace, computed from its stored definitions."""
    namespace = definitions.namespace
    edges: list[Edge] = []

    def feature_node(group_name: str, feature_name: str, note: str | None = None) -> Node:
        return Node(FEATURE, f"{group_name}.{feature_name}", namespace, note)

    def used_features(group_id: int, columns: set[str]) -> list[Any]:
        return [f for f in definitions.features[group_id] if f.name.lower() in columns]

    for group_id, group in definitions.groups.items():
        group_node = Node(GROUP, group.name, namespace)
        features = definitions.features[group_id]
        for feature in features:
            node = feature_node(group.name, feature.name)
            inputs = derived_inputs(feature, features)
            # A derived feature reaches its group through its inputs. Only one computed from no
            # column, such as a constant, gets its own edge from the group.
            if not inputs:
                edges.append(Edge(group_node, node, "contains"))
            for source in inputs:
                edges.append(Edge(feature_node(group.name, source.name), node, "derived_from"))

    for job in definitions.jobs:
        job_node = Node(JOB, job.name, namespace)
        for source in job.sources:
            group = definitions.group_named(source["group"])
            if group is None:
                edges.append(Edge(Node(GROUP, source["group"], namespace, "missing"), job_node, "reads"))
                continue
            named = used_features(group.id, job_source_columns(job, source))
            if named:
                edges.extend(Edge(feature_node(group.name, f.name), job_node, "reads") for f in named)
            else:
                edges.append(Edge(Node(GROUP, group.name, namespace), job_node, "reads"))
        target = job.target["feature_group"]
        note = None if definitions.group_named(target) is not None else "not created yet"
        edges.append(Edge(job_node, Node(GROUP, target, namespace, note), "writes"))

    for rows, kind, relation in ((definitions.alerts, ALERT, "watches"), (definitions.live_tables, LIVE_TABLE, "reads")):
        for row in rows:
            group = definitions.groups[row.group_id]
            node = Node(kind, row.name, namespace)
            named = used_features(group.id, analysis_columns(row.analysis))
            if named:
                edges.extend(Edge(feature_node(group.name, f.name), node, relation) for f in named)
            else:
                # The analysis names a feature deleted by an older release, which did not check.
                edges.append(Edge(Node(GROUP, group.name, namespace), node, relation))

    for row in definitions.training_sets:
        edges.extend(_training_set_edges(definitions, row))
    return edges


def _training_set_edges(definitions: Definitions, row: Any) -> list[Edge]:
    namespace = definitions.namespace
    node = Node(TRAINING_SET, training_set_name(row), namespace)
    reads = {read["name"]: read for read in row.groups}
    edges = []
    for reference in row.features:
        group_name, feature_name = reference.split(".", 1)
        read = reads.get(group_name)
        group = definitions.group_named(group_name)
        # The record names the group's table path, so a group created again under the same
        # name counts as a different group.
        if group is None or read is None or group.table_path != read.get("table_path"):
            note: str | None = "group deleted"
        elif all(f.name != feature_name for f in definitions.features[group.id]):
            note = "deleted"
        else:
            note = None
        version = read.get("version") if read else None
        edges.append(Edge(Node(FEATURE, reference, namespace, note), node, "trains_on", version))
    return edges


# -- references ---------------------------------------------------------------------------------


def _reference_of(reference: object) -> tuple[str, str]:
    """Return (kind, name) of a reference string or of a Raise object."""
    from raise_jupyter.alerts import Alert
    from raise_jupyter.feature import Feature
    from raise_jupyter.group import FeatureGroup
    from raise_jupyter.jobs import Job
    from raise_jupyter.live import LiveTable
    from raise_jupyter.training import TrainingData

    if isinstance(reference, FeatureGroup):
        return GROUP, reference.name
    if isinstance(reference, Feature) and reference.group:
        return FEATURE, f"{reference.group}.{reference.name}"
    if isinstance(reference, (Job, Alert, LiveTable)):
        kind = {Job: JOB, Alert: ALERT, LiveTable: LIVE_TABLE}[type(reference)]
        return kind, reference.name
    if isinstance(reference, TrainingData):
        if reference.training_set_id is None:
            raise NotFoundError("This training data has no catalog record, because recording it failed (see the log).")
        return TRAINING_SET, f"#{reference.training_set_id}"
    if not isinstance(reference, str) or not reference.strip():
        raise DefinitionError(f"Lineage reference {reference!r} is invalid. {_REFERENCE_HELP}")

    text = reference.strip()
    prefix, colon, rest = text.partition(":")
    if colon:
        if prefix not in _PREFIXES or not rest:
            raise DefinitionError(f"Lineage reference {reference!r} is invalid.{suggest(prefix, _PREFIXES)} {_REFERENCE_HELP}")
        return _PREFIXES[prefix], rest.strip()
    return (FEATURE, text) if "." in text else (GROUP, text)


def resolve(definitions: Definitions, nodes: Iterable[Node], reference: object) -> Node:
    """Return the node a reference names; raise NotFoundError listing nodes of that kind."""
    kind, name = _reference_of(reference)
    candidates = [n for n in nodes if n.kind == kind]
    if kind == TRAINING_SET:
        return _resolve_training_set(definitions, candidates, name)

    current = [n for n in candidates if n.name == name and n.note is None]
    if current:
        return current[0]
    # A deleted feature stays reachable while a training set's record names it.
    earlier = [n for n in candidates if n.name == name]
    if earlier:
        return earlier[0]
    known = sorted({n.name for n in candidates if n.note is None})
    raise NotFoundError(
        f"No {kind.replace('_', ' ')} {name!r} in namespace {definitions.namespace!r}.{suggest(name, known)} "
        f"Existing: {', '.join(known[:20]) or '(none)'}. {_REFERENCE_HELP}"
    )


def _resolve_training_set(definitions: Definitions, candidates: list[Node], name: str) -> Node:
    requested_id = name.lstrip("#")
    rows = definitions.training_sets
    if requested_id.isdigit():
        matches = [row for row in rows if row.id == int(requested_id)]
    else:
        matches = [row for row in rows if row.name == name]
    if not matches:
        known = sorted({row.name for row in rows if row.name})
        raise NotFoundError(
            f"No training set {name!r} in namespace {definitions.namespace!r}.{suggest(name, known)} Named training sets: "
            f"{', '.join(known[:20]) or '(none)'}. Name one with get_training_data(..., name='churn'), or pass 'training:#ID'."
        )
    return Node(TRAINING_SET, training_set_name(matches[-1]), definitions.namespace)


# -- the lineage of one node --------------------------------------------------------------------


class Lineage:
    """The nodes upstream and downstream of one node, and the edges between them.

    Display it in a notebook to see a diagram: upstream on the left, the node in the middle,
    downstream on the right.

    Attributes
    ----------
    root
        The node the lineage was requested for.
    upstream, downstream
        The nodes that feed the root, and the nodes it feeds, nearest first.
    edges
        Edges between the root, the upstream nodes and the downstream nodes.
    layers
        Column of each node in the diagram: 0 for the root, and for every other node the
        number of edges on the longest path from the root, negative upstream.
    """

    def __init__(self, root: Node, edges: list[Edge]) -> None:
        self.root = root
        up_edges, up_nodes = _walk(root, edges, forward=False)
        down_edges, down_nodes = _walk(root, edges, forward=True)
        upstream = set(up_nodes)
        self.upstream: list[Node] = up_nodes
        self.downstream: list[Node] = [n for n in down_nodes if n not in upstream]
        self.edges: list[Edge] = list(dict.fromkeys([*up_edges, *down_edges]))
        self.layers: dict[Node, int] = {root: 0}
        for node, depth in _longest_paths(root, up_edges, forward=False).items():
            self.layers.setdefault(node, -depth)
        for node, depth in _longest_paths(root, down_edges, forward=True).items():
            self.layers.setdefault(node, depth)

    @property
    def nodes(self) -> list[Node]:
        """The root, then the upstream nodes, then the downstream nodes."""
        return [self.root, *self.upstream, *self.downstream]

    def to_pandas(self) -> pandas.DataFrame:
        """Return the edges as a table: source and target kind and name, relation and version."""
        import pandas as pd

        rows = [
            {
                "source_kind": e.source.kind,
                "source": e.source.label,
                "relation": e.relation,
                "target_kind": e.target.kind,
                "target": e.target.label,
                "version": e.version,
            }
            for e in self.edges
        ]
        columns = ["source_kind", "source", "relation", "target_kind", "target", "version"]
        return pd.DataFrame(rows, columns=columns).astype({"version": "Int64"})

    def __repr__(self) -> str:
        lines = [f"Lineage of {self.root} in {self.root.namespace}"]
        for title, forward, nodes in (("upstream", False, self.upstream), ("downstream", True, self.downstream)):
            lines.append(f"{title}:" if nodes else f"{title}: (none)")
            if nodes:
                _tree_lines(self.root, self.edges, forward=forward, depth=1, seen={self.root}, lines=lines)
        return "\n".join(lines)

    def to_svg(self) -> str:
        """Return the diagram as a standalone SVG document (no scripts, no external files)."""
        from raise_jupyter.lineage_svg import render

        return render(self)

    def _repr_svg_(self) -> str:
        return self.to_svg()

    def _repr_html_(self) -> str:
        # Inline SVG inherits the page's text colour, which keeps labels readable in dark themes.
        return f'<div class="raise-lineage" style="overflow-x: auto">{self.to_svg()}</div>'

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        svg = self.to_svg()
        return {
            "text/plain": repr(self),
            "text/html": f'<div class="raise-lineage" style="overflow-x: auto">{svg}</div>',
            "image/svg+xml": svg,
        }


def _walk(root: Node, edges: list[Edge], *, forward: bool) -> tuple[list[Edge], list[Node]]:
    """Search breadth-first from ``root``; return the edges crossed and the nodes reached, nearest first."""
    adjacent: dict[Node, list[Edge]] = {}
    for edge in edges:
        adjacent.setdefault(edge.source if forward else edge.target, []).append(edge)
    crossed: list[Edge] = []
    reached: list[Node] = []
    queue = deque([root])
    seen = {root}
    while queue:
        node = queue.popleft()
        for edge in adjacent.get(node, []):
            crossed.append(edge)
            following = edge.target if forward else edge.source
            if following not in seen:
                seen.add(following)
                reached.append(following)
                queue.append(following)
    return crossed, reached


def _longest_paths(root: Node, edges: list[Edge], *, forward: bool) -> dict[Node, int]:
    """Return each node's number of edges on the longest path from ``root`` along ``edges``.

    A job that writes a group it reads makes a cycle, so the relaxation stops after as many
    rounds as there are nodes. Nodes on a cycle then get a large but finite depth.
    """
    depths = {root: 0}
    nodes = {e.source for e in edges} | {e.target for e in edges}
    for _ in range(len(nodes)):
        changed = False
        for edge in edges:
            near, far = (edge.source, edge.target) if forward else (edge.target, edge.source)
            if near in depths and far != root and depths.get(far, -1) < depths[near] + 1:
                depths[far] = depths[near] + 1
                changed = True
        if not changed:
            break
    depths.pop(root)
    # A cycle can leave depths with gaps; ranking them keeps every column of the diagram filled.
    ranks = {depth: rank for rank, depth in enumerate(sorted(set(depths.values())), start=1)}
    return {node: ranks[depth] for node, depth in depths.items()}


def _tree_lines(node: Node, edges: list[Edge], *, forward: bool, depth: int, seen: set[Node], lines: list[str]) -> None:
    children = [e for e in edges if (e.source if forward else e.target) == node]
    children.sort(key=lambda e: (KINDS.index((e.target if forward else e.source).kind), (e.target if forward else e.source).name))
    for edge in children:
        child = edge.target if forward else edge.source
        arrow = "->" if forward else "<-"
        repeated = child in seen
        suffix = " (shown above)" if repeated else ""
        lines.append(f"{'  ' * depth}{arrow} {edge.label}: {child}{suffix}")
        if not repeated:
            seen.add(child)
            _tree_lines(child, edges, forward=forward, depth=depth + 1, seen=seen, lines=lines)


def lineage(store: FeatureStore, reference: object) -> Lineage:
    """Return the lineage of a node of the store's namespace; see ``FeatureStore.lineage``."""
    with store._catalog.read() as conn:
        definitions = load(store._catalog, conn, store.namespace)
    edges = graph_edges(definitions)
    nodes = [Node(GROUP, g.name, store.namespace) for g in definitions.groups.values()]
    nodes += [Node(kind, row.name, store.namespace) for kind, rows in ((JOB, definitions.jobs), (ALERT, definitions.alerts), (LIVE_TABLE, definitions.live_tables)) for row in rows]
    nodes += [node for edge in edges for node in (edge.source, edge.target)]
    root = resolve(definitions, dict.fromkeys(nodes), reference)
    return Lineage(root, edges)
