"""The compact BIGINT sort key of point-in-time joins, and when Raise falls back to HUGEINT."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from raise_jupyter import FeatureStore, training
from raise_jupyter.engine import sortkey

UTC = dt.timezone.utc
FEATURES = ["s.clicks"]


def at(second: int, microsecond: int = 0) -> dt.datetime:
    return dt.datetime(2024, 1, 1, 10, 0, 0, tzinfo=UTC) + dt.timedelta(seconds=second, microseconds=microsecond)


@pytest.fixture
def group(fs: FeatureStore):
    group = fs.create_feature_group("s", keys="user_id", event_time="ts")
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "clicks": "int64"})
    return group


def chosen_keys(monkeypatch: pytest.MonkeyPatch) -> list[sortkey.CompactKey | None]:
    """Record the key that each get_training_data call picks for its group."""
    chosen: list[sortkey.CompactKey | None] = []
    original = training._compact_key

    def record(*args, **kwargs):
        key = original(*args, **kwargs)
        chosen.append(key)
        return key

    monkeypatch.setattr(training, "_compact_key", record)
    return chosen


def with_hugeint(fs: FeatureStore, spine: dict, monkeypatch: pytest.MonkeyPatch) -> pa.Table:
    """Build the training data with the compact key switched off."""
    with monkeypatch.context() as patch:
        patch.setattr(training, "_compact_key", lambda *args, **kwargs: None)
        return fs.get_training_data(spine, FEATURES).to_arrow()


# -- has_ties -----------------------------------------------------------------------------------


def test_has_ties_on_all_columns_together() -> None:
    table = pa.table({"k": [1, 1, 2], "ts": [1, 2, 1]})

    assert not sortkey.has_ties(table, ["k", "ts"])
    assert sortkey.has_ties(table, ["k"])
    assert sortkey.has_ties(table, ["ts"])


def test_has_ties_composite_keys_do_not_collide() -> None:
    table = pa.table({"a": [1, 12], "b": [23, 3], "ts": [5, 5]})

    assert not sortkey.has_ties(table, ["a", "b", "ts"])


# -- which key a query uses ---------------------------------------------------------------------


def test_batches_without_ties_get_the_compact_key(fs: FeatureStore, group, monkeypatch) -> None:
    chosen = chosen_keys(monkeypatch)
    group.ingest({"user_id": [1, 2], "ts": [at(0), at(0)], "clicks": [1, 2]})
    group.ingest({"user_id": [1], "ts": [at(0)], "clicks": [10]})

    result = fs.get_training_data({"user_id": [1, 2], "ts": [at(5), at(5)]}, FEATURES)

    assert result.to_arrow().column("clicks").to_pylist() == [10, 2]
    assert chosen[-1] is not None
    assert chosen[-1].bits == 2  # batches 1 and 2


def test_batch_with_ties_keeps_the_hugeint_key(fs: FeatureStore, group, monkeypatch) -> None:
    chosen = chosen_keys(monkeypatch)
    group.ingest({"user_id": [1, 1, 1], "ts": [at(0), at(0), at(0)], "clicks": [1, 2, 3]})

    result = fs.get_training_data({"user_id": [1], "ts": [at(0)]}, FEATURES)

    assert result.to_arrow().column("clicks").to_pylist() == [3]
    assert chosen == [None]


def test_unchecked_batch_keeps_the_hugeint_key(fs: FeatureStore, group, monkeypatch) -> None:
    chosen = chosen_keys(monkeypatch)
    group.ingest({"user_id": [1], "ts": [at(0)], "clicks": [1]})
    # What a catalog migrated from revision 0005, or an ingest killed before its catalog
    # update, leaves: a batch whose tie check is unknown.
    with group._catalog.write() as conn:
        conn.exec_driver_sql("UPDATE ingests SET ties = NULL, tie_columns = NULL")

    result = fs.get_training_data({"user_id": [1], "ts": [at(1)]}, FEATURES)

    assert result.to_arrow().column("clicks").to_pylist() == [1]
    assert chosen == [None]


def test_compact_key_survives_compaction(fs: FeatureStore, group, monkeypatch) -> None:
    chosen = chosen_keys(monkeypatch)
    for batch in range(5):
        group.ingest({"user_id": [1, 2], "ts": [at(batch), at(0)], "clicks": [batch, 100 + batch]})
    group.compact()

    result = fs.get_training_data({"user_id": [1, 2, 1], "ts": [at(2), at(9), at(9)]}, FEATURES)

    assert result.to_arrow().column("clicks").to_pylist() == [2, 104, 4]
    assert chosen[-1] is not None


def test_checked_columns_decide_key() -> None:
    files_stats = pa.table({"min._raise_seq": [1 << 32], "max._raise_seq": [(1 << 32) + 5], "min.ts": [0], "max.ts": [10]})
    from raise_jupyter.engine.catalog import IngestRecord
    from raise_jupyter.engine.offline import TableFiles

    files = TableFiles(version=1, paths=["x.parquet"], columns={}, stats=files_stats)
    now = dt.datetime.now(UTC)

    def ingest(tie_columns: tuple[str, ...] | None, ties: bool | None = False) -> list[IngestRecord]:
        return [IngestRecord(1, "committed", 6, 1, now, now, ties=ties, tie_columns=tie_columns)]

    def key(ingests: list[IngestRecord], keys: list[str]) -> sortkey.CompactKey | None:
        return sortkey.compact_key(files, ingests, keys=keys, event_time="ts", event_column="ts")

    assert key(ingest(("k", "ts")), ["k"]) is not None
    assert key(ingest(("k", "ts")), ["k", "region"]) is not None  # more keys now: still unique
    assert key(ingest(("k", "region", "ts")), ["k"]) is None  # fewer keys now: ties possible
    assert key(ingest(("k",)), ["k"]) is None
    assert key(ingest(("k", "ts"), ties=True), ["k"]) is None
    assert key(ingest(None, ties=None), ["k"]) is None
    assert key([], ["k"]) is None  # a file of a batch the catalog does not know


def test_time_range_too_wide_keeps_the_hugeint_key() -> None:
    from raise_jupyter.engine.catalog import IngestRecord
    from raise_jupyter.engine.offline import TableFiles

    now = dt.datetime.now(UTC)
    batch = 2**20
    stats = pa.table({
        "min._raise_seq": [batch << 32], "max._raise_seq": [batch << 32],
        "min.ts": [-(2**61)], "max.ts": [2**61],
    })
    files = TableFiles(version=1, paths=["x.parquet"], columns={}, stats=stats)
    ingests = [IngestRecord(batch, "committed", 1, 1, now, now, ties=False, tie_columns=("k", "ts"))]

    assert sortkey.compact_key(files, ingests, keys=["k"], event_time="ts", event_column="ts") is None


# -- same results as the HUGEINT key -----------------------------------------------------------


def test_microsecond_boundaries_despite_millisecond_statistics(fs: FeatureStore, group, monkeypatch) -> None:
    chosen = chosen_keys(monkeypatch)
    first, last = at(0, 123_456), at(60, 999_999)
    group.ingest({"user_id": [1, 1], "ts": [first, last], "clicks": [1, 2]})
    spine_times = [
        first - dt.timedelta(microseconds=1), first, last - dt.timedelta(microseconds=1), last,
        last + dt.timedelta(microseconds=1), last + dt.timedelta(days=3650),
        first - dt.timedelta(days=3650),
    ]
    spine = {"user_id": [1] * len(spine_times), "ts": spine_times}

    result = fs.get_training_data(spine, FEATURES).to_arrow()

    assert chosen[-1] is not None
    assert result.column("clicks").to_pylist() == [None, 1, 1, 2, 2, 2, None]
    assert result.equals(with_hugeint(fs, spine, monkeypatch))


def test_random_batches_match_the_hugeint_key(fs: FeatureStore, group, monkeypatch) -> None:
    chosen = chosen_keys(monkeypatch)
    rng = np.random.default_rng(7)
    for _ in range(6):
        # Each batch has unique (user, second) pairs; batches repeat each other's pairs.
        pairs = rng.choice(20 * 30, size=200, replace=False)
        group.ingest({
            "user_id": (pairs // 30).tolist(),
            "ts": [at(int(s)) for s in pairs % 30],
            "clicks": rng.integers(0, 1000, size=200).tolist(),
        })
    spine = {
        "user_id": rng.integers(0, 22, size=500).tolist(),
        "ts": [at(int(s), int(us)) for s, us in zip(rng.integers(-2, 33, size=500), rng.integers(0, 2, size=500))],
    }

    result = fs.get_training_data(spine, FEATURES).to_arrow()

    assert chosen[-1] is not None
    assert result.equals(with_hugeint(fs, spine, monkeypatch))
    assert result.column("clicks").null_count < 500


def test_ttl_with_the_compact_key(fs: FeatureStore, group, monkeypatch) -> None:
    chosen = chosen_keys(monkeypatch)
    group.set_ttl(dt.timedelta(seconds=10))
    group.ingest({"user_id": [1], "ts": [at(0)], "clicks": [1]})

    result = fs.get_training_data({"user_id": [1, 1], "ts": [at(10), at(11)]}, FEATURES)

    assert chosen[-1] is not None
    assert result.to_arrow().column("clicks").to_pylist() == [1, None]
