"""Benchmark Raise's point-in-time join against a hand-written DuckDB ASOF join and pandas merge_asof.

Raise: ``FeatureStore.get_training_data(spine, ["g.clicks", "g.impressions", "g.ctr"])`` with
``.to_arrow()``, where ``ctr`` is a derived feature. DuckDB: an ``ASOF LEFT JOIN`` written by hand
over the Parquet files of the same table version, on a fresh connection. pandas:
``pandas.merge_asof(by="user_id", direction="backward")`` on the same files read into DataFrames.

The feature rows are generated with numpy, and every entity has rows at distinct event times.
So the ingest-order tie-break that Raise applies among equal event times never decides a row, and
all sides must return the same values, which a check confirms before timing. The sides run
alternately within each repeat, so that load from other processes hits them alike. Peak memory is
measured once per side, each in a fresh child process.

Run ``python bench/training_data.py --help`` for the options. ``--output BENCHMARKS.md`` replaces
this benchmark's section of that file and keeps the other sections.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from _common import Timings, alternate, render_run_header, reset_peak_rss, status_kib, timed, verdict, write_section
from deltalake import DeltaTable

from raise_jupyter import FeatureStore, training
from raise_jupyter.engine import offline
from raise_jupyter.group import FeatureGroup

SECTION_TITLE = "Training data: point-in-time join"
STORE_NAME = "bench/training"
GROUP_NAME = "g"
KEY = "user_id"
EVENT_TIME = "ts"
SPINE_LABEL = "label"
STORED_FEATURES = {"clicks": "int64", "impressions": "int64", "spend": "float64"}
DERIVED_NAME = "ctr"
DERIVED_EXPRESSION = "clicks / NULLIF(impressions, 0)"
REQUESTED = ["clicks", "impressions", DERIVED_NAME]
FEATURE_REFERENCES = [f"{GROUP_NAME}.{name}" for name in REQUESTED]
# Stored columns that the requested features need; spend is stored but not requested.
LOADED_COLUMNS = [KEY, EVENT_TIME, "clicks", "impressions"]
SPINE_ROW = "spine_row"
TARGET = 1.3  # Raise's join time over the hand-written DuckDB join's, at most

SEED = 20261204
START = np.datetime64("2026-01-01T00:00:00", "us")
US_PER_DAY = 86_400 * 10**6
UNKNOWN_ENTITY_SHARE = 0.01  # spine rows whose user_id has no feature rows
EARLY_SPINE_SHARE = 0.05  # the spine's time range starts this share of the feature range early
TIMESTAMP = pa.timestamp("us", tz="UTC")

# Raise's sort key, as raise_jupyter/engine/pointintime.py builds it: event time in microseconds
# times 2**64, plus _raise_seq for feature rows and plus 2**64 - 1 for spine rows.
SHIFT = "18446744073709551616::HUGEINT"

SIDES = ["raise", "raise_hugeint", "duckdb", "duckdb_sort_key", "pandas"]
MEMORY_SIDES = ["raise", "duckdb", "pandas"]


# -- data -------------------------------------------------------------------------------------


def generate_features(entities: int, rows_per_entity: int, days: int, rng: np.random.Generator) -> pa.Table:
    """Return ``entities * rows_per_entity`` feature rows over ``days`` days, roughly in time order.

    The time range is cut into ``rows_per_entity`` slots of equal length, and each entity has one
    row at a random microsecond of each slot, so no entity has two rows with the same event time.
    Rows come slot by slot, with the entities of a slot in random order, as an event log arrives.
    About 1 in 50 rows has 0 impressions, which makes ``ctr`` NULL.
    """
    rows = entities * rows_per_entity
    slot_us = days * US_PER_DAY // rows_per_entity
    user_id = np.concatenate([rng.permutation(entities) for _ in range(rows_per_entity)]).astype(np.int64)
    slot = np.repeat(np.arange(rows_per_entity, dtype=np.int64), entities)
    event_us = START.astype(np.int64) + slot * slot_us + rng.integers(0, slot_us, rows)
    impressions = rng.integers(0, 50, rows)
    clicks = rng.binomial(impressions, 0.05).astype(np.int64)
    spend = rng.gamma(2.0, 0.5, rows)
    return pa.table(
        {
            KEY: user_id,
            EVENT_TIME: pa.array(event_us, TIMESTAMP),
            "clicks": clicks,
            "impressions": impressions,
            "spend": spend,
        }
    )


def generate_spine(rows: int, entities: int, days: int, rng: np.random.Generator) -> pa.Table:
    """Return ``rows`` spine rows in random order: user_id, ts (timestamp[us, UTC]) and a 0/1 label.

    About 1% of the user ids have no feature rows, and the timestamps start 5% of the time range
    before the first feature rows, so some spine rows match nothing.
    """
    span_us = days * US_PER_DAY
    user_id = rng.integers(0, entities + math.ceil(entities * UNKNOWN_ENTITY_SHARE), rows)
    early_us = int(span_us * EARLY_SPINE_SHARE)
    event_us = START.astype(np.int64) + rng.integers(-early_us, span_us, rows)
    label = rng.integers(0, 2, rows)
    return pa.table({KEY: user_id, EVENT_TIME: pa.array(event_us, TIMESTAMP), SPINE_LABEL: label})


def build_group(store: FeatureStore, features: pa.Table, batches: int) -> FeatureGroup:
    """Create the feature group and ingest ``features`` in ``batches`` calls of equal size (one file each)."""
    group = store.create_feature_group(GROUP_NAME, keys=[KEY], event_time=EVENT_TIME)
    group.create_features_from_schema({KEY: "int64", EVENT_TIME: "timestamp", **STORED_FEATURES})
    group.create_feature(DERIVED_NAME, dtype="float64", derived_from=DERIVED_EXPRESSION)
    size = math.ceil(features.num_rows / batches)
    for start in range(0, features.num_rows, size):
        group.ingest(features.slice(start, size))
    return group


def group_files(group: FeatureGroup) -> list[str]:
    """Return the Parquet files of the group's latest table version."""
    # FeatureGroup has no public accessor for its Delta table location.
    return DeltaTable(str(group._path)).file_uris()


def parquet_list_sql(files: list[str]) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def count_equal_event_times(files: list[str]) -> int:
    """Return how many (user_id, ts) pairs occur more than once in ``files``."""
    con = duckdb.connect()
    try:
        sql = (
            f"SELECT count(*) FROM (SELECT {KEY}, {EVENT_TIME} FROM read_parquet({parquet_list_sql(files)}) "
            "GROUP BY ALL HAVING count(*) > 1)"
        )
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


# -- the measured operations ------------------------------------------------------------------


def raise_join(store: FeatureStore, spine: pa.Table, *, compact: bool = True) -> pa.Table:
    """Run Raise's join; with ``compact=False`` as for a group whose batches have ties."""
    if compact:
        return store.get_training_data(spine, FEATURE_REFERENCES).to_arrow()
    choose = training._compact_key
    training._compact_key = lambda *args, **kwargs: None
    try:
        return store.get_training_data(spine, FEATURE_REFERENCES).to_arrow()
    finally:
        training._compact_key = choose


def compact_key_used(store: FeatureStore, spine: pa.Table) -> bool:
    """Return whether Raise's join picks the BIGINT sort key for this table."""
    chosen = []
    choose = training._compact_key
    training._compact_key = lambda *args, **kwargs: chosen.append(choose(*args, **kwargs)) or chosen[-1]
    try:
        store.get_training_data(spine.slice(0, 10), FEATURE_REFERENCES)
    finally:
        training._compact_key = choose
    return chosen[-1] is not None


def duckdb_connection() -> duckdb.DuckDBPyConnection:
    """Open the baseline's connection, with the settings that the ASOF join needs."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # DuckDB 1.5.5 estimates a registered Arrow table at about one row and then joins with a
    # nested loop in place of its ASOF operator; 0 always uses the ASOF operator.
    con.execute("SET asof_loop_join_threshold = 0")
    return con


def duckdb_spine_sql(sort_key: bool) -> str:
    """Return the statement that copies the registered spine into a temporary table."""
    key = f", epoch_us({EVENT_TIME})::HUGEINT * {SHIFT} + ({SHIFT} - 1) AS sort_key" if sort_key else ""
    return f"CREATE TEMP TABLE spine AS SELECT *{key} FROM spine_input"


def duckdb_join_sql(files: list[str], sort_key: bool) -> str:
    """Return the hand-written ASOF join: spine columns and features, in spine order.

    With ``sort_key``, the join compares Raise's HUGEINT (event time, ingest sequence) key in
    place of the timestamps, as Raise does to make the row ingested last win among equal times.
    """
    scan = f"read_parquet({parquet_list_sql(files)})"
    if sort_key:
        features = (
            f"(SELECT {KEY}, clicks, impressions, "
            f"epoch_us({EVENT_TIME})::HUGEINT * {SHIFT} + {offline.SEQ_COLUMN} AS sort_key FROM {scan})"
        )
        time_condition = "s.sort_key >= f.sort_key"
    else:
        features = scan
        time_condition = f"s.{EVENT_TIME} >= f.{EVENT_TIME}"
    return (
        f"SELECT s.{KEY}, s.{EVENT_TIME}, s.{SPINE_LABEL}, f.clicks, f.impressions, "
        f"CAST(f.clicks / NULLIF(f.impressions, 0) AS DOUBLE) AS {DERIVED_NAME} "
        f"FROM spine AS s ASOF LEFT JOIN {features} AS f "
        f"ON s.{KEY} = f.{KEY} AND {time_condition} ORDER BY s.{SPINE_ROW}"
    )


def duckdb_join(con: duckdb.DuckDBPyConnection, spine: pa.Table, spine_sql: str, join_sql: str) -> pa.Table:
    """Number the spine rows, copy the spine into a temporary table and run the join."""
    numbered = spine.append_column(SPINE_ROW, pa.array(np.arange(spine.num_rows, dtype=np.int64)))
    con.register("spine_input", numbered)
    con.execute(spine_sql)
    return con.execute(join_sql).to_arrow_table()


def pandas_load(files: list[str]) -> pd.DataFrame:
    return pq.read_table(files, columns=LOADED_COLUMNS).to_pandas()


def pandas_merge(features: pd.DataFrame, spine: pd.DataFrame) -> pd.DataFrame:
    """Join with ``merge_asof``, compute ctr and return the rows in spine order.

    ``merge_asof`` needs both sides sorted by the ``on`` column, so the sorts are part of the join.
    """
    right = features.sort_values(EVENT_TIME, kind="stable")
    left = spine.sort_values(EVENT_TIME, kind="stable")
    merged = pd.merge_asof(left, right, on=EVENT_TIME, by=KEY, direction="backward")
    merged[DERIVED_NAME] = merged["clicks"] / merged["impressions"].where(merged["impressions"] != 0)
    # merge_asof returns the rows in the order of ``left``, whose index contains the spine positions.
    merged.index = left.index
    return merged.sort_index()


@dataclass
class Sides:
    """Everything the measured operations need, prepared before timing."""

    store: FeatureStore
    spine: pa.Table
    spine_frame: pd.DataFrame
    files: list[str]

    def run_raise(self, compact: bool = True) -> pa.Table:
        return raise_join(self.store, self.spine, compact=compact)

    def run_duckdb(self, sort_key: bool) -> tuple[float, pa.Table]:
        """Time the baseline on a fresh connection, opened and closed outside the timing."""
        con = duckdb_connection()
        spine_sql = duckdb_spine_sql(sort_key)
        join_sql = duckdb_join_sql(self.files, sort_key)
        result: list[pa.Table] = []
        seconds = timed(lambda: result.append(duckdb_join(con, self.spine, spine_sql, join_sql)))
        con.close()
        return seconds, result[0]

    def run_pandas(self) -> tuple[float, float, pd.DataFrame]:
        """Time reading the files into a DataFrame, then the merge on it."""
        loaded: list[pd.DataFrame] = []
        load_seconds = timed(lambda: loaded.append(pandas_load(self.files)))
        merged: list[pd.DataFrame] = []
        merge_seconds = timed(lambda: merged.append(pandas_merge(loaded[0], self.spine_frame)))
        return load_seconds, merge_seconds, merged[0]


# -- checks -----------------------------------------------------------------------------------


def pandas_to_arrow(frame: pd.DataFrame) -> pa.Table:
    """Convert the pandas result to Raise's types: NaN becomes null and the counts int64 again."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for name in ("clicks", "impressions"):
        table = table.set_column(table.column_names.index(name), name, table.column(name).cast(pa.int64()))
    return table


def check_same_results(spine: pa.Table, results: dict[str, pa.Table]) -> None:
    """Raise AssertionError unless every result has the spine's rows in order and the same features."""
    expected_columns = [*spine.column_names, *REQUESTED]
    for side, table in results.items():
        if table.column_names != expected_columns:
            raise AssertionError(f"{side} returned columns {table.column_names}, expected {expected_columns}")
        for name in spine.column_names:
            if not table.column(name).equals(spine.column(name)):
                raise AssertionError(f"{side} changed spine column {name!r} or the order of the spine rows")

    reference_side = "raise"
    reference = results[reference_side]
    for side, table in results.items():
        for name in REQUESTED:
            expected = reference.column(name)
            actual = table.column(name)
            if actual.type != expected.type:
                raise AssertionError(f"{side} column {name!r} has type {actual.type}, {reference_side} {expected.type}")
            if not actual.equals(expected):
                same = pc.fill_null(pc.equal(actual, expected), False)
                both_null = pc.and_(pc.is_null(actual), pc.is_null(expected))
                differing = table.num_rows - pc.sum(pc.or_(same, both_null)).as_py()
                raise AssertionError(f"{side} column {name!r} differs from {reference_side} in {differing:,} rows")


# -- the benchmark ----------------------------------------------------------------------------


def measure(sides: Sides, repeats: int) -> Timings:
    """Time every side ``repeats`` times, alternating their order."""
    timings = Timings()
    for repeat in range(repeats):
        for side in alternate(SIDES, repeat):
            if side == "raise":
                timings.add(side, timed(sides.run_raise))
            elif side == "raise_hugeint":
                timings.add(side, timed(lambda: sides.run_raise(compact=False)))
            elif side == "duckdb":
                timings.add(side, sides.run_duckdb(sort_key=False)[0])
            elif side == "duckdb_sort_key":
                timings.add(side, sides.run_duckdb(sort_key=True)[0])
            else:
                load_seconds, merge_seconds, _ = sides.run_pandas()
                timings.add("pandas_load", load_seconds)
                timings.add("pandas_merge", merge_seconds)
                timings.add("pandas_load_merge", load_seconds + merge_seconds)
            reported = "pandas_load_merge" if side == "pandas" else side
            print(f"repeat {repeat} {side}: {timings.sides[reported][-1]:.3f} s", file=sys.stderr)
    return timings


# -- peak memory, one child process per side ---------------------------------------------------


def _measure_phase(operation: Callable[[], object], keep: list[object]) -> dict[str, float]:
    """Run ``operation`` and return RSS before it and the peak RSS while it ran, in MiB.

    The result is appended to ``keep`` so that it still counts when the peak is read.
    """
    gc.collect()
    reset = reset_peak_rss()
    before_kib = status_kib("VmRSS")
    start = time.perf_counter()
    keep.append(operation())
    seconds = time.perf_counter() - start
    # Not getrusage's ru_maxrss: in a child process it never drops below the size of the parent
    # at fork time, which Linux carries across exec.
    peak_kib = status_kib("VmHWM")
    return {"before_mib": before_kib / 1024, "peak_mib": peak_kib / 1024, "seconds": seconds, "reset": reset}


def memory_child(side: str, workdir: Path) -> dict[str, dict[str, float]]:
    """Run one side once in this (fresh) process and return its memory per phase."""
    spine = pq.read_table(workdir / "spine.parquet")
    store = FeatureStore(STORE_NAME, root=workdir / "store")
    files = group_files(store.get_feature_group(GROUP_NAME))
    keep: list[object] = []
    if side == "raise":
        return {"join": _measure_phase(lambda: raise_join(store, spine), keep)}
    if side == "duckdb":
        con = duckdb_connection()
        spine_sql = duckdb_spine_sql(sort_key=False)
        join_sql = duckdb_join_sql(files, sort_key=False)
        return {"join": _measure_phase(lambda: duckdb_join(con, spine, spine_sql, join_sql), keep)}
    if side == "pandas":
        spine_frame = spine.to_pandas()
        load = _measure_phase(lambda: pandas_load(files), keep)
        merge = _measure_phase(lambda: pandas_merge(keep[0], spine_frame), keep)
        return {"load": load, "merge": merge}
    raise ValueError(f"Unknown side {side!r}; expected one of {MEMORY_SIDES}")


def measure_memory(workdir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Run each side of MEMORY_SIDES in its own child process and collect its memory per phase."""
    memory = {}
    for side in MEMORY_SIDES:
        command = [sys.executable, str(Path(__file__).resolve()), "--memory-child", side, "--workdir", str(workdir)]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"Memory child for {side} failed with exit code {completed.returncode}:\n{completed.stderr}")
        memory[side] = json.loads(completed.stdout.strip().splitlines()[-1])
        print(f"memory {side}: {memory[side]}", file=sys.stderr)
    return memory


# -- report -----------------------------------------------------------------------------------


@dataclass
class RunFacts:
    """Sizes and counts of one run, for the report."""

    command: str
    entities: int
    rows_per_entity: int
    days: int
    feature_rows: int
    files: int
    ingest_batches: int
    ingest_seconds: float
    spine_rows: int
    unmatched_rows: int
    null_ctr_rows: int
    repeats: int


def _render_header(facts: RunFacts) -> list[str]:
    lines = render_run_header(SECTION_TITLE, facts.command, {"pandas": pd.__version__, "numpy": np.__version__})
    lines += [
        "",
        f"Data, generated with numpy: {facts.feature_rows:,} feature rows, {facts.entities:,} entities "
        f"(`{KEY}`) times {facts.rows_per_entity} rows over {facts.days} days. Each entity has one row at "
        f"a random microsecond of each of {facts.rows_per_entity} equal time slots, so no entity has two "
        "rows with the same event time, and rows come slot by slot with the entities in random order. "
        f"Stored features: {', '.join(f'{name} {dtype}' for name, dtype in STORED_FEATURES.items())}, "
        f"plus the derived feature `{DERIVED_NAME} = {DERIVED_EXPRESSION}` (NULL for the 1 in 50 rows with "
        f"0 impressions). The group is keyed by `{KEY}` with event time `{EVENT_TIME}` and was filled by "
        f"{facts.ingest_batches} ingest calls of equal size ({facts.files} files, "
        f"{facts.ingest_seconds:.1f} s in all, not part of the comparison).",
        "",
        f"Spine: {facts.spine_rows:,} rows of `{KEY}` int64, `{EVENT_TIME}` timestamp[us, UTC] and "
        f"`{SPINE_LABEL}` int64 in random order, typed as the group's columns before timing. About "
        f"{UNKNOWN_ENTITY_SHARE:.0%} of the user ids have no feature rows and the timestamps start "
        f"{EARLY_SPINE_SHARE:.0%} of the time range before the feature rows, so {facts.unmatched_rows:,} "
        f"spine rows match no feature row, and {facts.null_ctr_rows:,} (these included) get a NULL `{DERIVED_NAME}`.",
        "",
        "A check before timing runs every side once and requires the same spine columns in spine order "
        "and equal feature values (nulls included) on all sides. Then each side ran "
        f"{facts.repeats} times, with the order of the sides reversed on every other repeat. Times are "
        "wall-clock `time.perf_counter()` seconds. Ratios are of medians unless marked min, and the "
        "paired ratio is the median over repeats of the ratio within one repeat. Other processes may "
        "have shared the machine, so where the median, min and paired ratios disagree, load spikes "
        "moved some runs.",
        "",
    ]
    return lines


def _render_times(timings: Timings, facts: RunFacts) -> list[str]:
    lines = [
        "### Time",
        "",
        f"- raise: `fs.get_training_data(spine, {FEATURE_REFERENCES})` and `.to_arrow()`, from the "
        "Arrow spine. It converts the spine's key and timestamp columns, reads the latest table "
        "version, copies the spine into a DuckDB temporary table, runs one ASOF join on a BIGINT key "
        "of (event time, ingest batch), computes the derived feature with a CAST to its dtype, "
        "joins the features back to the spine by row number and appends them to the spine in Arrow. "
        "It runs on the store's DuckDB connection, which is reused across calls and caches Parquet "
        "metadata. The BIGINT key applies because no ingest batch has two rows with the same key and "
        "event time (each ingest checks this and the catalog records it); a check before timing "
        "confirms that Raise picked it.",
        "- raise_hugeint (for reference): the raise side with the BIGINT key switched off, so that it "
        "joins on the HUGEINT key of (event time, ingest sequence), as it does for a group that has "
        "such ties within a batch.",
        "- duckdb: a fresh `duckdb.connect()` with `SET TimeZone = 'UTC'` and `SET "
        "asof_loop_join_threshold = 0`, opened before timing. Timed: number the spine rows in Arrow, "
        "register the spine and copy it into a temporary table, then `SELECT s.user_id, s.ts, "
        "s.label, f.clicks, f.impressions, CAST(f.clicks / NULLIF(f.impressions, 0) AS DOUBLE) AS ctr "
        "FROM spine AS s ASOF LEFT JOIN read_parquet([...]) AS f ON s.user_id = f.user_id AND s.ts >= "
        "f.ts ORDER BY s.spine_row` and `.to_arrow_table()`, over the files of the same table version "
        "from `DeltaTable(path).file_uris()` (listed before timing). It has no tie-break among equal "
        "event times, so with ties nothing in the query decides which tied row it returns. This data has no ties.",
        "- duckdb_sort_key (for reference): the duckdb side with Raise's sort key in place of the "
        "timestamps: `epoch_us(ts)::HUGEINT * 2**64 + _raise_seq` for feature rows and `... + 2**64 - "
        "1` for spine rows, computed as the spine is copied. It shows what the HUGEINT key costs "
        "in plain DuckDB.",
        "- pandas: `pq.read_table(files, columns=[...]).to_pandas()` of the same files (load), then "
        "the merge on the loaded DataFrame and a spine DataFrame converted before timing: sort both "
        f"by `{EVENT_TIME}` (`merge_asof` requires it), `pd.merge_asof(spine, features, on=\"ts\", "
        'by="user_id", direction="backward")`, compute ctr with zero impressions as NaN, and restore '
        "spine order. The result stays a DataFrame, with the count columns float64 because of the "
        "missing values. pandas_merge excludes the load, pandas_load_merge includes it.",
        "",
        "| side | median s | min s | spine rows/s at median |",
        "|---|---:|---:|---:|",
    ]
    for side in ["raise", "raise_hugeint", "duckdb", "duckdb_sort_key", "pandas_merge", "pandas_load", "pandas_load_merge"]:
        lines.append(
            f"| {side} | {timings.median(side):.3f} | {timings.min(side):.3f} "
            f"| {facts.spine_rows / timings.median(side):,.0f} |"
        )

    def ratios(numerator: str, denominator: str) -> str:
        median = timings.median(numerator) / timings.median(denominator)
        minimum = timings.min(numerator) / timings.min(denominator)
        paired = timings.paired_ratio(numerator, denominator)
        return f"{median:.3f} at the median, {minimum:.3f} at the min, {paired:.3f} paired"

    duckdb_ratio = timings.median("raise") / timings.median("duckdb")
    lines += [
        "",
        f"Time raise/duckdb: {ratios('raise', 'duckdb')} (target at most {TARGET}: "
        f"{verdict(duckdb_ratio <= TARGET)}). With the HUGEINT key: raise_hugeint/duckdb "
        f"{ratios('raise_hugeint', 'duckdb')}, of which the key alone costs duckdb_sort_key/duckdb "
        f"{timings.median('duckdb_sort_key') / timings.median('duckdb'):.2f} at the median.",
        "",
        f"Time raise/pandas_merge: {ratios('raise', 'pandas_merge')}. Time raise/pandas_load_merge: "
        f"{ratios('raise', 'pandas_load_merge')}.",
        "",
    ]
    return lines


def _render_memory(memory: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    phases = [
        ("raise", "raise", ["join"]),
        ("duckdb", "duckdb", ["join"]),
        ("pandas_load", "pandas", ["load"]),
        ("pandas_merge", "pandas", ["merge"]),
        ("pandas_load_merge", "pandas", ["load", "merge"]),
    ]
    reset = all(phase["reset"] for side in memory.values() for phase in side.values())
    peak_method = (
        "The peak is reset just before each phase (by writing 5 to `/proc/self/clear_refs`), so it "
        "is the peak of that phase alone."
        if reset
        else "**The peak could not be reset on this system, so each peak is the process's peak since it "
        "started**, including reading the spine and, for the pandas merge, the load."
    )
    lines = [
        "### Peak memory",
        "",
        "Each side ran once more, alone in a fresh child process (`python bench/training_data.py "
        "--memory-child SIDE`) after the timed runs, so the Parquet files were in the page cache. "
        "\"RSS before\" is `VmRSS` with the inputs loaded (Python, the libraries, the spine, and for "
        "the pandas merge the loaded features). \"Peak\" is `VmHWM` from `/proc/self/status` right "
        "after the phase, while the result is still held. `getrusage(RUSAGE_SELF).ru_maxrss` is not "
        "used because in a child process it never drops below the parent's size at fork time. "
        f"{peak_method} RSS counts native memory (DuckDB, Arrow, numpy), which `tracemalloc` would miss. For "
        "pandas_load_merge, the increase is from before the load to the higher of the two phases' peaks.",
        "",
        "| side | RSS before MiB | peak MiB | increase MiB | time in the child s |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, side, names in phases:
        measured = [memory[side][name] for name in names]
        before = measured[0]["before_mib"]
        peak = max(phase["peak_mib"] for phase in measured)
        seconds = sum(phase["seconds"] for phase in measured)
        lines.append(f"| {label} | {before:,.0f} | {peak:,.0f} | {peak - before:,.0f} | {seconds:.2f} |")
    lines.append("")
    return lines


def render_section(facts: RunFacts, timings: Timings, memory: dict[str, dict[str, dict[str, float]]]) -> str:
    """Return the BENCHMARKS.md section, from its ``##`` heading to a trailing blank line."""
    lines = _render_header(facts)
    lines += _render_times(timings, facts)
    lines += _render_memory(memory)
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=100_000, help="distinct user_id values with feature rows (default: 100,000)")
    parser.add_argument("--rows-per-entity", type=int, default=100, help="feature rows per entity (default: 100)")
    parser.add_argument("--days", type=int, default=90, help="days covered by the feature rows' event times (default: 90)")
    parser.add_argument("--spine-rows", type=int, default=1_000_000, help="rows of the spine (default: 1,000,000)")
    parser.add_argument(
        "--ingest-batches", type=int, default=10, help="ingest calls, one file each, that fill the group (default: 10)"
    )
    parser.add_argument("--repeats", type=int, default=15, help="timed runs of each side after the checking run (default: 15)")
    parser.add_argument(
        "--output", type=Path, default=None, help="Markdown file whose benchmark section is replaced (default: print only)"
    )
    parser.add_argument(
        "--tmp-dir", type=Path, default=None, help="parent folder of the temporary store and spine (default: the system's)"
    )
    # Internal: run one side for the peak-memory measurement, on the store and spine in --workdir.
    parser.add_argument("--memory-child", choices=MEMORY_SIDES, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, default=None, help=argparse.SUPPRESS)

    args = parser.parse_args(argv)
    for option in ("entities", "rows_per_entity", "days", "spine_rows", "ingest_batches", "repeats"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    if args.ingest_batches > args.entities * args.rows_per_entity:
        parser.error(f"--ingest-batches ({args.ingest_batches}) must not exceed the feature rows")
    if args.days * US_PER_DAY < args.rows_per_entity:
        parser.error(f"--days {args.days} is too short for {args.rows_per_entity} distinct microseconds per entity")
    if args.memory_child is not None and args.workdir is None:
        parser.error("--memory-child needs --workdir, the folder with the store and spine.parquet")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child is not None:
        print(json.dumps(memory_child(args.memory_child, args.workdir)))
        return 0

    command = shlex.join(["python", "bench/training_data.py", *(sys.argv[1:] if argv is None else argv)])
    rng = np.random.default_rng(SEED)
    features = generate_features(args.entities, args.rows_per_entity, args.days, rng)
    spine = generate_spine(args.spine_rows, args.entities, args.days, rng)
    print(f"{features.num_rows:,} feature rows, {features.nbytes / 1024**2:.0f} MiB in memory", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="raise-bench-", dir=args.tmp_dir) as tmp:
        workdir = Path(tmp)
        store = FeatureStore(STORE_NAME, root=workdir / "store")
        start = time.perf_counter()
        group = build_group(store, features, args.ingest_batches)
        ingest_seconds = time.perf_counter() - start
        del features
        files = group_files(group)
        print(f"ingested in {ingest_seconds:.1f} s, {len(files)} files", file=sys.stderr)

        duplicates = count_equal_event_times(files)
        if duplicates:
            raise AssertionError(f"{duplicates:,} (user_id, ts) pairs occur more than once; the sides could differ")

        if not compact_key_used(store, spine):
            raise AssertionError("Raise did not pick its BIGINT sort key although no batch has ties")
        sides = Sides(store=store, spine=spine, spine_frame=spine.to_pandas(), files=files)
        results = {
            "raise": sides.run_raise(),
            "raise_hugeint": sides.run_raise(compact=False),
            "duckdb": sides.run_duckdb(sort_key=False)[1],
            "duckdb_sort_key": sides.run_duckdb(sort_key=True)[1],
            "pandas": pandas_to_arrow(sides.run_pandas()[2]),
        }
        check_same_results(spine, results)
        reference = results["raise"]
        unmatched = reference.column("clicks").null_count
        null_ctr = reference.column(DERIVED_NAME).null_count
        del results, reference
        print("all sides return the same rows", file=sys.stderr)

        timings = measure(sides, args.repeats)
        pq.write_table(spine, workdir / "spine.parquet")
        memory = measure_memory(workdir)

    facts = RunFacts(
        command=command,
        entities=args.entities,
        rows_per_entity=args.rows_per_entity,
        days=args.days,
        feature_rows=args.entities * args.rows_per_entity,
        files=len(files),
        ingest_batches=args.ingest_batches,
        ingest_seconds=ingest_seconds,
        spine_rows=spine.num_rows,
        unmatched_rows=unmatched,
        null_ctr_rows=null_ctr,
        repeats=args.repeats,
    )
    section = render_section(facts, timings, memory)
    print(section)
    if args.output is not None:
        write_section(args.output, SECTION_TITLE, section)
        print(f"Wrote section {SECTION_TITLE!r} of {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
