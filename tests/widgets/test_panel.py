"""GroupPanel: header, feature rows, statistics, preview, related objects and what it sends."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from flight_data import FLIGHT_ROWS, flight_rows

from raise_jupyter import Aggregation, Condition, FeatureStore
from raise_jupyter.jobs import FeatureGroupSource, Target
from raise_jupyter.profile import MIN_SAMPLE_ROWS, PROFILE_VALUES
from raise_jupyter.transforms import sql_transform
from raise_jupyter.widgets import AlertEditor, DistributionChart, GroupPanel
from raise_jupyter.widgets import _panel
from raise_jupyter.widgets._common import MESSAGE_LIMIT

FEATURE_ROWS = [
    {"name": "flight_id", "dtype": "int64", "derived": "", "description": "", "role": "key"},
    {"name": "sched_dep", "dtype": "timestamp", "derived": "", "description": "", "role": "event time"},
    {"name": "carrier", "dtype": "string", "derived": "", "description": "", "role": "stored"},
    {"name": "distance", "dtype": "int64", "derived": "", "description": "", "role": "stored"},
    {"name": "cancelled", "dtype": "bool", "derived": "", "description": "", "role": "stored"},
    {"name": "dep_delay", "dtype": "float64", "derived": "", "description": "Departure delay in minutes", "role": "stored"},
    {"name": "delay_hours", "dtype": "float64", "derived": "dep_delay / 60", "description": "dep_delay in hours", "role": "derived"},
]


def preview_updates(recorder: Any, panel: GroupPanel) -> list[Any]:
    """Messages after the opening one that carry the preview as a binary buffer."""
    return [m for m in recorder.of(panel.view) if m.kind == "comm_msg" and m.data.get("buffer_paths") == [["preview"]]]


def decode_preview(panel: GroupPanel) -> list[dict[str, str | None]]:
    """Split the preview buffer as the front end does: cells on U+001F, U+0000 for null."""
    columns = panel.view.preview_columns
    cells = panel.view.preview.decode("utf-8").split("\x1f")
    assert len(cells) % len(columns) == 0
    rows = []
    for start in range(0, len(cells), len(columns)):
        row = cells[start : start + len(columns)]
        rows.append({c: (None if cell == "\x00" else cell) for c, cell in zip(columns, row, strict=True)})
    return rows


def assert_messages_sendable(recorder: Any) -> None:
    """Every recorded message is strict JSON (``size`` raises on NaN) and under the limit."""
    assert recorder.messages
    for message in recorder.messages:
        assert message.size < MESSAGE_LIMIT, (message.kind, list(message.state)[:5])


# -- header and feature rows --------------------------------------------------------------------


def test_header_describes_group(recorder, flights) -> None:
    panel = GroupPanel(flights).wait()

    header = panel.view.header
    assert header["namespace"] == "acme/ml/engagement"
    assert header["name"] == "flights"
    assert header["rows"] == FLIGHT_ROWS
    assert header["version"] == flights.version
    assert header["keys"] == ["flight_id"]
    assert header["event_time"] == "sched_dep"
    assert header["online"] is True
    assert header["description"] == "Departures from New York"
    assert panel.view.error == ""


def test_header_of_offline_group_without_keys(recorder, fs: FeatureStore) -> None:
    group = fs.create_feature_group("plain")
    group.create_features_from_schema({"x": "float64"})

    header = GroupPanel(group).wait().view.header

    assert header["keys"] == []
    assert header["event_time"] is None
    assert header["online"] is False
    assert header["rows"] == 0


def test_feature_rows_show_definitions(recorder, flights) -> None:
    panel = GroupPanel(flights)

    assert panel.view.features == FEATURE_ROWS


# -- statistics ---------------------------------------------------------------------------------


def test_stats_equal_group_profile(recorder, flights) -> None:
    panel = GroupPanel(flights).wait()

    expected = {f.name: f.to_dict() for f in flights.profile().features}
    assert panel.view.stats == expected
    assert panel.view.stats_status == f"Statistics of version {flights.version} from all {FLIGHT_ROWS:,} rows."


def test_stats_match_pandas(recorder, flights) -> None:
    frame = flight_rows(0, FLIGHT_ROWS)

    stats = GroupPanel(flights).wait().view.stats

    delay = frame["dep_delay"].dropna().astype(float)
    assert stats["dep_delay"]["count"] == len(delay)
    assert stats["dep_delay"]["null_rate"] == pytest.approx(frame["dep_delay"].isna().mean())
    assert stats["dep_delay"]["min"] == delay.min()
    assert stats["dep_delay"]["max"] == delay.max()
    assert stats["delay_hours"]["mean"] == pytest.approx((delay / 60).mean())
    assert stats["carrier"]["labels"][0] == frame["carrier"].value_counts().index[0]


def test_stats_status_while_computing(recorder, flights) -> None:
    panel = GroupPanel(flights).wait()

    statuses = [s for s in recorder.updates(panel.view, "stats_status") if s]
    assert statuses == [
        f"Computing statistics of 7 features from all {FLIGHT_ROWS:,} rows\u2026",
        f"Statistics of version {flights.version} from all {FLIGHT_ROWS:,} rows.",
    ]


def test_stats_arrive_batch_by_batch(recorder, flights, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_panel, "PROFILE_BATCH", 3)

    panel = GroupPanel(flights).wait()

    sizes = [len(stats) for stats in recorder.updates(panel.view, "stats")]
    assert sizes == [0, 3, 6, 7]


def test_stats_failure_shown_in_status(recorder, flights, monkeypatch: pytest.MonkeyPatch) -> None:
    from raise_jupyter import profile

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(profile, "profile_features", broken)

    panel = GroupPanel(flights).wait()

    assert panel.view.stats_status == "Statistics failed: disk on fire"
    assert panel.view.features == FEATURE_ROWS


def test_stale_stats_do_not_overwrite_refresh(recorder, flights, monkeypatch: pytest.MonkeyPatch) -> None:
    from raise_jupyter import profile

    original = profile.profile_features
    old_version = flights.version
    old_started, release, fresh = threading.Event(), threading.Event(), threading.Event()

    def hold_old_version(group: Any, plan: Any, names: Any) -> Any:
        if plan.files.version == old_version:
            old_started.set()
            assert release.wait(60), "the test never released the first profile"
        return original(group, plan, names)

    monkeypatch.setattr(profile, "profile_features", hold_old_version)
    panel = GroupPanel(flights)
    assert old_started.wait(60)
    flights.ingest(flight_rows(FLIGHT_ROWS, 50))
    new_status = f"Statistics of version {flights.version} from all {FLIGHT_ROWS + 50:,} rows."
    panel.view.observe(lambda change: change["new"] == new_status and fresh.set(), "stats_status")

    panel.refresh()
    assert fresh.wait(60)
    release.set()
    panel.wait()

    assert panel.view.stats_status == new_status
    assert panel.view.stats["flight_id"]["count"] == FLIGHT_ROWS + 50


def test_stats_of_long_text_stay_small(recorder, fs: FeatureStore) -> None:
    group = fs.create_feature_group("documents", keys="doc_id")
    group.create_features_from_schema({"doc_id": "int64", "body": "string"})
    bodies = [letter * 300_000 for letter in "abcdef"]
    group.ingest({"doc_id": list(range(6)), "body": bodies})

    panel = GroupPanel(group).wait()

    body = panel.view.stats["body"]
    assert body["count"] == 6
    assert body["histogram"] == [1] * 5
    for text in [body["min"], body["max"], *body["labels"]]:
        assert len(text) <= 40
        assert text[:39] == text[0] * 39
    assert body["min"].startswith("a")
    assert body["max"].startswith("f")
    assert_messages_sendable(recorder)


# -- preview ------------------------------------------------------------------------------------


def test_preview_decodes_to_first_rows(recorder, flights) -> None:
    frame = flight_rows(0, FLIGHT_ROWS).head(50)
    panel = GroupPanel(flights)

    panel.view.tab = "preview"
    panel.wait()

    assert panel.view.preview_columns == [row["name"] for row in FEATURE_ROWS]
    assert panel.view.preview_note == f"Version {flights.version}, 50 rows of {FLIGHT_ROWS} (earliest by sched_dep)."
    rows = decode_preview(panel)
    assert len(rows) == 50
    for row, (_, expected) in zip(rows, frame.iterrows(), strict=True):
        assert int(row["flight_id"]) == expected["flight_id"]
        assert pd.Timestamp(row["sched_dep"]) == expected["sched_dep"]
        assert row["carrier"] == (None if pd.isna(expected["carrier"]) else expected["carrier"])
        assert int(row["distance"]) == expected["distance"]
        assert row["cancelled"] == str(bool(expected["cancelled"]))
        if pd.isna(expected["dep_delay"]):
            assert row["dep_delay"] is None
            assert row["delay_hours"] is None
        else:
            assert float(row["dep_delay"]) == expected["dep_delay"]
            # The preview shows six significant digits.
            assert float(row["delay_hours"]) == pytest.approx(expected["dep_delay"] / 60, rel=1e-5)


def test_preview_sent_as_binary_buffer(recorder, flights) -> None:
    panel = GroupPanel(flights)

    panel.view.tab = "preview"
    panel.wait()

    sent = preview_updates(recorder, panel)
    assert len(sent) == 1
    assert sent[0].buffers == [panel.view.preview]


def test_preview_of_empty_group(recorder, fs: FeatureStore) -> None:
    group = fs.create_feature_group("plain")
    group.create_features_from_schema({"x": "float64", "y": "string"})
    panel = GroupPanel(group)

    panel.view.tab = "preview"
    panel.wait()

    assert panel.view.preview_columns == ["x", "y"]
    assert panel.view.preview == b""
    assert panel.view.preview_note == "Version 1, 0 rows of 0 (in storage order)."
    assert panel.view.error == ""


# -- alerts, live tables and jobs ---------------------------------------------------------------


@pytest.fixture
def readers(fs: FeatureStore, flights):
    """An alert, a live table and two jobs on ``flights``, plus a job that does not touch it."""
    fs.create_alert("late-departures", Aggregation("dep_delay", ["avg"]), Condition.GREATER_THAN(30), notify="log")
    flights.create_live_table("carrier_distance", Aggregation("distance", ["sum"], group_by=["carrier"]), refresh="daily")

    fs.create_job(
        "carrier-stats",
        [FeatureGroupSource("flights")],
        sql_transform("SELECT flight_id, sched_dep, distance * 1.609 AS distance_km FROM flights"),
        Target("flight-km"),
    )
    corrections = fs.create_feature_group("delay-corrections", keys="flight_id", event_time="sched_dep")
    corrections.create_features_from_schema({"flight_id": "int64", "sched_dep": "timestamp", "dep_delay": "float64"})
    fs.create_job(
        "apply-corrections",
        [FeatureGroupSource("delay-corrections")],
        sql_transform('SELECT flight_id, sched_dep, dep_delay FROM "delay-corrections"'),
        Target("flights"),
        schedule="daily",
    )
    fs.create_job(
        "unrelated",
        [FeatureGroupSource("delay-corrections")],
        sql_transform('SELECT flight_id, sched_dep, dep_delay * 2 AS doubled FROM "delay-corrections"'),
        Target("doubled-delays"),
    )
    return flights


def test_alerts_tab_lists_alerts_of_group(recorder, readers) -> None:
    average = flight_rows(0, FLIGHT_ROWS)["dep_delay"].dropna().astype(float).mean()
    panel = GroupPanel(readers)

    panel.view.tab = "alerts"
    panel.wait()

    assert panel.view.related["alerts"] == [
        {
            "name": "late-departures",
            "metric": "avg of dep_delay",
            "condition": "GREATER_THAN(30)",
            "state": "firing" if average > 30 else "ok",
            "schedule": "hourly",
            "paused": False,
        }
    ]


def test_live_tab_lists_live_tables(recorder, readers) -> None:
    carriers = flight_rows(0, FLIGHT_ROWS)["carrier"]
    panel = GroupPanel(readers)

    panel.view.tab = "live"
    panel.wait()

    [live] = panel.view.related["live"]
    assert live["name"] == "carrier_distance"
    assert live["refresh"] == "daily"
    assert live["rows"] == carriers.nunique(dropna=False)
    assert live["refreshed_at"] != "never"


def test_jobs_tab_lists_readers_and_writers(recorder, readers) -> None:
    panel = GroupPanel(readers)

    panel.view.tab = "jobs"
    panel.wait()

    assert panel.view.related["jobs"] == [
        {"name": "apply-corrections", "role": "writes", "transform": "sql_transform", "schedule": "daily"},
        {"name": "carrier-stats", "role": "reads", "transform": "sql_transform", "schedule": "on demand"},
    ]


def test_related_tabs_empty_without_readers(recorder, flights) -> None:
    panel = GroupPanel(flights)

    panel.view.tab = "jobs"
    panel.wait()

    assert panel.view.related == {"alerts": [], "live": [], "jobs": []}


def test_tab_loaded_once(recorder, readers) -> None:
    panel = GroupPanel(readers)

    panel.view.tab = "alerts"
    panel.wait()
    panel.view.tab = "features"
    panel.view.tab = "alerts"
    panel.wait()

    assert len(recorder.updates(panel.view, "related")) == 2  # opening state, then one load


# -- interaction --------------------------------------------------------------------------------


def test_selecting_feature_opens_chart(recorder, flights) -> None:
    delays = flight_rows(0, FLIGHT_ROWS)["dep_delay"].dropna()
    panel = GroupPanel(flights).wait()

    panel.view.selected = "dep_delay"

    assert isinstance(panel.chart, DistributionChart)
    assert panel.chart.feature == "dep_delay"
    assert panel.children[1].children == (panel.chart,)
    counts = panel.chart.result.to_arrow().column("count").to_pylist()
    assert sum(counts) == len(delays)


def test_selecting_other_feature_reuses_chart(recorder, flights) -> None:
    carriers = flight_rows(0, FLIGHT_ROWS)["carrier"].value_counts()
    panel = GroupPanel(flights).wait()
    panel.view.selected = "dep_delay"
    chart = panel.chart

    panel.view.selected = "carrier"

    assert panel.chart is chart
    assert chart.feature == "carrier"
    assert chart.result.values["count"] == {str(k): int(v) for k, v in carriers.items()}


def test_open_chart_selects_feature(recorder, flights) -> None:
    panel = GroupPanel(flights)

    chart = panel.open_chart("distance")

    assert panel.view.selected == "distance"
    assert chart.feature == "distance"


def test_open_chart_computes_once(recorder, flights, monkeypatch: pytest.MonkeyPatch) -> None:
    analyses = []
    analyze = flights.analyze

    def counting(analysis: Any, **kwargs: Any) -> Any:
        analyses.append(analysis)
        return analyze(analysis, **kwargs)

    monkeypatch.setattr(flights, "analyze", counting)
    panel = GroupPanel(flights)

    panel.open_chart("distance")
    panel.view.selected = "carrier"

    assert [a.feature for a in analyses] == ["distance", "carrier"]


def test_new_alert_message_opens_editor(recorder, flights) -> None:
    panel = GroupPanel(flights).wait()
    panel.view.selected = "dep_delay"

    panel.view._handle_custom_msg({"type": "new_alert"}, [])

    assert isinstance(panel.editor, AlertEditor)
    assert panel.children[1].children == (panel.editor,)
    assert panel.editor.form["group"] == "flights"
    assert panel.editor.form["feature"] == "dep_delay"


def test_refresh_after_ingest(recorder, flights) -> None:
    panel = GroupPanel(flights).wait()
    version = flights.version
    flights.ingest(flight_rows(FLIGHT_ROWS, 50))
    delays = pd.concat([flight_rows(0, FLIGHT_ROWS), flight_rows(FLIGHT_ROWS, 50)])["dep_delay"]

    assert panel.view.header["rows"] == FLIGHT_ROWS
    panel.view._handle_custom_msg({"type": "refresh"}, [])
    panel.wait()

    assert panel.view.header["rows"] == FLIGHT_ROWS + 50
    assert panel.view.header["version"] == version + 1
    assert panel.view.stats["dep_delay"]["count"] == delays.count()
    assert panel.view.stats_status.endswith(f"from all {FLIGHT_ROWS + 50:,} rows.")


def test_refresh_reloads_open_preview(recorder, fs: FeatureStore) -> None:
    group = fs.create_feature_group("small", keys="id")
    group.create_features_from_schema({"id": "int64", "name": "string"})
    group.ingest({"id": [1, 2], "name": ["one", "two"]})
    panel = GroupPanel(group)
    panel.view.tab = "preview"
    panel.wait()
    group.ingest({"id": [3], "name": [None]})

    panel.view._handle_custom_msg({"type": "refresh"}, [])
    panel.wait()

    assert decode_preview(panel) == [{"id": "1", "name": "one"}, {"id": "2", "name": "two"}, {"id": "3", "name": None}]
    assert panel.view.preview_note == f"Version {group.version}, 3 rows of 3 (in storage order)."
    assert len(preview_updates(recorder, panel)) == 2


def test_deleted_group_shows_error(recorder, fs: FeatureStore, flights) -> None:
    panel = GroupPanel(flights).wait()
    fs.delete_feature_group("flights")

    panel.view._handle_custom_msg({"type": "refresh"}, [])
    panel.wait()

    assert "flights" in panel.view.error
    assert panel.view.header["rows"] == FLIGHT_ROWS  # the last good state stays visible


def test_panel_of_deleted_group(recorder, fs: FeatureStore, flights) -> None:
    fs.delete_feature_group("flights")

    panel = GroupPanel(flights).wait()

    assert "flights" in panel.view.error
    assert panel.view.features == []


def test_unknown_message_ignored(recorder, flights) -> None:
    panel = GroupPanel(flights).wait()
    sent = len(recorder.messages)

    panel.view._handle_custom_msg({"type": "explode"}, [])
    panel.view._handle_custom_msg(["not", "a", "dict"], [])

    assert len(recorder.messages) == sent
    assert panel.view.error == ""


# -- messages -----------------------------------------------------------------------------------


def test_messages_strict_json_under_limit(recorder, fs: FeatureStore, flights) -> None:
    floats = fs.create_feature_group("floats", keys="id")
    floats.create_features_from_schema({"id": "int64", "x": "float64", "flat": "float64"})
    floats.ingest(
        pa.table(
            {
                "id": [1, 2, 3, 4, 5],
                "x": pa.array([1.0, math.nan, math.inf, -math.inf, None]),
                "flat": pa.array([math.nan, math.nan, math.inf, None, None]),
            }
        )
    )

    panels = {}
    for group, feature in ((flights, "dep_delay"), (floats, "x")):
        panel = GroupPanel(group)
        for tab in ("preview", "alerts", "live", "jobs"):
            panel.view.tab = tab
        panel.wait()
        panel.view.selected = feature
        panel.view._handle_custom_msg({"type": "new_alert"}, [])
        panels[group.name] = panel

    assert_messages_sendable(recorder)
    assert panels["floats"].view.stats["flat"]["mean"] is None  # no finite value: NaN became None
    assert panels["floats"].view.stats["x"]["max"] == 1.0


@pytest.mark.slow
def test_ten_million_rows_500_features(recorder, fs: FeatureStore) -> None:
    """Open the panel of a group of 10,000,000 rows and 500 features.

    To stay within memory, only four features are stored (the key ``id`` and ``a``, ``b``,
    ``c``); the other 496 are derived features ``a * i + b``. The stored columns take about
    280 MB in Arrow. The test took 30 to 40 s on a machine with 2 cores.
    """
    rows, derived = 10_000_000, 496
    group = fs.create_feature_group("wide", keys="id")
    group.create_features_from_schema({"id": "int64", "a": "float64", "b": "int64", "c": "float32"})
    group.create_features([{"name": f"f{i:03d}", "dtype": "float64", "derived_from": f"a * {i} + b"} for i in range(derived)])
    rng = np.random.default_rng(11)
    group.ingest(
        pa.table({"id": np.arange(rows), "a": rng.normal(size=rows), "b": rng.integers(0, 100, rows), "c": rng.random(rows, dtype=np.float32)})
    )
    names = ["id", "a", "b", "c", *(f"f{i:03d}" for i in range(derived))]
    sample = max(MIN_SAMPLE_ROWS, PROFILE_VALUES // len(names))

    panel = GroupPanel(group).wait()
    panel.view.tab = "preview"
    panel.wait()
    chart = panel.open_chart("f007")

    stats = panel.view.stats
    assert sorted(stats) == sorted(names)
    assert panel.view.stats_status == f"Statistics of version {group.version} from a uniform sample of {sample:,} of {rows:,} rows."
    assert all(stats[name]["count"] == sample for name in names)
    # a, b and f007 = a * 7 + b come from the same sampled rows.
    assert stats["f007"]["mean"] == pytest.approx(7 * stats["a"]["mean"] + stats["b"]["mean"], rel=1e-9)
    assert sum(stats["f123"]["histogram"]) == sample
    assert panel.view.header["rows"] == rows
    assert len(decode_preview(panel)) == 50
    assert panel.view.preview_columns == names[: len(panel.view.preview_columns)]
    assert sum(chart.result.to_arrow().column("count").to_pylist()) == rows
    assert panel.view.error == ""
    assert_messages_sendable(recorder)


# -- found by a review that tried to break the panel ---------------------------------------------


def test_nul_in_text_keeps_statistics(recorder, fs: FeatureStore) -> None:
    group = fs.create_feature_group("nul", keys="id")
    group.create_features_from_schema({"id": "int64", "label": "string", "score": "float64"})
    group.ingest({"id": [1, 2, 3], "label": ["a\x00b", "a\x00b", "c"], "score": [1.0, 2.0, 3.0]})

    panel = GroupPanel(group).wait()

    assert panel.view.stats_status.startswith("Statistics of version")
    assert panel.view.stats["label"]["labels"][0] == "a\x00b"
    assert panel.view.stats["label"]["histogram"] == [2, 1]
    assert panel.view.stats["score"]["mean"] == 2.0


def test_panel_of_replaced_group_reports_deletion(recorder, fs: FeatureStore) -> None:
    old = fs.create_feature_group("old", keys="id")
    panel = GroupPanel(old).wait()
    fs.delete_feature_group("old")
    new = fs.create_feature_group("new", keys="id")
    new.create_features_from_schema({"id": "int64"})
    fs.create_alert("on-new", Aggregation("id", ["count"]), Condition.GREATER_THAN(5), group="new")
    assert new._id == old._id  # SQLite reused the id

    panel.view.tab = "alerts"
    panel.wait()

    assert panel.view.related.get("alerts", []) == []
    assert "old" in panel.view.error


def test_large_descriptions_stay_under_limit(recorder, fs: FeatureStore) -> None:
    group = fs.create_feature_group("wordy", keys="id", description="d" * 1_500_000)
    group.create_features_from_schema({"id": "int64"})

    GroupPanel(group).wait()

    assert_messages_sendable(recorder)


def test_close_stops_statistics(recorder, fs: FeatureStore, flights, monkeypatch: pytest.MonkeyPatch) -> None:
    from raise_jupyter import profile
    from raise_jupyter.widgets import _panel

    # The first batch waits until close() has been called, so the loop must stop after it.
    closed = threading.Event()
    real_batch = profile.profile_features

    def gated_batch(*args: object, **kwargs: object) -> object:
        closed.wait(10)
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(_panel, "PROFILE_BATCH", 1)
    monkeypatch.setattr(profile, "profile_features", gated_batch)
    panel = GroupPanel(flights)
    panel.close()
    closed.set()
    panel.wait()

    assert len(panel.view.stats) < len(flights.features)
