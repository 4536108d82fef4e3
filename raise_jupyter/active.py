"""The active store of a kernel: what ``%raise use`` sets and the magics query."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from raise_jupyter.errors import NotFoundError

if TYPE_CHECKING:
    from raise_jupyter.store import FeatureStore

_lock = threading.Lock()
_active: FeatureStore | None = None


def use_store(store: FeatureStore | str, *, root: str | os.PathLike[str] | None = None) -> FeatureStore:
    """Make ``store`` (a FeatureStore, or a namespace opened at ``root``) the active store."""
    from raise_jupyter.store import FeatureStore

    global _active
    if isinstance(store, str):
        store = FeatureStore(store, root=root)
    elif not isinstance(store, FeatureStore):
        raise TypeError(f"use_store() takes a FeatureStore or a namespace string, got {store!r}.")
    with _lock:
        _active = store
    return store


def current_store() -> FeatureStore:
    """Return the active store; raise NotFoundError if none was chosen."""
    with _lock:
        store = _active
    if store is None:
        raise NotFoundError(
            "No store is active in this kernel. Run %raise use NAMESPACE, or raise_jupyter.use_store(fs) in Python."
        )
    return store
