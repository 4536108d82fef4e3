"""Results returned by reads, SQL queries and ingests."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

__all__ = ["AnalysisResult", "IngestResult", "QueryResult"]

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


class AnalysisResult(QueryResult):
    """The result of ``FeatureGroup.analyze``: a table, and the values by metric name.

    An aggregation has one row (or one per ``group_by`` value) and a column per metric. A
    histogram has the columns ``bucket``, ``start``, ``end`` and ``count``; value counts have
    ``value`` and ``count``.

    Attributes
    ----------
    analysis
        The Aggregation or Distribution that was run.
    group
        Name of the feature group analyzed.
    version
        Table version of the group that was read.

    Examples
    --------
    >>> result = group.analyze(Aggregation(feature="ctr", metrics=["avg", "p99"]))  # doctest: +SKIP
    >>> result["avg"]  # doctest: +SKIP
    0.0431
    """

    def __init__(self, table: pa.Table, *, analysis: Any, group: str, version: int) -> None:
        super().__init__(table, versions={group: version})
        self.analysis = analysis
        self.group = group
        self.version = version
        # The FeatureGroup analyzed, set by FeatureGroup.analyze; charts need it.
        self._group: Any = None

    def chart(self) -> Any:
        """Return an interactive ``DistributionChart`` of this distribution.

        Examples
        --------
        >>> group.analyze(Distribution("dep_delay")).chart()  # doctest: +SKIP
        """
        from raise_jupyter.analysis import Distribution

        if not isinstance(self.analysis, Distribution) or self._group is None:
            raise TypeError(
                f"Only a Distribution result of FeatureGroup.analyze can be charted, not {self.analysis!r}; "
                "run group.analyze(Distribution(feature)) first."
            )
        from raise_jupyter.widgets import DistributionChart

        return DistributionChart.from_result(self._group, self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from raise_jupyter.analysis import Distribution
        from raise_jupyter.display import rich_bundle

        if not isinstance(self.analysis, Distribution) or self._group is None:
            return {"text/plain": repr(self), "text/html": self._repr_html_()}
        return rich_bundle(self.chart, text=repr(self), html=self._repr_html_)

    @property
    def group_by(self) -> list[str]:
        """Names of the columns the metrics are grouped by."""
        return list(getattr(self.analysis, "group_by", ()))

    @property
    def values(self) -> dict[str, Any]:
        """Metric name to value, or to a dict of values by group when grouped.

        Grouped by one column, the inner keys are its values; by several, tuples of them.
        A distribution maps each bucket or value to its count.
        """
        table = self._table
        if "count" in table.column_names and ("bucket" in table.column_names or "value" in table.column_names):
            labels = table.column("bucket" if "bucket" in table.column_names else "value").to_pylist()
            return {"count": dict(zip(labels, table.column("count").to_pylist(), strict=True))}
        metrics = [name for name in table.column_names if name not in self.group_by]
        if not self.group_by:
            row = table.to_pylist()[0] if table.num_rows else {}
            return {metric: row.get(metric) for metric in metrics}
        return {metric: dict(self.series(metric)) for metric in metrics}

    def series(self, metric: str) -> list[tuple[Any, Any]]:
        """Return (group, value) pairs of one metric; the group is None without ``group_by``."""
        if metric not in self._table.column_names:
            raise KeyError(f"{metric!r} is not a metric of this result; metrics: {', '.join(self.columns)}.")
        values = self._table.column(metric).to_pylist()
        if not self.group_by:
            return [(None, value) for value in values]
        columns = [self._table.column(name).to_pylist() for name in self.group_by]
        keys = [row[0] if len(row) == 1 else tuple(row) for row in zip(*columns, strict=True)]
        return list(zip(keys, values, strict=True))

    def __getitem__(self, metric: str) -> Any:
        values = self.values
        if metric not in values:
            raise KeyError(f"{metric!r} is not a metric of this result; metrics: {', '.join(values)}.")
        return values[metric]

    def __repr__(self) -> str:
        return f"AnalysisResult({self.analysis!r} on {self.group!r} version {self.version})\n{self.to_pandas()}"

    def _repr_html_(self) -> str:
        title = html.escape(f"{self.analysis!r} on {self.group!r}, version {self.version}")
        table = self._table.slice(0, 200).to_pandas().to_html(index=False, max_cols=30)
        chart = _bar_chart_svg(self._table) if "count" in self._table.column_names and self.columns[-1] == "count" else ""
        return f"<p>{title}</p>{chart}{table}"


def _bar_chart_svg(table: pa.Table, *, width: int = 480, height: int = 160) -> str:
    """Return an inline SVG bar chart of a distribution's counts (no scripts, nothing fetched)."""
    counts = table.column("count").to_pylist()[:200]
    if not counts or max(counts) <= 0:
        return ""
    labels = table.column(table.column_names[0]).to_pylist()[: len(counts)]
    bar = width / len(counts)
    top = max(counts)
    bars = []
    for i, (label, count) in enumerate(zip(labels, counts, strict=True)):
        h = height * count / top
        tip = html.escape(f"{label}: {count:,}")
        bars.append(
            f'<rect x="{i * bar:.2f}" y="{height - h:.2f}" width="{max(bar - 1, 0.5):.2f}" height="{h:.2f}" '
            f'fill="#4c78a8"><title>{tip}</title></rect>'
        )
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">{"".join(bars)}</svg>'
