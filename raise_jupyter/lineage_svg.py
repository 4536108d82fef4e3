"""The lineage diagram: a layered left-to-right SVG drawn without any layout library.

Each node sits in the column of its ``Lineage.layers`` value, so the upstream nodes are left of
the requested node and the downstream nodes right of it. An edge that skips columns passes
through a thin slot of its own in each of them, so it never crosses a box. Within a column,
nodes and slots are ordered by the mean row of their neighbours in the column nearer the root,
which keeps most edges short.
Text uses ``currentColor``, so the labels follow the notebook's light or dark theme. The kind
colours are mid-tone strokes and translucent fills, which read on either background.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from raise_jupyter.lineage import Edge, Lineage, Node

COLOURS = {
    "group": "#3b8ea5",
    "feature": "#4c78a8",
    "job": "#e07b1a",
    "live_table": "#4e9a47",
    "alert": "#d1495b",
    "training_set": "#8e6bbf",
}
KIND_ORDER = tuple(COLOURS)

BOX_HEIGHT = 40
WAYPOINT_HEIGHT = 8
ROW_GAP = 16
COLUMN_GAP = 80
MARGIN = 16
# Approximate advance of one character at the 12 px label size, for sizing boxes.
CHAR_WIDTH = 7.2
MIN_BOX_WIDTH = 110
MAX_LABEL_CHARACTERS = 44


def _cut(text: str) -> str:
    return text if len(text) <= MAX_LABEL_CHARACTERS else text[: MAX_LABEL_CHARACTERS - 1] + "\u2026"


@dataclass(frozen=True)
class _Waypoint:
    """The point where an edge that skips columns crosses one of them, in a thin slot of its own."""

    edge: int
    layer: int


_Item = Union["Node", _Waypoint]


def _chains(lineage: Lineage) -> list[list[_Item]]:
    """Return each edge as its source, its waypoints in the columns it skips, and its target."""
    chains = []
    for index, edge in enumerate(lineage.edges):
        start, end = lineage.layers[edge.source], lineage.layers[edge.target]
        # Edges that go right to left (a job writing a group it reads) are drawn as one curve.
        skipped = range(start + 1, end) if end > start + 1 else range(0)
        chains.append([edge.source, *(_Waypoint(index, layer) for layer in skipped), edge.target])
    return chains


def _layer_of(item: _Item, lineage: Lineage) -> int:
    return item.layer if isinstance(item, _Waypoint) else lineage.layers[item]


def _columns(lineage: Lineage, chains: list[list[_Item]]) -> dict[int, list[_Item]]:
    """Group nodes and waypoints by layer; order each column by its neighbours nearer the root."""
    columns: dict[int, list[_Item]] = {}
    for node in sorted(lineage.layers, key=lambda n: (KIND_ORDER.index(n.kind) if n.kind in KIND_ORDER else len(KIND_ORDER), n.name)):
        columns.setdefault(lineage.layers[node], []).append(node)
    for chain in chains:
        for waypoint in chain[1:-1]:
            columns.setdefault(waypoint.layer, []).append(waypoint)

    neighbours: dict[_Item, list[_Item]] = {}
    for chain in chains:
        for left, right in zip(chain, chain[1:]):
            neighbours.setdefault(left, []).append(right)
            neighbours.setdefault(right, []).append(left)

    row: dict[_Item, int] = {item: index for items in columns.values() for index, item in enumerate(items)}
    for step in (1, -1):
        layer = step
        while layer in columns:
            inner = layer - step

            def mean_row(item: _Item, inner: int = inner) -> float:
                rows = [row[n] for n in neighbours.get(item, []) if _layer_of(n, lineage) == inner]
                return sum(rows) / len(rows) if rows else float(row[item])

            columns[layer].sort(key=mean_row)
            row.update({item: index for index, item in enumerate(columns[layer])})
            layer += step
    return columns


def _slot_height(item: _Item) -> int:
    return WAYPOINT_HEIGHT if isinstance(item, _Waypoint) else BOX_HEIGHT


def _column_height(items: list[_Item]) -> int:
    return sum(_slot_height(item) for item in items) + (len(items) - 1) * ROW_GAP


def render(lineage: Lineage) -> str:
    """Return the SVG document of a lineage diagram."""
    chains = _chains(lineage)
    columns = _columns(lineage, chains)
    layers = sorted(columns)
    widths = {
        layer: max(
            [MIN_BOX_WIDTH]
            + [int(len(_cut(n.label)) * CHAR_WIDTH) + 20 for n in columns[layer] if not isinstance(n, _Waypoint)]
        )
        for layer in layers
    }
    height = 2 * MARGIN + max(_column_height(items) for items in columns.values())

    # Each slot is (x, y, width) with y the top; a waypoint's line runs at its slot's middle.
    slots: dict[_Item, tuple[float, float, float]] = {}
    x = float(MARGIN)
    for layer in layers:
        items = columns[layer]
        y = (height - _column_height(items)) / 2
        for item in items:
            slots[item] = (x, y, widths[layer])
            y += _slot_height(item) + ROW_GAP
        x += widths[layer] + COLUMN_GAP
    width = int(x - COLUMN_GAP + MARGIN)

    marker = f"raise-arrow-{uuid.uuid4().hex[:8]}"
    title = f"Lineage of {lineage.root}"
    boxes = {item: slot for item, slot in slots.items() if not isinstance(item, _Waypoint)}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<defs><marker id="{marker}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#8a8a8a"/></marker></defs>',
    ]
    parts.extend(_edge(lineage.edges[index], chain, slots, marker) for index, chain in enumerate(chains))
    parts.extend(_edge_labels(lineage.edges, boxes))
    parts.extend(_box(node, boxes[node], is_root=node == lineage.root) for node in boxes)
    parts.append("</svg>")
    return "\n".join(parts)


def _curve(x1: float, y1: float, x2: float, y2: float) -> str:
    bend = max(abs(x2 - x1) / 2, 30)
    return f" C {x1 + bend:.1f} {y1:.1f}, {x2 - bend:.1f} {y2:.1f}, {x2:.1f} {y2:.1f}"


def _edge(edge: Edge, chain: list[_Item], slots: dict[_Item, tuple[float, float, float]], marker: str) -> str:
    """Draw an edge as curves between columns and straight lines through the columns it skips."""
    sx, sy, sw = slots[chain[0]]
    x, y = sx + sw, sy + BOX_HEIGHT / 2
    path = f"M {x:.1f} {y:.1f}"
    for waypoint in chain[1:-1]:
        wx, wy, ww = slots[waypoint]
        middle = wy + WAYPOINT_HEIGHT / 2
        path += _curve(x, y, wx, middle) + f" L {wx + ww:.1f} {middle:.1f}"
        x, y = wx + ww, middle
    tx, ty, _ = slots[chain[-1]]
    path += _curve(x, y, tx, ty + BOX_HEIGHT / 2)
    tooltip = escape(f"{edge.source.label} {edge.label} \u2192 {edge.target.label}")
    return (
        f'<g class="edge"><title>{tooltip}</title><path d="{path}" fill="none" stroke="#8a8a8a" stroke-width="1.2" '
        f'marker-end="url(#{marker})"/></g>'
    )


def _edge_labels(edges: list[Edge], boxes: dict[Node, tuple[float, float, float]]) -> list[str]:
    """Return the relation labels, drawn once per target and text, stacked left of the target."""
    texts: dict[Node, list[str]] = {}
    for edge in edges:
        if edge.relation == "contains" or edge.target not in boxes or edge.source not in boxes:
            continue
        labels = texts.setdefault(edge.target, [])
        if edge.label not in labels:
            labels.append(edge.label)
    parts = []
    for target, labels in texts.items():
        x, y, _ = boxes[target]
        for index, label in enumerate(labels):
            parts.append(
                f'<text x="{x - 8:.1f}" y="{y + BOX_HEIGHT / 2 - 5 - 11 * index:.1f}" text-anchor="end" font-size="9" '
                f'fill="currentColor" fill-opacity="0.7">{escape(label)}</text>'
            )
    return parts


def _box(node: Node, box: tuple[float, float, float], *, is_root: bool) -> str:
    x, y, width = box
    colour = COLOURS.get(node.kind, "#888888")
    dash = ' stroke-dasharray="4 3"' if node.note else ""
    stroke_width = 2.5 if is_root else 1.2
    weight = ' font-weight="bold"' if is_root else ""
    return (
        f'<g class="node {escape(node.kind)}"><title>{escape(str(node))}</title>'
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{width}" height="{BOX_HEIGHT}" rx="6" fill="{colour}" fill-opacity="0.16" '
        f'stroke="{colour}" stroke-width="{stroke_width}"{dash}/>'
        f'<text x="{x + 10:.1f}" y="{y + 14:.1f}" font-size="9" fill="{colour}">{escape(node.kind_label)}</text>'
        f'<text x="{x + 10:.1f}" y="{y + 30:.1f}" fill="currentColor"{weight}>{escape(_cut(node.label))}</text></g>'
    )
