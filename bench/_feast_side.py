"""Run Feast's side of ``bench/feast_comparison.py`` inside the Feast virtual environment.

``feast_comparison.py`` starts this script with the venv's Python and keeps it running for the
whole benchmark, so that Feast is imported once and stays warm like the Raise side. The script
reads one JSON request per line from standard input and writes one JSON reply per line to the
standard output it was started with. Everything else that Feast, ibis or tqdm print goes to
standard error, which the parent sends to a log file. Training sets for the check are written
to Parquet files named in the request.

It imports only the standard library, Feast, pandas and pyarrow, because the venv has neither
Raise nor the parent's other packages.

Requests, by ``op``, with their fields and the fields of their replies:

- ``versions``. Reply: ``versions``, of Python, Feast, DuckDB, ibis, pandas and pyarrow in this venv.
- ``define`` (``repo``, ``features``) creates a Feast repository in the folder ``repo`` over the
  Parquet file ``features`` and applies the definitions. Reply: ``seconds``.
- ``training`` (``repo``, ``spine``, ``output``, ``memory``) builds point-in-time training data
  for the spine Parquet file, and writes it to the Parquet file ``output`` unless that is null
  (not timed). Reply: ``seconds``, ``rows`` and, with ``memory``, ``before_mib`` and ``peak_mib``.
- ``materialize`` (``repo``, ``start``, ``end``, ``memory``). Reply: ``seconds``, and memory as above.
- ``online_values`` (``repo``, ``keys``) looks up the keys once. Reply: ``values``, the ``to_dict()``.
- ``lookups`` (``repo``, ``batches``, ``warmup``) looks up each key list of the JSON file
  ``batches``, the first ``warmup`` ones untimed. Reply: ``seconds``, one entry per timed lookup.
- ``close`` (``repo``) drops the repository's ``FeatureStore``.
- ``exit`` ends the process.

A reply is ``{"ok": true, ...}``, or ``{"ok": false, "error": "<traceback>"}`` when the request
failed.
"""

from __future__ import annotations

import datetime as dt
import gc
import importlib.metadata
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from _memory import run_phase
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64

PROJECT = "bench"
ENTITY = "user_id"
EVENT_TIME = "ts"
VIEW = "user-signals"
DERIVED_VIEW = "user-signals-ctr"
FEATURE_REFERENCES = [f"{VIEW}:clicks", f"{VIEW}:impressions", f"{DERIVED_VIEW}:ctr"]
RESULT_COLUMNS = ["spine_row", "clicks", "impressions", "ctr"]
VERSIONED_PACKAGES = ["feast", "duckdb", "ibis-framework", "pandas", "pyarrow"]


def compute_ctr(inputs: pd.DataFrame) -> pd.DataFrame:
    """Compute ``ctr = clicks / impressions``, NaN where impressions is 0 or missing.

    Feast runs this pandas function on the joined training rows and on every online lookup.
    """
    impressions = inputs["impressions"]
    return pd.DataFrame({"ctr": inputs["clicks"] / impressions.where(impressions != 0)})



# -- the Feast repository ---------------------------------------------------------------------


def define_repository(repo: Path, features: Path) -> FeatureStore:
    """Create a Feast repository in ``repo`` over the Parquet file ``features`` and apply it.

    The offline store is DuckDB, the online store SQLite, and the registry a file. The feature
    view has ``ttl=timedelta(0)``, which means no limit, because Feast 0.67's point-in-time join
    applies a TTL only when it is truthy. The on-demand view computes ``ctr`` with pandas at
    retrieval time and is not written to the online store.
    """
    repo.mkdir(parents=True, exist_ok=True)
    config = RepoConfig(
        project=PROJECT,
        provider="local",
        registry=str(repo / "registry.db"),
        online_store={"type": "sqlite", "path": str(repo / "online.db")},
        offline_store={"type": "duckdb"},
        repo_path=str(repo),
        entity_key_serialization_version=3,
    )
    store = FeatureStore(config=config)

    user = Entity(name=ENTITY, join_keys=[ENTITY], value_type=ValueType.INT64)
    source = FileSource(name="user-signals-parquet", path=str(features), timestamp_field=EVENT_TIME)
    view = FeatureView(
        name=VIEW,
        entities=[user],
        ttl=dt.timedelta(0),
        schema=[Field(name="clicks", dtype=Int64), Field(name="impressions", dtype=Int64)],
        source=source,
        online=True,
    )
    derived = on_demand_feature_view(
        name=DERIVED_VIEW,
        sources=[view],
        schema=[Field(name="ctr", dtype=Float64)],
        mode="pandas",
    )(compute_ctr)

    store.apply([user, source, view, derived])
    return store


class FeastSide:
    """The repositories and spines of this process, by folder and file name."""

    def __init__(self) -> None:
        self.stores: dict[str, FeatureStore] = {}
        self.spines: dict[str, pd.DataFrame] = {}

    def spine(self, path: str) -> pd.DataFrame:
        """Return the spine file as a DataFrame, read once (not timed)."""
        if path not in self.spines:
            self.spines[path] = pq.read_table(path).to_pandas()
        return self.spines[path]

    def define(self, repo: str, features: str) -> dict[str, Any]:
        store, facts = run_phase(lambda: define_repository(Path(repo), Path(features)), memory=False)
        self.stores[repo] = store
        return facts

    def training(self, repo: str, spine: str, output: str | None, memory: bool) -> dict[str, Any]:
        store = self.stores[repo]
        entity_df = self.spine(spine)

        def retrieve() -> pd.DataFrame:
            return store.get_historical_features(entity_df=entity_df, features=FEATURE_REFERENCES).to_df()

        result, facts = run_phase(retrieve, memory)
        facts["rows"] = len(result)
        if output is not None:
            table = pa.Table.from_pandas(result[RESULT_COLUMNS], preserve_index=False)
            pq.write_table(table, output)
        return facts

    def materialize(self, repo: str, start: str, end: str, memory: bool) -> dict[str, Any]:
        store = self.stores[repo]
        start_time = dt.datetime.fromisoformat(start)
        end_time = dt.datetime.fromisoformat(end)
        _, facts = run_phase(lambda: store.materialize(start_time, end_time), memory)
        return facts

    def online_values(self, repo: str, keys: list[int]) -> dict[str, Any]:
        rows = [{ENTITY: key} for key in keys]
        values = self.stores[repo].get_online_features(features=FEATURE_REFERENCES, entity_rows=rows).to_dict()
        return {"values": values}

    def lookups(self, repo: str, batches: str, warmup: int) -> dict[str, Any]:
        """Time one ``get_online_features(...).to_dict()`` per key list, with the request rows built before timing."""
        store = self.stores[repo]
        with open(batches, encoding="utf-8") as file:
            requests = [[{ENTITY: key} for key in batch] for batch in json.load(file)]

        for rows in requests[:warmup]:
            store.get_online_features(features=FEATURE_REFERENCES, entity_rows=rows).to_dict()
        seconds = []
        for rows in requests[warmup:]:
            start = time.perf_counter()
            store.get_online_features(features=FEATURE_REFERENCES, entity_rows=rows).to_dict()
            seconds.append(time.perf_counter() - start)
        return {"seconds": seconds}

    def close(self, repo: str) -> dict[str, Any]:
        self.stores.pop(repo, None)
        gc.collect()
        return {}


def versions() -> dict[str, Any]:
    found = {name: importlib.metadata.version(name) for name in VERSIONED_PACKAGES}
    return {"versions": {"python": platform.python_version(), **found}}


# -- request loop -----------------------------------------------------------------------------


def handle(side: FeastSide, request: dict[str, Any]) -> dict[str, Any]:
    """Run one request and return the fields of its reply."""
    op = request.pop("op")
    if op == "versions":
        return versions()
    if op == "define":
        return side.define(**request)
    if op == "training":
        return side.training(**request)
    if op == "materialize":
        return side.materialize(**request)
    if op == "online_values":
        return side.online_values(**request)
    if op == "lookups":
        return side.lookups(**request)
    if op == "close":
        return side.close(**request)
    raise ValueError(f"Unknown request op {op!r}. Expected versions, define, training, materialize, online_values, lookups, close or exit.")


def serve(requests: TextIO, replies: TextIO) -> None:
    """Read requests line by line and write a reply to each, until ``exit`` or the end of the input."""
    side = FeastSide()
    for line in requests:
        request = json.loads(line)
        if request.get("op") == "exit":
            break
        try:
            reply = {"ok": True, **handle(side, request)}
        except Exception:  # noqa: BLE001 - the parent reports the traceback and stops
            reply = {"ok": False, "error": traceback.format_exc()}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def main() -> int:
    # Keep the original standard output for replies, and send whatever else is printed to fd 1
    # (Feast's progress messages, tqdm bars) to standard error.
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    serve(sys.stdin, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
