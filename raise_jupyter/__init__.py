"""Raise: a feature store that lives in the Jupyter notebook.

Feature groups are Delta Lake tables under a store root (``~/.raise`` by default) with a SQLite
catalog; DuckDB computes derived features and runs queries. No server is needed.

Examples
--------
>>> from raise_jupyter import FeatureStore                          # doctest: +SKIP
>>> fs = FeatureStore("acme/ml/engagement")                        # doctest: +SKIP
>>> group = fs.create_feature_group("user-signals", keys="user_id")  # doctest: +SKIP
>>> group.create_feature("clicks", dtype="int64")                   # doctest: +SKIP
"""

from __future__ import annotations

import logging

from raise_jupyter.errors import (
    ConflictError,
    DefinitionError,
    IngestError,
    NotFoundError,
    PermissionDenied,
    QueryError,
    RaiseError,
    RaiseWarning,
    StoreError,
)
from raise_jupyter.analysis import Aggregation, Distribution
from raise_jupyter.conditions import Condition
from raise_jupyter.feature import Feature
from raise_jupyter.group import FeatureGroup
from raise_jupyter.inference import GPUType
from raise_jupyter.jobs import FeatureGroupSource, Job, JobRun, Target
from raise_jupyter.results import AnalysisResult, IngestResult, QueryResult
from raise_jupyter.schedule import Schedule
from raise_jupyter.online import OnlineFeatures
from raise_jupyter.store import FeatureStore
from raise_jupyter.training import TrainingData
from raise_jupyter.transforms import embedding_inference, python_transform, sql_transform

from raise_jupyter.active import current_store, use_store

__version__ = "0.1.0"


def load_ipython_extension(ipython: object) -> None:
    """Register the ``%raise`` and ``%%raise`` magics: ``%load_ext raise_jupyter``."""
    from raise_jupyter.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: object) -> None:
    """Remove the magics: ``%unload_ext raise_jupyter``."""
    from raise_jupyter.magics import unload_ipython_extension as unload

    unload(ipython)

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Aggregation",
    "AnalysisResult",
    "Condition",
    "ConflictError",
    "DefinitionError",
    "Distribution",
    "Feature",
    "FeatureGroup",
    "FeatureGroupSource",
    "GPUType",
    "FeatureStore",
    "IngestError",
    "IngestResult",
    "Job",
    "JobRun",
    "NotFoundError",
    "OnlineFeatures",
    "PermissionDenied",
    "QueryError",
    "QueryResult",
    "RaiseError",
    "RaiseWarning",
    "Schedule",
    "StoreError",
    "Target",
    "TrainingData",
    "__version__",
    "current_store",
    "embedding_inference",
    "python_transform",
    "sql_transform",
    "use_store",
]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Return where the built JupyterLab extension lies, for ``jupyter labextension``."""
    return [{"src": "labextension", "dest": "raise-jupyter"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Return the module of the Jupyter server extension (REST handlers under /raise/api/)."""
    return [{"module": "raise_jupyter.serverext"}]
