"""Live tables: creation, refresh, reads through fs.sql, history and bad input."""

from __future__ import annotations

import datetime as dt

import pytest

from raise_jupyter import Aggregation, ConflictError, DefinitionError, Distribution, FeatureStore, NotFoundError, live, scheduler
from raise_jupyter.engine.catalog import utcnow
from raise_jupyter.store import open_catalog

DAILY_CLICKS = Aggregation(feature="clicks", metrics=["sum"], group_by=["date"])


@pytest.fixture
def signals(fs: FeatureStore):
    group = fs.create_feature_group("user-signals", keys="user_id", event_time="ts")
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "clicks": "int64", "impressions": "int64"})
    group.create_feature("ctr", dtype="float64", derived_from="clicks / NULLIF(impressions, 0)")
    return group


def ingest_day(group, day: int, clicks: list[int]) -> None:
    times = [dt.datetime(2024, 1, day, hour, tzinfo=dt.timezone.utc) for hour in range(len(clicks))]
    group.ingest({"user_id": list(range(len(clicks))), "ts": times, "clicks": clicks, "impressions": [100] * len(clicks)})


def test_empty_group_gives_empty_table(fs: FeatureStore, signals) -> None:
    table = signals.create_live_table("daily_metrics", DAILY_CLICKS, refresh="hourly")

    result = table.read().to_arrow()

    assert result.num_rows == 0
    assert result.column_names == ["date", "sum"]
    assert fs.sql("SELECT count(*) AS n FROM daily_metrics").to_arrow().column("n").to_pylist() == [0]


def test_aggregation_without_group_by_is_empty_too(fs: FeatureStore, signals) -> None:
    table = signals.create_live_table("totals", Aggregation("clicks", ["sum", "count"]))

    assert table.read().to_arrow().num_rows == 0


def test_refresh_replaces_result(fs: FeatureStore, signals) -> None:
    table = signals.create_live_table("daily_metrics", DAILY_CLICKS, refresh="hourly")
    ingest_day(signals, 1, [1, 2])
    ingest_day(signals, 2, [5])

    table.refresh()

    frame = fs.sql("SELECT * FROM daily_metrics ORDER BY date").to_pandas()
    assert frame["sum"].tolist() == [3, 5]
    assert table.read().to_pandas()["sum"].tolist() == [3, 5]
    assert table.history()["status"].tolist() == ["succeeded", "succeeded"]
    assert table.history()["rows"].tolist() == [2, 0]


def test_old_files_removed_after_refreshes(fs: FeatureStore, signals) -> None:
    table = signals.create_live_table("daily_metrics", DAILY_CLICKS)
    for day in range(1, 7):
        ingest_day(signals, day, [day])
        table.refresh()

    files = sorted((fs.root / "live" / str(table._id)).iterdir())

    assert len(files) == live.FILES_KEPT
    assert table.read().to_arrow().num_rows == 6


def test_recreate_identical_is_noop(fs: FeatureStore, signals) -> None:
    first = signals.create_live_table("daily_metrics", DAILY_CLICKS)
    ingest_day(signals, 1, [1])
    second = signals.create_live_table("daily_metrics", DAILY_CLICKS)

    assert second._id == first._id
    assert len(second.history()) == 1  # not refreshed again
    assert [t.name for t in fs.list_live_tables()] == ["daily_metrics"]


def test_changed_definition_needs_replace(fs: FeatureStore, signals) -> None:
    signals.create_live_table("daily_metrics", DAILY_CLICKS)

    with pytest.raises(ConflictError, match=r"Live table 'daily_metrics' exists with a different refresh"):
        signals.create_live_table("daily_metrics", DAILY_CLICKS, refresh="daily")
    replaced = signals.create_live_table("daily_metrics", DAILY_CLICKS, refresh="daily", replace=True)

    assert replaced.refresh_schedule == "daily"
    assert scheduler.task_info(open_catalog(fs.root), "live_table", replaced._id)["schedule"] == "daily"


def test_distribution_live_table(fs: FeatureStore, signals) -> None:
    ingest_day(signals, 1, [1, 2, 3, 4])

    table = signals.create_live_table("clicks_hist", Distribution("clicks", bins=2), refresh="every 10m")

    assert table.read().to_arrow().column("count").to_pylist() == [2, 2]


@pytest.mark.parametrize(
    ("name", "analysis", "refresh", "error", "message"),
    [
        ("Daily Metrics", DAILY_CLICKS, "hourly", DefinitionError, "Live table name 'Daily Metrics' is invalid"),
        ("user-signals", DAILY_CLICKS, "hourly", ConflictError, "is a feature group of this namespace"),
        ("daily", Aggregation("nope", ["sum"]), "hourly", NotFoundError, "Feature 'nope' is not in group"),
        ("daily", DAILY_CLICKS, "whenever", DefinitionError, "whenever"),
        ("daily", "sum(clicks)", "hourly", DefinitionError, "Expected an Aggregation or Distribution"),
    ],
)
def test_bad_live_tables(fs: FeatureStore, signals, name, analysis, refresh, error, message) -> None:
    with pytest.raises(error, match=message):
        signals.create_live_table(name, analysis, refresh=refresh)
    assert fs.list_live_tables() == []


def test_group_name_of_live_table_rejected(fs: FeatureStore, signals) -> None:
    signals.create_live_table("daily_metrics", DAILY_CLICKS)

    with pytest.raises(ConflictError, match="'daily_metrics' is a live table"):
        fs.create_feature_group("daily_metrics")


def test_scheduler_refreshes_due_table(fs: FeatureStore, signals) -> None:
    table = signals.create_live_table("daily_metrics", DAILY_CLICKS, refresh="hourly")
    ingest_day(signals, 1, [7])

    ran = scheduler.run_due(fs.root, owner="test", now=utcnow() + dt.timedelta(hours=1, minutes=1))

    assert ran == 1
    assert table.read().to_pandas()["sum"].tolist() == [7]
    assert table.history()["due_at"].notna().tolist() == [True, False]


def test_failed_refresh_keeps_previous_result(fs: FeatureStore, signals, monkeypatch: pytest.MonkeyPatch) -> None:
    table = signals.create_live_table("daily_metrics", DAILY_CLICKS)
    ingest_day(signals, 1, [7])
    table.refresh()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(live, "_write_file", broken)
    with pytest.raises(OSError, match="disk full"):
        table.refresh()

    assert table.read().to_pandas()["sum"].tolist() == [7]
    assert table.history()["status"].tolist()[0] == "failed"
    assert "disk full" in table.history()["error"].tolist()[0]


def test_delete_removes_files_and_schedule(fs: FeatureStore, signals) -> None:
    table = signals.create_live_table("daily_metrics", DAILY_CLICKS)

    table.delete()

    assert not (fs.root / "live" / str(table._id)).exists() or not any((fs.root / "live" / str(table._id)).iterdir())
    assert scheduler.task_info(open_catalog(fs.root), "live_table", table._id) is None
    with pytest.raises(NotFoundError, match="Live table 'daily_metrics' not found"):
        fs.get_live_table("daily_metrics")


def test_slow_refresh_of_older_version_dropped(fs: FeatureStore, signals, monkeypatch: pytest.MonkeyPatch) -> None:
    table = signals.create_live_table("daily_metrics", DAILY_CLICKS)
    ingest_day(signals, 1, [1])
    old_version = signals.version
    analyze = type(signals).analyze

    def analyze_old_version(self, analysis, *, as_of=None):
        return analyze(self, analysis, as_of=old_version)

    ingest_day(signals, 2, [5])
    for _ in range(live.FILES_KEPT + 1):
        table.refresh()  # reads the newest version
    monkeypatch.setattr(type(signals), "analyze", analyze_old_version)
    table.refresh()  # a refresh that read the older version finishes last
    monkeypatch.undo()

    assert table.read().to_pandas()["sum"].tolist() == [1, 5]
    assert table.history()["status"].tolist()[0] == "superseded"
    assert fs.sql("SELECT sum(sum) AS total FROM daily_metrics").to_arrow().column("total").to_pylist() == [6]
