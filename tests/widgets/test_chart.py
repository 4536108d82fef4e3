"""DistributionChart: histograms and value counts, selections as SQL filters checked in DuckDB."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from flight_data import FLIGHT_ROWS, flight_rows

from raise_jupyter import Aggregation, Distribution, FeatureStore
from raise_jupyter.widgets import DistributionChart
from raise_jupyter.widgets._common import MESSAGE_LIMIT

BINS = 10


def chart_rows(chart: DistributionChart) -> list[dict[str, Any]]:
    """Return the data rows of the Vega-Lite spec that the chart widget sends."""
    spec = chart._jchart.spec
    data = spec["data"]
    if "values" in data:
        return data["values"]
    return spec["datasets"][data["name"]]


def brush(chart: DistributionChart, lo: float, hi: float) -> None:
    """Drag across the histogram from ``lo`` to ``hi``, as the browser reports it."""
    chart._jchart._vl_selections = {"brush": {"value": {"start": [lo, hi]}, "store": []}}


def pick(chart: DistributionChart, *values: str) -> None:
    """Click bars of a value-count chart, as the browser reports it."""
    points = [{"value": value} for value in values]
    chart._jchart._vl_selections = {"pick": {"value": {"vlPoint": {"or": points}}, "store": []}}


def count_where(group: Any, feature: str, where: str) -> int:
    """Count the non-null values of ``feature`` in the rows that ``where`` selects."""
    return group.analyze(Aggregation(feature, ["count"], where=where))["count"]


def rows_where(group: Any, where: str) -> int:
    """Count the rows that ``where`` selects, null values included."""
    return group.to_arrow(where=where).num_rows


@pytest.fixture
def delays() -> np.ndarray:
    """Non-null departure delays of the ``flights`` fixture."""
    return flight_rows(0, FLIGHT_ROWS)["dep_delay"].dropna().to_numpy(dtype=float)


# -- histograms and value counts ----------------------------------------------------------------


def test_histogram_matches_numpy(recorder, flights, delays: np.ndarray) -> None:
    counts, edges = np.histogram(delays, bins=BINS)

    chart = DistributionChart(flights, "dep_delay", bins=BINS)

    rows = chart_rows(chart)
    assert [r["count"] for r in rows] == counts.tolist()
    assert [r["start"] for r in rows] == pytest.approx(edges[:-1].tolist())
    assert [r["end"] for r in rows] == pytest.approx(edges[1:].tolist())
    assert chart.feature == "dep_delay"
    assert chart._jchart.spec["mark"]["type"] == "bar"
    assert [p["name"] for p in chart._jchart.spec["params"]] == ["brush"]


def test_value_counts_match_pandas(recorder, flights) -> None:
    carriers = flight_rows(0, FLIGHT_ROWS)["carrier"].value_counts()

    chart = DistributionChart(flights, "carrier")

    rows = chart_rows(chart)
    assert {r["value"]: r["count"] for r in rows} == {str(k): int(v) for k, v in carriers.items()}
    assert [p["name"] for p in chart._jchart.spec["params"]] == ["pick"]


def test_status_counts_non_null_values(recorder, flights, delays: np.ndarray) -> None:
    chart = DistributionChart(flights, "dep_delay")

    assert f"{len(delays):,} non-null values" in chart._status.value
    assert "Drag across the chart" in chart._status.value


def test_show_switches_feature(recorder, flights) -> None:
    distances = flight_rows(0, FLIGHT_ROWS)["distance"].to_numpy()
    chart = DistributionChart(flights, "dep_delay", bins=BINS)
    brush(chart, 0, 10)

    chart.show("distance")

    assert chart.feature == "distance"
    assert chart.selection is None
    assert chart.selected_rows is None
    assert [r["count"] for r in chart_rows(chart)] == np.histogram(distances, bins=BINS)[0].tolist()


def test_pick_after_switch_from_histogram(recorder, flights) -> None:
    carriers = flight_rows(0, FLIGHT_ROWS)["carrier"]
    chart = DistributionChart(flights, "dep_delay")
    chart.show("carrier")

    pick(chart, "AA")

    assert chart.selected_rows == int((carriers == "AA").sum())
    assert rows_where(flights, chart.selection) == int((carriers == "AA").sum())


def test_chart_of_timestamp_shows_error(recorder, flights) -> None:
    chart = DistributionChart(flights, "sched_dep")

    assert chart.result is None
    assert "group_by=[&#x27;date&#x27;]" in chart._status.value


def test_chart_of_unknown_feature_shows_error(recorder, flights) -> None:
    chart = DistributionChart(flights, "dep_dalay")

    assert chart.result is None
    assert "dep_dalay" in chart._status.value


def test_histogram_of_values_with_many_digits(recorder, fs: FeatureStore) -> None:
    group = fs.create_feature_group("digits")
    group.create_features_from_schema({"x": "float64"})
    group.ingest({"x": pa.array([-2.7680259123001147, 102.50898246685345, 5.0])})

    chart = DistributionChart(group, "x", bins=4)

    assert chart.result is not None, chart._status.value
    expected, _ = np.histogram([-2.7680259123001147, 102.50898246685345, 5.0], bins=4)
    assert chart.result._table.column("count").to_pylist() == expected.tolist()


# -- selections ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last"),
    [(2, 4), (0, 0), (BINS - 1, BINS - 1), (0, BINS - 1), (6, 8)],
    ids=["middle", "first-bin", "last-bin", "all-bins", "upper-bins"],
)
def test_brush_selects_rows_of_touched_bins(recorder, flights, delays: np.ndarray, first: int, last: int) -> None:
    edges = np.histogram_bin_edges(delays, bins=BINS)
    chart = DistributionChart(flights, "dep_delay", bins=BINS)
    # A drag from inside bin ``first`` to inside bin ``last`` touches exactly those bins.
    lo = edges[first] + 0.3 * (edges[first + 1] - edges[first])
    hi = edges[last] + 0.6 * (edges[last + 1] - edges[last])
    upper = delays <= edges[last + 1] if last == BINS - 1 else delays < edges[last + 1]
    expected = int(np.sum((delays >= edges[first]) & upper))

    brush(chart, lo, hi)

    assert chart.selected_rows == expected
    assert chart.selection is not None
    assert count_where(flights, "dep_delay", chart.selection) == expected
    assert f"Selection ({expected:,} rows)" in chart._status.value


def test_brush_on_integer_feature(recorder, flights) -> None:
    distances = flight_rows(0, FLIGHT_ROWS)["distance"].to_numpy()
    edges = np.histogram_bin_edges(distances, bins=BINS)
    chart = DistributionChart(flights, "distance", bins=BINS)

    brush(chart, edges[2] + 1, edges[7] + 1)

    expected = int(np.sum((distances >= edges[2]) & (distances < edges[8])))
    assert chart.selected_rows == expected
    assert rows_where(flights, chart.selection) == expected


def test_brush_from_right_to_left(recorder, flights, delays: np.ndarray) -> None:
    edges = np.histogram_bin_edges(delays, bins=BINS)
    chart = DistributionChart(flights, "dep_delay", bins=BINS)

    brush(chart, edges[5] + 0.1, edges[3] + 0.1)

    assert chart.selected_rows == int(np.sum((delays >= edges[3]) & (delays < edges[6])))


def test_brush_outside_data_selects_nothing(recorder, flights, delays: np.ndarray) -> None:
    chart = DistributionChart(flights, "dep_delay", bins=BINS)

    brush(chart, delays.max() + 100, delays.max() + 200)

    assert chart.selection is None
    assert chart.selected_rows is None


def test_cleared_brush_clears_selection(recorder, flights) -> None:
    chart = DistributionChart(flights, "dep_delay", bins=BINS)
    brush(chart, 0, 10)
    assert chart.selection is not None

    chart._jchart._vl_selections = {"brush": {"value": {}, "store": []}}

    assert chart.selection is None
    assert chart.selected_rows is None
    assert "Drag across the chart" in chart._status.value


def test_brush_respects_chart_where(recorder, flights) -> None:
    frame = flight_rows(0, FLIGHT_ROWS)
    united = frame.loc[frame["carrier"] == "UA", "dep_delay"].dropna().to_numpy(dtype=float)
    edges = np.histogram_bin_edges(united, bins=BINS)
    chart = DistributionChart(flights, "dep_delay", bins=BINS, where="carrier = 'UA'")

    brush(chart, edges[1] + 0.01, edges[4] + 0.01)

    expected = int(np.sum((united >= edges[1]) & (united < edges[5])))
    assert chart.selected_rows == expected
    assert count_where(flights, "dep_delay", chart.selection) == expected
    assert rows_where(flights, chart.selection) == expected


def test_pick_gives_in_filter(recorder, flights) -> None:
    carriers = flight_rows(0, FLIGHT_ROWS)["carrier"]
    chart = DistributionChart(flights, "carrier")

    pick(chart, "UA", "DL")

    expected = int(carriers.isin(["UA", "DL"]).sum())
    assert chart.selection == """CAST("carrier" AS VARCHAR) IN ('UA', 'DL')"""
    assert chart.selected_rows == expected
    assert count_where(flights, "carrier", chart.selection) == expected
    assert rows_where(flights, chart.selection) == expected


def test_pick_of_boolean(recorder, flights) -> None:
    cancelled = flight_rows(0, FLIGHT_ROWS)["cancelled"]
    chart = DistributionChart(flights, "cancelled")

    pick(chart, "true")

    assert chart.selected_rows == int(cancelled.sum())
    assert count_where(flights, "cancelled", chart.selection) == int(cancelled.sum())


def test_pick_of_other_bucket_selects_nothing(recorder, flights) -> None:
    result = flights.analyze(Distribution("carrier", top=2))
    chart = result.chart()

    pick(chart, "(other)")

    assert chart.selection is None
    assert chart.selected_rows is None


def test_pick_quotes_values(recorder, fs: FeatureStore) -> None:
    group = fs.create_feature_group("names")
    group.create_features_from_schema({"name": "string"})
    group.ingest({"name": ["O'Hare", "O'Hare", "JFK", None]})
    chart = DistributionChart(group, "name")

    pick(chart, "O'Hare")

    assert chart.selected_rows == 2
    assert count_where(group, "name", chart.selection) == 2


# -- vectors ------------------------------------------------------------------------------------


@pytest.fixture
def embeddings(fs: FeatureStore):
    """Vectors with a zero vector, null vectors and norms 1 to 10."""
    group = fs.create_feature_group("items", keys="item_id")
    group.create_features_from_schema({"item_id": "int64", "embedding": "float32[2]"})
    vectors = [[0.0, 0.0], None, [3.0, 4.0], [1.0, 0.0], None, [6.0, 8.0], [0.0, 2.0], [4.5, 6.0]]
    group.ingest({"item_id": list(range(len(vectors))), "embedding": pa.array(vectors, pa.list_(pa.float32(), 2))})
    norms = np.array([np.hypot(*v) for v in vectors if v is not None])
    return group, norms


def test_vector_histogram_of_norms(recorder, embeddings) -> None:
    group, norms = embeddings

    chart = DistributionChart(group, "embedding", bins=5)

    assert [r["count"] for r in chart_rows(chart)] == np.histogram(norms, bins=5)[0].tolist()
    assert chart._jchart.spec["encoding"]["x"]["title"] == "norm of embedding"


def test_vector_brush_counts_norms(recorder, embeddings) -> None:
    group, norms = embeddings
    edges = np.histogram_bin_edges(norms, bins=5)
    chart = DistributionChart(group, "embedding", bins=5)

    brush(chart, edges[0] + 0.1, edges[1] + 0.1)

    expected = int(np.sum((norms >= edges[0]) & (norms < edges[2])))
    assert chart.selected_rows == expected
    assert count_where(group, "embedding", chart.selection) == expected
    assert rows_where(group, chart.selection) == expected


# -- AnalysisResult.chart -----------------------------------------------------------------------


def test_result_chart_uses_result(recorder, flights, delays: np.ndarray) -> None:
    result = flights.analyze(Distribution("dep_delay", bins=7, where="distance > 1000"))

    chart = result.chart()

    assert isinstance(chart, DistributionChart)
    assert chart.result is result
    assert chart.bins == 7
    assert chart.where == "distance > 1000"
    assert [r["count"] for r in chart_rows(chart)] == result.to_arrow().column("count").to_pylist()


def test_result_chart_rejects_aggregation(recorder, flights) -> None:
    result = flights.analyze(Aggregation("dep_delay", ["avg"]))

    with pytest.raises(TypeError, match=r"Only a Distribution result of FeatureGroup.analyze can be charted"):
        result.chart()


# -- what the chart sends -----------------------------------------------------------------------


def test_open_message_bundles_vega(recorder, flights) -> None:
    chart = DistributionChart(flights, "dep_delay")

    [opening] = [m for m in recorder.of(chart._jchart) if m.kind == "comm_open"]
    esm = opening.state["_esm"]
    assert "vega" in esm
    assert "https://cdn" not in esm
    assert "jsdelivr" not in esm
    assert not re.search(r"""import\s*\(?\s*["']https?://""", esm)
    assert not re.search(r"""from\s*["']https?://""", esm)
    assert opening.size < MESSAGE_LIMIT


def test_every_chart_message_under_limit(recorder, flights) -> None:
    chart = DistributionChart(flights, "dep_delay")
    brush(chart, 0, 30)
    chart.show("carrier")
    pick(chart, "UA")

    for message in recorder.messages:
        assert message.size < MESSAGE_LIMIT, (message.kind, list(message.state)[:5])


# -- found by a review that tried to break the chart ----------------------------------------------


def test_long_value_picked_by_index(recorder, fs: FeatureStore) -> None:
    group = fs.create_feature_group("long", keys="id")
    group.create_features_from_schema({"id": "int64", "text": "string"})
    # 20 values of 6,000 characters: sent in full, they and the chart code pass 1 MB.
    values = [letter * 6_000 for letter in "abcdefghijklmnopqrst"]
    group.ingest({"id": list(range(21)), "text": [values[0], *values]})

    chart = DistributionChart(group, "text")
    chart._jchart._vl_selections = {"pick": {"value": {"vlPoint": {"or": [{"i": 0}]}}, "store": []}}

    assert chart.selected_rows == 2
    assert group.analyze(Aggregation("text", ["count"], where=chart.selection))["count"] == 2
    assert max(m.size for m in recorder.of(chart._jchart)) < 1_000_000


def test_brush_on_all_null_chart_ignored(recorder, fs: FeatureStore) -> None:
    group = fs.create_feature_group("empty-values", keys="id")
    group.create_features_from_schema({"id": "int64", "x": "float64"})
    group.ingest({"id": [1, 2], "x": [None, None]})
    chart = DistributionChart(group, "x")

    chart._jchart._vl_selections = {"brush": {"value": {"start": [None, None]}, "store": []}}

    assert chart.selection is None
