"""Lineage: the dependency graph, training-set records, rejected and cascading deletes, the diagram."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
import sqlalchemy as sa

from raise_jupyter import (
    Aggregation,
    Condition,
    ConflictError,
    DefinitionError,
    FeatureStore,
    NotFoundError,
    scheduler,
)
from raise_jupyter.engine import tables
from raise_jupyter.jobs import FeatureGroupSource, Target
from raise_jupyter.lineage import Edge, Lineage, Node
from raise_jupyter.store import open_catalog
from raise_jupyter.transforms import sql_transform

NS = "acme/ml/engagement"
CLICKS_SQL = 'SELECT user_id, ts, clicks * 2 AS double_clicks FROM "user-signals"'
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def signals(fs: FeatureStore):
    group = fs.create_feature_group("user-signals", keys="user_id", event_time="ts")
    group.create_features_from_schema(
        {"user_id": "int64", "ts": "timestamp", "clicks": "int64", "impressions": "int64", "country": "string"}
    )
    group.create_feature("ctr", dtype="float64", derived_from="clicks / NULLIF(impressions, 0)")
    group.create_feature("ctr_pct", dtype="float64", derived_from="ctr * 100")
    ingest(group, day=1)
    return group


def ingest(group, *, day: int, clicks: int = 3) -> int:
    result = group.ingest(
        {
            "user_id": [1, 2],
            "ts": [dt.datetime(2024, 1, day, tzinfo=dt.timezone.utc)] * 2,
            "clicks": [clicks, clicks + 1],
            "impressions": [10, 20],
            "country": ["de", "fr"],
        }
    )
    return result.version


def spine(day: int = 20) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1, 2], "ts": [dt.datetime(2024, 1, day)] * 2})


def feature(name: str, note: str | None = None) -> Node:
    return Node("feature", name, NS, note)


def group_node(name: str, note: str | None = None) -> Node:
    return Node("group", name, NS, note)


def named(kind: str, name: str) -> Node:
    return Node(kind, name, NS)


def relations(lineage: Lineage) -> set[tuple[str, str, str]]:
    return {(e.source.label, e.relation, e.target.label) for e in lineage.edges}


def catalog_rows(fs: FeatureStore, table: sa.Table) -> list:
    with open_catalog(fs.root).read() as conn:
        return list(conn.execute(sa.select(table)).all())


def task_kinds(fs: FeatureStore) -> list[tuple[str, int]]:
    return sorted((row.kind, row.target_id) for row in catalog_rows(fs, tables.tasks))


# -- derived features -----------------------------------------------------------------------------


def test_derived_upstream_is_inputs_transitively(fs: FeatureStore, signals) -> None:
    lineage = fs.lineage("user-signals.ctr_pct")

    assert lineage.root == feature("user-signals.ctr_pct")
    assert set(lineage.upstream) == {
        feature("user-signals.ctr"),
        feature("user-signals.clicks"),
        feature("user-signals.impressions"),
        group_node("user-signals"),
    }
    assert lineage.downstream == []
    assert ("user-signals.ctr", "derived_from", "user-signals.ctr_pct") in relations(lineage)
    assert ("user-signals.clicks", "derived_from", "user-signals.ctr") in relations(lineage)


def test_stored_feature_downstream_lists_users(fs: FeatureStore, signals) -> None:
    fs.create_alert("ctr-drop", Aggregation("ctr_pct", ["avg"]), Condition.LESS_THAN(1), notify=["log"])
    signals.create_live_table("daily", Aggregation("clicks", ["sum"]))

    lineage = fs.lineage("user-signals.clicks")

    assert set(lineage.downstream) == {
        feature("user-signals.ctr"),
        feature("user-signals.ctr_pct"),
        named("alert", "ctr-drop"),
        named("live_table", "daily"),
    }
    assert set(lineage.upstream) == {group_node("user-signals")}


def test_constant_derived_feature_linked_to_group(fs: FeatureStore, signals) -> None:
    signals.create_feature("one", dtype="int32", derived_from="1")

    assert fs.lineage("user-signals.one").upstream == [group_node("user-signals")]


# -- jobs -----------------------------------------------------------------------------------------


def test_job_links_source_and_target_groups(fs: FeatureStore, signals) -> None:
    job = fs.create_job("doubler", [FeatureGroupSource("user-signals")], sql_transform(CLICKS_SQL), Target("doubled"))
    assert job.run().wait(60).status == "succeeded"

    lineage = fs.lineage("job:doubler")

    assert lineage.upstream == [group_node("user-signals")]
    assert group_node("doubled") in lineage.downstream
    assert feature("doubled.double_clicks") in lineage.downstream
    assert ("doubler", "writes", "doubled") in relations(lineage)


def test_job_target_feature_upstream_reaches_source(fs: FeatureStore, signals) -> None:
    job = fs.create_job("doubler", [FeatureGroupSource("user-signals")], sql_transform(CLICKS_SQL), Target("doubled"))
    job.run().wait(60)

    lineage = fs.lineage("doubled.double_clicks")

    assert lineage.upstream == [group_node("doubled"), named("job", "doubler"), group_node("user-signals")]
    assert lineage.layers[named("job", "doubler")] == -2


def test_job_source_columns_link_features(fs: FeatureStore, signals) -> None:
    source = FeatureGroupSource("user-signals", columns=["clicks"])
    fs.create_job("doubler", [source], sql_transform(CLICKS_SQL), Target("doubled"))

    lineage = fs.lineage("job:doubler")

    assert feature("user-signals.clicks") in lineage.upstream
    assert ("user-signals.clicks", "reads", "doubler") in relations(lineage)
    assert ("doubler", "writes", "doubled (not created yet)") in relations(lineage)


def test_group_lineage_follows_jobs(fs: FeatureStore, signals) -> None:
    job = fs.create_job("doubler", [FeatureGroupSource("user-signals")], sql_transform(CLICKS_SQL), Target("doubled"))
    job.run().wait(60)
    fs.create_job("redoubler", [FeatureGroupSource("doubled")], sql_transform('SELECT * FROM "doubled"'), Target("quad"))

    downstream = fs.lineage("user-signals").downstream
    upstream = fs.lineage("doubled").upstream

    assert {named("job", "doubler"), group_node("doubled"), named("job", "redoubler")} <= set(downstream)
    assert feature("user-signals.ctr") in downstream
    assert upstream == [named("job", "doubler"), group_node("user-signals")]


# -- live tables and alerts ----------------------------------------------------------------------


def test_live_table_upstream(fs: FeatureStore, signals) -> None:
    live = signals.create_live_table("by-country", Aggregation("clicks", ["sum"], group_by=["country"]))

    lineage = fs.lineage(live)

    assert set(lineage.upstream) == {feature("user-signals.clicks"), feature("user-signals.country"), group_node("user-signals")}
    assert ("user-signals.country", "reads", "by-country") in relations(lineage)


def test_alert_on_derived_reaches_inputs(fs: FeatureStore, signals) -> None:
    fs.create_alert("ctr-drop", Aggregation("ctr", ["avg"], where="country = 'de'"), Condition.LESS_THAN(0.01), notify=["log"])

    lineage = fs.lineage("alert:ctr-drop")

    assert set(lineage.upstream) == {
        feature("user-signals.ctr"),
        feature("user-signals.country"),
        feature("user-signals.clicks"),
        feature("user-signals.impressions"),
        group_node("user-signals"),
    }
    assert ("user-signals.ctr", "watches", "ctr-drop") in relations(lineage)


# -- training sets -------------------------------------------------------------------------------


def test_training_set_recorded(fs: FeatureStore, signals) -> None:
    as_ada = FeatureStore(fs.namespace, root=fs.root, user="ada")

    training = as_ada.get_training_data(spine(), ["user-signals.ctr", "user-signals.clicks"], name="churn")

    [row] = catalog_rows(fs, tables.training_sets)
    assert training.training_set_id == row.id
    assert (row.namespace, row.name, row.user, row.spine_rows) == (NS, "churn", "ada", 2)
    assert row.features == ["user-signals.ctr", "user-signals.clicks"]
    assert [(g["name"], g["version"]) for g in row.groups] == [("user-signals", signals.version)]


def test_training_sets_listed(fs: FeatureStore, signals) -> None:
    as_ada = FeatureStore(fs.namespace, root=fs.root, user="ada")
    first = signals.version
    as_ada.get_training_data(spine(), ["user-signals.ctr"], name="old", as_of=first)
    ingest(signals, day=2)
    as_ada.get_training_data(spine(day=21), ["user-signals.*"])

    frame = fs.training_sets()

    assert frame.columns.tolist() == ["id", "name", "user", "created_at", "features", "versions", "spine_rows"]
    assert frame["id"].tolist() == [2, 1]
    assert frame["name"].isna().tolist() == [True, False]
    assert frame["name"].tolist()[1] == "old"
    assert frame["user"].tolist() == ["ada", "ada"]
    assert frame["versions"].tolist() == [{"user-signals": signals.version}, {"user-signals": first}]
    assert frame["features"].tolist()[1] == ["user-signals.ctr"]
    assert str(frame["created_at"].dt.tz) == "UTC"


def test_every_training_call_recorded(fs: FeatureStore, signals) -> None:
    fs.get_training_data(spine(), ["user-signals.*"])
    fs.get_training_data(spine(), ["user-signals.ctr"])

    rows = catalog_rows(fs, tables.training_sets)

    assert [row.name for row in rows] == [None, None]
    assert "user-signals.ctr_pct" in rows[0].features
    assert "user-signals.user_id" not in rows[0].features


def test_training_set_downstream_of_features(fs: FeatureStore, signals) -> None:
    training = fs.get_training_data(spine(), ["user-signals.ctr"], name="churn")
    node = named("training_set", f"churn #{training.training_set_id}")

    assert node in fs.lineage("user-signals.ctr").downstream
    assert node in fs.lineage("user-signals.clicks").downstream
    assert node not in fs.lineage("user-signals.country").downstream
    assert fs.lineage("training:churn").root == node
    assert fs.lineage(f"training:#{training.training_set_id}").root == node
    assert fs.lineage(training).root == node


def test_training_set_as_of_records_version_read(fs: FeatureStore, signals) -> None:
    first = signals.version
    ingest(signals, day=2, clicks=9)

    fs.get_training_data(spine(), ["user-signals.ctr"], name="old", as_of=first)
    fs.get_training_data(spine(), ["user-signals.ctr"], name="new")

    edges = {e.target.name: e.version for e in fs.lineage("user-signals.ctr").edges if e.relation == "trains_on"}
    assert edges == {"old #1": first, "new #2": signals.version}
    assert first < signals.version


def test_training_set_name_invalid(fs: FeatureStore, signals) -> None:
    with pytest.raises(DefinitionError, match="name must be a non-empty string"):
        fs.get_training_data(spine(), ["user-signals.ctr"], name="  ")

    assert catalog_rows(fs, tables.training_sets) == []


def test_training_set_record_failure_logged(
    fs: FeatureStore, signals, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def locked():
        raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(fs._catalog, "write", locked)

    training = fs.get_training_data(spine(), ["user-signals.ctr"], name="churn")

    assert training.training_set_id is None
    assert training.to_pandas()["ctr"].tolist() == [0.3, 0.2]
    assert "Recording the training set churn in the catalog failed" in caplog.text
    with pytest.raises(NotFoundError, match="recording it failed"):
        fs.lineage(training)


def test_training_set_outlives_group(fs: FeatureStore, signals) -> None:
    version = signals.version
    fs.get_training_data(spine(), ["user-signals.ctr"], name="churn")

    fs.delete_feature_group("user-signals")
    lineage = fs.lineage("training:churn")

    assert lineage.upstream == [feature("user-signals.ctr", "group deleted")]
    assert [e.version for e in lineage.edges] == [version]
    assert len(catalog_rows(fs, tables.training_sets)) == 1


def test_training_set_of_recreated_group(fs: FeatureStore, signals) -> None:
    fs.get_training_data(spine(), ["user-signals.ctr"], name="churn")
    fs.delete_feature_group("user-signals")
    again = fs.create_feature_group("user-signals", keys="user_id", event_time="ts")
    again.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "ctr": "float64"})

    assert fs.lineage("user-signals.ctr").downstream == []
    assert fs.lineage("training:churn").upstream == [feature("user-signals.ctr", "group deleted")]


def test_training_set_of_deleted_feature(fs: FeatureStore, signals) -> None:
    fs.get_training_data(spine(), ["user-signals.ctr_pct"], name="churn")

    signals.delete_feature("ctr_pct")

    assert fs.lineage("training:churn").upstream == [feature("user-signals.ctr_pct", "deleted")]
    assert fs.lineage("user-signals.ctr_pct").root == feature("user-signals.ctr_pct", "deleted")


# -- references ----------------------------------------------------------------------------------


def test_reference_objects_and_prefixes(fs: FeatureStore, signals) -> None:
    assert fs.lineage(signals).root == group_node("user-signals")
    assert fs.lineage("group:user-signals").root == group_node("user-signals")
    assert fs.lineage(signals.feature("ctr")).root == feature("user-signals.ctr")
    assert fs.lineage("feature:user-signals.ctr").root == feature("user-signals.ctr")


@pytest.mark.parametrize(
    ("reference", "error", "message"),
    [
        ("user-signals.ctx", NotFoundError, r"No feature 'user-signals.ctx'.*Did you mean 'user-signals.ctr'"),
        ("user-signal", NotFoundError, r"No group 'user-signal'.*Did you mean 'user-signals'"),
        ("alert:nope", NotFoundError, r"No alert 'nope'.*Existing: \(none\)"),
        ("training:churn", NotFoundError, r"No training set 'churn'.*name='churn'"),
        ("traning:churn", DefinitionError, r"'traning:churn' is invalid. Did you mean 'training'"),
        ("", DefinitionError, r"Lineage reference '' is invalid. Pass 'group.feature'"),
        (3, DefinitionError, r"Lineage reference 3 is invalid"),
    ],
)
def test_reference_invalid(fs: FeatureStore, signals, reference: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        fs.lineage(reference)


# -- rejected deletes ----------------------------------------------------------------------------


@pytest.fixture
def dependents(fs: FeatureStore, signals):
    """An alert and a live table on derived features of clicks, and a job that reads clicks."""
    fs.create_alert("ctr-drop", Aggregation("ctr_pct", ["avg"]), Condition.LESS_THAN(1), notify=["log"])
    signals.create_live_table("daily", Aggregation("ctr", ["avg"]))
    fs.create_job("doubler", [FeatureGroupSource("user-signals", columns=["clicks"])], sql_transform(CLICKS_SQL), Target("doubled"))
    fs.get_job("doubler").run().wait(60)
    return signals


def test_feature_delete_rejected(fs: FeatureStore, dependents) -> None:
    tasks_before = task_kinds(fs)
    expected = (
        "Feature 'user-signals.clicks' is used by: derived feature user-signals.ctr, derived feature "
        "user-signals.ctr_pct, alert ctr-drop, live table daily, job doubler; delete them first or pass cascade=True."
    )

    with pytest.raises(ConflictError) as raised:
        dependents.delete_feature("clicks")

    assert str(raised.value) == expected
    assert [f.name for f in dependents.features] == ["user_id", "ts", "clicks", "impressions", "country", "ctr", "ctr_pct"]
    assert [a.name for a in fs.list_alerts()] == ["ctr-drop"]
    assert [t.name for t in fs.list_live_tables()] == ["daily"]
    assert [j.name for j in fs.list_jobs()] == ["doubler"]
    assert task_kinds(fs) == tasks_before


def test_feature_delete_unused_allowed(fs: FeatureStore, dependents) -> None:
    dependents.delete_feature("country")

    assert "country" not in [f.name for f in dependents.features]


def test_group_delete_rejected(fs: FeatureStore, dependents) -> None:
    with pytest.raises(ConflictError, match=r"^Feature group 'user-signals' is used by: alert ctr-drop, live table daily, job doubler; "):
        fs.delete_feature_group("user-signals")

    assert dependents.count() == 2
    assert [a.name for a in fs.list_alerts()] == ["ctr-drop"]


def test_job_target_delete_rejected(fs: FeatureStore, dependents) -> None:
    with pytest.raises(ConflictError, match="Feature group 'doubled' is used by: job doubler;"):
        fs.delete_feature_group("doubled")

    assert fs.get_feature_group("doubled").count() == 2


def test_group_delete_with_own_derived_allowed(fs: FeatureStore, signals) -> None:
    fs.delete_feature_group("user-signals")

    assert fs.list_feature_groups() == []


# -- cascading deletes ---------------------------------------------------------------------------


def test_feature_delete_cascades(fs: FeatureStore, dependents) -> None:
    other = fs.create_alert("many-clicks", Aggregation("impressions", ["max"]), Condition.GREATER_THAN(100), notify=["log"])
    live_folder = fs.root / "live" / str(fs.get_live_table("daily")._id)
    assert live_folder.is_dir()

    dependents.delete_feature("clicks", cascade=True)

    assert [f.name for f in dependents.features] == ["user_id", "ts", "impressions", "country"]
    assert [a.name for a in fs.list_alerts()] == ["many-clicks"]
    assert fs.list_live_tables() == []
    assert fs.list_jobs() == []
    assert task_kinds(fs) == [("alert", other._id)]
    assert catalog_rows(fs, tables.job_runs) == []
    assert not live_folder.exists()
    assert dependents.to_pandas().columns.tolist() == ["user_id", "ts", "impressions", "country"]
    assert fs.get_feature_group("doubled").count() == 2


def test_group_delete_cascades(fs: FeatureStore, dependents) -> None:
    fs.get_training_data(spine(), ["user-signals.ctr"], name="churn")

    fs.delete_feature_group("user-signals", cascade=True)

    assert [g.name for g in fs.list_feature_groups()] == ["doubled"]
    assert (fs.list_alerts(), fs.list_live_tables(), fs.list_jobs()) == ([], [], [])
    assert task_kinds(fs) == []
    for table in (tables.alert_events, tables.live_refreshes, tables.job_runs):
        assert catalog_rows(fs, table) == []
    assert fs.get_feature_group("doubled").count() == 2
    assert len(catalog_rows(fs, tables.training_sets)) == 1
    assert fs.lineage("doubled").upstream == []


def test_cascade_without_dependents_same_as_plain(fs: FeatureStore, signals) -> None:
    signals.delete_feature("country", cascade=True)
    fs.delete_feature_group("user-signals", cascade=True)

    assert fs.list_feature_groups() == []


# -- display -------------------------------------------------------------------------------------


def test_svg_well_formed_with_labels(fs: FeatureStore, dependents) -> None:
    lineage = fs.lineage("user-signals")

    root = ET.fromstring(lineage.to_svg())
    texts = [t.text for t in root.iter(f"{SVG}text")]

    assert root.tag == f"{SVG}svg"
    for node in lineage.nodes:
        assert node.label in texts
    assert root.find(f".//{SVG}script") is None


def test_svg_escapes_names(fs: FeatureStore, signals) -> None:
    fs.get_training_data(spine(), ["user-signals.ctr"], name='a<b & "c">')
    svg = fs.lineage("user-signals.ctr").to_svg()

    texts = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]

    assert 'a<b & "c"> #1' in texts
    assert "a&lt;b &amp;" in svg


def test_display_bundle(fs: FeatureStore, signals) -> None:
    bundle = fs.lineage("user-signals.ctr")._repr_mimebundle_()

    assert bundle["text/plain"].startswith("Lineage of feature user-signals.ctr in acme/ml/engagement")
    assert bundle["text/html"].startswith('<div class="raise-lineage"')
    assert ET.fromstring(bundle["image/svg+xml"]).tag == f"{SVG}svg"


def test_text_tree(fs: FeatureStore, signals) -> None:
    fs.create_alert("ctr-drop", Aggregation("ctr_pct", ["avg"]), Condition.LESS_THAN(1), notify=["log"])

    text = repr(fs.lineage("user-signals.ctr"))

    assert text.splitlines() == [
        "Lineage of feature user-signals.ctr in acme/ml/engagement",
        "upstream:",
        "  <- derived_from: feature user-signals.clicks",
        "    <- contains: group user-signals",
        "  <- derived_from: feature user-signals.impressions",
        "    <- contains: group user-signals (shown above)",
        "downstream:",
        "  -> derived_from: feature user-signals.ctr_pct",
        "    -> watches: alert ctr-drop",
    ]


def test_edge_table(fs: FeatureStore, signals) -> None:
    fs.get_training_data(spine(), ["user-signals.ctr"], name="churn")

    frame = fs.lineage("user-signals.ctr").to_pandas()

    assert frame.columns.tolist() == ["source_kind", "source", "relation", "target_kind", "target", "version"]
    trains = frame[frame["relation"] == "trains_on"]
    assert trains[["source", "target", "version"]].values.tolist() == [["user-signals.ctr", "churn #1", signals.version]]


def test_cycle_terminates_and_draws() -> None:
    group, job = group_node("embeddings"), named("job", "refresh")
    edges = [Edge(group, job, "reads"), Edge(job, group, "writes")]

    lineage = Lineage(group, edges)

    assert lineage.upstream == [job]
    assert lineage.downstream == []
    assert ET.fromstring(lineage.to_svg()).tag == f"{SVG}svg"
    assert "<- writes: job refresh" in repr(lineage)


def test_layers_follow_longest_path(fs: FeatureStore, signals) -> None:
    layers = fs.lineage("user-signals").layers

    assert layers[feature("user-signals.clicks")] == 1
    assert layers[feature("user-signals.ctr")] == 2
    assert layers[feature("user-signals.ctr_pct")] == 3


def test_job_source_filter_blocks_delete(fs: FeatureStore, signals) -> None:
    source = FeatureGroupSource("user-signals", where="impressions > 0")
    fs.create_job("doubler", [source], sql_transform(CLICKS_SQL), Target("doubled"))

    with pytest.raises(ConflictError, match="'user-signals.impressions' is used by: derived feature user-signals.ctr, .*job doubler;"):
        signals.delete_feature("impressions")

    assert ("user-signals.impressions", "reads", "doubler") in relations(fs.lineage("job:doubler"))


def test_svg_skipping_edge_avoids_boxes(fs: FeatureStore, signals) -> None:
    fs.get_training_data(spine(), ["user-signals.clicks", "user-signals.ctr"], name="churn")

    root = ET.fromstring(fs.lineage("user-signals.clicks").to_svg())
    paths = {g.find(f"{SVG}title").text: g.find(f"{SVG}path").get("d") for g in root.iter(f"{SVG}g") if g.get("class") == "edge"}

    version = signals.version
    assert " L " in paths[f"user-signals.clicks trains_on v{version} \u2192 churn #1"]
    assert " L " not in paths[f"user-signals.ctr trains_on v{version} \u2192 churn #1"]


def test_cycle_upstream_of_root_draws() -> None:
    group, job, embedding = group_node("embeddings"), named("job", "refresh"), feature("embeddings.vector")
    edges = [Edge(group, embedding, "contains"), Edge(group, job, "reads"), Edge(job, group, "writes")]

    lineage = Lineage(embedding, edges)

    assert set(lineage.upstream) == {group, job}
    assert sorted(lineage.layers.values()) == [-2, -1, 0]
    assert ET.fromstring(lineage.to_svg()).tag == f"{SVG}svg"


def test_two_job_cycle_draws(fs: FeatureStore) -> None:
    for name in ("a", "b"):
        group = fs.create_feature_group(name, keys="k")
        group.create_features_from_schema({"k": "int64", "v": "int64"})
    fs.create_job("ab", [FeatureGroupSource("a")], sql_transform('SELECT k, v FROM "a"'), Target("b"))
    fs.create_job("ba", [FeatureGroupSource("b")], sql_transform('SELECT k, v FROM "b"'), Target("a"))

    for reference in ("a", "b", "job:ab", "job:ba", "a.v"):
        svg = fs.lineage(reference).to_svg()

        assert ET.fromstring(svg).tag == f"{SVG}svg"


def test_running_job_does_not_recreate_cascaded_target(fs: FeatureStore, signals) -> None:
    import threading

    from raise_jupyter.transforms import python_transform

    started, release = threading.Event(), threading.Event()

    def slow_copy(frame: pd.DataFrame) -> pd.DataFrame:
        started.set()
        release.wait(30)
        return frame[["user_id", "ts", "clicks"]]

    ingest(signals, day=1)
    job = fs.create_job("slow", [FeatureGroupSource("user-signals")], python_transform(slow_copy), Target("copied"))
    release.set()
    job.run(full=True).wait()
    release.clear()
    started.clear()
    run = job.run(full=True)
    started.wait(30)

    fs.delete_feature_group("copied", cascade=True)
    release.set()
    run.wait(30)

    assert "copied" not in [g.name for g in fs.list_feature_groups()]
    assert fs.list_jobs() == []
