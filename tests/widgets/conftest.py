"""Fixtures of the widget tests: recorded comms and a small flights-like group."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from recording import Recorder  # noqa: E402

FLIGHT_ROWS = 300
CARRIERS = ["UA", "AA", "DL", "B6", "WN", "EV"]


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """Record every widget message instead of sending it to a kernel."""
    import comm

    recorder = Recorder()
    monkeypatch.setattr(comm, "create_comm", recorder.create_comm)
    yield recorder


def flight_rows(start: int, count: int, *, seed: int = 7) -> pd.DataFrame:
    """Return ``count`` flights with ids from ``start``, with nulls in dep_delay and carrier.

    Every 17th delay and every 23rd carrier is null. Carriers are drawn with unequal weights,
    so value counts have a clear order.
    """
    rng = np.random.default_rng(seed)
    ids = np.arange(start, start + count)
    delay = pd.array(np.round(rng.normal(12.0, 30.0, count), 1), dtype="Float64")
    delay[ids % 17 == 0] = pd.NA
    carrier = pd.array(rng.choice(CARRIERS, count, p=[0.35, 0.25, 0.2, 0.1, 0.07, 0.03]), dtype="string")
    carrier[ids % 23 == 0] = pd.NA
    return pd.DataFrame(
        {
            "flight_id": ids,
            "sched_dep": pd.date_range("2024-03-01", periods=count, freq="7min", tz="UTC") + pd.Timedelta(minutes=7 * start),
            "dep_delay": delay,
            "carrier": carrier,
            "distance": rng.integers(100, 3000, count),
            "cancelled": ids % 11 == 0,
        }
    )


@pytest.fixture
def flights(fs):
    """A feature group of 300 flights: keys, event time, six stored features and a derived one."""
    group = fs.create_feature_group(
        "flights", keys="flight_id", event_time="sched_dep", description="Departures from New York", online=True
    )
    group.create_features_from_schema(
        {"flight_id": "int64", "sched_dep": "timestamp", "carrier": "string", "distance": "int64", "cancelled": "bool"}
    )
    group.create_feature("dep_delay", dtype="float64", description="Departure delay in minutes")
    group.create_feature("delay_hours", dtype="float64", derived_from="dep_delay / 60", description="dep_delay in hours")
    group.ingest(flight_rows(0, FLIGHT_ROWS))
    return group
