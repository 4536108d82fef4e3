"""Point-in-time training data: FeatureStore.get_training_data against hand-written tables."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from raise_jupyter import DefinitionError, FeatureStore, training
from raise_jupyter.engine.duck import connection

UTC = dt.timezone.utc


def at(hour: int, minute: int = 0, second: int = 0, microsecond: int = 0) -> dt.datetime:
    """Return a naive time on 2024-01-01, which the store and spines take as UTC."""
    return dt.datetime(2024, 1, 1, hour, minute, second, microsecond)


def values(result: training.TrainingData, column: str) -> list[object]:
    return result.to_arrow().column(column).to_pylist()


@pytest.fixture
def signals(fs: FeatureStore):
    group = fs.create_feature_group("user-signals", keys="user_id", event_time="ts")
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "clicks": "int64", "impressions": "int64"})
    group.create_feature("ctr", dtype="float64", derived_from="clicks / NULLIF(impressions, 0)")
    return group


@pytest.fixture
def users(fs: FeatureStore):
    group = fs.create_feature_group("users", keys="user_id")
    group.create_features_from_schema({"user_id": "int64", "country": "string"})
    return group


def test_boundary_inclusive(fs: FeatureStore, signals) -> None:
    signals.ingest({"user_id": [1, 1], "ts": [at(10), at(12)], "clicks": [1, 2], "impressions": [10, 10]})
    spine = {
        "user_id": [1, 1, 1, 1, 1],
        "ts": [at(9, 59, 59, 999_999), at(10), at(11, 59, 59, 999_999), at(12), at(13)],
    }

    result = fs.get_training_data(spine, ["user-signals.clicks"])

    assert values(result, "clicks") == [None, 1, 1, 2, 2]


def test_spine_before_first_row(fs: FeatureStore, signals) -> None:
    signals.ingest({"user_id": [1], "ts": [at(10)], "clicks": [5], "impressions": [10]})

    result = fs.get_training_data({"user_id": [1], "ts": [at(8)]}, ["user-signals.clicks", "user-signals.ctr"])

    assert values(result, "clicks") == [None]
    assert values(result, "ctr") == [None]


def test_unknown_entity(fs: FeatureStore, signals) -> None:
    signals.ingest({"user_id": [1], "ts": [at(10)], "clicks": [5], "impressions": [10]})

    result = fs.get_training_data({"user_id": [99, 1], "ts": [at(11), at(11)]}, ["user-signals.clicks"])

    assert values(result, "user_id") == [99, 1]
    assert values(result, "clicks") == [None, 5]


def test_equal_times_one_batch(fs: FeatureStore, signals) -> None:
    # The last row wins, which is neither the largest nor the smallest value.
    signals.ingest({"user_id": [1, 1, 1], "ts": [at(10)] * 3, "clicks": [7, 3, 5], "impressions": [10] * 3})

    result = fs.get_training_data({"user_id": [1, 1], "ts": [at(10), at(11)]}, ["user-signals.clicks"])

    assert values(result, "clicks") == [5, 5]


def test_equal_times_two_batches(fs: FeatureStore, signals) -> None:
    signals.ingest({"user_id": [1, 1], "ts": [at(10), at(11)], "clicks": [9, 6], "impressions": [10, 10]})
    # The second batch replaces 10:00 only. Its older 09:00 row must not hide the 10:00 and 11:00 rows.
    signals.ingest({"user_id": [1, 1], "ts": [at(10), at(9)], "clicks": [4, 8], "impressions": [10, 10]})
    spine = {"user_id": [1, 1, 1, 1], "ts": [at(9, 30), at(10), at(10, 30), at(11)]}

    result = fs.get_training_data(spine, ["user-signals.clicks"])

    assert values(result, "clicks") == [8, 4, 4, 6]


def test_equal_times_after_compact(fs: FeatureStore, signals) -> None:
    signals.ingest({"user_id": [1, 1], "ts": [at(10), at(10)], "clicks": [9, 2], "impressions": [10, 10]})
    signals.ingest({"user_id": [1], "ts": [at(10)], "clicks": [4], "impressions": [10]})
    signals.ingest({"user_id": [1], "ts": [at(10)], "clicks": [3], "impressions": [10]})
    signals.compact(retention=dt.timedelta(0))

    result = fs.get_training_data({"user_id": [1], "ts": [at(10)]}, ["user-signals.clicks"])

    assert values(result, "clicks") == [3]


def test_ttl_edges(fs: FeatureStore) -> None:
    group = fs.create_feature_group("sessions", keys="user_id", event_time="ts", ttl=dt.timedelta(hours=1))
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "pages": "int64"})
    group.create_feature("pages_x2", dtype="int64", derived_from="pages * 2")
    group.ingest({"user_id": [1, 2], "ts": [at(10), at(8)], "pages": [3, 4]})
    spine = {
        "user_id": [1, 1, 1, 1, 2],
        "ts": [at(10), at(10, 59, 59, 999_999), at(11), at(11, 0, 0, 1), at(12)],
    }

    result = fs.get_training_data(spine, ["sessions.pages", "sessions.pages_x2"])

    assert values(result, "pages") == [3, 3, 3, None, None]
    assert values(result, "pages_x2") == [6, 6, 6, None, None]


def test_ttl_ignores_older_rows(fs: FeatureStore) -> None:
    # The latest row is outside the ttl, so an older row is outside too and must not be used.
    group = fs.create_feature_group("sessions", keys="user_id", event_time="ts", ttl=dt.timedelta(minutes=30))
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "pages": "int64"})
    group.ingest({"user_id": [1, 1], "ts": [at(8), at(10)], "pages": [1, 2]})

    result = fs.get_training_data({"user_id": [1, 1], "ts": [at(10, 30), at(10, 31)]}, ["sessions.pages"])

    assert values(result, "pages") == [2, None]


def test_duplicate_spine_rows(fs: FeatureStore, signals) -> None:
    signals.ingest({"user_id": [1, 2], "ts": [at(10), at(10)], "clicks": [1, 2], "impressions": [10, 10]})
    spine = {"user_id": [1, 1, 2, 1], "ts": [at(11)] * 4, "label": [10, 11, 12, 13]}

    result = fs.get_training_data(spine, ["user-signals.clicks"])

    assert len(result) == 4
    assert values(result, "label") == [10, 11, 12, 13]
    assert values(result, "clicks") == [1, 1, 2, 1]


def test_unsorted_spine_order(fs: FeatureStore, signals) -> None:
    signals.ingest(
        {
            "user_id": [1, 1, 2, 2],
            "ts": [at(10), at(12), at(10), at(12)],
            "clicks": [1, 2, 3, 4],
            "impressions": [10] * 4,
        }
    )
    spine = {
        "user_id": [2, 1, 1, 2, 1, 2],
        "ts": [at(12), at(9), at(12), at(10), at(10, 30), at(9)],
        "label": ["a", "b", "c", "d", "e", "f"],
    }

    result = fs.get_training_data(spine, ["user-signals.clicks"])

    assert values(result, "label") == ["a", "b", "c", "d", "e", "f"]
    assert values(result, "user_id") == [2, 1, 1, 2, 1, 2]
    assert values(result, "ts") == [
        dt.datetime(2024, 1, 1, 12, tzinfo=UTC),
        dt.datetime(2024, 1, 1, 9, tzinfo=UTC),
        dt.datetime(2024, 1, 1, 12, tzinfo=UTC),
        dt.datetime(2024, 1, 1, 10, tzinfo=UTC),
        dt.datetime(2024, 1, 1, 10, 30, tzinfo=UTC),
        dt.datetime(2024, 1, 1, 9, tzinfo=UTC),
    ]
    assert values(result, "clicks") == [4, None, 2, 3, 1, None]


@pytest.fixture
def routes(fs: FeatureStore):
    group = fs.create_feature_group("routes", keys=["origin_id", "dest_id"], event_time="ts")
    group.create_features_from_schema({"origin_id": "int64", "dest_id": "int64", "ts": "timestamp", "delay": "int64"})
    return group


def test_composite_keys_no_collision(fs: FeatureStore, routes) -> None:
    routes.ingest({"origin_id": [1, 12], "dest_id": [23, 3], "ts": [at(10), at(10)], "delay": [100, 200]})
    spine = {"origin_id": [1, 12, 1, 12, 123], "dest_id": [23, 3, 3, 23, None], "ts": [at(11)] * 5}

    result = fs.get_training_data(spine, ["routes.delay"])

    assert values(result, "delay") == [100, 200, None, None, None]


def test_composite_string_keys_no_collision(fs: FeatureStore) -> None:
    group = fs.create_feature_group("pairs", keys=["left", "right"], event_time="ts")
    group.create_features_from_schema({"left": "string", "right": "string", "ts": "timestamp", "score": "int64"})
    group.ingest({"left": ["a", "ab"], "right": ["bc", "c"], "ts": [at(10), at(10)], "score": [1, 2]})
    spine = {"left": ["a", "ab", "abc", "a"], "right": ["bc", "c", "", "b"], "ts": [at(11)] * 4}

    result = fs.get_training_data(spine, ["pairs.score"])

    assert values(result, "score") == [1, 2, None, None]


def test_zero_and_empty_string_keys(fs: FeatureStore) -> None:
    group = fs.create_feature_group("codes", keys=["id", "code"], event_time="ts")
    group.create_features_from_schema({"id": "int64", "code": "string", "ts": "timestamp", "value": "int64"})
    group.ingest({"id": [0, 0, 1], "code": ["", "x", ""], "ts": [at(10)] * 3, "value": [5, 6, 7]})
    spine = {
        "id": [0, 0, 1, 0, None, 2],
        "code": ["", "x", "", None, "", ""],
        "ts": [at(11)] * 6,
    }

    result = fs.get_training_data(spine, ["codes.value"])

    assert values(result, "value") == [5, 6, 7, None, None, None]


def test_int32_spine_key(fs: FeatureStore, signals) -> None:
    signals.ingest({"user_id": [1, 2], "ts": [at(10), at(10)], "clicks": [1, 2], "impressions": [10, 10]})
    spine = pa.table({"user_id": pa.array([2, 1, 3], pa.int32()), "ts": [at(11)] * 3})

    result = fs.get_training_data(spine, ["user-signals.clicks"])

    assert values(result, "clicks") == [2, 1, None]
    assert result.to_arrow().schema.field("user_id").type == pa.int32()


def test_incompatible_key_type(fs: FeatureStore, signals) -> None:
    signals.ingest({"user_id": [1], "ts": [at(10)], "clicks": [1], "impressions": [10]})
    spine = {"user_id": ["u1"], "ts": [at(11)]}

    with pytest.raises(
        DefinitionError,
        match=r"Spine column 'user_id' \(string\) cannot be compared with key 'user_id' \(int64\) of group 'user-signals'",
    ):
        fs.get_training_data(spine, ["user-signals.clicks"])


@pytest.mark.parametrize(
    "spine_time",
    [
        pytest.param(dt.datetime(2024, 1, 2), id="naive"),
        pytest.param(dt.datetime(2024, 1, 2, tzinfo=UTC), id="utc"),
        pytest.param(dt.datetime(2024, 1, 2, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))), id="plus-one"),
        pytest.param(pd.Timestamp("2024-01-01 16:00", tz="US/Pacific"), id="us-pacific"),
    ],
)
def test_spine_time_zones(fs: FeatureStore, signals, spine_time) -> None:
    # Rows one hour either side of the instant catch any offset applied the wrong way.
    signals.ingest(
        {
            "user_id": [1, 1, 1],
            "ts": [dt.datetime(2024, 1, 1, 23), dt.datetime(2024, 1, 2, 0), dt.datetime(2024, 1, 2, 1)],
            "clicks": [1, 2, 3],
            "impressions": [10] * 3,
        }
    )
    spine = pd.DataFrame({"user_id": [1], "ts": pd.Series([spine_time])})

    result = fs.get_training_data(spine, ["user-signals.clicks"])

    assert values(result, "clicks") == [2]
    assert values(result, "ts") == [dt.datetime(2024, 1, 2, tzinfo=UTC)]
    assert result.to_arrow().schema.field("ts").type == pa.timestamp("us", tz="UTC")


def test_spine_time_date(fs: FeatureStore, signals) -> None:
    signals.ingest(
        {
            "user_id": [1, 1, 1],
            "ts": [dt.datetime(2024, 1, 1, 23), dt.datetime(2024, 1, 2, 0), dt.datetime(2024, 1, 2, 1)],
            "clicks": [1, 2, 3],
            "impressions": [10] * 3,
        }
    )

    result = fs.get_training_data({"user_id": [1], "day": [dt.date(2024, 1, 2)]}, ["user-signals.clicks"])

    assert values(result, "clicks") == [2]
    assert values(result, "day") == [dt.datetime(2024, 1, 2, tzinfo=UTC)]


@pytest.mark.parametrize(
    "spine_time",
    [
        pytest.param(dt.datetime(2024, 1, 2), id="naive"),
        pytest.param(dt.datetime(2024, 1, 2, tzinfo=UTC), id="utc"),
        pytest.param(dt.date(2024, 1, 2), id="date"),
        pytest.param(
            dt.datetime(2024, 1, 2, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            id="plus-one",
        ),
        pytest.param(
            pd.Timestamp("2024-01-01 16:00", tz="US/Pacific"),
            id="us-pacific",
        ),
        pytest.param(
            "2024-01-02T00:00:00Z",
            id="iso-string",
        ),
    ],
)
def test_pandas_output_time_utc(fs: FeatureStore, signals, spine_time) -> None:
    signals.ingest({"user_id": [1], "ts": [dt.datetime(2024, 1, 2)], "clicks": [2], "impressions": [10]})
    spine = pd.DataFrame({"user_id": [1], "ts": pd.Series([spine_time])})

    frame = fs.get_training_data(spine, ["user-signals.clicks"], timestamp_column="ts").to_pandas()

    assert isinstance(frame["ts"].dtype, pd.DatetimeTZDtype)
    assert str(frame["ts"].dtype.tz) == "UTC"
    assert frame["ts"].tolist() == [pd.Timestamp("2024-01-02", tz="UTC")]


def test_timestamp_feature_is_utc(fs: FeatureStore) -> None:
    group = fs.create_feature_group("accounts", keys="user_id", event_time="ts")
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "signup": "timestamp"})
    group.ingest({"user_id": [1], "ts": [at(10)], "signup": [dt.datetime(2023, 5, 1)]})

    result = fs.get_training_data({"user_id": [1], "ts": [at(11)]}, ["accounts.signup"])

    assert values(result, "signup") == [dt.datetime(2023, 5, 1, tzinfo=UTC)]
    assert result.to_arrow().schema.field("signup").type == pa.timestamp("us", tz="UTC")


@pytest.fixture
def items(fs: FeatureStore):
    group = fs.create_feature_group("item-signals", keys="item_id", event_time="ts")
    group.create_features_from_schema({"item_id": "int64", "ts": "timestamp", "clicks": "int64"})
    group.ingest({"item_id": [7, 8], "ts": [at(10), at(10)], "clicks": [70, 80]})
    return group


def test_feature_name_collision(fs: FeatureStore, signals, items) -> None:
    signals.ingest({"user_id": [1], "ts": [at(10)], "clicks": [1], "impressions": [10]})
    spine = {"user_id": [1], "item_id": [7], "ts": [at(11)]}

    with pytest.raises(DefinitionError, match=r"Feature 'clicks' comes from both 'user-signals' and 'item-signals'; pass full_names=True"):
        fs.get_training_data(spine, ["user-signals.clicks", "item-signals.clicks"])


def test_full_names(fs: FeatureStore, signals, items) -> None:
    signals.ingest({"user_id": [1, 2], "ts": [at(10), at(10)], "clicks": [1, 2], "impressions": [10, 10]})
    spine = {"user_id": [1, 2, 1], "item_id": [8, 7, 9], "ts": [at(11), at(11), at(9)]}

    result = fs.get_training_data(spine, ["user-signals.clicks", "item-signals.clicks"], full_names=True)

    assert result.columns == ["user_id", "item_id", "ts", "user-signals__clicks", "item-signals__clicks"]
    assert values(result, "user-signals__clicks") == [1, 2, None]
    assert values(result, "item-signals__clicks") == [80, 70, None]


def test_snapshot_group(fs: FeatureStore, signals, users) -> None:
    users.ingest({"user_id": [1, 2, 3, 3], "country": ["fr", "jp", "a", "b"]})
    users.ingest({"user_id": [1], "country": ["de"]})
    signals.ingest({"user_id": [1, 2], "ts": [at(10), at(10)], "clicks": [1, 2], "impressions": [10, 10]})
    # Snapshots ignore the spine time, so even the 09:00 row gets the latest country.
    spine = {"user_id": [1, 2, 3, 4, 1], "ts": [at(11), at(11), at(11), at(11), at(9)]}

    result = fs.get_training_data(spine, ["users.country", "user-signals.clicks"])

    assert values(result, "country") == ["de", "jp", "b", None, "de"]
    assert values(result, "clicks") == [1, 2, None, None, None]


def test_snapshot_spine_without_time(fs: FeatureStore, users) -> None:
    users.ingest({"user_id": [1, 2], "country": ["fr", "jp"]})
    users.ingest({"user_id": [2], "country": ["kr"]})

    result = fs.get_training_data({"user_id": [2, 5, 1]}, ["users.country"])

    assert result.columns == ["user_id", "country"]
    assert values(result, "country") == ["kr", None, "fr"]
    assert result.timestamp_column is None


def test_key_map(fs: FeatureStore, signals) -> None:
    signals.ingest({"user_id": [1, 2], "ts": [at(10), at(10)], "clicks": [1, 2], "impressions": [10, 10]})
    spine = {"uid": [2, 1, 3], "ts": [at(11)] * 3}

    result = fs.get_training_data(spine, ["user-signals.clicks"], key_map={"uid": "user_id"})

    assert result.columns == ["uid", "ts", "clicks"]
    assert values(result, "clicks") == [2, 1, None]


def test_derived_on_joined_rows(fs: FeatureStore, signals) -> None:
    signals.create_feature("ctr_pct", dtype="float64", derived_from="ctr * 100")
    signals.ingest(
        {"user_id": [1, 1, 2], "ts": [at(10), at(12), at(10)], "clicks": [1, 3, 2], "impressions": [4, 4, 0]}
    )
    spine = {"user_id": [1, 1, 1, 2], "ts": [at(9), at(11), at(12), at(11)]}

    result = fs.get_training_data(spine, ["user-signals.ctr_pct", "user-signals.ctr"])

    assert result.columns == ["user_id", "ts", "ctr_pct", "ctr"]
    assert values(result, "ctr") == [None, 0.25, 0.75, None]
    assert values(result, "ctr_pct") == [None, 25.0, 75.0, None]


def test_derived_only_over_derived(fs: FeatureStore, signals) -> None:
    # Only the second-level derived feature is requested; its inputs are not output.
    signals.create_feature("ctr_pct", dtype="float64", derived_from="ctr * 100")
    signals.ingest({"user_id": [1], "ts": [at(10)], "clicks": [1], "impressions": [8]})

    result = fs.get_training_data({"user_id": [1], "ts": [at(10)]}, ["user-signals.ctr_pct"])

    assert result.columns == ["user_id", "ts", "ctr_pct"]
    assert values(result, "ctr_pct") == [12.5]


def test_derived_no_match_is_null(fs: FeatureStore) -> None:
    group = fs.create_feature_group("sessions", keys="user_id", event_time="ts", ttl=dt.timedelta(hours=1))
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "pages": "int64"})
    group.create_feature("pages_or_zero", dtype="int64", derived_from="coalesce(pages, 0)")
    group.ingest({"user_id": [1, 2], "ts": [at(10), at(10)], "pages": [3, None]})
    # A matched row with a null stored value gives 0. No match (unknown user, before the first
    # row, outside the ttl) gives null.
    spine = {"user_id": [1, 2, 3, 1, 1], "ts": [at(10), at(10), at(10), at(9), at(12)]}

    result = fs.get_training_data(spine, ["sessions.pages_or_zero"])

    assert values(result, "pages_or_zero") == [3, 0, None, None, None]


def test_group_star(fs: FeatureStore, signals) -> None:
    signals.ingest({"user_id": [1, 1], "ts": [at(10), at(12)], "clicks": [1, 3], "impressions": [4, 4]})

    result = fs.get_training_data({"user_id": [1, 1], "ts": [at(11), at(8)]}, ["user-signals.*"])

    assert result.columns == ["user_id", "ts", "clicks", "impressions", "ctr"]
    assert values(result, "clicks") == [1, None]
    assert values(result, "impressions") == [4, None]
    assert values(result, "ctr") == [0.25, None]


def test_rebuild_from_versions(fs: FeatureStore, signals, users) -> None:
    first = signals.ingest({"user_id": [1, 2], "ts": [at(10), at(10)], "clicks": [1, 2], "impressions": [10, 10]})
    users_first = users.ingest({"user_id": [1], "country": ["fr"]})
    spine = {"user_id": [1, 2], "ts": [at(11), at(13)]}
    features = ["user-signals.clicks", "users.country"]
    original = fs.get_training_data(spine, features)

    # Later data that changes every value: a re-ingested 10:00 row, a newer row, a new country.
    signals.ingest({"user_id": [1, 2], "ts": [at(10), at(12)], "clicks": [100, 200], "impressions": [10, 10]})
    users.ingest({"user_id": [1], "country": ["de"]})
    latest = fs.get_training_data(spine, features)
    rebuilt = fs.get_training_data(spine, features, as_of=original.versions)

    assert original.versions == {"user-signals": first.version, "users": users_first.version}
    assert values(original, "clicks") == [1, 2]
    assert values(original, "country") == ["fr", None]
    assert values(latest, "clicks") == [100, 200]
    assert values(latest, "country") == ["de", None]
    assert rebuilt.to_arrow().equals(original.to_arrow())
    assert rebuilt.versions == original.versions


@pytest.mark.parametrize("kind", ["pandas", "polars", "arrow"])
def test_spine_kinds(fs: FeatureStore, signals, kind: str) -> None:
    signals.ingest({"user_id": [1, 2], "ts": [at(10), at(10)], "clicks": [1, 2], "impressions": [10, 10]})
    columns = {"user_id": [2, 1, 1], "ts": [at(11), at(9), at(10)], "label": [True, False, True]}
    if kind == "pandas":
        spine = pd.DataFrame(columns)
    elif kind == "polars":
        pl = pytest.importorskip("polars")
        spine = pl.DataFrame(columns)
    else:
        spine = pa.table(columns)

    result = fs.get_training_data(spine, ["user-signals.clicks"])

    assert result.columns == ["user_id", "ts", "label", "clicks"]
    assert values(result, "label") == [True, False, True]
    assert values(result, "clicks") == [2, None, 1]


def explain(store: FeatureStore, spine: pa.Table, sql: str, spine_sort: str) -> str:
    """Return DuckDB's physical plan of a training-data query, with the spine set up as ``_run`` does."""
    cursor = connection(store.root).cursor()
    try:
        cursor.register("spine_input", spine)
        cursor.execute(f"CREATE TEMP TABLE spine AS SELECT *{spine_sort} FROM spine_input")
        rows = cursor.execute(f"EXPLAIN {sql}").fetchall()
    finally:
        cursor.close()
    return "\n".join(str(cell) for row in rows for cell in row)


def test_plan_uses_asof_join(fs: FeatureStore, signals, users, monkeypatch: pytest.MonkeyPatch) -> None:
    signals.ingest({"user_id": [1, 2], "ts": [at(10), at(10)], "clicks": [1, 2], "impressions": [10, 10]})
    users.ingest({"user_id": [1], "country": ["fr"]})
    plans: list[str] = []
    run = training._run

    def explain_then_run(store: FeatureStore, spine: pa.Table, sql: str, spine_sort: str) -> pa.Table:
        plans.append(explain(store, spine, sql, spine_sort))
        return run(store, spine, sql, spine_sort)

    monkeypatch.setattr(training, "_run", explain_then_run)
    rows = 10_000
    spine = pd.DataFrame(
        {
            "user_id": [i % 100 for i in range(rows)],
            "ts": [at(0) + dt.timedelta(seconds=i * 7) for i in range(rows)],
        }
    )

    result = fs.get_training_data(spine, ["user-signals.clicks", "users.country"])

    assert len(result) == rows
    assert len(plans) == 1
    assert "ASOF_JOIN" in plans[0]
    assert "NESTED_LOOP" not in plans[0]
    assert "PIECEWISE_MERGE" not in plans[0]


@pytest.mark.parametrize("rows", [1, 100])
def test_null_spine_time_never_matches(fs: FeatureStore, signals, rows: int) -> None:
    """DuckDB's ASOF join matched NULL spine times once a spine had 64 rows or more."""
    signals.ingest({"user_id": [1], "ts": [at(10)], "clicks": [5], "impressions": [10]})
    spine = pa.table({"user_id": pa.array([1] * rows, pa.int64()), "ts": pa.array([None] * rows, pa.timestamp("us"))})

    result = fs.get_training_data(spine, ["user-signals.clicks", "user-signals.ctr"])

    assert values(result, "clicks") == [None] * rows
    assert values(result, "ctr") == [None] * rows


def test_rebuild_refused_after_definition_change(fs: FeatureStore, signals) -> None:
    from raise_jupyter import ConflictError

    signals.ingest({"user_id": [1], "ts": [at(10)], "clicks": [5], "impressions": [10]})
    spine = {"user_id": [1], "ts": [at(11)]}
    first = fs.get_training_data(spine, ["user-signals.ctr"])
    signals.update_feature("ctr", derived_from="clicks * 3 / NULLIF(impressions, 0)")

    with pytest.raises(ConflictError, match=r"definitions of feature groups \['user-signals'\] changed"):
        fs.get_training_data(spine, ["user-signals.ctr"], as_of=first.versions)
    assert values(fs.get_training_data(spine, ["user-signals.ctr"], as_of=dict(first.versions)), "ctr") == [1.5]
