"""Settings of a store root: ``<root>/config.yaml``, overridden by environment variables.

Keys: ``catalog_url`` (``$RAISE_CATALOG_URL``), a SQLAlchemy URL of the catalog database;
``online_store`` (``$RAISE_ONLINE_STORE``), ``sqlite`` (the default) or a ``redis://`` URL; and
``smtp_url`` (``$RAISE_SMTP_URL``), the mail server that alert e-mails go through.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from raise_jupyter.errors import StoreError

_ENVIRONMENT = {"catalog_url": "RAISE_CATALOG_URL", "online_store": "RAISE_ONLINE_STORE", "smtp_url": "RAISE_SMTP_URL"}


@functools.lru_cache(maxsize=64)
def _file_settings(path: Path, modified: float) -> dict[str, Any]:
    import yaml

    try:
        settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise StoreError(f"Cannot parse {path}: {error}") from None
    if not isinstance(settings, dict):
        raise StoreError(f"{path} must contain a mapping such as 'online_store: redis://127.0.0.1:6379/0'.")
    unknown = set(settings) - set(_ENVIRONMENT)
    if unknown:
        raise StoreError(f"{path} has unknown settings {sorted(unknown)}; valid ones are {sorted(_ENVIRONMENT)}.")
    return settings


def setting(root: Path, name: str) -> str | None:
    """Return setting ``name`` of the store at ``root``: environment first, then config.yaml."""
    value = os.environ.get(_ENVIRONMENT[name])
    if value:
        return value
    path = root / "config.yaml"
    if not path.is_file():
        return None
    return _file_settings(path, path.stat().st_mtime).get(name)
