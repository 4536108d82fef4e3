"""Feature group and feature definitions: re-runs, conflicts, replacement and deletion."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from raise_jupyter import ConflictError, DefinitionError, FeatureStore, NotFoundError


@pytest.fixture
def group(fs: FeatureStore):
    group = fs.create_feature_group("user-signals", keys="user_id", event_time="ts", description="Signals")
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "clicks": "int64", "impressions": "int64"})
    group.create_feature("ctr", dtype="float64", derived_from="clicks / NULLIF(impressions, 0)")
    return group


def _ingest_one(group, **values) -> None:
    group.ingest([{"user_id": 1, "ts": dt.datetime(2024, 1, 1), "clicks": 1, "impressions": 4, **values}])


# -- feature groups ---------------------------------------------------------------------------


def test_group_rerun_returns_same(fs: FeatureStore, group) -> None:
    again = fs.create_feature_group("user-signals", keys="user_id", event_time="ts", description="Signals")
    bare = fs.create_feature_group("user-signals")

    assert again.keys == ["user_id"]
    assert bare.event_time == "ts"
    assert bare.version == group.version


def test_group_conflicting_keys(fs: FeatureStore, group) -> None:
    with pytest.raises(ConflictError, match=r"(?s)different definition.*keys: existing \['user_id'\], new \['account_id'\].*replace=True"):
        fs.create_feature_group("user-signals", keys="account_id")


def test_group_replace_before_data(fs: FeatureStore, group) -> None:
    group.create_feature("account_id", dtype="string")

    replaced = fs.create_feature_group("user-signals", keys="account_id", replace=True)

    assert replaced.keys == ["account_id"]


def test_group_keys_fixed_after_data(fs: FeatureStore, group) -> None:
    _ingest_one(group)
    group.create_feature("account_id", dtype="string")

    with pytest.raises(ConflictError, match="cannot change because it has data"):
        group.set_keys("account_id")
    assert group.keys == ["user_id"]


def test_group_set_keys_later(fs: FeatureStore) -> None:
    group = fs.create_feature_group("later")
    group.set_keys("a", "b").set_event_time("ts")

    assert group.keys == ["a", "b"]
    assert group.event_time == "ts"


def test_group_event_time_needs_timestamp(fs: FeatureStore, group) -> None:
    with pytest.raises(DefinitionError, match="'clicks' \\(int64\\) cannot be the event time"):
        group.set_event_time("clicks")


def test_group_get_unknown_suggests(fs: FeatureStore, group) -> None:
    with pytest.raises(NotFoundError, match=r"'user-signal' does not exist.*Did you mean 'user-signals'\?"):
        fs.get_feature_group("user-signal")


def test_group_list_and_delete(fs: FeatureStore, group) -> None:
    fs.create_feature_group("other")
    _ingest_one(group)

    table_path = group._path
    assert table_path.exists()

    fs.delete_feature_group("user-signals")

    assert [g.name for g in fs.list_feature_groups()] == ["other"]
    assert not table_path.exists()
    with pytest.raises(NotFoundError, match="was deleted"):
        _ = group.features
    recreated = fs.create_feature_group("user-signals")
    assert recreated.features == []
    assert recreated.count() == 0


def test_group_namespaces_are_separate(root: Path) -> None:
    FeatureStore("team-a", root=root).create_feature_group("shared")

    assert FeatureStore("team-b", root=root).list_feature_groups() == []


def test_store_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAISE_HOME", str(tmp_path / "home"))

    fs = FeatureStore("acme")

    assert fs.root == (tmp_path / "home").resolve()
    assert (tmp_path / "home" / "catalog.db").exists()


# -- features ---------------------------------------------------------------------------------


def test_feature_rerun_is_noop(group) -> None:
    version = group.version

    feature = group.create_feature("ctr", dtype="float64", derived_from="clicks/NULLIF( impressions ,0)")

    assert feature.derived_from == "clicks / NULLIF(impressions, 0)"
    assert group.version == version


def test_feature_alias_dtype_is_same(group) -> None:
    assert group.create_feature("clicks", dtype="bigint").dtype == "int64"


def test_feature_fill_description(group) -> None:
    group.create_features([{"name": "clicks", "dtype": "int64", "description": "Total clicks"}])

    assert group.feature("clicks").description == "Total clicks"
    with pytest.raises(ConflictError, match="different descriptions"):
        group.create_feature("clicks", dtype="int64", description="Something else")


def test_feature_stored_becomes_derived_without_data(group) -> None:
    group.create_feature("rate", dtype="float64")

    feature = group.create_feature("rate", dtype="float64", derived_from="clicks / impressions")

    assert feature.is_derived


def test_feature_stored_with_data_stays(group) -> None:
    group.create_feature("rate", dtype="float64")
    _ingest_one(group, rate=0.5)

    with pytest.raises(ConflictError, match="a stored feature that has data cannot become derived"):
        group.create_feature("rate", dtype="float64", derived_from="clicks / impressions")


def test_feature_replace(group) -> None:
    feature = group.create_feature("ctr", dtype="float64", derived_from="clicks / impressions", replace=True)

    assert feature.derived_from == "clicks / impressions"


def test_feature_update(group) -> None:
    group.update_feature("ctr", description="Click-through rate", tags=["kpi"])

    feature = group.feature("ctr")
    assert feature.description == "Click-through rate"
    assert dict(feature.tags) == {"kpi": ""}
    assert feature.derived_from == "clicks / NULLIF(impressions, 0)"


def test_feature_update_dtype_with_data(group) -> None:
    _ingest_one(group)

    with pytest.raises(ConflictError, match="has data, so replace=True cannot change its dtype"):
        group.update_feature("clicks", dtype="float64")


def test_feature_derived_dtype_inferred(group) -> None:
    feature = group.create_features([{"name": "half", "derived_from": "clicks / 2"}])[0]

    assert feature.dtype == "float64"


def test_feature_derived_chain(group) -> None:
    group.create_feature("ctr_pct", dtype="float64", derived_from="ctr * 100")
    _ingest_one(group)

    assert group.to_arrow("ctr_pct").column("ctr_pct").to_pylist() == [25.0]


def test_feature_derived_over_key_and_event_time(group) -> None:
    group.create_feature("day", dtype="date", derived_from="CAST(ts AS DATE)")
    group.create_feature("odd_user", dtype="bool", derived_from="user_id % 2 = 1")
    _ingest_one(group)

    row = group.to_arrow(["day", "odd_user"]).to_pylist()[0]
    assert row == {"day": dt.date(2024, 1, 1), "odd_user": True}


def test_feature_added_after_data_reads_null(group) -> None:
    _ingest_one(group)
    group.create_feature("shares", dtype="int64")
    group.ingest([{"user_id": 2, "ts": dt.datetime(2024, 1, 2), "shares": 7}])

    table = group.to_arrow(["user_id", "shares"]).sort_by("user_id")

    assert table.column("shares").to_pylist() == [None, 7]


def test_feature_delete_stored_hides_values(group) -> None:
    group.create_feature("shares", dtype="int64")
    _ingest_one(group, shares=3)
    version_with_shares = group.version

    group.delete_feature("shares")

    assert group.version == version_with_shares
    assert "shares" not in group.to_arrow(as_of=version_with_shares).column_names
    group.create_feature("shares", dtype="string")
    group.ingest([{"user_id": 2, "ts": dt.datetime(2024, 1, 2), "shares": "many"}])
    assert group.to_arrow(["user_id", "shares"]).sort_by("user_id").column("shares").to_pylist() == [None, "many"]
    assert group.count(as_of=version_with_shares) == 1


def test_feature_dtype_change_before_data(group) -> None:
    group.create_feature("zip", dtype="int64")

    group.create_feature("zip", dtype="string", replace=True)
    group.ingest([{"user_id": 1, "ts": dt.datetime(2024, 1, 1), "zip": "02134"}])

    assert group.to_arrow("zip").column("zip").to_pylist() == ["02134"]


def test_group_namespaces_do_not_nest(root: Path) -> None:
    parent = FeatureStore("a/b", root=root)
    child = FeatureStore("a/b/c", root=root)
    parent.create_feature_group("c").create_feature("x", dtype="int64")
    child_group = child.create_feature_group("d")
    child_group.create_feature("x", dtype="int64")
    child_group.ingest({"x": [1]})

    parent.delete_feature_group("c")

    assert child_group.count() == 1


def test_feature_delete_used_by_derived(group) -> None:
    with pytest.raises(ConflictError, match=r"'user-signals.clicks' is used by: derived feature user-signals.ctr; .*cascade=True"):
        group.delete_feature("clicks")

    assert [f.name for f in group.features if f.name in ("clicks", "ctr")] == ["clicks", "ctr"]


def test_feature_delete_key(group) -> None:
    with pytest.raises(DefinitionError, match="'user_id' is a key of group 'user-signals'"):
        group.delete_feature("user_id")


def test_feature_delete_unknown(group) -> None:
    with pytest.raises(NotFoundError, match=r"'clik' does not exist.*Did you mean 'click"):
        group.delete_feature("clik")


def test_features_from_json_file(group, tmp_path: Path) -> None:
    path = tmp_path / "features.json"
    path.write_text(json.dumps({"views": "int", "country": {"dtype": "str", "description": "ISO code"}}))

    created = group.create_features_from_file(path)

    assert [(f.name, f.dtype, f.description) for f in created] == [
        ("views", "int64", None),
        ("country", "string", "ISO code"),
    ]


def test_features_from_yaml_list(group, tmp_path: Path) -> None:
    path = tmp_path / "features.yml"
    path.write_text("- name: views\n  dtype: int32\n- {name: view_rate, dtype: float64, derived_from: \"views / NULLIF(impressions, 0)\"}\n")

    created = group.create_features_from_file(path)

    assert [f.name for f in created] == ["views", "view_rate"]


def test_features_from_file_bad_key(group, tmp_path: Path) -> None:
    path = tmp_path / "features.yaml"
    path.write_text("features:\n  - name: views\n    type: int64\n")

    with pytest.raises(DefinitionError, match=r"Unknown keys \['type'\].*valid keys are derived_from, description, dtype, name, tags"):
        group.create_features_from_file(path)


def test_features_from_missing_file(group, tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="does not exist"):
        group.create_features_from_file(tmp_path / "nope.yaml")


def test_features_bulk_is_atomic(group) -> None:
    before = [f.name for f in group.features]

    with pytest.raises(DefinitionError, match="unknown column 'nope'"):
        group.create_features_from_schema(
            {"views": "int64", "bad": {"dtype": "float64", "derived_from": "nope + 1"}}
        )

    assert [f.name for f in group.features] == before


def test_feature_recreated_hides_old_values(group) -> None:
    group.create_feature("shares", dtype="int64")
    before_delete = group.ingest([{"user_id": 1, "ts": dt.datetime(2024, 1, 1), "shares": 3}]).version
    group.delete_feature("shares")

    group.create_feature("shares", dtype="string")

    old = group.to_arrow(["user_id", "shares"], as_of=before_delete)
    assert old.column("shares").to_pylist() == [None]
    assert old.column("user_id").to_pylist() == [1]


def test_group_key_as_event_time(fs: FeatureStore) -> None:
    with pytest.raises(DefinitionError, match="'id' cannot be both a key and the event time"):
        fs.create_feature_group("g", keys="id", event_time="id")


def test_store_root_is_file(tmp_path: Path) -> None:
    from raise_jupyter import StoreError

    path = tmp_path / "afile"
    path.write_text("not a store")

    with pytest.raises(StoreError, match="is a file, not a directory"):
        FeatureStore("acme", root=path)


def test_stored_spec_does_not_match_derived(group) -> None:
    with pytest.raises(ConflictError, match="the existing feature is derived, the new one stored"):
        group.create_feature("ctr", dtype="float64")
    assert group.create_features_from_schema({"ctr": "float64"})[0].is_derived


def test_feature_recreated_with_other_case(group) -> None:
    group.create_feature("shares", dtype="int64")
    _ingest_one(group, shares=3)
    group.delete_feature("shares")

    group.create_feature("SHARES", dtype="float64")
    group.ingest([{"user_id": 2, "ts": dt.datetime(2024, 1, 2), "SHARES": 1.5}])

    assert group.to_arrow(["user_id", "SHARES"]).sort_by("user_id").column("SHARES").to_pylist() == [None, 1.5]


def test_ingest_conflicts_with_concurrent_redefinition(group) -> None:
    """An ingest whose feature was re-created by another process since it read the layout."""
    group.create_feature("shares", dtype="int64")
    record, records = group._load()
    from raise_jupyter import definitions

    layout_before = definitions.layout_of(record, records)
    group.delete_feature("shares")
    group.create_feature("shares", dtype="int64")

    with pytest.raises(ConflictError, match=r"\['shares'\] of group 'user-signals' were deleted, made derived or given a new dtype"):
        group._check_layout_unchanged(layout_before, ["user_id", "shares"])
