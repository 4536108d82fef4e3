"""Several processes on one store: concurrent writers and a reader, and writers killed mid-ingest.

The store operations under test run in child processes that subprocess starts from
concurrency_worker.py in a fresh interpreter. No child is forked from pytest, so none inherits
DuckDB's threads. Children report results and tracebacks as JSON files, which the assertion
messages quote.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from raise_jupyter import FeatureStore

WORKER = Path(__file__).with_name("concurrency_worker.py")
NAMESPACE = "acme/ml/engagement"
GROUP = "user-signals"
SCHEMA = {
    "user_id": "int64",
    "ts": "timestamp",
    "clicks": "int64",
    "impressions": "int64",
    "writer_id": "int64",
    "batch_no": "int64",
    "row_no": "int64",
}
DERIVED = {"ctr": "clicks / NULLIF(impressions, 0)"}

# Guard against a hung child so that a deadlock fails the test instead of hanging CI. It is
# not a performance limit, because a healthy child finishes in a few seconds.
MAX_WAIT_S = 300.0
POLL_INTERVAL_S = 0.002

WRITERS = 3
BATCHES = 30
ROWS_PER_BATCH = 2_000

KNOWN_ROWS = 10_000
BIG_ROWS = 2_500_000
SMALL_ROWS = 1_000
# Kill moments as fractions of the time that one uncontended ingest of BIG_ROWS rows took.
# The first window ends around the catalog's batch reservation, the middle ones fall in the
# Parquet write, and the last one straddles the Delta commit.
KILL_WINDOWS = [(0.0, 0.02), (0.1, 0.4), (0.4, 0.7), (0.7, 0.95), (0.95, 1.1)]
KNOWN_WRITER_ID = 1
BIG_WRITER_ID = 100
SMALL_WRITER_ID = 200


@dataclass
class Child:
    """A worker process and the files it reports through."""

    name: str
    process: subprocess.Popen[bytes]
    result_path: Path
    log_path: Path


def _child_env() -> dict[str, str]:
    """Return this environment without the variables that would point the store elsewhere."""
    env = dict(os.environ)
    env.pop("RAISE_CATALOG_URL", None)
    env.pop("RAISE_HOME", None)
    return env


def _start_child(workdir: Path, name: str, config: dict[str, Any]) -> Child:
    config_path = workdir / f"{name}.config.json"
    result_path = workdir / f"{name}.result.json"
    log_path = workdir / f"{name}.log"
    config_path.write_text(json.dumps({**config, "result": str(result_path)}), encoding="utf-8")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(WORKER), str(config_path)],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(),
        )
    return Child(name, process, result_path, log_path)


def _log_tail(child: Child, lines: int = 30) -> str:
    if not child.log_path.exists():
        return ""
    text = child.log_path.read_text(encoding="utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def _kill_all(children: list[Child]) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.kill()
            child.process.wait()


def _finish(child: Child, children: list[Child]) -> dict[str, Any]:
    """Close the child's stdin, wait for it to exit and return its result.

    A child that exits without a result file gets ``{"error": ...}`` with its exit status and
    the end of its output. A child still running after MAX_WAIT_S fails the test, after every
    child in ``children`` is killed.
    """
    if child.process.stdin is not None:
        child.process.stdin.close()
    try:
        returncode = child.process.wait(timeout=MAX_WAIT_S)
    except subprocess.TimeoutExpired:
        _kill_all([child, *children])
        pytest.fail(f"Child {child.name} was still running after {MAX_WAIT_S} s and was killed.\n{_log_tail(child)}")

    if child.result_path.exists():
        result = json.loads(child.result_path.read_text(encoding="utf-8"))
    else:
        result = {"error": f"Exited with status {returncode} and wrote no result. Output:\n{_log_tail(child)}"}
    if returncode != 0 and "error" not in result:
        result["error"] = f"Exited with status {returncode}. Output:\n{_log_tail(child)}"
    return result


def _wait_for_files(paths: list[Path], children: list[Child]) -> None:
    """Wait until every path exists, and fail if a child exits first or MAX_WAIT_S passes."""
    deadline = time.monotonic() + MAX_WAIT_S
    while not all(path.exists() for path in paths):
        exited = [c for c in children if c.process.poll() is not None]
        if exited:
            _kill_all(children)
            details = "\n".join(f"--- {c.name}:\n{_finish(c, children).get('error')}" for c in exited)
            pytest.fail(f"A child exited before it created its signal file:\n{details}")
        if time.monotonic() > deadline:
            _kill_all(children)
            pytest.fail(f"Signal files did not appear within {MAX_WAIT_S} s: {[str(p) for p in paths]}")
        time.sleep(POLL_INTERVAL_S)


def _describe_errors(results: dict[str, dict[str, Any]]) -> str:
    return "\n".join(f"--- {name}:\n{result['error']}" for name, result in results.items() if "error" in result)


def _create_store(root: Path, groups: list[str]) -> None:
    store = FeatureStore(NAMESPACE, root=root)
    for name in groups:
        group = store.create_feature_group(name, keys=["user_id"], event_time="ts")
        group.create_features_from_schema(SCHEMA)
        for feature, expression in DERIVED.items():
            group.create_feature(feature, dtype="float64", derived_from=expression)


def _base_config(root: Path, group: str) -> dict[str, Any]:
    return {
        "namespace": NAMESPACE,
        "root": str(root),
        "group": group,
        "schema": SCHEMA,
        "derived": DERIVED,
        "max_wait_s": MAX_WAIT_S,
    }


def _row_tags(row_keys: np.ndarray) -> list[tuple[int, int, int]]:
    """Turn the first row keys back into (writer, batch, row) tags for a failure message."""
    return [
        (int(key) // (BATCHES * ROWS_PER_BATCH), int(key) // ROWS_PER_BATCH % BATCHES, int(key) % ROWS_PER_BATCH)
        for key in row_keys[:5]
    ]


@pytest.mark.slow
def test_writers_and_reader_concurrent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAISE_CATALOG_URL", raising=False)
    root = tmp_path / "store"
    _create_store(root, [GROUP])
    go_file = tmp_path / "go"
    stop_file = tmp_path / "stop"
    base = {**_base_config(root, GROUP), "go_file": str(go_file)}

    writers = [
        _start_child(
            tmp_path,
            f"writer-{writer_id}",
            {
                **base,
                "role": "write",
                "writer_id": writer_id,
                "batches": BATCHES,
                "rows": ROWS_PER_BATCH,
                "ready_file": str(tmp_path / f"writer-{writer_id}.ready"),
            },
        )
        for writer_id in range(WRITERS)
    ]
    reader = _start_child(
        tmp_path,
        "reader",
        {**base, "role": "read", "stop_file": str(stop_file), "ready_file": str(tmp_path / "reader.ready")},
    )
    children = [*writers, reader]

    # Release all children at once so that their ingests and reads overlap.
    _wait_for_files([tmp_path / f"{c.name}.ready" for c in children], children)
    go_file.touch()
    results = {child.name: _finish(child, children) for child in writers}
    stop_file.touch()
    results[reader.name] = _finish(reader, children)

    errors = _describe_errors(results)
    assert not errors, f"Child processes raised:\n{errors}"

    # The final state, read in this process after every child has exited.
    total = WRITERS * BATCHES * ROWS_PER_BATCH
    store = FeatureStore(NAMESPACE, root=root)
    group = store.get_feature_group(GROUP)
    count = group.count()
    assert count == total, f"count() is {count:,} after all writers ended, expected {total:,}."
    sql_rows = store.sql(f'SELECT count(*) AS n FROM "{GROUP}"').to_arrow().column("n")[0].as_py()
    assert sql_rows == total, f"sql() counts {sql_rows:,} rows after all writers ended, expected {total:,}."

    tags = group.to_arrow(["writer_id", "batch_no", "row_no"])
    writer_ids = tags.column("writer_id").to_numpy()
    batch_nos = tags.column("batch_no").to_numpy()
    row_nos = tags.column("row_no").to_numpy()
    in_range = (
        (writer_ids >= 0)
        & (writer_ids < WRITERS)
        & (batch_nos >= 0)
        & (batch_nos < BATCHES)
        & (row_nos >= 0)
        & (row_nos < ROWS_PER_BATCH)
    )
    assert in_range.all(), f"{int((~in_range).sum()):,} rows carry tags that no writer wrote."
    copies = np.bincount((writer_ids * BATCHES + batch_nos) * ROWS_PER_BATCH + row_nos, minlength=total)
    duplicated = np.flatnonzero(copies > 1)
    missing = np.flatnonzero(copies == 0)
    assert duplicated.size == 0, (
        f"{duplicated.size:,} (writer, batch, row) tags appear more than once, such as {_row_tags(duplicated)}."
    )
    assert missing.size == 0, f"{missing.size:,} (writer, batch, row) tags are missing, such as {_row_tags(missing)}."

    # What the reader saw while the writers ran. Its last two reads started after they ended.
    observations = results[reader.name]["observations"]
    counts = [rows for _, rows, _ in observations]
    print(f"reader: {len(observations)} reads, {len(set(counts))} distinct counts")
    decreases = [(i, counts[i - 1], counts[i]) for i in range(1, len(counts)) if counts[i] < counts[i - 1]]
    assert not decreases, f"The reader's row count decreased (read index, before, after): {decreases[:5]}."
    partial = [(method, rows) for method, rows, _ in observations if rows % ROWS_PER_BATCH]
    assert not partial, f"The reader saw counts that are not whole batches of {ROWS_PER_BATCH:,}: {partial[:5]}."
    incomplete = [
        (rows, batches) for method, rows, batches in observations if method == "sql" and rows != batches * ROWS_PER_BATCH
    ]
    assert not incomplete, f"sql() saw batches with missing rows (rows, batches): {incomplete[:5]}."
    assert counts[-1] == total, f"The reader's last count is {counts[-1]:,} after all writers ended, expected {total:,}."

    # The catalog's ingest log against the versions that ingest() returned and the Delta commit log.
    with store._catalog.read() as conn:
        ingests = store._catalog.list_ingests(conn, group._id)
    assert len(ingests) == WRITERS * BATCHES, f"The ingest log has {len(ingests)} entries, expected {WRITERS * BATCHES}."
    not_committed = [(r.batch, r.status) for r in ingests if r.status != "committed"]
    assert not not_committed, f"Ingests not marked committed (batch, status): {not_committed[:5]}."
    wrong_rows = [(r.batch, r.rows) for r in ingests if r.rows != ROWS_PER_BATCH]
    assert not wrong_rows, f"Ingests logged with other than {ROWS_PER_BATCH:,} rows (batch, rows): {wrong_rows[:5]}."

    batches_by_version: dict[int | None, list[int]] = {}
    for record in ingests:
        batches_by_version.setdefault(record.table_version, []).append(record.batch)
    shared = {version: batches for version, batches in batches_by_version.items() if len(batches) > 1}
    assert not shared, f"Ingests logged with the same table version (version: batches): {shared}."

    logged_versions = sorted(r.table_version for r in ingests)
    returned_versions = sorted(v for name, result in results.items() if name != reader.name for v in result["versions"])
    assert logged_versions == returned_versions, (
        f"The ingest log's table versions {logged_versions} differ from those ingest() returned {returned_versions}."
    )

    history = group.history().dropna(subset=["batch"])
    commit_versions = {int(row.batch): int(row.version) for row in history.itertuples()}
    mismatched = {
        r.batch: (r.table_version, commit_versions.get(r.batch))
        for r in ingests
        if commit_versions.get(r.batch) != r.table_version
    }
    assert not mismatched, (
        f"The ingest log and the Delta commit log disagree on the version of these batches "
        f"(batch: logged version, committed version): {mismatched}."
    )


def _run_ingest_child(workdir: Path, name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Run one ingest child to completion and return its result."""
    child = _start_child(workdir, name, config)
    _wait_for_files([Path(config["done_file"])], [child])
    return _finish(child, [child])


def _ingest_config(
    root: Path, workdir: Path, name: str, group: str, writer_id: int, batch_no: int, rows: int
) -> dict[str, Any]:
    return {
        **_base_config(root, group),
        "role": "ingest",
        "writer_id": writer_id,
        "batch_no": batch_no,
        "rows": rows,
        "ready_file": str(workdir / f"{name}.ready"),
        "done_file": str(workdir / f"{name}.done"),
    }


def _expected_rows(writer_id: int) -> int:
    """Return the size of the batches that carry ``writer_id`` in the kill test."""
    if writer_id == KNOWN_WRITER_ID:
        return KNOWN_ROWS
    if writer_id >= SMALL_WRITER_ID:
        return SMALL_ROWS
    return BIG_ROWS


def _kill_phase(ingest: dict[str, Any] | None, in_delta: bool) -> str:
    """Name the step of ingest() that the kill interrupted, from the catalog and Delta logs."""
    if ingest is None:
        return "before the catalog reserved a batch"
    if ingest["status"] == "committed":
        return "after the catalog marked the batch committed"
    if in_delta:
        return "after the Delta commit, before the catalog marked it committed"
    return "after the catalog reserved a batch, before the Delta commit"


@pytest.mark.slow
def test_killed_ingest_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAISE_CATALOG_URL", raising=False)
    root = tmp_path / "store"
    _create_store(root, [GROUP, "calibration"])

    known = _run_ingest_child(
        tmp_path, "known", _ingest_config(root, tmp_path, "known", GROUP, KNOWN_WRITER_ID, 0, KNOWN_ROWS)
    )
    assert "error" not in known, f"Ingest of the known batch failed:\n{known['error']}"
    # One ingest of the big batch into another group times the phases that the kills aim at.
    calibration = _run_ingest_child(
        tmp_path,
        "calibration",
        _ingest_config(root, tmp_path, "calibration", "calibration", BIG_WRITER_ID, 0, BIG_ROWS),
    )
    assert "error" not in calibration, f"Calibration ingest failed:\n{calibration['error']}"
    ingest_seconds = calibration["seconds"]

    seed = random.randrange(2**32)
    rng = random.Random(seed)
    print(f"seed {seed}; one ingest of {BIG_ROWS:,} rows took {ingest_seconds:.3f} s")
    expected_count = KNOWN_ROWS
    seen_batches: set[int] = set()
    phases: list[str] = []

    for round_no, (low, high) in enumerate(KILL_WINDOWS):
        name = f"killed-{round_no}"
        delay = ingest_seconds * rng.uniform(low, high)
        context = f"round {round_no}, kill {delay:.3f} s after ingest() was called, seed {seed}"
        config = _ingest_config(root, tmp_path, name, GROUP, BIG_WRITER_ID + round_no, round_no, BIG_ROWS)
        child = _start_child(tmp_path, name, config)
        _wait_for_files([Path(config["ready_file"])], [child])
        time.sleep(delay)
        # The child blocks on stdin after ingest() returns, so it is alive unless it failed.
        exit_status = child.process.poll()
        if exit_status is not None:
            pytest.fail(
                f"The ingest child exited with status {exit_status} before the kill ({context}):\n"
                f"{_finish(child, [child])['error']}"
            )
        child.process.send_signal(signal.SIGKILL)
        returncode = child.process.wait(timeout=MAX_WAIT_S)
        assert returncode == -signal.SIGKILL, f"The ingest child exited with status {returncode}, not by SIGKILL ({context})."
        returned = Path(config["done_file"]).exists()

        # A fresh process opens the store, reads it and ingests a small batch.
        verifier = _start_child(
            tmp_path,
            f"verify-{round_no}",
            {
                **_base_config(root, GROUP),
                "role": "verify",
                "writer_id": SMALL_WRITER_ID + round_no,
                "batch_no": round_no,
                "rows": SMALL_ROWS,
            },
        )
        verify = _finish(verifier, [verifier])
        assert "error" not in verify, f"The store failed after the kill ({context}):\n{verify['error']}"
        before = verify["before"]
        count = before["count"]
        new_ingests = [r for r in before["ingests"] if r["batch"] not in seen_batches]
        big_ingest = next((r for r in new_ingests if r["rows"] == BIG_ROWS), None)
        in_delta = big_ingest is not None and big_ingest["batch"] in before["committed_batches"]
        visible = count == expected_count + BIG_ROWS
        phase = _kill_phase(big_ingest, in_delta)
        phases.append(phase)
        print(f"{context}: {phase}; batch {'fully visible' if visible else 'not visible'}")

        assert count in (expected_count, expected_count + BIG_ROWS), (
            f"count() is {count:,} after the kill, expected {expected_count:,} (batch lost) or "
            f"{expected_count + BIG_ROWS:,} (batch kept) ({context})."
        )
        assert before["sql_rows"] == count, f"sql() counts {before['sql_rows']:,} rows but count() {count:,} ({context})."
        partial = [b for b in before["per_batch"] if b["n"] != _expected_rows(b["writer_id"])]
        assert not partial, f"Batches with missing or extra rows (writer_id, batch_no, n): {partial} ({context})."
        assert visible == in_delta, (
            f"The batch is {'visible' if visible else 'not visible'} to reads, but the Delta commit log "
            f"{'has' if in_delta else 'lacks'} it ({context}). Ingest log entries: {new_ingests}."
        )
        if returned:
            assert visible, f"ingest() returned before the kill, but its batch is not visible ({context})."
        assert before["sample_rows"] > 0, f"to_arrow() returned no rows after the kill ({context})."
        assert "ctr" in before["sample_columns"], f"to_arrow() lacks the derived feature ctr ({context})."

        after = verify["after"]
        assert after["count"] == count + SMALL_ROWS, (
            f"count() is {after['count']:,} after ingesting {SMALL_ROWS:,} rows into {count:,}, expected "
            f"{count + SMALL_ROWS:,} ({context})."
        )
        small_ingest = next(
            (r for r in after["ingests"] if r["rows"] == SMALL_ROWS and r["batch"] not in seen_batches), None
        )
        assert small_ingest is not None, f"The ingest log lacks the ingest made after the kill ({context})."
        assert small_ingest["status"] == "committed", (
            f"The ingest made after the kill is logged as {small_ingest['status']!r}, expected 'committed' ({context})."
        )

        seen_batches.update(r["batch"] for r in after["ingests"])
        expected_count = after["count"]

    summary = {phase: phases.count(phase) for phase in sorted(set(phases))}
    print(f"kill phases: {summary}")
