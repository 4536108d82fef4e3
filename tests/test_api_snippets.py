"""The Raise snippets users expect, run unchanged through ``from raise_ import ...``.

Each snippet runs twice on the same store: the second run must succeed and change nothing.
The store root comes from RAISE_HOME, which the autouse fixture points at a temporary folder.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from raise_jupyter import FeatureStore, RaiseWarning


def _snapshot(namespace: str) -> dict[str, object]:
    fs = FeatureStore(namespace)
    return {
        group.name: (
            [repr(f) for f in group.features],
            group.keys,
            group.event_time,
            group.version,
        )
        for group in fs.list_feature_groups()
    }


def _run_twice(code: str, namespace: str, setup: str = "") -> dict[str, object]:
    source = textwrap.dedent(setup) + textwrap.dedent(code)
    exec(compile(source, "<snippet>", "exec"), {})
    first = _snapshot(namespace)
    exec(compile(source, "<snippet>", "exec"), {})
    second = _snapshot(namespace)
    assert second == first, "running the snippet a second time changed the store"
    return first


SECTION_1 = """
from raise_ import FeatureStore

fs = FeatureStore("acme/mlplatform/recommendation")
group = fs.create_feature_group("user-signals")

# Single line per feature
group.create_feature("clicks", dtype="int64")
group.create_feature("impressions", dtype="int64")
group.create_feature("ctr", dtype="float64", derived_from="clicks / NULLIF(impressions, 0)")

# Or bulk from schema
group.create_features_from_schema({
    "clicks": "int64",
    "impressions": "int64",
    "user_embedding": "float32[512]",
})
"""

SECTION_2 = """
# Derived feature in one line
group.create_feature(
    "ctr",
    dtype="float64",
    derived_from="clicks / NULLIF(impressions, 0)",
)

# Complex derived feature
group.create_feature(
    "engagement_score",
    dtype="float64",
    derived_from=\"\"\"
        (clicks * 1.0 + shares * 2.0 + comments * 3.0) /
        NULLIF(impressions, 0) * 100
    \"\"\",
)
"""

SECTION_2_SETUP = """
from raise_ import FeatureStore
fs = FeatureStore("acme/mlplatform/recommendation")
group = fs.create_feature_group("user-signals")
group.create_features_from_schema({
    "clicks": "int64", "impressions": "int64", "shares": "int64", "comments": "int64",
})
"""

SECTION_3 = """
# From schema dict
group.create_features_from_schema({
    "clicks": "int64",
    "impressions": "int64",
    "ctr": "float64",
})

# From YAML file
group.create_features_from_file("features.yaml")

# From list with full specs
group.create_features([
    {"name": "clicks", "dtype": "int64", "description": "Total clicks"},
    {"name": "ctr", "dtype": "float64", "derived_from": "clicks/impressions"},
])
"""

SECTION_3_SETUP = """
from raise_ import FeatureStore
fs = FeatureStore("acme/mlplatform/recommendation")
group = fs.create_feature_group("user-signals")
"""

FEATURES_YAML = """
features:
  - name: shares
    dtype: int64
    description: Times the user shared an item
  - name: comments
    dtype: int
  - name: share_rate
    dtype: float64
    derived_from: shares / NULLIF(impressions, 0)
"""

END_TO_END_DEFINITIONS = """
from raise_ import FeatureStore, Aggregation, Schedule, Condition

fs = FeatureStore("acme/ml/engagement")
group = fs.create_feature_group("user-signals")

group.create_features_from_schema({
    "clicks": "int64",
    "impressions": "int64",
})
group.create_feature("ctr", dtype="float64", derived_from="clicks / NULLIF(impressions, 0)")
"""


def test_section_1_feature_definition() -> None:
    groups = _run_twice(SECTION_1, "acme/mlplatform/recommendation")

    features, keys, event_time, _ = groups["user-signals"]
    assert features == [
        "Feature(name='clicks', dtype='int64')",
        "Feature(name='impressions', dtype='int64')",
        "Feature(name='ctr', dtype='float64', derived_from='clicks / NULLIF(impressions, 0)')",
        "Feature(name='user_embedding', dtype='float32[512]')",
    ]
    assert keys is None
    assert event_time is None


def test_section_2_derived_features() -> None:
    groups = _run_twice(SECTION_2, "acme/mlplatform/recommendation", setup=SECTION_2_SETUP)

    features = groups["user-signals"][0]
    assert "Feature(name='ctr', dtype='float64', derived_from='clicks / NULLIF(impressions, 0)')" in features
    assert any("engagement_score" in f and "shares * 2.0" in f for f in features)


def test_section_2_values_computed(tmp_path: Path) -> None:
    exec(compile(textwrap.dedent(SECTION_2_SETUP + SECTION_2), "<snippet>", "exec"), {})
    group = FeatureStore("acme/mlplatform/recommendation").get_feature_group("user-signals")
    group.ingest([{"clicks": 2, "impressions": 10, "shares": 1, "comments": 1}, {"clicks": 0, "impressions": 0, "shares": 0, "comments": 0}])

    frame = group.to_pandas()

    assert frame["ctr"].tolist()[0] == pytest.approx(0.2)
    assert frame["engagement_score"].tolist()[0] == pytest.approx((2 + 2 + 3) / 10 * 100)
    assert frame["ctr"].isna().tolist() == [False, True]


def test_section_3_bulk_operations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "features.yaml").write_text(FEATURES_YAML)

    groups = _run_twice(SECTION_3, "acme/mlplatform/recommendation", setup=SECTION_3_SETUP)

    features = groups["user-signals"][0]
    assert features == [
        "Feature(name='clicks', dtype='int64', description='Total clicks')",
        "Feature(name='impressions', dtype='int64')",
        "Feature(name='ctr', dtype='float64', derived_from='clicks/impressions')",
        "Feature(name='shares', dtype='int64', description='Times the user shared an item')",
        "Feature(name='comments', dtype='int64')",
        "Feature(name='share_rate', dtype='float64', derived_from='shares / NULLIF(impressions, 0)')",
    ]


def test_end_to_end_definitions() -> None:
    groups = _run_twice(END_TO_END_DEFINITIONS, "acme/ml/engagement")

    assert [f.split(",")[0] for f in groups["user-signals"][0]] == [
        "Feature(name='clicks'",
        "Feature(name='impressions'",
        "Feature(name='ctr'",
    ]


def test_end_to_end_definition_lines() -> None:
    """The definition lines of the 15-line example, without the analytics import."""
    code = END_TO_END_DEFINITIONS.replace(
        "from raise_ import FeatureStore, Aggregation, Schedule, Condition", "from raise_ import FeatureStore"
    )
    groups = _run_twice(code, "acme/ml/engagement")

    assert groups["user-signals"][0] == [
        "Feature(name='clicks', dtype='int64')",
        "Feature(name='impressions', dtype='int64')",
        "Feature(name='ctr', dtype='float64', derived_from='clicks / NULLIF(impressions, 0)')",
    ]


SECTION_4 = """
from raise_ import Aggregation, Distribution, Condition

# Declarative analytics
result = group.analyze(
    Aggregation(feature="ctr", metrics=["avg", "p50", "p99", "null_rate"])
)

# Distribution analysis
dist = group.analyze(Distribution(feature="clicks", bins=50))

# Create alert
fs.create_alert(
    name="ctr-drift",
    analysis=Aggregation(feature="ctr", metrics=["avg"]),
    condition=Condition.LESS_THAN(0.01),
    notify=["team@example.com"],
)

# Live tables (materialized views)
group.create_live_table(
    name="daily_metrics",
    analysis=Aggregation(feature="clicks", metrics=["sum"], group_by=["date"]),
    refresh="hourly",
)
"""

SECTION_4_SETUP = """
from raise_ import FeatureStore
fs = FeatureStore("acme/mlplatform/recommendation")
group = fs.create_feature_group("user-signals", keys="user_id", event_time="ts")
group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "clicks": "int64", "impressions": "int64"})
group.create_feature("ctr", dtype="float64", derived_from="clicks / NULLIF(impressions, 0)")
"""

END_TO_END = END_TO_END_DEFINITIONS + """
group.create_live_table("hourly_metrics",
    analysis=Aggregation(feature="ctr", metrics=["avg", "p99"]),
    refresh="hourly")

fs.create_alert("ctr-drop", Aggregation(feature="ctr", metrics=["avg"]),
    Condition.LESS_THAN(0.01), notify=["team@example.com"])
"""

SIGNALS = {
    "user_id": [1, 2, 3],
    "ts": ["2024-01-01 10:00", "2024-01-01 11:00", "2024-01-02 09:00"],
    "clicks": [0, 1, 2],
    "impressions": [100, 200, 0],
}


def _run(code: str) -> dict[str, object]:
    scope: dict[str, object] = {}
    exec(compile(textwrap.dedent(code), "<snippet>", "exec"), scope)
    return scope


def test_section_4_on_empty_store() -> None:
    with pytest.warns(RaiseWarning, match="No SMTP server is configured"):
        _run(SECTION_4_SETUP + SECTION_4)
    scope = _run(SECTION_4_SETUP + SECTION_4)  # a second run changes nothing and raises nothing

    fs = FeatureStore("acme/mlplatform/recommendation")
    assert scope["result"].values == {"avg": None, "p50": None, "p99": None, "null_rate": None}
    assert scope["dist"].to_arrow().num_rows == 0
    assert [a.name for a in fs.list_alerts()] == ["ctr-drift"]
    assert fs.get_alert("ctr-drift").evaluate().state == "no_data"
    assert fs.get_live_table("daily_metrics").read().to_arrow().num_rows == 0


def test_section_4_after_ingest() -> None:
    _run(SECTION_4_SETUP)
    FeatureStore("acme/mlplatform/recommendation").get_feature_group("user-signals").ingest(SIGNALS)

    with pytest.warns(RaiseWarning, match="No SMTP server is configured"):
        scope = _run(SECTION_4_SETUP + SECTION_4)

    fs = FeatureStore("acme/mlplatform/recommendation")
    assert scope["result"]["avg"] == pytest.approx((0 + 1 / 200) / 2)
    assert scope["result"]["null_rate"] == pytest.approx(1 / 3)
    assert sum(scope["dist"].to_arrow().column("count").to_pylist()) == 3
    assert fs.get_alert("ctr-drift").state == "firing"  # evaluated when created
    assert fs.get_alert("ctr-drift").evaluate().state == "firing"
    daily = fs.sql("SELECT * FROM daily_metrics ORDER BY date").to_pandas()
    assert daily["sum"].tolist() == [1, 2]


def test_end_to_end_example_before_and_after_data() -> None:
    with pytest.warns(RaiseWarning, match="No SMTP server is configured"):
        _run(END_TO_END)
    _run(END_TO_END)
    fs = FeatureStore("acme/ml/engagement")
    group = fs.get_feature_group("user-signals")
    alert = fs.get_alert("ctr-drop")
    live = fs.get_live_table("hourly_metrics")
    assert live.read().to_arrow().num_rows == 0
    assert alert.evaluate().state == "no_data"

    group.ingest({"clicks": [1, 2], "impressions": [1000, 1000]})
    live.refresh()

    assert alert.state == "firing"  # evaluated on ingest: avg ctr 0.0015 < 0.01
    assert live.read().to_pandas()["avg"].tolist() == [pytest.approx(0.0015)]
    assert [a.name for a in fs.list_alerts()] == ["ctr-drop"]
