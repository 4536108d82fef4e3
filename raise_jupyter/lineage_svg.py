"""The lineage diagram: a layered left-to-right SVG drawn without any layout library.

Each node sits in the column of its ``Lineage.layers`` value, so the upstream nodes are left of
the requested node and the downstream nodes right of it. Within a column, nodes are ordered by
the mean row of their neighbours in the column nearer the root, which keeps most edges short.
Text uses ``currentColor``, so the labels follow the notebook's light or dark theme. The kind
colours are mid-tone strokes and translucent fills, which read on either background.
"""

from __future__ import annotations

import uuid
from html import escape
from typing import TYPE_CHECKING

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
ROW_GAP = 16
COLUMN_GAP = 80
MARGIN = 16
# Approximate advance of one character at the 12 px label size, for sizing boxes.
CHAR_WIDTH = 7.2
MIN_BOX_WIDTH = 110
MAX_LABEL_CHARACTERS = 44


def _cut(text: str) -> str:
    return text if len(text) <= MAX_LABEL_CHARACTERS else text[: MAX_LABEL_CHARACTERS - 1] + "\u2026"


def _columns(lineage: Lineage) -> dict[int, list[Node]]:
    """Group the nodes by layer and order each column by its neighbours nearer the root."""
    columns: dict[int, list[Node]] = {}
    for node, layer in lineage.layers.items():
        columns.setdefault(layer, []).append(node)
    for nodes in columns.values():
        nodes.sort(key=lambda n: (KIND_ORDER.index(n.kind) if n.kind in KIND_ORDER else len(KIND_ORDER), n.name))

    row: dict[Node, int] = {node: index for nodes in columns.values() for index, node in enumerate(nodes)}
    for step in (1, -1):
        layer = step
        while layer in columns:
            inner = layer - step

            def mean_row(node: Node, inner: int = inner) -> float:
                neighbours = [
                    e.source if e.target == node else e.target
                    for e in lineage.edges
                    if node in (e.source, e.target)
                ]
                rows = [row[n] for n in neighbours if lineage.layers.get(n) == inner]
                return sum(rows) / len(rows) if rows else float(row[node])

            columns[layer].sort(key=mean_row)
            row.update({node: index for index, node in enumerate(columns[layer])})
            layer += step
    return columns


def render(lineage: Lineage) -> str:
    """Return the SVG document of a lineage diagram."""
    columns = _columns(lineage)
    layers = sorted(columns)
    widths = {
        layer: max(MIN_BOX_WIDTH, *(int(len(_cut(n.label)) * CHAR_WIDTH) + 20 for n in columns[layer]))
        for layer in layers
    }
    tallest = max(len(nodes) for nodes in columns.values())
    height = 2 * MARGIN + tallest * BOX_HEIGHT + (tallest - 1) * ROW_GAP

    boxes: dict[Node, tuple[float, float, float]] = {}
    x = float(MARGIN)
    for layer in layers:
        nodes = columns[layer]
        column_height = len(nodes) * BOX_HEIGHT + (len(nodes) - 1) * ROW_GAP
        y = (height - column_height) / 2
        for node in nodes:
            boxes[node] = (x, y, widths[layer])
            y += BOX_HEIGHT + ROW_GAP
        x += widths[layer] + COLUMN_GAP
    width = int(x - COLUMN_GAP + MARGIN)

    marker = f"raise-arrow-{uuid.uuid4().hex[:8]}"
    title = f"Lineage of {lineage.root}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<defs><marker id="{marker}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#8a8a8a"/></marker></defs>',
    ]
    parts.extend(_edge(edge, boxes, marker) for edge in lineage.edges if edge.source in boxes and edge.target in boxes)
    parts.extend(_edge_labels(lineage.edges, boxes))
    parts.extend(_box(node, boxes[node], is_root=node == lineage.root) for node in boxes)
    parts.append("</svg>")
    return "\n".join(parts)


def _edge(edge: Edge, boxes: dict[Node, tuple[float, float, float]], marker: str) -> str:
    sx, sy, sw = boxes[edge.source]
    tx, ty, _ = boxes[edge.target]
    x1, y1 = sx + sw, sy + BOX_HEIGHT / 2
    x2, y2 = tx, ty + BOX_HEIGHT / 2
    bend = max(abs(x2 - x1) / 2, 30)
    path = f"M {x1:.1f} {y1:.1f} C {x1 + bend:.1f} {y1:.1f}, {x2 - bend:.1f} {y2:.1f}, {x2:.1f} {y2:.1f}"
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
