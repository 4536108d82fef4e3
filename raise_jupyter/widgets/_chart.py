"""Distribution charts: an Altair histogram or value-count chart of one feature, whose brushed
range comes back to Python as a filter expression."""

from __future__ import annotations

import html
import logging
import threading
from typing import TYPE_CHECKING, Any

import ipywidgets

from raise_jupyter.analysis import Distribution
from raise_jupyter.engine.duck import quote, string_literal
from raise_jupyter.widgets._common import widget_bundle

if TYPE_CHECKING:
    import altair

    from raise_jupyter.group import FeatureGroup
    from raise_jupyter.results import AnalysisResult

__all__ = ["DistributionChart"]

logger = logging.getLogger(__name__)

DEFAULT_BINS = 40
_OFFLINE_LOCK = threading.Lock()


def load_altair() -> Any:
    """Import Altair with its JavaScript bundled from vl-convert, so nothing comes from a CDN."""
    with _OFFLINE_LOCK:
        import altair as alt

        alt.JupyterChart.enable_offline()
    return alt


class DistributionChart(ipywidgets.VBox):
    """An interactive chart of a feature's distribution.

    Numbers show a histogram (vectors: of their norms), text and booleans the most frequent
    values. Drag across the histogram, or click bars of value counts, to select. The selection
    is then available in ``selection`` as a SQL filter over the group's features.

    Parameters
    ----------
    group
        The feature group.
    feature
        The feature to chart.
    bins
        Number of histogram bins.
    where
        A filter on the group's features, applied before counting.

    Examples
    --------
    >>> chart = DistributionChart(fs["flights"], "dep_delay")  # doctest: +SKIP
    >>> chart.selection  # after dragging across the chart  # doctest: +SKIP
    '"dep_delay" >= 10.0 AND "dep_delay" < 50.0'
    """

    def __init__(
        self,
        group: FeatureGroup,
        feature: str,
        *,
        bins: int = DEFAULT_BINS,
        where: str | None = None,
        result: AnalysisResult | None = None,
    ) -> None:
        self.group = group
        self.bins = bins
        self.where = where
        self.result: AnalysisResult | None = None
        self.selection: str | None = None
        self.selected_rows: int | None = None
        self._status = ipywidgets.HTML()
        self._jchart: Any = None
        super().__init__([self._status])
        self.add_class("raise-distribution")
        if result is not None:
            self._draw(result)
        else:
            self.show(feature)

    @classmethod
    def from_result(cls, group: FeatureGroup, result: AnalysisResult) -> DistributionChart:
        """Chart a ``Distribution`` result that was already computed."""
        analysis = result.analysis
        bins = analysis.bins if isinstance(analysis.bins, int) else DEFAULT_BINS
        return cls(group, analysis.feature, bins=bins, where=analysis.where, result=result)

    @property
    def feature(self) -> str | None:
        """The feature shown."""
        return self.result.analysis.feature if self.result is not None else None

    def show(self, feature: str) -> DistributionChart:
        """Compute and show the distribution of ``feature`` (in the same chart widget)."""
        try:
            result = self.group.analyze(Distribution(feature, self.bins, where=self.where))
        except Exception as error:
            self._status.value = f'<span style="color: var(--jp-error-color1, #d32f2f)">{html.escape(str(error))}</span>'
            return self
        self._draw(result)
        return self

    def _draw(self, result: AnalysisResult) -> None:
        self.result = result
        self.selection, self.selected_rows = None, None
        alt = load_altair()
        spec = _chart(alt, result)
        if self._jchart is None:
            self._jchart = alt.JupyterChart(spec, embed_options={"renderer": "svg", "actions": False})
            self._jchart.add_class("raise-chart")
            self.children = [self._jchart, self._status]
        else:
            self._jchart.chart = spec
        self._jchart.selections.observe(self._on_selection)
        self._status.value = _status_html(result, None, None)

    def _on_selection(self, change: dict[str, Any]) -> None:
        if change.get("name") not in ("brush", "pick") or self.result is None:
            return
        selection = change["new"]
        value = getattr(selection, "value", None)
        self.selection, self.selected_rows = selection_filter(self.result, value)
        self._status.value = _status_html(self.result, self.selection, self.selected_rows)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        html = self.result._repr_html_() if self.result is not None else self._status.value
        return widget_bundle(self, text=repr(self), html=html)

    def __repr__(self) -> str:
        return f"DistributionChart({self.group.name}.{self.feature}, selection={self.selection!r})"


def _chart(alt: Any, result: AnalysisResult) -> altair.Chart:
    table = result._table
    rows = table.to_pylist()
    feature = result.analysis.feature
    axis = {"labelColor": "currentColor", "titleColor": "currentColor", "domainColor": "currentColor", "tickColor": "currentColor", "gridOpacity": 0.25}
    if "value" in table.column_names:
        # Bars carry their row index and a shortened label. A click selects by index, and the
        # kernel builds the filter from the full value, so long values stay out of messages.
        pick = alt.selection_point(fields=["i"], name="pick")
        rows = [{"i": i, "value": _label(r["value"]), "count": r["count"]} for i, r in enumerate(rows[:200])]
        chart = (
            alt.Chart(alt.Data(values=rows))
            .mark_bar()
            .encode(
                y=alt.Y("value:N", sort="-x", title=feature),
                x=alt.X("count:Q", title="rows"),
                opacity=alt.condition(pick, alt.value(1.0), alt.value(0.45)),
                tooltip=["value:N", alt.Tooltip("count:Q", format=",")],
            )
            .add_params(pick)
        )
    else:
        bars = [r for r in rows if r["start"] is not None]
        brush = alt.selection_interval(encodings=["x"], name="brush")
        chart = (
            alt.Chart(alt.Data(values=bars))
            .mark_bar()
            .encode(
                x=alt.X("start:Q", bin="binned", title=_axis_title(result), axis=alt.Axis(labelOverlap="greedy", labelFlush=True, labelSeparation=8)),
                x2="end:Q",
                y=alt.Y("count:Q", title="rows"),
                tooltip=["bucket:N", alt.Tooltip("count:Q", format=",")],
            )
            .add_params(brush)
        )
    return chart.properties(width=520, height=200, background="transparent").configure_axis(**axis).configure_view(stroke=None).configure_title(color="currentColor")


def _axis_title(result: AnalysisResult) -> str:
    dtype = _dtype(result)
    feature = result.analysis.feature
    return f"norm of {feature}" if dtype is not None and dtype.kind != "scalar" else feature


def _dtype(result: AnalysisResult) -> Any:
    group = getattr(result, "_group", None)
    if group is None:
        return None
    from raise_jupyter import definitions

    record, records = group._load()
    layout = definitions.layout_of(record, records)
    return layout.dtype(result.analysis.feature) if result.analysis.feature in layout.names else None


def selection_filter(result: AnalysisResult, value: Any) -> tuple[str | None, int | None]:
    """Turn a chart selection into a SQL filter and the number of rows it selects.

    A brushed range is widened to the edges of the bins it touches, so the filter selects
    exactly the rows counted in those bins. The filter includes the chart's own ``where``,
    because the counts were taken under it.
    """
    rows = result._table.to_pylist()
    column = quote(result.analysis.feature)
    if isinstance(value, list):  # value counts: the clicked values
        picked = [_picked_value(rows, item) for item in value]
        picked = [p for p in picked if p is not None and p != "(other)"]
        if not picked:
            return None, None
        counts = {r["value"]: r["count"] for r in rows}
        listed = ", ".join(string_literal(p) for p in picked)
        return _within(result, f"CAST({column} AS VARCHAR) IN ({listed})"), sum(counts.get(p, 0) for p in picked)
    if not isinstance(value, dict) or not value:
        return None, None
    bounds = next(iter(value.values()))
    if not isinstance(bounds, list) or len(bounds) != 2 or not all(isinstance(b, (int, float)) for b in bounds):
        return None, None
    lo, hi = sorted(float(b) for b in bounds)
    bins = [r for r in rows if r["start"] is not None]
    touched = [r for r in bins if r["start"] < hi and r["end"] > lo]
    if not touched:
        return None, None
    expression = column
    dtype = _dtype(result)
    if dtype is not None and dtype.kind != "scalar":
        vector = f"CAST({column} AS DOUBLE[])"
        # A null vector has no norm; without the CASE it would count as norm 0.
        squares = f"list_sum(list_transform({vector}, lambda e: e * e))"
        expression = f"(CASE WHEN {vector} IS NULL THEN NULL ELSE sqrt(coalesce({squares}, 0)) END)"
    start, end = touched[0]["start"], touched[-1]["end"]
    closing = "<=" if touched[-1] is bins[-1] else "<"
    text = f"{expression} >= {start!r} AND {expression} {closing} {end!r}"
    return _within(result, text), sum(r["count"] for r in touched)


def _label(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:59] + "\u2026"


def _picked_value(rows: list[dict[str, Any]], item: Any) -> Any:
    """Return the full value of a clicked bar: by its index, or by its value."""
    if not isinstance(item, dict):
        return None
    index = item.get("i")
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(rows):
        return rows[index]["value"]
    return item.get("value")


def _within(result: AnalysisResult, selection: str) -> str:
    """Return ``selection`` restricted to the rows the chart counted (its ``where``)."""
    where = result.analysis.where
    return f"({where}) AND ({selection})" if where else selection


def _status_html(result: AnalysisResult, selection: str | None, rows: int | None) -> str:
    total = sum(v or 0 for v in result._table.column("count").to_pylist())
    where = f" where {result.analysis.where}" if result.analysis.where else ""
    lines = [f"{result.group}.{result.analysis.feature}, version {result.version}: {total:,} non-null values{where}."]
    if selection:
        lines.append(f"Selection ({rows:,} rows): <code>{html.escape(selection)}</code> (in <code>chart.selection</code>)")
    else:
        if "value" in result._table.column_names:
            lines.append("Click bars (shift-click for several) to select values.")
        else:
            lines.append("Drag across the chart to select a range.")
    body = "<br>".join(html.escape(lines[0]) if i == 0 else line for i, line in enumerate(lines))
    return f'<div class="raise-chart-status" style="font-size: var(--jp-ui-font-size1, 13px)">{body}</div>'
