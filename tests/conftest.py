"""Shared fixtures: every test gets its own store root in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from raise_jupyter import FeatureStore


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests away from the developer's ~/.raise."""
    monkeypatch.setenv("RAISE_HOME", str(tmp_path / "raise-home"))
    monkeypatch.delenv("RAISE_CATALOG_URL", raising=False)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def fs(root: Path) -> FeatureStore:
    return FeatureStore("acme/ml/engagement", root=root)
