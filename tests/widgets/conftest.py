"""Fixtures of the widget tests: recorded comms and a small flights-like group."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from recording import Recorder  # noqa: E402


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """Record every widget message instead of sending it to a kernel."""
    import comm

    recorder = Recorder()
    monkeypatch.setattr(comm, "create_comm", recorder.create_comm)
    yield recorder
