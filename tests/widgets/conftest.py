"""Fixtures of the widget tests: recorded comms and a small flights-like group."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from flight_data import FLIGHT_ROWS, flight_rows  # noqa: E402
from recording import Recorder  # noqa: E402



@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """Record every widget message instead of sending it to a kernel."""
    import comm

    recorder = Recorder()
    monkeypatch.setattr(comm, "create_comm", recorder.create_comm)
    yield recorder


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
