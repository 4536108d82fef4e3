"""Analytics: Aggregation and Distribution against pandas and numpy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from raise_jupyter import Aggregation, DefinitionError, Distribution, FeatureStore, NotFoundError

ALL_METRICS = [
    "count", "count_distinct", "sum", "avg", "mean", "min", "max", "stddev", "variance",
    "null_count", "null_rate", "median", "p50", "p95", "p99", "p99.9",
]


def expected_metric(series: pd.Series, metric: str) -> float:
    """Compute ``metric`` with pandas and numpy, the reference for Raise's SQL."""
    values = series.dropna().to_numpy(dtype="float64")
    percentiles = {"median": 50.0, "p50": 50.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}
    if metric in percentiles:
        return float(np.percentile(values, percentiles[metric])) if len(values) else math.nan
    return {
        "count": series.count(),
        "count_distinct": series.nunique(),
        "sum": series.sum(),
        "avg": series.mean(),
        "mean": series.mean(),
        "min": series.min(),
        "max": series.max(),
        "stddev": series.std(),
        "variance": series.var(),
        "null_count": series.isna().sum(),
        "null_rate": series.isna().mean(),
    }[metric]


def assert_close(actual: object, expected: object, *, label: str) -> None:
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        assert actual is None, label
        return
    assert actual == pytest.approx(float(expected), rel=1e-9, abs=1e-12), label


@pytest.fixture
def signals(fs: FeatureStore):
    group = fs.create_feature_group("user-signals", keys="user_id", event_time="ts")
    group.create_features_from_schema(
        {"user_id": "int64", "ts": "timestamp", "clicks": "int64", "impressions": "int64", "country": "string", "ok": "bool"}
    )
    group.create_feature("ctr", dtype="float64", derived_from="clicks / NULLIF(impressions, 0)")
    return group


def ingest_small(group) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4, 5],
            "ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 11:30", "2024-01-02 09:00", "2024-01-02 09:59", "2024-01-03 00:00"], utc=True),
            "clicks": [1, 2, 3, None, 10],
            "impressions": [10, 10, 0, 5, 20],
            "country": ["de", "fr", "de", None, "de"],
            "ok": [True, False, True, True, None],
        }
    )
    frame["clicks"] = frame["clicks"].astype("Int64")
    frame["ok"] = frame["ok"].astype("boolean")
    group.ingest(frame)
    return frame


# -- aggregation --------------------------------------------------------------------------------


def test_every_metric_matches_pandas(signals) -> None:
    frame = ingest_small(signals)

    result = signals.analyze(Aggregation(feature="clicks", metrics=ALL_METRICS))

    for metric in ALL_METRICS:
        assert_close(result[metric], expected_metric(frame["clicks"].astype("float64"), metric), label=metric)


def test_derived_feature_and_where(signals) -> None:
    ingest_small(signals)

    result = signals.analyze(Aggregation("ctr", ["avg", "null_count", "count"], where="country = 'de'"))

    assert result.values == {"avg": pytest.approx((0.1 + 0.5) / 2), "null_count": 1, "count": 2}


def test_group_by_column_and_date(signals) -> None:
    ingest_small(signals)

    result = signals.analyze(Aggregation("clicks", ["sum", "count"], group_by=["country", "date"]))

    frame = result.to_pandas()
    assert frame.columns.tolist() == ["country", "date", "sum", "count"]
    assert result.series("sum") == [
        (("de", pd.Timestamp("2024-01-01").date()), 1),
        (("de", pd.Timestamp("2024-01-02").date()), 3),
        (("de", pd.Timestamp("2024-01-03").date()), 10),
        (("fr", pd.Timestamp("2024-01-01").date()), 2),
        ((None, pd.Timestamp("2024-01-02").date()), None),
    ]


def test_group_by_hour(signals) -> None:
    ingest_small(signals)

    result = signals.analyze(Aggregation("impressions", ["sum"], group_by="hour"))

    hours = [key.hour for key, _ in result.series("sum")]
    assert hours == [10, 11, 9, 0]
    assert [value for _, value in result.series("sum")] == [10, 10, 5, 20]


def test_bool_sum_and_avg(signals) -> None:
    ingest_small(signals)

    result = signals.analyze(Aggregation("ok", ["sum", "avg", "null_rate"]))

    assert result.values == {"sum": 3, "avg": pytest.approx(0.75), "null_rate": pytest.approx(0.2)}


def test_empty_group_gives_counts_and_nulls(signals) -> None:
    result = signals.analyze(Aggregation("clicks", ["count", "avg", "p99", "null_rate"]))

    assert result.values == {"count": 0, "avg": None, "p99": None, "null_rate": None}
    assert signals.analyze(Aggregation("clicks", ["sum"], group_by="date")).to_arrow().num_rows == 0


def test_group_qualified_feature_name(signals) -> None:
    ingest_small(signals)

    assert signals.analyze(Aggregation("user-signals.clicks", ["max"]))["max"] == 10


def test_as_of_reads_an_earlier_version(signals) -> None:
    ingest_small(signals)
    first = signals.version
    signals.ingest({"user_id": [9], "ts": ["2024-02-01"], "clicks": [1000], "impressions": [1]})

    assert signals.analyze(Aggregation("clicks", ["max"]), as_of=first)["max"] == 10
    assert signals.analyze(Aggregation("clicks", ["max"]))["max"] == 1000


# -- bad input ----------------------------------------------------------------------------------


def test_unknown_metric_lists_choices() -> None:
    with pytest.raises(DefinitionError, match=r"Unknown metric 'average'\. Valid metrics: count, .*p99\.9"):
        Aggregation("clicks", ["average"])


@pytest.mark.parametrize("metric", ["p101", "p", "p-5", "P50"])
def test_invalid_percentiles(metric: str) -> None:
    with pytest.raises(DefinitionError, match="Unknown metric"):
        Aggregation("clicks", [metric])


def test_unknown_feature_lists_features(signals) -> None:
    with pytest.raises(NotFoundError, match=r"Feature 'clics' is not in group 'user-signals'\. Did you mean 'clicks'\?"):
        signals.analyze(Aggregation("clics", ["avg"]))


def test_unknown_group_by_lists_choices(signals) -> None:
    with pytest.raises(NotFoundError, match=r"Cannot group by 'contry'.*Did you mean 'country'\?.*date, hour"):
        signals.analyze(Aggregation("clicks", ["avg"], group_by="contry"))


def test_date_needs_event_time(fs: FeatureStore) -> None:
    group = fs.create_feature_group("plain")
    group.create_feature("x", dtype="int64")

    with pytest.raises(NotFoundError, match="'date' and 'hour' need an event time"):
        group.analyze(Aggregation("x", ["avg"], group_by="date"))


def test_numeric_metric_on_string(signals) -> None:
    with pytest.raises(DefinitionError, match=r"Metric 'avg' needs numbers, but 'country' has dtype string"):
        signals.analyze(Aggregation("country", ["avg"]))


def test_bad_where(signals) -> None:
    with pytest.raises(DefinitionError, match="where"):
        signals.analyze(Aggregation("clicks", ["avg"], where="clicks +"))


def test_not_an_analysis(signals) -> None:
    with pytest.raises(DefinitionError, match=r"Expected an Aggregation or Distribution, got 'avg'"):
        signals.analyze("avg")


# -- distribution -------------------------------------------------------------------------------


def test_histogram_matches_numpy(signals) -> None:
    rng = np.random.default_rng(3)
    clicks = rng.integers(-50, 1000, size=3_000)
    signals.ingest({"user_id": np.arange(3_000), "ts": ["2024-01-01"] * 3_000, "clicks": clicks, "impressions": clicks})

    result = signals.analyze(Distribution(feature="ctr", bins=7)).to_arrow()
    ctr = pd.Series(clicks / np.where(clicks == 0, np.nan, clicks)).dropna().to_numpy()
    counts, edges = np.histogram(ctr, bins=7)

    assert result.column("count").to_pylist() == counts.tolist()
    assert result.column("start").to_pylist() == pytest.approx(edges[:-1].tolist())


def test_histogram_explicit_edges_keep_outside_values(signals) -> None:
    ingest_small(signals)

    result = signals.analyze(Distribution("clicks", bins=[2, 3, 5]))

    assert result.to_arrow().column("bucket").to_pylist() == ["[2, 3)", "[3, 5]", "below first edge", "above last edge"]
    assert result.to_arrow().column("count").to_pylist() == [1, 1, 1, 1]


def test_histogram_counts_nan_and_infinity(fs: FeatureStore) -> None:
    group = fs.create_feature_group("floats")
    group.create_feature("x", dtype="float64")
    group.ingest({"x": pa_floats([1.0, 2.0, math.nan, math.inf, -math.inf, None])})

    result = group.analyze(Distribution("x", bins=2))

    assert result.values["count"] == {"[1, 1.5)": 1, "[1.5, 2]": 1, "NaN": 1, "-inf": 1, "inf": 1}


def pa_floats(values: list[float | None]):
    import pyarrow as pa

    return pa.array(values, pa.float64())


def test_value_counts_top_and_other(signals) -> None:
    ingest_small(signals)

    result = signals.analyze(Distribution("country", top=1))

    assert result.values["count"] == {"de": 3, "(other)": 1}


def test_vector_norms(fs: FeatureStore) -> None:
    group = fs.create_feature_group("items")
    group.create_feature("embedding", dtype="float32[2]")
    group.ingest({"embedding": [[3.0, 4.0], [0.0, 1.0], [6.0, 8.0]]})

    result = group.analyze(Distribution("embedding", bins=[0, 2, 20]))

    assert result.values["count"] == {"[0, 2)": 1, "[2, 20]": 2}


def test_distribution_of_timestamps_is_rejected(signals) -> None:
    with pytest.raises(DefinitionError, match=r"group_by=\['date'\]"):
        signals.analyze(Distribution("ts"))


@pytest.mark.parametrize("bins", [0, [1], [2, 1], "ten", [0, math.inf]])
def test_bad_bins(bins: object) -> None:
    with pytest.raises(DefinitionError, match="bins must be"):
        Distribution("x", bins=bins)


def test_rich_display_has_chart(signals) -> None:
    ingest_small(signals)

    html = signals.analyze(Distribution("clicks", bins=3))._repr_html_()

    assert "<svg" in html
    assert "<rect" in html
    assert "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


@pytest.mark.parametrize("metrics", [[], [""], ["avg", "avg"], [3]])
def test_bad_metric_lists(metrics: object) -> None:
    with pytest.raises(DefinitionError, match="metric"):
        Aggregation("clicks", metrics)


def test_stddev_with_nan_or_infinity_is_nan(fs: FeatureStore) -> None:
    group = fs.create_feature_group("floats")
    group.create_feature("x", dtype="float64")
    group.ingest({"x": pa_floats([1.0, 2.0, math.inf])})

    result = group.analyze(Aggregation("x", ["stddev", "variance", "max", "count"]))

    assert math.isnan(result["stddev"])
    assert math.isnan(result["variance"])
    assert result["max"] == math.inf
    assert result["count"] == 3


def test_vector_norms_with_null_elements_and_empty_lists(fs: FeatureStore) -> None:
    group = fs.create_feature_group("lists")
    group.create_feature("v", dtype="list<float64>")
    group.ingest({"v": [[3.0, None, 4.0], [], None, [6.0, 8.0]]})

    result = group.analyze(Distribution("v", bins=[0, 1, 20]))

    assert result.values["count"] == {"[0, 1)": 1, "[1, 20]": 2}
