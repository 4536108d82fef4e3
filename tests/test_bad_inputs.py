"""Each bad input gets an error that names the value and the fix, and changes nothing stored."""

from __future__ import annotations

import datetime as dt
import math

import pyarrow as pa
import pytest

from raise_jupyter import (
    ConflictError,
    DefinitionError,
    FeatureGroup,
    FeatureStore,
    IngestError,
)


@pytest.fixture
def group(fs: FeatureStore) -> FeatureGroup:
    group = fs.create_feature_group("user-signals", keys="user_id", event_time="ts")
    group.create_features_from_schema(
        {
            "user_id": "int64",
            "ts": "timestamp",
            "clicks": "int64",
            "impressions": "int64",
            "rate": "float32",
            "emb": "float32[3]",
        }
    )
    group.create_feature("ctr", dtype="float64", derived_from="clicks / NULLIF(impressions, 0)")
    group.ingest(
        {
            "user_id": [1, 2],
            "ts": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)],
            "clicks": [3, 4],
            "impressions": [10, 0],
            "emb": [[1.0, 2.0, 3.0], None],
        }
    )
    return group


def _state(group: FeatureGroup) -> tuple[object, ...]:
    return (repr(group.features), group.keys, group.event_time, group.version, group.to_arrow())


@pytest.fixture
def unchanged(group: FeatureGroup):
    """Assert after the test body that the group's definition, version and rows are unchanged."""
    before = _state(group)
    yield
    after = _state(group)
    assert after[:4] == before[:4], "the definition or table version changed"
    assert after[4].equals(before[4]), "the stored rows changed"


# -- definitions ------------------------------------------------------------------------------


def test_unknown_dtype(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(DefinitionError, match=r"Unknown dtype 'int65'.*use one of bool, int8"):
        group.create_feature("views", dtype="int65")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("../x", r"'\.\./x' is invalid: use letters, digits and '_'"),
        ("it's", r"is invalid: use letters, digits and '_'"),
        ('say"hi"', r"is invalid: use letters, digits and '_'"),
        ("two words", r"'two words' is invalid.*for example 'two_words'"),
        ("x" * 300, "has 300 characters; the maximum is 128"),
    ],
)
def test_bad_feature_name(group: FeatureGroup, unchanged: None, name: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        group.create_feature(name, dtype="int64")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("../x", r"'\.\./x' is invalid: use lowercase letters"),
        ("it's", "is invalid: use lowercase letters"),
        ("two words", r"is invalid.*for example 'two-words'"),
        ("x" * 300, "has 300 characters; the maximum is 64"),
    ],
)
def test_bad_group_name(fs: FeatureStore, group: FeatureGroup, unchanged: None, name: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        fs.create_feature_group(name)

    assert [g.name for g in fs.list_feature_groups()] == ["user-signals"]


@pytest.mark.parametrize("namespace", ["", "Acme", "a/b/c/d/e/f", "acme//ml", "../etc", "acme/ml engagement"])
def test_bad_namespace(root, namespace: str) -> None:
    with pytest.raises(DefinitionError, match="Namespace"):
        FeatureStore(namespace, root=root)


def test_duplicate_feature(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(ConflictError, match=r"(?s)'clicks'.*already exists.*existing: clicks int64.*new:      clicks float64.*replace=True"):
        group.create_feature("clicks", dtype="float64")


def test_duplicate_in_one_call(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(DefinitionError, match="'views' is defined twice, differently"):
        group.create_features([{"name": "views", "dtype": "int64"}, {"name": "views", "dtype": "string"}])


def test_name_differing_in_case(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(DefinitionError, match="'Clicks' differs only in case from existing feature 'clicks'"):
        group.create_feature("Clicks", dtype="int64")


def test_derived_unknown_column(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(DefinitionError, match=r"unknown column 'clikcs'\. Did you mean 'clicks'\?"):
        group.create_feature("double_clicks", dtype="int64", derived_from="clikcs * 2")


def test_derived_cycle(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(DefinitionError, match=r"dependency cycle: a -> b -> a"):
        group.create_features(
            [
                {"name": "a", "dtype": "float64", "derived_from": "b + 1"},
                {"name": "b", "dtype": "float64", "derived_from": "a * 2"},
            ]
        )


def test_derived_cycle_through_update(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(DefinitionError, match="references itself"):
        group.update_feature("ctr", derived_from="ctr + 1")


def test_derived_aggregate(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(DefinitionError, match=r"aggregate function sum\(\) is not allowed"):
        group.create_feature("total", dtype="int64", derived_from="sum(clicks)")


def test_derived_window(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(DefinitionError, match="window functions are not allowed"):
        group.create_feature("running", dtype="int64", derived_from="sum(clicks) OVER (ORDER BY ts)")


def test_derived_subquery(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(DefinitionError, match="subqueries are not allowed"):
        group.create_feature("other", dtype="int64", derived_from="(SELECT max(clicks) FROM 'user-signals')")


def test_derived_read_csv(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(DefinitionError, match=r"table function read_csv\(\) is not allowed"):
        group.create_feature("leak", dtype="string", derived_from="read_csv('/etc/passwd')")


def test_derived_two_statements(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(DefinitionError, match="more than one statement"):
        group.create_feature("x2", dtype="int64", derived_from="clicks; DROP TABLE features")


def test_derived_volatile_function(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(DefinitionError, match=r"random\(\) is not deterministic"):
        group.create_feature("noise", dtype="float64", derived_from="random()")


def test_derived_type_error(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(DefinitionError, match=r"derived feature 'shout' is invalid: Binder Error.*upper\(BIGINT\)"):
        group.create_feature("shout", dtype="string", derived_from="upper(clicks)")


def test_derived_lossy_declared_dtype(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(DefinitionError, match=r"declared int64 but its expression returns DOUBLE.*dtype='float64'"):
        group.create_feature("ratio", dtype="int64", derived_from="clicks / impressions")


# -- ingest -----------------------------------------------------------------------------------


def _row(**values: object) -> dict[str, object]:
    return {"user_id": 9, "ts": dt.datetime(2024, 2, 1), **values}


def test_ingest_wrong_column_type(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(IngestError, match=r"Column 'clicks' has type string.*feature 'clicks' \(int64\)"):
        group.ingest([_row(clicks="many")])


def test_ingest_lossy_cast(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(IngestError, match=r"'clicks' \(double\) cannot be stored as int64 without loss: row 1 \(0-based\) holds 2\.5"):
        group.ingest([_row(clicks=1.0), _row(clicks=2.5)])


def test_ingest_lossy_float_narrowing(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(IngestError, match=r"'rate' \(double\) cannot be stored as float32 without loss"):
        group.ingest([_row(rate=0.1)])


def test_ingest_integer_overflow(group: FeatureGroup, unchanged: None) -> None:
    table = pa.table({"user_id": pa.array([9], pa.uint64()), "ts": [dt.datetime(2024, 2, 1)]})
    table = table.set_column(0, "user_id", pa.array([2**63 + 5], pa.uint64()))
    with pytest.raises(IngestError, match=r"'user_id' \(uint64\) cannot be stored as int64 without loss"):
        group.ingest(table)


def test_ingest_vector_wrong_length(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(IngestError, match=r"'emb' must hold vectors of length 3 \(float32\[3\]\), but row 1 \(0-based\) has length 2"):
        group.ingest([_row(emb=[1.0, 2.0, 3.0]), _row(emb=[1.0, 2.0])])


def test_ingest_null_key(group: FeatureGroup, unchanged: None) -> None:
    rows = [_row(), {"user_id": None, "ts": dt.datetime(2024, 2, 1)}, _row(), {"user_id": None, "ts": dt.datetime(2024, 2, 1)}]
    with pytest.raises(IngestError, match=r"2 rows \(0-based: 1, 3\) have a null key 'user_id'; nothing was written"):
        group.ingest(rows)


def test_ingest_null_event_time(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(IngestError, match=r"Row 0 \(0-based\) has a null event time 'ts'"):
        group.ingest([{"user_id": 5, "ts": None}])


def test_ingest_unknown_column(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(IngestError, match=r"Column 'clickz' is not a feature of this group\. Did you mean 'clicks'\?"):
        group.ingest([_row(clickz=1)])


def test_ingest_derived_column(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(IngestError, match="'ctr' is a derived feature, computed when the group is read"):
        group.ingest([_row(ctr=0.5)])


def test_ingest_missing_key_column(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(IngestError, match="no column 'user_id'"):
        group.ingest([{"ts": dt.datetime(2024, 2, 1), "clicks": 1}])


def test_ingest_unparseable_timestamp(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(IngestError, match=r"'ts' contains strings that are not ISO 8601 timestamps: row 1 \(0-based\) holds 'yesterday'"):
        group.ingest({"user_id": [1, 2], "ts": ["2024-01-01T00:00:00Z", "yesterday"]})


def test_ingest_unsupported_input(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(IngestError, match="Cannot ingest an object of type int: pass a pandas or polars DataFrame"):
        group.ingest(42)


def test_ingest_missing_file(group: FeatureGroup, unchanged: None, tmp_path) -> None:
    with pytest.raises(IngestError, match="No file matches"):
        group.ingest(str(tmp_path / "nothing-*.parquet"))


def test_ingest_nan_and_infinity_kept(group: FeatureGroup) -> None:
    table = pa.table(
        {
            "user_id": pa.array([7, 8, 9], pa.int64()),
            "ts": pa.array([dt.datetime(2024, 3, 1)] * 3, pa.timestamp("us")),
            "rate": pa.array([math.nan, math.inf, -math.inf], pa.float32()),
        }
    )
    group.ingest(table)

    stored = group.to_arrow(["user_id", "rate"], where="user_id >= 7").sort_by("user_id")
    values = stored.column("rate").to_pylist()
    assert math.isnan(values[0])
    assert values[1:] == [math.inf, -math.inf]
    assert stored.column("rate").null_count == 0


def test_ingest_mixed_python_types(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(IngestError, match=r"Column 'clicks' mixes types: row 1 \(0-based\) holds a str '2'"):
        group.ingest([_row(clicks=1), _row(clicks="2")])


def test_ingest_python_int_overflow(group: FeatureGroup, unchanged: None) -> None:
    with pytest.raises(IngestError, match=r"Column 'clicks' has a value that does not fit in a signed 64-bit integer at row 0 \(0-based\)"):
        group.ingest([_row(clicks=2**70)])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["1.5"], r"'clicks' \(decimal128\(2, 1\)\) cannot be stored as int64 without loss: row 0 \(0-based\) holds Decimal\('1.5'\)"),
        (["99999999999999999999999"], r"cannot be stored as int64 without loss: row 0 \(0-based\) holds Decimal"),
    ],
    ids=["fraction", "too-large"],
)
def test_ingest_lossy_decimal(group: FeatureGroup, unchanged: None, values: list[str], message: str) -> None:
    import decimal

    table = pa.table({"user_id": [9], "ts": [dt.datetime(2024, 2, 1)], "clicks": pa.array([decimal.Decimal(v) for v in values])})
    with pytest.raises(IngestError, match=message):
        group.ingest(table)


def test_ingest_list_errors_name_rows(fs: FeatureStore) -> None:
    group = fs.create_feature_group("lists")
    group.create_features_from_schema({"id": "int64", "counts": "list<int32>"})
    table = pa.table({"id": [1, 2], "counts": pa.array([[1.0, 2.0], [1.5, 2.5, 3.5]])})

    with pytest.raises(IngestError, match=r"row 1 \(0-based\) holds 1\.5, 2\.5, 3\.5"):
        group.ingest(table)
    assert group.count() == 0
