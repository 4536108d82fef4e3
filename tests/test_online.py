"""The embedded online store: latest values per key, lookups, ttl and materialize."""

from __future__ import annotations

import datetime as dt

import pytest

from raise_jupyter import DefinitionError, FeatureStore, RaiseWarning

UTC = dt.timezone.utc


@pytest.fixture(params=["sqlite", "redis"])
def fs(request: pytest.FixtureRequest, root, monkeypatch: pytest.MonkeyPatch) -> FeatureStore:
    """Each test runs on the embedded SQLite online store and on a real Redis server."""
    if request.param == "redis":
        monkeypatch.setenv("RAISE_ONLINE_STORE", request.getfixturevalue("redis_url"))
    return FeatureStore("acme/ml/engagement", root=root)


@pytest.fixture
def group(fs: FeatureStore):
    group = fs.create_feature_group("user-signals", keys="user_id", event_time="ts", online=True)
    group.create_features_from_schema(
        {"user_id": "int64", "ts": "timestamp", "clicks": "int64", "impressions": "int64", "emb": "float32[2]"}
    )
    group.create_feature("ctr", dtype="float64", derived_from="clicks / NULLIF(impressions, 0)")
    return group


def _lookup(fs: FeatureStore, features: list[str], ids: list[object]) -> dict[str, list[object]]:
    return fs.get_online_features(features, entities={"user_id": ids}).to_arrow().to_pydict()


def test_online_out_of_order_batch(fs: FeatureStore, group) -> None:
    group.ingest(
        {
            "user_id": [1, 1, 1],
            "ts": ["2024-01-03", "2024-01-01", "2024-01-02"],
            "clicks": [3, 1, 2],
            "impressions": [10, 10, 10],
        }
    )

    assert _lookup(fs, ["user-signals.clicks"], [1])["clicks"] == [3]


def test_online_older_event_kept_out(fs: FeatureStore, group) -> None:
    group.ingest({"user_id": [1], "ts": ["2024-01-05"], "clicks": [5], "impressions": [10]})
    group.ingest({"user_id": [1], "ts": ["2024-01-01"], "clicks": [1], "impressions": [10]})

    assert _lookup(fs, ["user-signals.clicks"], [1])["clicks"] == [5]


def test_online_equal_event_last_ingest_wins(fs: FeatureStore, group) -> None:
    group.ingest({"user_id": [1], "ts": ["2024-01-05"], "clicks": [5], "impressions": [10]})
    group.ingest({"user_id": [1], "ts": ["2024-01-05"], "clicks": [6], "impressions": [10]})

    assert _lookup(fs, ["user-signals.clicks"], [1])["clicks"] == [6]


def test_online_request_order_and_missing(fs: FeatureStore, group) -> None:
    group.ingest({"user_id": [0, 1, 2], "ts": ["2024-01-01"] * 3, "clicks": [7, 1, 2], "impressions": [10, 10, 0]})

    result = _lookup(fs, ["user-signals.clicks", "user-signals.ctr"], [2, 99, 0, 1, 2])

    assert result["user_id"] == [2, 99, 0, 1, 2]
    assert result["clicks"] == [2, None, 7, 1, 2]
    assert result["ctr"] == [None, None, 0.7, 0.1, None]
    assert result["status"] == ["found", "missing", "found", "found", "found"]


def test_online_vector_values(fs: FeatureStore, group) -> None:
    group.ingest({"user_id": [1, 2], "ts": ["2024-01-01"] * 2, "emb": [[0.5, 1.5], None]})

    assert _lookup(fs, ["user-signals.emb"], [1, 2])["emb"] == [[0.5, 1.5], None]


def test_online_string_keys(fs: FeatureStore) -> None:
    group = fs.create_feature_group("planes", keys="tailnum", online=True)
    group.create_features_from_schema({"tailnum": "string", "seats": "int32"})
    group.ingest({"tailnum": ["N1", "", "N2"], "seats": [100, 5, 200]})

    result = fs.get_online_features(["planes.seats"], entities={"tailnum": ["", "N2", "N3"]}).to_arrow().to_pydict()

    assert result["seats"] == [5, 200, None]
    assert result["status"] == ["found", "found", "missing"]


def test_online_ttl_expiry(fs: FeatureStore) -> None:
    group = fs.create_feature_group("fresh", keys="user_id", event_time="ts", online=True, ttl=dt.timedelta(days=1))
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "score": "float64"})
    now = dt.datetime.now(UTC)
    group.ingest({"user_id": [1, 2], "ts": [now - dt.timedelta(hours=1), now - dt.timedelta(days=2)], "score": [0.5, 0.9]})

    result = fs.get_online_features(["fresh.score"], entities={"user_id": [1, 2]}).to_arrow().to_pydict()

    assert result["score"] == [0.5, None]
    assert result["status"] == ["found", "expired"]


def test_online_key_coerced(fs: FeatureStore, group) -> None:
    group.ingest({"user_id": [1], "ts": ["2024-01-01"], "clicks": [4], "impressions": [8]})

    assert _lookup(fs, ["user-signals.clicks"], [1.0])["clicks"] == [4]


def test_online_key_wrong_type(fs: FeatureStore, group) -> None:
    with pytest.raises(DefinitionError, match="Values of key 'user_id' cannot be used as int64 keys"):
        _lookup(fs, ["user-signals.clicks"], ["one"])


def test_online_missing_key_column(fs: FeatureStore, group) -> None:
    with pytest.raises(DefinitionError, match=r"entities has no values for key 'user_id'"):
        fs.get_online_features(["user-signals.clicks"], entities={"uid": [1]})


def test_online_group_not_online(fs: FeatureStore) -> None:
    group = fs.create_feature_group("offline-only", keys="id")
    group.create_feature("id", dtype="int64")

    with pytest.raises(DefinitionError, match=r"'offline-only' is not online; .*enable_online\(\)"):
        fs.get_online_features(["offline-only.id"], entities={"id": [1]})


def test_online_materialize_existing(fs: FeatureStore) -> None:
    group = fs.create_feature_group("late", keys="user_id", event_time="ts")
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "score": "float64"})
    group.ingest({"user_id": [1, 1, 2], "ts": ["2024-01-01", "2024-02-01", "2024-03-01"], "score": [0.1, 0.2, 0.3]})

    written = group.materialize(end="2024-02-15")

    assert written == 1
    assert group.materialize(end="2024-02-15") == 0
    result = fs.get_online_features(["late.score"], entities={"user_id": [1, 2]}).to_arrow().to_pydict()
    assert result["score"] == [0.2, None]


def test_online_materialize_future_end(fs: FeatureStore, group) -> None:
    group.ingest({"user_id": [1], "ts": ["2024-01-01"], "clicks": [4], "impressions": [8]})

    with pytest.warns(RaiseWarning, match="is in the future; using the current time"):
        group.materialize(end=dt.datetime.now(UTC) + dt.timedelta(days=30))


def test_online_derived_follows_definition(fs: FeatureStore, group) -> None:
    group.ingest({"user_id": [1], "ts": ["2024-01-01"], "clicks": [4], "impressions": [8]})

    group.update_feature("ctr", derived_from="clicks * 100 / NULLIF(impressions, 0)")

    assert _lookup(fs, ["user-signals.ctr"], [1])["ctr"] == [50.0]


def test_online_deleted_group_forgotten(fs: FeatureStore, group) -> None:
    group.ingest({"user_id": [1], "ts": ["2024-01-01"], "clicks": [4], "impressions": [8]})
    fs.delete_feature_group("user-signals")

    again = fs.create_feature_group("user-signals", keys="user_id", event_time="ts", online=True)
    again.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "clicks": "int64"})

    assert _lookup(fs, ["user-signals.clicks"], [1])["status"] == ["missing"]


def test_online_matches_training_latest(fs: FeatureStore, group) -> None:
    import pandas as pd

    group.ingest({"user_id": [1, 2, 1], "ts": ["2024-01-01", "2024-01-02", "2024-01-03"], "clicks": [1, 2, 3], "impressions": [4, 4, 4]})
    spine = pd.DataFrame({"user_id": [1, 2], "ts": pd.to_datetime(["2030-01-01", "2030-01-01"])})

    offline = fs.get_training_data(spine, ["user-signals.ctr"]).to_arrow().column("ctr").to_pylist()
    online = _lookup(fs, ["user-signals.ctr"], [1, 2])["ctr"]

    assert online == offline


def test_online_sqlite_and_redis_agree(tmp_path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    results = []
    for backend in ("sqlite", redis_url):
        monkeypatch.setenv("RAISE_ONLINE_STORE", backend)
        fs = FeatureStore("acme", root=tmp_path / backend.split(":")[0])
        group = fs.create_feature_group("items", keys=["shop", "item"], event_time="ts", online=True)
        group.create_features_from_schema(
            {"shop": "int64", "item": "string", "ts": "timestamp", "price": "float64", "tags": "list<string>", "day": "date"}
        )
        group.create_feature("double_price", dtype="float64", derived_from="price * 2")
        group.ingest(
            {
                "shop": [1, 12, 1, 1],
                "item": ["23", "3", "23", ""],
                "ts": ["2024-01-02", "2024-01-01", "2024-01-01", "2024-01-03"],
                "price": [2.5, 9.0, 1.0, float("nan")],
                "tags": [["a"], [], None, ["b", "c"]],
                "day": ["2024-01-02", None, "2024-01-01", "2024-01-03"],
            }
        )
        entities = {"shop": [1, 12, 1, 12, 0], "item": ["23", "3", "", "23", ""]}
        features = ["items.price", "items.tags", "items.day", "items.double_price"]
        rows = fs.get_online_features(features, entities).to_arrow().to_pylist()
        # NaN never equals itself, so compare it as text.
        results.append([{k: "NaN" if v != v else v for k, v in row.items()} for row in rows])

    assert results[0] == results[1]
    assert results[0][2]["price"] == "NaN"
    assert [row["status"] for row in results[0]] == ["found", "found", "found", "missing", "missing"]
    assert results[0][0]["price"] == 2.5


def test_online_list_element_types(fs: FeatureStore) -> None:
    group = fs.create_feature_group("lists", keys="id", online=True)
    group.create_features_from_schema({"id": "int64", "times": "list<timestamp>", "days": "list<date>", "blobs": "list<bytes>", "z": "float64"})
    group.ingest({"id": [1], "times": [[dt.datetime(2024, 1, 1), None]], "days": [[dt.date(2024, 1, 2)]], "blobs": [[b"\x00\x01"]], "z": [float("nan")]})

    row = fs.get_online_features(["lists.times", "lists.days", "lists.blobs", "lists.z"], entities={"id": [1]}).to_arrow().to_pylist()[0]

    assert row["times"] == [dt.datetime(2024, 1, 1, tzinfo=UTC), None]
    assert row["days"] == [dt.date(2024, 1, 2)]
    assert row["blobs"] == [b"\x00\x01"]
    assert str(row["z"]) == "nan"


def test_online_missing_rows_have_no_derived_values(fs: FeatureStore, group) -> None:
    group.create_feature("clicks_or_zero", dtype="int64", derived_from="coalesce(clicks, 0)")
    group.create_feature("shout", dtype="string", derived_from="upper(CAST(clicks AS VARCHAR))")
    group.ingest({"user_id": [1], "ts": ["2024-01-01"], "clicks": [4], "impressions": [8]})

    result = _lookup(fs, ["user-signals.clicks_or_zero", "user-signals.shout"], [1, 999, 998])

    assert result["clicks_or_zero"] == [4, None, None]
    assert result["shout"] == ["4", None, None]


def test_online_feature_named_status(fs: FeatureStore) -> None:
    group = fs.create_feature_group("orders", keys="order_id", online=True)
    group.create_features_from_schema({"order_id": "int64", "status": "string"})
    group.ingest({"order_id": [1], "status": ["shipped"]})

    result = fs.get_online_features(["orders.status"], entities={"order_id": [1, 2]}).to_arrow().to_pydict()

    assert result["status"] == ["shipped", None]
    assert result["_status"] == ["found", "missing"]
