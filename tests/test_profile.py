"""FeatureGroup.profile: per-feature statistics against pandas and numpy, sampling, empty groups."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from raise_jupyter import FeatureStore, profile
from raise_jupyter.profile import HISTOGRAM_BINS, TOP_VALUES

ROWS = 240
CARRIERS = {"UA": 70, "AA": 50, "DL": 40, "B6": 25, "WN": 20, "EV": 12, "OO": 8}


def mixed_columns() -> dict[str, list[Any]]:
    """Columns of every kind, with nulls, NaN and infinities. None marks a null."""
    rng = np.random.default_rng(5)
    ids = list(range(ROWS))
    x: list[float | None] = [float(v) for v in rng.normal(3.0, 10.0, ROWS)]
    for i, special in [(3, math.nan), (8, math.inf), (13, -math.inf), (21, math.nan)]:
        x[i] = special
    for i in range(0, ROWS, 9):
        x[i] = None
    counts = [int(v) for v in rng.integers(-500, 500, ROWS)]
    counts_or_null: list[int | None] = [None if i % 5 == 0 else v for i, v in enumerate(counts)]
    carriers: list[str | None] = [name for name, n in CARRIERS.items() for _ in range(n)]
    carriers += [None] * (ROWS - len(carriers))
    carriers = [carriers[i] for i in rng.permutation(ROWS)]
    flags: list[bool | None] = [None if i % 7 == 0 else bool(i % 3 == 0) for i in ids]
    vectors: list[list[float] | None] = [None if i % 6 == 0 else [float(i % 5), float(i % 4) / 2] for i in ids]
    start = pd.Timestamp("2024-05-01", tz="UTC")
    times: list[pd.Timestamp | None] = [None if i % 10 == 4 else start + pd.Timedelta(minutes=37 * i) for i in ids]
    return {"id": ids, "x": x, "count": counts_or_null, "carrier": carriers, "ok": flags, "embedding": vectors, "seen_at": times}


@pytest.fixture
def mixed(fs: FeatureStore):
    group = fs.create_feature_group("mixed", keys="id", event_time="ts")
    group.create_features_from_schema(
        {"id": "int64", "ts": "timestamp", "x": "float64", "count": "int32", "carrier": "string", "ok": "bool", "embedding": "float32[2]", "seen_at": "timestamp"}
    )
    group.create_feature("x_twice", dtype="float64", derived_from="x * 2")
    columns = mixed_columns()
    group.ingest(
        pa.table(
            {
                "id": pa.array(columns["id"], pa.int64()),
                "ts": pa.array([pd.Timestamp("2024-01-01", tz="UTC")] * ROWS),
                "x": pa.array(columns["x"], pa.float64()),
                "count": pa.array(columns["count"], pa.int32()),
                "carrier": pa.array(columns["carrier"], pa.string()),
                "ok": pa.array(columns["ok"], pa.bool_()),
                "embedding": pa.array(columns["embedding"], pa.list_(pa.float32(), 2)),
                "seen_at": pa.array(columns["seen_at"], pa.timestamp("us", tz="UTC")),
            }
        )
    )
    return group, columns


def by_name(group: Any) -> dict[str, profile.FeatureProfile]:
    return {f.name: f for f in group.profile().features}


def non_null(values: list[Any]) -> list[Any]:
    return [v for v in values if v is not None]


def finite(values: list[Any]) -> np.ndarray:
    numbers = np.array(non_null(values), dtype=float)
    return numbers[np.isfinite(numbers)]


def assert_numbers(stats: profile.FeatureProfile, values: list[Any]) -> None:
    """Compare count, null rate, min, max and mean with pandas over finite values."""
    numbers = pd.Series(finite(values))
    assert stats.count == len(non_null(values)), stats.name
    assert stats.null_rate == pytest.approx(values.count(None) / len(values)), stats.name
    assert stats.min == pytest.approx(numbers.min()), stats.name
    assert stats.max == pytest.approx(numbers.max()), stats.name
    assert stats.mean == pytest.approx(numbers.mean(), rel=1e-9), stats.name
    assert len(stats.histogram) == HISTOGRAM_BINS, stats.name
    assert sum(stats.histogram) == len(numbers), stats.name


# -- kinds of features --------------------------------------------------------------------------


def test_floats_with_nan_inf_and_nulls(mixed) -> None:
    group, columns = mixed

    stats = by_name(group)["x"]

    assert_numbers(stats, columns["x"])
    assert stats.count == len(non_null(columns["x"]))  # NaN is a value, not a null
    assert stats.histogram == tuple(np.histogram(finite(columns["x"]), bins=HISTOGRAM_BINS)[0].tolist())


def test_integers_with_nulls(mixed) -> None:
    group, columns = mixed

    stats = by_name(group)["count"]

    assert_numbers(stats, columns["count"])
    assert stats.dtype == "int32"


def test_key_column(mixed) -> None:
    group, columns = mixed

    stats = by_name(group)["id"]

    assert_numbers(stats, columns["id"])
    assert stats.role == "key"
    assert stats.null_rate == 0


def test_derived_feature(mixed) -> None:
    group, columns = mixed
    doubled = [None if v is None else v * 2 for v in columns["x"]]

    stats = by_name(group)["x_twice"]

    assert stats.role == "derived"
    assert_numbers(stats, doubled)


def test_booleans(mixed) -> None:
    group, columns = mixed
    flags = pd.Series(non_null(columns["ok"]), dtype=bool)

    stats = by_name(group)["ok"]

    assert stats.count == len(flags)
    assert stats.null_rate == pytest.approx(columns["ok"].count(None) / ROWS)
    assert stats.mean == pytest.approx(flags.mean())
    assert stats.labels == ("false", "true")
    assert stats.histogram == (int((~flags).sum()), int(flags.sum()))


def test_text_top_values_exact_counts(mixed) -> None:
    group, columns = mixed
    counts = pd.Series(columns["carrier"]).value_counts()
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_VALUES]

    stats = by_name(group)["carrier"]

    assert stats.labels == tuple(value for value, _ in top)
    assert stats.histogram == tuple(int(n) for _, n in top)
    assert stats.count == counts.sum()
    assert stats.null_rate == pytest.approx(columns["carrier"].count(None) / ROWS)
    assert stats.min == min(counts.index)
    assert stats.max == max(counts.index)
    assert stats.mean is None


def test_timestamps(mixed) -> None:
    group, columns = mixed
    times = pd.Series(non_null(columns["seen_at"]))

    stats = by_name(group)["seen_at"]

    assert stats.role == "stored"
    assert stats.count == len(times)
    assert stats.null_rate == pytest.approx(columns["seen_at"].count(None) / ROWS)
    assert pd.Timestamp(stats.min) == times.min()
    assert pd.Timestamp(stats.max) == times.max()
    assert stats.mean is None
    assert sum(stats.histogram) == len(times)


def test_event_time_role(mixed) -> None:
    group, _ = mixed

    stats = by_name(group)["ts"]

    assert stats.role == "event time"
    assert stats.histogram == (ROWS,)  # one bin: every row has the same time


def test_vectors_describe_norms(mixed) -> None:
    group, columns = mixed
    norms = [None if v is None else float(np.linalg.norm(np.array(v, dtype=np.float32).astype(float))) for v in columns["embedding"]]

    stats = by_name(group)["embedding"]

    assert stats.dtype == "float32[2]"
    assert_numbers(stats, norms)


def test_equal_finite_values_with_nan_and_inf(fs: FeatureStore) -> None:
    group = fs.create_feature_group("flat")
    group.create_features_from_schema({"x": "float64"})
    group.ingest({"x": pa.array([2.5, 2.5, math.nan, math.inf, None, 2.5], pa.float64())})

    [stats] = group.profile().features

    assert stats.count == 5
    assert stats.min == stats.max == 2.5
    assert stats.histogram == (3,)


def test_values_with_many_digits(fs: FeatureStore) -> None:
    values = [-2.7680259123001147, 102.50898246685345, 5.0]
    group = fs.create_feature_group("digits")
    group.create_features_from_schema({"x": "float64"})
    group.ingest({"x": pa.array(values, pa.float64())})

    [stats] = group.profile().features

    assert stats.min == min(values)
    assert stats.max == max(values)
    assert stats.histogram == tuple(np.histogram(values, bins=HISTOGRAM_BINS)[0].tolist())


def test_all_null_feature(fs: FeatureStore) -> None:
    group = fs.create_feature_group("nulls")
    group.create_features_from_schema({"x": "float64", "s": "string"})
    group.ingest({"x": pa.array([None, None], pa.float64()), "s": pa.array([None, None], pa.string())})

    for stats in group.profile().features:
        assert stats.count == 0, stats.name
        assert stats.null_rate == 1.0, stats.name
        assert stats.min is None, stats.name
        assert stats.histogram == (), stats.name


def test_to_dict_is_strict_json(mixed) -> None:
    import json

    group, _ = mixed
    flat = group.profile()

    for stats in flat.features:
        json.dumps(stats.to_dict(), allow_nan=False)


# -- versions and sampling ----------------------------------------------------------------------


def test_note_and_version(mixed) -> None:
    group, _ = mixed

    result = group.profile()

    assert result.group == "mixed"
    assert result.version == group.version
    assert result.rows == ROWS
    assert result.sampled_rows is None
    assert result.note == f"all {ROWS} rows"
    assert list(result.to_pandas()["name"]) == [f.name for f in group.features]


def test_as_of_earlier_version(fs: FeatureStore) -> None:
    group = fs.create_feature_group("growing")
    group.create_features_from_schema({"x": "int64"})
    first = group.ingest({"x": [1, 2, 3]}).version
    group.ingest({"x": [100]})

    result = group.profile(as_of=first)

    assert result.version == first
    assert result.rows == 3
    assert result.features[0].max == 3


def test_sample_above_value_budget(fs: FeatureStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile, "PROFILE_VALUES", 1_000)
    monkeypatch.setattr(profile, "MIN_SAMPLE_ROWS", 50)
    rows = 2_000
    group = fs.create_feature_group("big", keys="id")
    group.create_features_from_schema({"id": "int64", "a": "float64", "b": "float64", "c": "string"})
    group.create_feature("a_plus_b", dtype="float64", derived_from="a + b")
    rng = np.random.default_rng(9)
    a = rng.normal(size=rows)
    group.ingest({"id": np.arange(rows), "a": a, "b": rng.normal(size=rows), "c": rng.choice(["p", "q"], rows)})
    sample = 1_000 // 5  # PROFILE_VALUES over 5 features, above MIN_SAMPLE_ROWS

    result = group.profile()
    stats = {f.name: f for f in result.features}

    assert result.rows == rows
    assert result.sampled_rows == sample
    assert result.note == f"a uniform sample of {sample} of {rows:,} rows"
    assert "uniform sample" in result._repr_html_()
    for name in ("id", "a", "b", "c", "a_plus_b"):
        assert stats[name].count == sample, name
        assert stats[name].null_rate == 0, name
    assert sum(stats["a"].histogram) == sample
    assert sum(stats["c"].histogram) == sample
    assert a.min() <= stats["a"].min <= stats["a"].max <= a.max()
    # The derived feature is computed on the same sampled rows.
    assert stats["a_plus_b"].mean == pytest.approx(stats["a"].mean + stats["b"].mean, rel=1e-9)


def test_sample_never_below_minimum(fs: FeatureStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile, "PROFILE_VALUES", 10)
    monkeypatch.setattr(profile, "MIN_SAMPLE_ROWS", 30)
    group = fs.create_feature_group("big")
    group.create_features_from_schema({"a": "int64", "b": "int64"})
    group.ingest({"a": list(range(100)), "b": list(range(100))})

    result = group.profile()

    assert result.sampled_rows == 30
    assert result.features[0].count == 30


def test_no_sample_at_budget(fs: FeatureStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile, "PROFILE_VALUES", 200)
    monkeypatch.setattr(profile, "MIN_SAMPLE_ROWS", 10)
    group = fs.create_feature_group("exact")
    group.create_features_from_schema({"a": "int64", "b": "int64"})
    group.ingest({"a": list(range(100)), "b": list(range(100))})

    result = group.profile()

    assert result.sampled_rows is None
    assert result.features[0].count == 100


# -- empty groups -------------------------------------------------------------------------------


def test_empty_group(fs: FeatureStore) -> None:
    group = fs.create_feature_group("empty", keys="id")
    group.create_features_from_schema({"id": "int64", "x": "float64", "s": "string", "ok": "bool", "v": "float32[3]"})

    result = group.profile()

    assert result.rows == 0
    assert result.sampled_rows is None
    assert result.note == "all 0 rows"
    assert [f.name for f in result.features] == ["id", "x", "s", "ok", "v"]
    for stats in result.features:
        assert stats.count == 0, stats.name
        assert stats.null_rate is None, stats.name
        assert stats.min is None, stats.name
        assert stats.max is None, stats.name
        assert stats.mean is None, stats.name
        assert sum(stats.histogram) == 0, stats.name


def test_group_without_features(fs: FeatureStore) -> None:
    group = fs.create_feature_group("bare")

    result = group.profile()

    assert result.features == ()
    assert result.rows == 0


def test_profile_of_text_with_nul(fs: FeatureStore) -> None:
    group = fs.create_feature_group("nul-text", keys="id")
    group.create_features_from_schema({"id": "int64", "label": "string"})
    group.ingest({"id": [1, 2, 3], "label": ["x\x00'y", "x\x00'y", "z"]})

    label = {f.name: f for f in group.profile().features}["label"]

    assert label.labels == ("x\x00'y", "z")
    assert label.histogram == (2, 1)
