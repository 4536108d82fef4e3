"""Data previews for widgets: a capped sample of rows packed into one binary buffer.

The buffer contains the cells as UTF-8 text, row by row, separated by the unit separator
(U+001F); a null cell is the single character U+0000. The front end splits it with
``TextDecoder`` and needs no Arrow library.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

PREVIEW_ROWS = 50
CELL_CHARS = 80
PREVIEW_BYTES = 400_000
SEPARATOR = "\x1f"
NULL = "\x00"


@dataclass(frozen=True)
class Preview:
    """A packed preview: column names, the number of rows, the cells and what was cut."""

    columns: list[str]
    rows: int
    data: bytes
    note: str


def pack_preview(table: pa.Table, *, total_rows: int | None = None) -> Preview:
    """Pack the first ``PREVIEW_ROWS`` rows of ``table`` into at most ``PREVIEW_BYTES`` bytes.

    Long cells are cut to ``CELL_CHARS`` characters; columns are dropped from the right when
    the rows would not fit.
    """
    table = table.slice(0, PREVIEW_ROWS)
    columns = [[_cell(value) for value in column.to_pylist()] for column in table.columns]
    names = list(table.column_names)

    kept = len(names)
    while kept and _size(columns[:kept], names[:kept]) > PREVIEW_BYTES:
        kept = max(kept * 3 // 4, 0) if kept > 4 else kept - 1
    cells = [columns[c][r] for r in range(table.num_rows) for c in range(kept)]
    data = SEPARATOR.join(cells).encode("utf-8")

    shown = f"{table.num_rows:,} rows"
    if total_rows is not None:
        shown += f" of {total_rows:,}"
    if kept < len(names):
        shown += f"; {kept} of {len(names)} columns (the rest did not fit in the preview)"
    return Preview(names[:kept], table.num_rows, data, shown)


def _size(columns: list[list[str]], names: list[str]) -> int:
    return sum(len(cell.encode("utf-8")) + 1 for column in columns for cell in column) + sum(len(n) for n in names)


def _cell(value: Any) -> str:
    if value is None:
        return NULL
    text = _text(value)
    text = text.replace(SEPARATOR, " ").replace(NULL, " ")
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "\u2026"


def _text(value: Any) -> str:
    if isinstance(value, float):
        # Six significant digits, as pandas prints them; the preview is for reading, not export.
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (bytes, bytearray)):
        return value[:24].hex() + ("\u2026" if len(value) > 24 else "")
    if isinstance(value, list):
        shown = ", ".join(_text(v) if v is not None else "null" for v in value[:4])
        more = f", \u2026 {len(value)} values" if len(value) > 4 else ""
        return f"[{shown}{more}]"
    return str(value)
