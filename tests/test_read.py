"""Reads, time travel, fs.sql() and compaction."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pyarrow as pa
import pytest

from raise_jupyter import DefinitionError, FeatureStore, NotFoundError, QueryError


@pytest.fixture
def group(fs: FeatureStore):
    group = fs.create_feature_group("user-signals", keys="user_id", event_time="ts")
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "clicks": "int64", "impressions": "int64"})
    group.create_feature("ctr", dtype="float64", derived_from="clicks / NULLIF(impressions, 0)")
    return group


def _batch(start: int, count: int) -> dict[str, list[object]]:
    ids = list(range(start, start + count))
    return {
        "user_id": ids,
        "ts": [dt.datetime(2024, 1, 1) + dt.timedelta(hours=i) for i in ids],
        "clicks": [i % 5 for i in ids],
        "impressions": [10] * count,
    }


def test_read_columns_and_where(group) -> None:
    group.ingest(_batch(0, 10))

    table = group.to_arrow(["user_id", "ctr"], where="ctr >= 0.3 AND user_id < 8")

    assert table.column_names == ["user_id", "ctr"]
    assert sorted(table.column("user_id").to_pylist()) == [3, 4]


def test_read_where_rejects_subquery(group) -> None:
    with pytest.raises(DefinitionError, match="the where filter is rejected: subqueries are not allowed"):
        group.to_arrow(where="user_id IN (SELECT 1)")


def test_read_unknown_column(group) -> None:
    with pytest.raises(NotFoundError, match=r"'ctrr' is not in group 'user-signals'\. Did you mean 'ctr'\?"):
        group.to_arrow(["ctrr"])


def test_read_empty_group_has_schema(group) -> None:
    table = group.to_arrow()

    assert table.num_rows == 0
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.column_names == ["user_id", "ts", "clicks", "impressions", "ctr"]


def test_read_pandas_and_polars(group) -> None:
    pl = pytest.importorskip("polars")
    group.ingest(_batch(0, 3))

    frame = group.to_pandas()
    polars_frame = group.to_polars()

    assert str(frame["ts"].dt.tz) == "UTC"
    assert isinstance(polars_frame, pl.DataFrame)
    assert polars_frame.height == 3


def test_read_as_of_version(group) -> None:
    first = group.ingest(_batch(0, 5))
    group.ingest(_batch(5, 5))

    assert group.count(as_of=first.version) == 5
    assert group.count() == 10
    assert group.to_arrow("user_id", as_of=first.version).num_rows == 5


def test_read_as_of_timestamp(group) -> None:
    group.ingest(_batch(0, 5))
    time.sleep(0.05)
    between = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.05)
    group.ingest(_batch(5, 5))

    assert group.count(as_of=between) == 5
    assert group.count(as_of=between.isoformat()) == 5


def test_read_as_of_unknown_version(group) -> None:
    with pytest.raises(NotFoundError, match=r"has no table version 999; its versions run from 0 to"):
        group.to_arrow(as_of=999)


def test_read_as_of_bad_value(group) -> None:
    with pytest.raises(DefinitionError, match="as_of must be a table version number"):
        group.to_arrow(as_of="last tuesday")


def test_read_derived_failure_is_query_error(fs: FeatureStore) -> None:
    group = fs.create_feature_group("codes")
    group.create_feature("code", dtype="string")
    group.create_feature("code_number", dtype="int64", derived_from="CAST(code AS BIGINT)")
    group.ingest({"code": ["12", "x1"]})

    with pytest.raises(QueryError, match="Reading feature group 'codes' failed: Conversion Error"):
        group.to_arrow()


def test_sql_across_groups(fs: FeatureStore, group) -> None:
    group.ingest(_batch(0, 10))
    users = fs.create_feature_group("users", keys="user_id")
    users.create_features_from_schema({"user_id": "int64", "country": "string"})
    users.ingest({"user_id": [1, 2, 3], "country": ["fr", "fr", "jp"]})

    result = fs.sql(
        'SELECT u.country, avg(s.ctr) AS ctr FROM "user-signals" s JOIN users u USING (user_id) '
        "GROUP BY u.country ORDER BY u.country"
    )

    frame = result.to_pandas()
    assert frame["country"].tolist() == ["fr", "jp"]
    assert frame["ctr"].tolist() == pytest.approx([0.15, 0.3])
    assert set(result.versions) == {"user-signals", "users"}


def test_sql_error(fs: FeatureStore, group) -> None:
    with pytest.raises(QueryError, match="Query failed: .*nope"):
        fs.sql('SELECT nope FROM "user-signals"')


def test_compact_merges_files(group) -> None:
    for start in range(0, 50, 10):
        group.ingest(_batch(start, 10))
    before = group.to_arrow().sort_by("user_id")

    metrics = group.compact(retention=dt.timedelta(0))

    assert metrics["files_merged"] == 5
    assert metrics["files_written"] == 1
    assert metrics["files_deleted"] == 5
    assert metrics["version"] == group.version
    assert group.to_arrow().sort_by("user_id").equals(before)
    parquet_files = list(group._path.glob("*.parquet"))
    assert len(parquet_files) == 1


def test_read_as_of_negative(group) -> None:
    with pytest.raises(DefinitionError, match=r"as_of must be a table version number \(0 or more\).*got -1"):
        group.to_arrow(as_of=-1)


def test_read_as_of_before_creation(group) -> None:
    with pytest.raises(NotFoundError, match=r"as_of '2024-01-01' is before feature group 'user-signals' was created"):
        group.count(as_of="2024-01-01")


def test_read_where_must_be_condition(group) -> None:
    with pytest.raises(DefinitionError, match=r"where filter must be a condition, but 'clicks' returns BIGINT"):
        group.to_arrow(where="clicks")


def test_read_group_without_features(fs: FeatureStore) -> None:
    table = fs.create_feature_group("empty").to_arrow()

    assert table.num_columns == 0
    assert table.num_rows == 0


def test_read_compacted_version_gone(group) -> None:
    first = group.ingest(_batch(0, 5))
    group.ingest(_batch(5, 5))
    group.compact(retention=dt.timedelta(0))

    with pytest.raises(NotFoundError, match=rf"files of version {first.version} .* are gone, most likely removed by compact\(\)"):
        group.count(as_of=first.version)
    assert group.count() == 10


def test_compact_short_retention_keeps_recent_files(group) -> None:
    first = group.ingest(_batch(0, 5))
    group.ingest(_batch(5, 5))

    metrics = group.compact(retention=dt.timedelta(minutes=59))

    assert metrics["files_deleted"] == 0
    assert group.count(as_of=first.version) == 5


def test_history_names_operations(group) -> None:
    group.create_feature("shares", dtype="int64")
    group.ingest(_batch(0, 3))
    result = group.ingest(_batch(3, 3))
    group.compact()

    history = group.history()

    assert history["version"].tolist() == sorted(history["version"].tolist(), reverse=True)
    assert history["operation"].tolist()[:4] == ["COMPACT", "INGEST", "INGEST", "ADD COLUMN"]
    assert history["operation"].tolist()[-1] == "CREATE TABLE"
    ingest_row = history[history["operation"] == "INGEST"].iloc[0]
    assert ingest_row["version"] == result.version
    assert ingest_row["rows_added"] == 3
    assert str(history["rows_added"].dtype) == "Int64"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("CREATE TABLE scratch AS SELECT 1", "SELECT queries only, got a CREATE statement"),
        ("COPY (SELECT 1) TO '/tmp/raise-copy.csv'", "SELECT queries only, got a COPY statement"),
        ("SELECT 1; SELECT 2", "runs one query, but the text has 2 statements"),
        ("EXPLAIN ANALYZE CREATE TABLE leaked AS SELECT 1", "SELECT queries only, got a EXPLAIN statement"),
        ("SET TimeZone = 'Asia/Kolkata'", "SELECT queries only, got a SET statement"),
    ],
)
def test_sql_rejects_statements(fs: FeatureStore, query: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        fs.sql(query)


def test_sql_unknown_group_lists_groups(fs: FeatureStore, group) -> None:
    with pytest.raises(QueryError, match=r"user_signals.*Feature groups of namespace 'acme/ml/engagement': \"user-signals\""):
        fs.sql("SELECT * FROM user_signals")


@pytest.mark.parametrize("folder", ["with space", "josé", "50% off", "a#b@c:d$e{f;g&h=i,j'k", "q?r#s"])
def test_store_root_with_odd_characters(tmp_path: Path, folder: str) -> None:
    fs = FeatureStore("acme/ml", root=tmp_path / folder)
    group = fs.create_feature_group("signals", keys="user_id", online=True)
    group.create_features_from_schema({"user_id": "int64", "clicks": "int64"})
    group.create_feature("double", dtype="int64", derived_from="clicks * 2")
    first = group.ingest({"user_id": [1, 2], "clicks": [3, 4]})
    group.ingest({"user_id": [3], "clicks": [5]})

    assert group.count() == 3
    assert group.count(as_of=first.version) == 2
    assert fs.sql('SELECT sum("double") AS total FROM signals').to_pandas()["total"].tolist() == [24]
    assert group.compact()["files_merged"] == 2
    assert fs.get_online_features(["signals.double"], entities={"user_id": [3]}).to_pandas()["double"].tolist() == [10]
    assert (tmp_path / folder / "catalog.db").is_file()


@pytest.mark.parametrize("folder", ["a%41b", "br]x", "tab\tx"])
def test_unusable_store_root_rejected(tmp_path: Path, folder: str) -> None:
    from raise_jupyter import StoreError

    with pytest.raises(StoreError, match="which Delta Lake cannot use in paths"):
        FeatureStore("acme/ml", root=tmp_path / folder)

    assert not (tmp_path / folder).exists()


@pytest.mark.parametrize("name", ["config.yaml", "catalog.db"])
def test_store_connection_cannot_read_files_outside_tables(fs: FeatureStore, group, name: str) -> None:
    import duckdb

    from raise_jupyter.engine import duck

    (fs.root / "config.yaml").write_text("smtp_url: smtp://user:secret@127.0.0.1:25\n")
    group.ingest(_batch(0, 3))
    cursor = duck.connection(fs.root).cursor()

    with pytest.raises(duckdb.Error, match="file system operations are disabled|Permission"):
        cursor.execute(f"SELECT * FROM read_text('{fs.root / name}')")
    with pytest.raises(DefinitionError, match="table function read_text"):
        fs.sql(f"SELECT * FROM read_text('{fs.root / name}')")

    cursor.close()
    assert fs.sql('SELECT count(*) AS n FROM "user-signals"').to_pandas()["n"].tolist() == [3]
