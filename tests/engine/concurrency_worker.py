"""Child process of the tests in test_concurrency.py: one writer, reader, ingester or verifier.

Run as ``python concurrency_worker.py CONFIG_PATH``. The JSON config names the role, the store
and the files used to signal the parent. The child writes its result to ``config["result"]``
as JSON. On any exception it writes ``{"error": traceback}`` there and exits with status 1, so
the parent can show the traceback in its assertion message.

Every row carries ``writer_id``, ``batch_no`` and ``row_no``, so the parent can check that
each row written appears exactly once.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

# Event time of batch 0 (2023-11-14 UTC) in microseconds. Each later batch is one second later.
_TS_BASE_US = 1_700_000_000_000_000
# Interval between polls of a signal file, in seconds.
_POLL_INTERVAL_S = 0.005


def build_rows(writer_id: int, batch_no: int, rows: int) -> pa.Table:
    """Build one batch of ``rows`` rows tagged with the writer id, batch number and row number."""
    row_no = np.arange(rows, dtype=np.int64)
    ts = np.full(rows, _TS_BASE_US + batch_no * 1_000_000, dtype=np.int64).astype("datetime64[us]")
    return pa.table(
        {
            "user_id": row_no,
            "ts": pa.array(ts),
            "clicks": row_no % 7,
            "impressions": row_no % 11,
            "writer_id": np.full(rows, writer_id, dtype=np.int64),
            "batch_no": np.full(rows, batch_no, dtype=np.int64),
            "row_no": row_no,
        }
    )


def open_group(config: dict[str, Any]) -> Any:
    """Open the store and create the group, or return it if the definition already matches."""
    from raise_jupyter import FeatureStore

    store = FeatureStore(config["namespace"], root=config["root"])
    group = store.create_feature_group(config["group"], keys=["user_id"], event_time="ts")
    group.create_features_from_schema(config["schema"])
    for name, expression in config["derived"].items():
        group.create_feature(name, dtype="float64", derived_from=expression)
    return store, group


def wait_for_file(path: Path, max_wait_s: float) -> None:
    """Poll until ``path`` exists, and raise TimeoutError after ``max_wait_s`` seconds."""
    deadline = time.monotonic() + max_wait_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Signal file {path} did not appear within {max_wait_s} s.")
        time.sleep(_POLL_INTERVAL_S)


def signal_ready_and_wait(config: dict[str, Any]) -> None:
    """Create this child's ready file, then wait for the parent's go file."""
    Path(config["ready_file"]).touch()
    wait_for_file(Path(config["go_file"]), config["max_wait_s"])


def run_writer(config: dict[str, Any]) -> dict[str, Any]:
    """Ingest ``batches`` batches one after another and return the table version of each."""
    _, group = open_group(config)
    writer_id = config["writer_id"]
    rows = config["rows"]
    batches = [build_rows(writer_id, batch_no, rows) for batch_no in range(config["batches"])]

    signal_ready_and_wait(config)
    versions = []
    for batch_no, data in enumerate(batches):
        result = group.ingest(data)
        if result.rows != rows:
            raise AssertionError(f"ingest() of batch {batch_no} reported {result.rows} rows, expected {rows}.")
        versions.append(result.version)
    return {"versions": versions}


def run_reader(config: dict[str, Any]) -> dict[str, Any]:
    """Read the row count with count() and with sql() in turn until the stop file appears.

    Each observation is ``[method, rows, batches]``. For sql(), ``batches`` is the number of
    distinct (writer_id, batch_no) pairs it saw. For count(), it is None.
    """
    from raise_jupyter import FeatureStore

    store = FeatureStore(config["namespace"], root=config["root"])
    group = store.get_feature_group(config["group"])
    query = (
        f'SELECT count(*) AS n, count(DISTINCT (writer_id, batch_no)) AS batches FROM "{config["group"]}"'
    )
    stop_file = Path(config["stop_file"])

    signal_ready_and_wait(config)
    observations: list[list[Any]] = []
    deadline = time.monotonic() + config["max_wait_s"]
    while True:
        # Check the stop file before reading, so the last reads start after all writers ended.
        stopping = stop_file.exists()
        observations.append(["count", group.count(), None])
        row = store.sql(query).to_arrow().to_pylist()[0]
        observations.append(["sql", row["n"], row["batches"]])
        if stopping:
            return {"observations": observations}
        if time.monotonic() > deadline:
            raise TimeoutError(f"Stop file {stop_file} did not appear within {config['max_wait_s']} s.")


def run_ingest(config: dict[str, Any]) -> dict[str, Any]:
    """Ingest one batch, then block until the parent closes stdin or kills this process.

    The ready file appears right before ``ingest()`` is called and the done file right after
    it returns. The done file contains the seconds the call took.
    """
    _, group = open_group(config)
    data = build_rows(config["writer_id"], config["batch_no"], config["rows"])

    Path(config["ready_file"]).touch()
    started = time.monotonic()
    group.ingest(data)
    elapsed = time.monotonic() - started
    Path(config["done_file"]).write_text(json.dumps({"seconds": elapsed}), encoding="utf-8")

    sys.stdin.read()
    return {"seconds": elapsed}


def describe_group(store: Any, group: Any) -> dict[str, Any]:
    """Return the row counts, rows per batch tag, ingest log and Delta commits of a group."""
    name = group.name
    sql_rows = store.sql(f'SELECT count(*) AS n FROM "{name}"').to_arrow().column("n")[0].as_py()
    per_batch = store.sql(
        f'SELECT writer_id, batch_no, count(*) AS n FROM "{name}" GROUP BY ALL ORDER BY ALL'
    ).to_arrow().to_pylist()
    # to_arrow() reads every column, derived ones included, of every file of the table.
    sample = group.to_arrow(where="row_no < 3")
    with store._catalog.read() as conn:
        ingests = store._catalog.list_ingests(conn, group._id)
    history = group.history()
    return {
        "count": group.count(),
        "sql_rows": sql_rows,
        "per_batch": per_batch,
        "sample_rows": sample.num_rows,
        "sample_columns": sample.column_names,
        "ingests": [
            {"batch": r.batch, "status": r.status, "rows": r.rows, "table_version": r.table_version}
            for r in ingests
        ],
        "committed_batches": sorted(int(b) for b in history["batch"].dropna()),
    }


def run_verify(config: dict[str, Any]) -> dict[str, Any]:
    """Open the store in this fresh process, describe the group, ingest a small batch, describe again."""
    from raise_jupyter import FeatureStore

    store = FeatureStore(config["namespace"], root=config["root"])
    group = store.get_feature_group(config["group"])
    before = describe_group(store, group)
    result = group.ingest(build_rows(config["writer_id"], config["batch_no"], config["rows"]))
    after = describe_group(store, group)
    return {"before": before, "ingested_rows": result.rows, "after": after}


ROLES = {"write": run_writer, "read": run_reader, "ingest": run_ingest, "verify": run_verify}


def main() -> int:
    config = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    result_path = Path(config["result"])
    try:
        result = ROLES[config["role"]](config)
    except BaseException:
        result_path.write_text(json.dumps({"error": traceback.format_exc()}), encoding="utf-8")
        return 1
    result_path.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
