"""Ingest from every accepted input, with timestamp, vector and inference rules."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raise_jupyter import FeatureGroup, FeatureStore, RaiseWarning

UTC = dt.timezone.utc


@pytest.fixture
def group(fs: FeatureStore) -> FeatureGroup:
    group = fs.create_feature_group("events", keys="user_id", event_time="ts")
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "clicks": "int32", "name": "string"})
    return group


def _rows(group: FeatureGroup) -> list[tuple[object, ...]]:
    table = group.to_arrow(["user_id", "ts", "clicks", "name"]).sort_by("user_id")
    return list(zip(*(table.column(c).to_pylist() for c in table.column_names)))


EXPECTED = [
    (1, dt.datetime(2024, 1, 1, tzinfo=UTC), 3, "a"),
    (2, dt.datetime(2024, 1, 2, tzinfo=UTC), None, "b"),
]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [1, 2],
            "ts": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "clicks": [3, None],
            "name": ["a", "b"],
        }
    )


def test_ingest_pandas(group: FeatureGroup) -> None:
    result = group.ingest(_frame())

    assert result.rows == 2
    assert result.version == group.version
    assert _rows(group) == EXPECTED


def test_ingest_pandas_named_index(group: FeatureGroup) -> None:
    group.ingest(_frame().set_index("user_id"))

    assert _rows(group) == EXPECTED


def test_ingest_polars(group: FeatureGroup) -> None:
    pl = pytest.importorskip("polars")

    group.ingest(pl.from_pandas(_frame()))

    assert _rows(group) == EXPECTED


def test_ingest_arrow_reader(group: FeatureGroup) -> None:
    table = pa.Table.from_pandas(_frame(), preserve_index=False)

    group.ingest(pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))

    assert _rows(group) == EXPECTED


def test_ingest_list_of_dicts(group: FeatureGroup) -> None:
    group.ingest(
        [
            {"user_id": 1, "ts": dt.datetime(2024, 1, 1), "clicks": 3, "name": "a"},
            {"user_id": 2, "ts": dt.date(2024, 1, 2), "name": "b"},
        ]
    )

    assert _rows(group) == EXPECTED


def test_ingest_parquet_glob(group: FeatureGroup, tmp_path: Path) -> None:
    table = pa.Table.from_pandas(_frame(), preserve_index=False)
    pq.write_table(table.slice(0, 1), tmp_path / "part-1.parquet")
    pq.write_table(table.slice(1, 1), tmp_path / "part-2.parquet")

    result = group.ingest(str(tmp_path / "part-*.parquet"))

    assert result.rows == 2
    assert _rows(group) == EXPECTED


def test_ingest_csv(group: FeatureGroup, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id,ts,clicks,name\n1,2024-01-01T00:00:00Z,3,a\n2,2024-01-02 00:00:00,,b\n")

    group.ingest(path)

    assert _rows(group) == EXPECTED


def test_ingest_json_lines(group: FeatureGroup, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    rows = [{"user_id": 1, "ts": "2024-01-01T00:00:00Z", "clicks": 3, "name": "a"}, {"user_id": 2, "ts": "2024-01-02T00:00:00Z", "name": "b"}]
    path.write_text("\n".join(json.dumps(r) for r in rows))

    group.ingest(path)

    assert _rows(group) == EXPECTED


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2024, 1, 1, 12),
        dt.datetime(2024, 1, 1, 12, tzinfo=UTC),
        dt.datetime(2024, 1, 1, 13, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        dt.datetime(2024, 1, 1, 4, tzinfo=ZoneInfo("US/Pacific")),
        "2024-01-01T12:00:00Z",
        "2024-01-01T07:00:00-05:00",
        "2024-01-01 12:00:00",
    ],
    ids=["naive", "utc", "plus-one", "us-pacific", "iso-z", "iso-offset", "iso-naive"],
)
def test_ingest_timestamps_to_utc(group: FeatureGroup, value: object) -> None:
    group.ingest({"user_id": [1], "ts": [value]})

    assert group.to_arrow("ts").column("ts").to_pylist() == [dt.datetime(2024, 1, 1, 12, tzinfo=UTC)]


def test_ingest_date_is_midnight_utc(group: FeatureGroup) -> None:
    group.ingest({"user_id": [1], "ts": [dt.date(2024, 5, 6)]})

    assert group.to_arrow("ts").column("ts").to_pylist() == [dt.datetime(2024, 5, 6, tzinfo=UTC)]


def test_ingest_nanoseconds_rejected(group: FeatureGroup) -> None:
    from raise_jupyter import IngestError

    frame = pd.DataFrame({"user_id": [1], "ts": [pd.Timestamp("2024-01-01 00:00:00.000000001")]})
    with pytest.raises(IngestError, match="cannot be stored as timestamp without loss"):
        group.ingest(frame)


def test_ingest_absent_feature_is_null(group: FeatureGroup) -> None:
    group.ingest({"user_id": [5], "ts": [dt.datetime(2024, 1, 1)]})

    assert _rows(group) == [(5, dt.datetime(2024, 1, 1, tzinfo=UTC), None, None)]


def test_ingest_empty_writes_nothing(group: FeatureGroup) -> None:
    before = group.version

    result = group.ingest([])

    assert result.rows == 0
    assert group.version == before


def test_ingest_vectors_and_lists(fs: FeatureStore) -> None:
    group = fs.create_feature_group("items")
    group.create_features_from_schema({"item": "string", "emb": "float32[3]", "labels": "list<string>", "ids": "int64[2]"})
    import numpy as np

    frame = pd.DataFrame(
        {
            "item": ["a", "b"],
            "emb": [np.array([1.0, 2.0, 3.0]), None],
            "labels": [["x", "y"], []],
            "ids": [[1, 2], [3, 4]],
        }
    )
    group.ingest(frame)
    table = group.to_arrow()

    assert table.schema.field("emb").type == pa.list_(pa.float32(), 3)
    assert table.schema.field("ids").type == pa.list_(pa.int64(), 2)
    assert table.column("emb").to_pylist() == [[1.0, 2.0, 3.0], None]
    assert table.column("labels").to_pylist() == [["x", "y"], []]


def test_ingest_infers_features(fs: FeatureStore) -> None:
    group = fs.create_feature_group("inferred", keys="user_id", event_time="ts")

    with pytest.warns(RaiseWarning, match=r"Inferred 4 features of 'inferred' from the data: user_id int64, ts timestamp"):
        result = group.ingest({"user_id": [1], "ts": ["2024-01-01T00:00:00Z"], "score": [0.5], "tag": ["x"]})

    assert result.inferred_features == ["user_id", "ts", "score", "tag"]
    assert group.schema == {"user_id": "int64", "ts": "timestamp", "score": "float64", "tag": "string"}


def test_ingest_infers_only_keys_when_features_exist(fs: FeatureStore) -> None:
    group = fs.create_feature_group("partial", keys="user_id")
    group.create_feature("score", dtype="float64")

    with pytest.warns(RaiseWarning, match="Inferred 1 features"):
        group.ingest({"user_id": ["u1"], "score": [1.0]})

    assert group.schema == {"user_id": "string", "score": "float64"}


def test_ingest_float_key_rejected(fs: FeatureStore) -> None:
    from raise_jupyter import DefinitionError

    group = fs.create_feature_group("floaty", keys="x")
    with pytest.raises(DefinitionError, match="'x' .*cannot be a key"):
        group.ingest({"x": [1.5]})
    assert group.features == []


def test_ingest_twice_appends(group: FeatureGroup) -> None:
    first = group.ingest(_frame())
    second = group.ingest(_frame())

    assert second.version > first.version
    assert group.count() == 4
    assert group.count(as_of=first.version) == 2


def test_ingest_failed_write_keeps_no_inferred(fs: FeatureStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Delta append is replaced by one that fails, standing in for a full disk."""
    from raise_jupyter.engine import offline

    group = fs.create_feature_group("fragile", keys="user_id")

    def failing_append(*args: object, **kwargs: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(offline, "append", failing_append)
    with pytest.raises(OSError, match="disk full"), pytest.warns(RaiseWarning):
        group.ingest({"user_id": [1], "score": [0.5]})

    assert group.features == []
    assert group.count() == 0


def test_ingest_decimals_and_categoricals(fs: FeatureStore) -> None:
    import decimal

    group = fs.create_feature_group("typed")
    group.create_features_from_schema({"id": "int64", "price": "float64", "color": "string", "half": "float32"})
    import numpy as np

    frame = pd.DataFrame({"id": [1, 2], "color": pd.Categorical(["red", "blue"])})
    table = pa.table(
        {
            "id": pa.array([decimal.Decimal("3"), decimal.Decimal("4")]),
            "price": pa.array([decimal.Decimal("0.1"), None]),
            "half": pa.array(np.array([0.5, 1.5], dtype=np.float16)),
        }
    )
    group.ingest(frame)
    group.ingest(table)

    stored = group.to_arrow().sort_by("id").to_pydict()
    assert stored["id"] == [1, 2, 3, 4]
    assert stored["color"] == ["red", "blue", None, None]
    assert stored["price"] == [None, None, 0.1, None]
    assert stored["half"] == [None, None, 0.5, 1.5]


def test_ingest_sliced_list_checks_visible_values(fs: FeatureStore) -> None:
    group = fs.create_feature_group("sliced")
    group.create_features_from_schema({"id": "int64", "counts": "list<int32>"})
    table = pa.table({"id": [1, 2, 3], "counts": pa.array([[1.0], [2.0], [2.5]])}).slice(0, 2)

    group.ingest(table)

    assert group.to_arrow("counts").column("counts").to_pylist() == [[1], [2]]


def test_ingest_zero_rows_still_checked(group: FeatureGroup) -> None:
    from raise_jupyter import IngestError

    with pytest.raises(IngestError, match="'no_such_column' is not a feature"):
        group.ingest(pa.table({"no_such_column": pa.array([], pa.int64())}))


def test_ingest_version_from_numpy(group: FeatureGroup) -> None:
    group.ingest(_frame())
    version = group.history()["version"].iloc[0]

    assert group.count(as_of=version) == 2


def test_ingest_date_strings_as_timestamps(group: FeatureGroup) -> None:
    group.ingest({"user_id": [1, 2], "ts": ["2024-01-01", "2024-01-02T10:00:00+02:00"]})

    assert group.to_arrow("ts").sort_by("ts").column("ts").to_pylist() == [
        dt.datetime(2024, 1, 1, tzinfo=UTC),
        dt.datetime(2024, 1, 2, 8, tzinfo=UTC),
    ]


def test_ingest_decimal_to_float32(fs: FeatureStore) -> None:
    import decimal

    from raise_jupyter import IngestError

    group = fs.create_feature_group("prices")
    group.create_features_from_schema({"id": "int64", "price": "float32"})
    group.ingest({"id": [1], "price": pa.array([decimal.Decimal("0.1")])})

    with pytest.raises(IngestError, match=r"cannot be stored as float32 without loss: row 0 \(0-based\) holds Decimal\('16777217'\)"):
        group.ingest({"id": [2], "price": pa.array([decimal.Decimal("16777217")])})
    assert group.count() == 1


def test_upsert_with_repeated_keys_names_them(fs: FeatureStore) -> None:
    from raise_jupyter import IngestError

    group = fs.create_feature_group("plane-hours", keys="plane", event_time="hour")
    group.create_features_from_schema({"plane": "string", "hour": "timestamp", "delay": "float64"})
    hours = pd.to_datetime(["2013-01-01 05:00", "2013-01-01 05:00", "2013-01-01 06:00"], utc=True)

    with pytest.raises(IngestError, match=r"more than one row for 1 value of plane, hour, such as \{'plane': 'N1'.*drop_duplicates"):
        group.ingest({"plane": ["N1", "N1", "N1"], "hour": hours, "delay": [1.0, 2.0, 3.0]}, mode="upsert")

    assert group.count() == 0
