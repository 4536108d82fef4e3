"""StoreBrowser across namespaces, and how groups, stores, runs and results display."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flight_data import FLIGHT_ROWS

from raise_jupyter import Aggregation, Distribution, FeatureStore, display
from raise_jupyter.jobs import FeatureGroupSource, Target
from raise_jupyter.transforms import sql_transform
from raise_jupyter.widgets import GroupPanel, StoreBrowser
from raise_jupyter.widgets import _browser

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def ads(root: Path) -> FeatureStore:
    """A second namespace under the same root, with two groups."""
    store = FeatureStore("acme/ads", root=root)
    clicks = store.create_feature_group("clicks", keys="ad_id", description="Ad clicks per day")
    clicks.create_features_from_schema({"ad_id": "int64", "clicks": "int64"})
    clicks.create_feature("clicks_k", dtype="float64", derived_from="clicks / 1000")
    clicks.ingest({"ad_id": [1, 2, 3, 4], "clicks": [10, 2000, 30, None]})
    impressions = store.create_feature_group("impressions", keys="ad_id")
    impressions.create_features_from_schema({"ad_id": "int64", "impressions": "int64"})
    return store


@pytest.fixture
def in_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(display, "in_kernel", lambda: True)


def opened_state(recorder: Any, model_id: str) -> dict[str, Any]:
    """Return the state that opened widget ``model_id``; fail if it was never opened."""
    opened = [m for m in recorder.messages if m.comm_id == model_id and m.kind == "comm_open"]
    assert len(opened) == 1, f"widget {model_id} was not opened"
    return opened[0].state


def last_sent(recorder: Any, model_id: str, trait: str) -> Any:
    """Return the latest value of ``trait`` that widget ``model_id`` sent, opening state included."""
    values = [m.state[trait] for m in recorder.messages if m.comm_id == model_id and trait in m.state]
    assert values, f"widget {model_id} never sent {trait}"
    return values[-1]


def child_ids(recorder: Any, model_id: str) -> list[str]:
    return [child.removeprefix("IPY_MODEL_") for child in last_sent(recorder, model_id, "children")]


# -- listing ------------------------------------------------------------------------------------


def test_lists_every_namespace(recorder, fs: FeatureStore, flights, ads: FeatureStore) -> None:
    browser = StoreBrowser(fs)

    assert browser.view.root == str(fs.root)
    assert browser.view.current == "acme/ml/engagement"
    assert browser.view.hidden == 0
    assert browser.view.error == ""
    assert browser.view.namespaces == [
        {
            "namespace": "acme/ads",
            "groups": [
                {"name": "clicks", "description": "Ad clicks per day", "online": False, "features": 3},
                {"name": "impressions", "description": "", "online": False, "features": 2},
            ],
        },
        {
            "namespace": "acme/ml/engagement",
            "groups": [{"name": "flights", "description": "Departures from New York", "online": True, "features": len(flights.features)}],
        },
    ]


def test_same_listing_from_other_namespace(recorder, fs: FeatureStore, flights, ads: FeatureStore) -> None:
    browser = StoreBrowser(ads)

    assert browser.view.current == "acme/ads"
    assert [n["namespace"] for n in browser.view.namespaces] == ["acme/ads", "acme/ml/engagement"]


def test_empty_root_lists_nothing(recorder, fs: FeatureStore) -> None:
    browser = StoreBrowser(fs)

    assert browser.view.namespaces == []
    assert browser.view.hidden == 0


def test_refresh_lists_new_group(recorder, fs: FeatureStore, flights, ads: FeatureStore) -> None:
    browser = StoreBrowser(fs)
    ads.create_feature_group("conversions")

    browser.view._handle_custom_msg({"type": "refresh"}, [])

    [listed] = [n for n in browser.view.namespaces if n["namespace"] == "acme/ads"]
    assert [g["name"] for g in listed["groups"]] == ["clicks", "conversions", "impressions"]


def test_groups_over_limit_counted(recorder, fs: FeatureStore, flights, ads: FeatureStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_browser, "MAX_GROUPS", 2)

    browser = StoreBrowser(fs)

    listed = [g["name"] for n in browser.view.namespaces for g in n["groups"]]
    assert listed == ["clicks", "impressions"]
    assert browser.view.hidden == 1


# -- opening groups -----------------------------------------------------------------------------


def test_open_group_of_other_namespace(recorder, fs: FeatureStore, flights, ads: FeatureStore) -> None:
    browser = StoreBrowser(fs)

    browser.view._handle_custom_msg({"type": "open", "namespace": "acme/ads", "name": "clicks"}, [])
    panel = browser.panel.wait()

    assert isinstance(panel, GroupPanel)
    assert panel.group.namespace == "acme/ads"
    assert panel.group.name == "clicks"
    assert panel.view.header["rows"] == 4
    assert panel.view.stats["clicks"]["count"] == 3
    assert browser.view.opened == "acme/ads/clicks"
    assert browser.children[1].children == (panel,)
    assert browser.view.error == ""


def test_open_group_of_own_namespace(recorder, fs: FeatureStore, flights, ads: FeatureStore) -> None:
    browser = StoreBrowser(fs)

    panel = browser.open_group("acme/ml/engagement", "flights").wait()

    assert panel.group._store is fs
    assert panel.view.header["rows"] == FLIGHT_ROWS


def test_open_unknown_group_shows_error(recorder, fs: FeatureStore, flights, ads: FeatureStore) -> None:
    browser = StoreBrowser(fs)

    browser.view._handle_custom_msg({"type": "open", "namespace": "acme/ads", "name": "clickz"}, [])

    assert "clickz" in browser.view.error
    assert browser.panel is None
    assert browser.view.opened == ""


def test_open_replaces_previous_panel(recorder, fs: FeatureStore, flights, ads: FeatureStore) -> None:
    browser = StoreBrowser(fs)
    browser.open_group("acme/ads", "clicks")

    second = browser.open_group("acme/ml/engagement", "flights")

    assert browser.children[1].children == (second,)
    assert browser.view.opened == "acme/ml/engagement/flights"


# -- display bundles ----------------------------------------------------------------------------


def test_not_in_kernel_under_pytest() -> None:
    assert display.in_kernel() is False


def test_group_bundle_outside_kernel(recorder, flights) -> None:
    bundle = flights._repr_mimebundle_()

    assert set(bundle) == {"text/plain", "text/html"}
    assert bundle["text/plain"].startswith("acme/ml/engagement/flights: keys ")
    assert "\n  dep_delay " in bundle["text/plain"]
    assert "<b>acme/ml/engagement/flights</b>" in bundle["text/html"]
    assert recorder.messages == []


def test_group_bundle_in_kernel(recorder, flights, in_kernel) -> None:
    bundle = flights._repr_mimebundle_()

    assert set(bundle) == {"text/plain", "text/html", WIDGET_MIME}
    view = bundle[WIDGET_MIME]
    assert view["version_major"] == 2
    assert opened_state(recorder, view["model_id"])["_model_name"] == "VBoxModel"
    inner = child_ids(recorder, view["model_id"])[0]
    assert opened_state(recorder, inner)["_anywidget_id"] == "raise_jupyter.widgets._panel.GroupPanelView"
    assert last_sent(recorder, inner, "header")["name"] == "flights"
    assert last_sent(recorder, inner, "header")["rows"] == FLIGHT_ROWS


def test_deleted_group_bundle_keeps_text(recorder, fs: FeatureStore, flights, in_kernel) -> None:
    fs.delete_feature_group("flights")

    bundle = flights._repr_mimebundle_()

    assert bundle["text/plain"] == "FeatureGroup(acme/ml/engagement/flights)"
    assert "text/html" not in bundle


def test_store_bundle_outside_kernel(recorder, fs: FeatureStore, flights) -> None:
    bundle = fs._repr_mimebundle_()

    assert set(bundle) == {"text/plain", "text/html"}
    assert bundle["text/plain"] == repr(fs)
    assert "1 feature group</p>" in bundle["text/html"]
    assert recorder.messages == []


def test_store_bundle_in_kernel(recorder, fs: FeatureStore, flights, ads: FeatureStore, in_kernel) -> None:
    bundle = fs._repr_mimebundle_()

    assert set(bundle) == {"text/plain", "text/html", WIDGET_MIME}
    browser = bundle[WIDGET_MIME]["model_id"]
    assert opened_state(recorder, browser)["_model_name"] == "VBoxModel"
    view = opened_state(recorder, child_ids(recorder, browser)[0])
    assert view["_anywidget_id"] == "raise_jupyter.widgets._browser.StoreBrowserView"
    assert view["current"] == "acme/ml/engagement"


@pytest.fixture
def finished_run(fs: FeatureStore, flights):
    job = fs.create_job(
        "flight-km",
        [FeatureGroupSource("flights")],
        sql_transform("SELECT flight_id, sched_dep, CAST(distance * 1.609 AS DOUBLE) AS distance_km FROM flights"),
        Target("flights-km"),
    )
    run = job.run().wait(60)
    assert run.status == "succeeded", run.error
    return run


def test_run_bundle_outside_kernel(recorder, finished_run) -> None:
    bundle = finished_run._repr_mimebundle_()

    assert set(bundle) == {"text/plain", "text/html"}
    assert bundle["text/plain"] == repr(finished_run)
    assert '<progress value="1.0000"' in bundle["text/html"]
    assert recorder.messages == []


def test_run_bundle_in_kernel(recorder, finished_run, in_kernel) -> None:
    bundle = finished_run._repr_mimebundle_()

    assert set(bundle) == {"text/plain", "text/html", WIDGET_MIME}
    progress = opened_state(recorder, bundle[WIDGET_MIME]["model_id"])
    assert progress["_anywidget_id"] == "raise_jupyter.widgets._progress.JobProgress"
    assert progress["run_id"] == finished_run.id
    assert progress["job"] == "flight-km"


def test_distribution_bundle_outside_kernel(recorder, flights) -> None:
    result = flights.analyze(Distribution("distance", bins=5))

    bundle = result._repr_mimebundle_()

    assert set(bundle) == {"text/plain", "text/html"}
    assert "<svg" in bundle["text/html"]
    assert recorder.messages == []


def test_distribution_bundle_in_kernel(recorder, flights, in_kernel) -> None:
    result = flights.analyze(Distribution("distance", bins=5))

    bundle = result._repr_mimebundle_()

    assert set(bundle) == {"text/plain", "text/html", WIDGET_MIME}
    chart = bundle[WIDGET_MIME]["model_id"]
    assert opened_state(recorder, chart)["_model_name"] == "VBoxModel"
    assert "raise-distribution" in last_sent(recorder, chart, "_dom_classes")
    vega = child_ids(recorder, chart)[0]
    assert opened_state(recorder, vega)["_model_name"] == "AnyModel"
    counts = [row["count"] for row in _spec_rows(last_sent(recorder, vega, "spec"))]
    assert counts == result.to_arrow().column("count").to_pylist()


def test_aggregation_bundle_has_no_widget(recorder, flights, in_kernel) -> None:
    result = flights.analyze(Aggregation("distance", ["sum"]))

    bundle = result._repr_mimebundle_()

    assert set(bundle) == {"text/plain", "text/html"}
    assert recorder.messages == []


def _spec_rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    data = spec["data"]
    return data["values"] if "values" in data else spec["datasets"][data["name"]]


def test_bundle_survives_widget_failure(recorder, flights, in_kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    from raise_jupyter import widgets

    def broken(group: Any) -> Any:
        raise RuntimeError("front end missing")

    monkeypatch.setattr(widgets, "GroupPanel", broken)

    bundle = flights._repr_mimebundle_()

    assert set(bundle) == {"text/plain", "text/html"}
    assert "<b>acme/ml/engagement/flights</b>" in bundle["text/html"]
