"""Results returned by reads, SQL queries and ingests."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

__all__ = ["IngestResult", "QueryResult"]

_PREVIEW_ROWS = 10


class QueryResult:
    """Rows returned by ``FeatureStore.sql``, convertible to pandas, Arrow or polars.

    Attributes
    ----------
    versions
        Table version of every feature group the query read, by group name.
    """

    def __init__(self, table: pa.Table, *, versions: dict[str, int] | None = None) -> None:
        self._table = table
        self.versions = dict(versions or {})

    def to_arrow(self) -> pa.Table:
        """Return the rows as a pyarrow Table."""
        return self._table

    def to_pandas(self) -> Any:
        """Return the rows as a pandas DataFrame (integer columns with nulls become float64)."""
        return self._table.to_pandas()

    def to_polars(self) -> Any:
        """Return the rows as a polars DataFrame; needs polars installed."""
        try:
            import polars as pl
        except ImportError:
            raise ImportError("to_polars() needs polars: pip install polars") from None
        return pl.from_arrow(self._table)

    @property
    def columns(self) -> list[str]:
        """Column names of the result."""
        return self._table.column_names

    def __len__(self) -> int:
        return self._table.num_rows

    def _row_count(self) -> str:
        rows = self._table.num_rows
        return f"{rows:,} row" if rows == 1 else f"{rows:,} rows"

    def __repr__(self) -> str:
        preview = self._table.slice(0, _PREVIEW_ROWS).to_pandas()
        return f"QueryResult({self._row_count()}: {', '.join(self.columns)})\n{preview}"

    def _repr_html_(self) -> str:
        preview = self._table.slice(0, _PREVIEW_ROWS).to_pandas().to_html(index=False, max_cols=30)
        return f"<p>{self._row_count()}</p>{preview}"


@dataclass(frozen=True)
class IngestResult:
    """Summary of the rows that one ``FeatureGroup.ingest`` call wrote.

    Attributes
    ----------
    group
        Feature group name.
    rows
        Number of rows written (0 for empty input, which writes nothing).
    version
        Table version that contains the rows; pass it as ``as_of=`` to read exactly this state.
    inferred_features
        Features created from the data's columns by this call.
    """

    group: str
    rows: int
    version: int
    inferred_features: list[str] = field(default_factory=list)

    def _repr_html_(self) -> str:
        inferred = f", inferred features {html.escape(', '.join(self.inferred_features))}" if self.inferred_features else ""
        return f"<p>Ingested {self.rows:,} rows into <b>{html.escape(self.group)}</b> (version {self.version}{inferred})</p>"
