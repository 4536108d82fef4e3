"""Benchmark Raise against Feast on one scenario, on the same machine and the same data, in one run.

The scenario defines a feature group keyed by ``user_id`` with event time ``ts``, stored
features ``clicks`` and ``impressions``, and the derived ratio
``ctr = clicks / NULLIF(impressions, 0)``. In Feast these are an entity, a feature view and an
on-demand feature view. It then loads the rows, builds point-in-time training data with ``ctr``
for a spine, materializes into the online store, and looks up 1 and 100 keys online.

Feast runs with its DuckDB offline store and SQLite online store in a separate virtual
environment, because its pinned dependencies would clash with Raise's. The first run creates
that environment in a cache folder and installs Feast into it with pip, and later runs reuse it.
The Feast side runs in a child process with that environment's Python, executing
``bench/_feast_side.py``, which stays warm for the whole run. The Raise side runs in this process.

The data is generated with numpy and written once to Parquet files that both sides read. A check
runs every step once on both sides and requires equal training sets and equal online values before
anything is timed. A disagreement ends the run with exit status 1 and a message that names it. The
sides then run alternately, with the order reversed on every other repeat.

Run ``python bench/feast_comparison.py --help`` for the options. ``--output BENCHMARKS.md``
replaces this benchmark's section of that file and keeps the other sections.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from _common import Timings, alternate, render_run_header, write_section
from _feast_scenario import (
    CTR_TOLERANCE,
    DAYS,
    DERIVED_EXPRESSION,
    DERIVED_NAME,
    EARLY_SPINE_SHARE,
    EVENT_TIME,
    EXACT_TIME_SHARE,
    FEAST_REFERENCES,
    FEATURE_REFERENCES,
    GROUP_NAME,
    KEY,
    ROW_GROUP_ROWS,
    SEED,
    SPINE_LABEL,
    SPINE_ROW,
    STORED_FEATURES,
    UNKNOWN_ENTITY_SHARE,
    US_PER_DAY,
    MismatchError,
    compare_online,
    compare_training,
    generate_features,
    generate_spine,
    materialize_window,
    online_check_keys,
)
from _memory import run_phase
from _feast_venv import FEAST_REQUIREMENT, FeastWorker, default_venv, ensure_feast_venv

from raise_jupyter import FeatureStore
from raise_jupyter.group import FeatureGroup

SECTION_TITLE = "Feast comparison"
NAMESPACE = "bench/feast"
WARMUP_LOOKUPS = 200
LOOKUP_CASES = {"1 key": 1, "100 keys": 100}
MEMORY_PHASES = ["training", "materialize"]

SIDES = ["raise", "feast"]
# Steps of one repeat, in order. Raise's ingest already writes the online store, so its first
# materialize finds the rows there and its second one starts from emptied rows. Feast's first
# materialize writes into an empty online store and its second one overwrites the same rows.
STEPS = ["define", "ingest", "training", "materialize-1", "materialize-2"]
PHASES = ["define", "ingest", "define_ingest", "training", "materialize_filled", "materialize_empty"]


# -- the Raise side ---------------------------------------------------------------------------


@dataclass
class RaiseSide:
    """Raise's stores of this run, one per label, each in its own store root under ``workdir``."""

    workdir: Path
    features_path: Path
    spine: pd.DataFrame
    window: tuple[dt.datetime, dt.datetime]
    stores: dict[str, FeatureStore] = field(default_factory=dict)
    groups: dict[str, FeatureGroup] = field(default_factory=dict)

    def root(self, label: str) -> Path:
        return self.workdir / f"raise-{label}"

    def open(self, label: str) -> None:
        """Open the existing store of ``label``, as another process would."""
        store = FeatureStore(NAMESPACE, root=self.root(label))
        self.stores[label] = store
        self.groups[label] = store.get_feature_group(GROUP_NAME)

    def define(self, label: str) -> float:
        def create() -> None:
            store = FeatureStore(NAMESPACE, root=self.root(label))
            group = store.create_feature_group(GROUP_NAME, keys=KEY, event_time=EVENT_TIME, online=True)
            group.create_features_from_schema({KEY: "int64", EVENT_TIME: "timestamp", **STORED_FEATURES})
            group.create_feature(DERIVED_NAME, dtype="float64", derived_from=DERIVED_EXPRESSION)
            self.stores[label] = store
            self.groups[label] = group

        return run_phase(create, memory=False)[1]["seconds"]

    def ingest(self, label: str) -> float:
        return run_phase(lambda: self.groups[label].ingest(str(self.features_path)), memory=False)[1]["seconds"]

    def training(self, label: str, memory: bool = False) -> tuple[pd.DataFrame, dict[str, Any]]:
        store = self.stores[label]
        return run_phase(lambda: store.get_training_data(self.spine, FEATURE_REFERENCES).to_pandas(), memory)

    def materialize(self, label: str, memory: bool = False) -> dict[str, Any]:
        written, facts = run_phase(lambda: self.groups[label].materialize(*self.window), memory)
        facts["keys_written"] = written
        return facts

    def empty_online_rows(self, label: str) -> None:
        """Delete the group's rows from online.db, so that the next materialize writes every key."""
        # FeatureGroup has no public accessor for its id, which names its online.db table.
        table = f"group_{self.groups[label]._id}"
        connection = sqlite3.connect(self.root(label) / "online.db")
        try:
            with connection:
                connection.execute(f'DELETE FROM "{table}"')
        finally:
            connection.close()

    def online_values(self, label: str, keys: list[int]) -> dict[str, list[Any]]:
        return self.stores[label].get_online_features(FEATURE_REFERENCES, {KEY: keys}).to_arrow().to_pydict()

    def lookups(self, label: str, batches: list[list[int]], warmup: int) -> list[float]:
        """Time one lookup per key list, converted to Python lists like Feast's ``to_dict()``."""
        store = self.stores[label]
        requests = [{KEY: batch} for batch in batches]
        for entities in requests[:warmup]:
            store.get_online_features(FEATURE_REFERENCES, entities).to_arrow().to_pydict()
        seconds = []
        for entities in requests[warmup:]:
            start = time.perf_counter()
            store.get_online_features(FEATURE_REFERENCES, entities).to_arrow().to_pydict()
            seconds.append(time.perf_counter() - start)
        return seconds

    def close(self, label: str) -> None:
        self.stores.pop(label, None)
        self.groups.pop(label, None)
        gc.collect()
        shutil.rmtree(self.root(label), ignore_errors=True)


# -- the Feast side, as seen from here --------------------------------------------------------


@dataclass
class FeastSide:
    """Feast's repositories of this run, one per label, each in its own folder under ``workdir``."""

    worker: FeastWorker
    workdir: Path
    features_path: Path
    spine_path: Path
    window: tuple[dt.datetime, dt.datetime]

    def repo(self, label: str) -> str:
        return str(self.workdir / f"feast-{label}")

    def define(self, label: str) -> float:
        return self.worker.request("define", repo=self.repo(label), features=str(self.features_path))["seconds"]

    def training(self, label: str, output: Path | None = None, memory: bool = False) -> dict[str, Any]:
        return self.worker.request(
            "training",
            repo=self.repo(label),
            spine=str(self.spine_path),
            output=None if output is None else str(output),
            memory=memory,
        )

    def materialize(self, label: str, memory: bool = False) -> dict[str, Any]:
        start, end = (moment.isoformat() for moment in self.window)
        return self.worker.request("materialize", repo=self.repo(label), start=start, end=end, memory=memory)

    def online_values(self, label: str, keys: list[int]) -> dict[str, list[Any]]:
        return self.worker.request("online_values", repo=self.repo(label), keys=keys)["values"]

    def lookups(self, label: str, batches: list[list[int]], warmup: int) -> list[float]:
        batches_path = self.workdir / "lookup-keys.json"
        batches_path.write_text(json.dumps(batches), encoding="utf-8")
        return self.worker.request("lookups", repo=self.repo(label), batches=str(batches_path), warmup=warmup)["seconds"]

    def close(self, label: str) -> None:
        self.worker.request("close", repo=self.repo(label))
        shutil.rmtree(self.repo(label), ignore_errors=True)


# -- the run ----------------------------------------------------------------------------------


@dataclass
class CheckFacts:
    """Counts from the checking run, for the report."""

    unmatched_rows: int
    missing_ctr_rows: int
    online_keys: int
    online_zero_impression_keys: int
    raise_keys_written: dict[str, int]


def run_step(raise_side: RaiseSide, feast_side: FeastSide, side: str, step: str, label: str) -> tuple[str, float] | None:
    """Run one step of one side and return the phase it measured with its seconds, or None for no phase."""
    if side == "raise":
        if step == "define":
            return "define", raise_side.define(label)
        if step == "ingest":
            return "ingest", raise_side.ingest(label)
        if step == "training":
            return "training", raise_side.training(label)[1]["seconds"]
        if step == "materialize-1":
            return "materialize_filled", raise_side.materialize(label)["seconds"]
        raise_side.empty_online_rows(label)
        return "materialize_empty", raise_side.materialize(label)["seconds"]

    if step == "define":
        return "define", feast_side.define(label)
    if step == "ingest":
        return None  # the FileSource reads the Parquet file where it is
    if step == "training":
        return "training", feast_side.training(label)["seconds"]
    if step == "materialize-1":
        return "materialize_empty", feast_side.materialize(label)["seconds"]
    return "materialize_filled", feast_side.materialize(label)["seconds"]


def run_check(
    raise_side: RaiseSide, feast_side: FeastSide, workdir: Path, check_keys: list[int], zero_impression_keys: int
) -> CheckFacts:
    """Run every step once on both sides and compare the results, raising MismatchError where they differ."""
    label = "check"
    raise_side.define(label)
    feast_side.define(label)
    raise_side.ingest(label)

    raise_frame = raise_side.training(label)[0]
    feast_path = workdir / "feast-training.parquet"
    feast_side.training(label, output=feast_path)
    compare_training(raise_frame, pq.read_table(feast_path).to_pandas())
    print(f"training data: both sides return the same {len(raise_frame):,} rows", file=sys.stderr)

    raise_filled = raise_side.materialize(label)
    raise_side.empty_online_rows(label)
    raise_empty = raise_side.materialize(label)
    feast_side.materialize(label)
    feast_side.materialize(label)

    raise_values = raise_side.online_values(label, check_keys)
    compare_online(check_keys, raise_values, feast_side.online_values(label, check_keys))
    if raise_values["status"][:-1] != ["found"] * (len(check_keys) - 1) or raise_values["status"][-1] != "missing":
        raise MismatchError(f"Online lookup: Raise returned statuses {set(raise_values['status'])}, expected found and one missing")
    print(f"online lookup: both sides return the same values for {len(check_keys)} keys", file=sys.stderr)

    facts = CheckFacts(
        unmatched_rows=int(raise_frame["clicks"].isna().sum()),
        missing_ctr_rows=int(raise_frame[DERIVED_NAME].isna().sum()),
        online_keys=len(check_keys),
        online_zero_impression_keys=zero_impression_keys,
        raise_keys_written={"filled": raise_filled["keys_written"], "empty": raise_empty["keys_written"]},
    )
    raise_side.close(label)
    feast_side.close(label)
    return facts


def run_repeats(raise_side: RaiseSide, feast_side: FeastSide, repeats: int) -> dict[str, Timings]:
    """Run every step ``repeats`` times on new stores, alternating the sides, and keep the last repeat's stores."""
    timings = {phase: Timings() for phase in PHASES}
    for repeat in range(repeats):
        label = f"repeat-{repeat}"
        order = alternate(SIDES, repeat)
        for step in STEPS:
            for side in order:
                measured = run_step(raise_side, feast_side, side, step, label)
                if measured is not None:
                    timings[measured[0]].add(side, measured[1])

        timings["define_ingest"].add("raise", timings["define"].sides["raise"][-1] + timings["ingest"].sides["raise"][-1])
        timings["define_ingest"].add("feast", timings["define"].sides["feast"][-1])
        summary = ", ".join(
            f"{phase} {timings[phase].sides['raise'][-1]:.3f}/{timings[phase].sides['feast'][-1]:.3f}"
            for phase in ["define_ingest", "training", "materialize_filled", "materialize_empty"]
        )
        print(f"repeat {repeat} (raise/feast s): {summary}", file=sys.stderr)

        if repeat > 0:
            raise_side.close(f"repeat-{repeat - 1}")
            feast_side.close(f"repeat-{repeat - 1}")
    return timings


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """Return p50 and p99 in milliseconds."""
    values = np.array(seconds) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def run_lookups(
    raise_side: RaiseSide, feast_side: FeastSide, label: str, entities: int, lookups: int, rng: np.random.Generator
) -> dict[str, dict[str, tuple[float, float]]]:
    """Time ``lookups`` lookups per case and side, after WARMUP_LOOKUPS, on the same random keys."""
    results: dict[str, dict[str, tuple[float, float]]] = {}
    for index, (case, size) in enumerate(LOOKUP_CASES.items()):
        batches = [rng.integers(0, entities, size).tolist() for _ in range(WARMUP_LOOKUPS + lookups)]
        results[case] = {}
        for side in alternate(SIDES, index):
            if side == "raise":
                seconds = raise_side.lookups(label, batches, WARMUP_LOOKUPS)
            else:
                seconds = feast_side.lookups(label, batches, WARMUP_LOOKUPS)
            results[case][side] = percentiles(seconds)
        print(f"lookups {case} (p50, p99 ms): {results[case]}", file=sys.stderr)
    return results


# -- peak memory, one fresh process per side and phase ---------------------------------------


def raise_memory_child(phase: str, workdir: Path, label: str) -> dict[str, Any]:
    """Run one phase once on the existing Raise store of ``label``, in this fresh process."""
    features_path = workdir / "features.parquet"
    spine = pq.read_table(workdir / "spine.parquet").to_pandas()
    window = materialize_window(pq.read_table(features_path, columns=[EVENT_TIME]))
    side = RaiseSide(workdir, features_path, spine, window)
    side.open(label)
    if phase == "training":
        return side.training(label, memory=True)[1]

    side.empty_online_rows(label)
    return side.materialize(label, memory=True)


def measure_raise_memory(workdir: Path, label: str) -> dict[str, dict[str, Any]]:
    """Measure each phase of MEMORY_PHASES in its own child process with this Python."""
    memory = {}
    for phase in MEMORY_PHASES:
        command = [
            sys.executable, str(Path(__file__).resolve()),
            "--memory-child", phase, "--workdir", str(workdir), "--label", label,
        ]  # fmt: skip
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"The Raise memory child for {phase} failed with exit code {completed.returncode}:\n{completed.stderr}")
        memory[phase] = json.loads(completed.stdout.strip().splitlines()[-1])
    return memory


def measure_feast_memory(python: Path, workdir: Path, window: tuple[dt.datetime, dt.datetime]) -> dict[str, dict[str, Any]]:
    """Measure each phase of MEMORY_PHASES in a new Feast worker, after applying the definitions in a new folder."""
    memory = {}
    for phase in MEMORY_PHASES:
        worker = FeastWorker(python, workdir / f"feast-memory-{phase}.log")
        try:
            side = FeastSide(worker, workdir, workdir / "features.parquet", workdir / "spine.parquet", window)
            label = f"memory-{phase}"
            side.define(label)
            if phase == "training":
                memory[phase] = side.training(label, memory=True)
            else:
                memory[phase] = side.materialize(label, memory=True)
            side.close(label)
        finally:
            worker.stop()
    return memory


# -- report -----------------------------------------------------------------------------------


@dataclass
class RunFacts:
    """Sizes, versions and counts of one run, for the report."""

    command: str
    entities: int
    rows_per_entity: int
    feature_rows: int
    spine_rows: int
    exact_time_rows: int
    repeats: int
    lookups: int
    window: tuple[dt.datetime, dt.datetime]
    feast_versions: dict[str, str]
    check: CheckFacts
    memory: dict[str, dict[str, dict[str, Any]]]
    run_seconds: float


def _render_header(facts: RunFacts) -> list[str]:
    venv = facts.feast_versions
    feast = (
        f"{venv['feast']} (in its own venv: python {venv['python']}, duckdb {venv['duckdb']}, "
        f"ibis-framework {venv['ibis-framework']}, pandas {venv['pandas']}, pyarrow {venv['pyarrow']})"
    )
    lines = render_run_header(SECTION_TITLE, facts.command, {"pandas": pd.__version__, "numpy": np.__version__, "feast": feast})
    lines += [
        "",
        f"Feast was installed with `pip install '{FEAST_REQUIREMENT}'` into a separate venv (created on the "
        "first run, then reused). Its offline store is DuckDB, queried through ibis, and its online store is "
        "SQLite with a file registry. The Feast side runs in a child process with that venv's Python "
        "(`bench/_feast_side.py`), which imports Feast once and serves every step of the run, so both sides "
        "are warm. The Raise side runs in the benchmark's own process. Each side times its own calls in its "
        "own process, so the pipe between the processes is not counted. "
        f"The whole run took {facts.run_seconds:.0f} s, not counting the venv install.",
        "",
        f"Data, generated with numpy and written once to Parquet files that both sides read: "
        f"{facts.feature_rows:,} feature rows of {facts.entities:,} entities (`{KEY}`) times "
        f"{facts.rows_per_entity} rows over {DAYS} days, in one file with row groups of {ROW_GROUP_ROWS:,} rows. "
        f"Each entity has one row at a random microsecond of each of {facts.rows_per_entity} equal time slots, "
        f"so no entity has two rows with the same event time. Columns: `{KEY}` int64, `{EVENT_TIME}` "
        "timestamp[us, UTC], `clicks` int64 and `impressions` int64 (0 in about 1 in 50 rows). "
        f"Spine: {facts.spine_rows:,} rows of `{SPINE_ROW}`, `{KEY}`, `{EVENT_TIME}` and `{SPINE_LABEL}` in random "
        f"order. About {UNKNOWN_ENTITY_SHARE:.0%} of its user ids have no feature rows, its timestamps start "
        f"{EARLY_SPINE_SHARE:.0%} of the time range before the feature rows, and {facts.exact_time_rows:,} of its "
        "rows copy the user id and event time of a feature row exactly. Each process reads the spine "
        "file into the same pandas DataFrame before timing and passes it to its product.",
        "",
    ]
    return lines


def _render_semantics(facts: RunFacts) -> list[str]:
    check = facts.check
    return [
        "Both sides define the same thing. Neither side has a TTL. Raise's group has none, and Feast's feature "
        "view has `ttl=timedelta(0)`, which means no limit because Feast 0.67's join applies a TTL only when "
        "it is truthy. For each spine row, both take the "
        "feature row with the same user id and the greatest event time at or before the spine row's "
        "timestamp. Feast's join compares `feature ts <= spine ts`, so a feature row at exactly the spine "
        "time counts on both sides, and the data needed no alignment beyond having no ties. Where impressions "
        "is 0 or no row matches, Raise returns a null `ctr`, while Feast returns NaN in training data and None "
        "online. The check treats both as missing.",
        "",
        "A check before timing runs every step once on both sides. It requires the same spine rows, equal "
        f"`clicks` and `impressions`, `ctr` within {CTR_TOLERANCE:g}, and missing values in the same rows, "
        f"over all {facts.spine_rows:,} training rows. Of these, {check.unmatched_rows:,} match no feature row "
        f"and {check.missing_ctr_rows:,} (these included) have no `ctr`. It then requires equal online values "
        f"for {check.online_keys} keys: random ones, ones whose latest row has 0 impressions "
        f"({check.online_zero_impression_keys} keys), and one unknown key.",
        "",
    ]


def _render_phases(facts: RunFacts) -> list[str]:
    start, end = (moment.strftime("%Y-%m-%d %H:%M:%S") for moment in facts.window)
    written = facts.check.raise_keys_written
    return [
        "### What each phase does",
        "",
        "- define. Raise: `FeatureStore(namespace, root=<new folder>)`, "
        f'`create_feature_group("{GROUP_NAME}", keys="{KEY}", event_time="{EVENT_TIME}", online=True)`, '
        "`create_features_from_schema(...)` and "
        f'`create_feature("{DERIVED_NAME}", dtype="float64", derived_from="{DERIVED_EXPRESSION}")`. These create '
        "the SQLite catalog and an empty Delta table, and check the expression in DuckDB. Feast: build the "
        "`Entity`, the `FileSource` over the Parquet file, the `FeatureView` and the pandas-mode "
        "`OnDemandFeatureView` (`clicks / impressions.where(impressions != 0)`), then "
        "`FeatureStore(config=RepoConfig(...))` and `store.apply([...])`. The apply writes the file registry, "
        "creates the view's table in online.db, and runs the pandas function once on random rows to check its "
        "output. Both start in a new folder on every repeat.",
        "- ingest. Raise only: `group.ingest(\"features.parquet\")` reads the file, checks and converts its "
        "columns, writes a new Delta table version, records the batch in the catalog and, because the group "
        "is online, writes each key's latest values into online.db. Feast has no such step, because its "
        "`FileSource` reads the Parquet file where it is at each query. The row define + ingest compares "
        "Raise's two steps with Feast's define.",
        f"- training. Raise: `fs.get_training_data(spine, {FEATURE_REFERENCES}).to_pandas()`. It converts the "
        "spine to Arrow, runs one DuckDB ASOF join over the table's files with `ctr` computed in SQL, and "
        "converts the result to pandas. Feast: `store.get_historical_features("
        f"entity_df=spine, features={FEAST_REFERENCES}).to_df()`. ibis builds one DuckDB query, an inner join "
        "on `user_id` and `feature ts <= spine ts`, then `row_number()` over each spine row's matches by "
        "descending ts, keeping the first, and a left join back to the spine. Spine rows are told apart by "
        "a string that the query builds from each row's ts and user_id. pandas then runs the on-demand "
        "function on the resulting DataFrame. Feast returns the rows in another order, which the check "
        "sorts by `spine_row`.",
        f"- materialize. Both load each key's latest row with event time in [{start}, {end}] UTC, an interval "
        "that holds every row. Raise: `group.materialize(start, end)` reads every row in the interval with "
        "DuckDB into Arrow, keeps each key's latest row with a DuckDB window query, and upserts those rows into "
        "online.db (one row per key), replacing only older values. Feast: `store.materialize(start, end)`. Its "
        "local compute engine reads every row in the interval with DuckDB through ibis, keeps each key's "
        "latest row with pandas (sort and `drop_duplicates`), converts the values to protobuf and writes them "
        "into its SQLite table, one row per key and feature. Each repeat "
        "times two cases. In materialize_filled, the online store already holds the rows. For Raise, the "
        "ingest wrote them, because an online group loads its online store on every ingest, so "
        f"`materialize()` changed {written['filled']} keys in the check. Feast runs its second materialize "
        "over the same interval, which rewrites every row. In materialize_empty, the online store holds no "
        "rows. Raise's rows are deleted from online.db with `sqlite3` before timing (`materialize()` then "
        f"wrote {written['empty']:,} keys in the check), and Feast runs its first materialize.",
        "- online lookups. Raise: `fs.get_online_features([...], entities={\"user_id\": keys})` and "
        "`.to_arrow().to_pydict()`, which reads online.db and computes `ctr` from the looked-up values. "
        "Feast: `store.get_online_features(features=[...], entity_rows=[{\"user_id\": key}, ...]).to_dict()`, "
        "which reads its SQLite table and runs the pandas function on the looked-up rows. Both sides get "
        "the same random known keys and build each request before timing. The lookups run after the last "
        "repeat, on its stores.",
        "",
    ]


def _render_times(timings: dict[str, Timings], facts: RunFacts) -> list[str]:
    lines = [
        "### Time",
        "",
        f"Each step ran {facts.repeats} times per side on new stores, with the order of the sides reversed on "
        "every other repeat. Times are wall-clock `time.perf_counter()` seconds. The ratio is Raise's time "
        "over Feast's, so below 1 means Raise is faster. Ratios are of medians unless marked min, and the "
        "paired ratio is the median over repeats of the ratio within one repeat. Other processes may have "
        "shared the machine, so where the three ratios disagree, load spikes moved some runs.",
        "",
        "| phase | raise median s | raise min s | feast median s | feast min s | raise/feast median | raise/feast min | paired |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "define": "define",
        "ingest": "ingest",
        "define_ingest": "define + ingest",
        "training": "training data",
        "materialize_filled": "materialize_filled",
        "materialize_empty": "materialize_empty",
    }
    for phase, label in labels.items():
        phase_timings = timings[phase]
        raise_cells = f"{phase_timings.median('raise'):.3f} | {phase_timings.min('raise'):.3f}"
        if "feast" not in phase_timings.sides:
            lines.append(f"| {label} | {raise_cells} | no step | | | | |")
            continue
        median = phase_timings.median("raise") / phase_timings.median("feast")
        minimum = phase_timings.min("raise") / phase_timings.min("feast")
        paired = phase_timings.paired_ratio("raise", "feast")
        lines.append(
            f"| {label} | {raise_cells} | {phase_timings.median('feast'):.3f} | {phase_timings.min('feast'):.3f} "
            f"| {median:.3f} | {minimum:.3f} | {paired:.3f} |"
        )
    lines.append("")
    return lines


def _render_lookups(results: dict[str, dict[str, tuple[float, float]]], facts: RunFacts) -> list[str]:
    lines = [
        "### Online lookups",
        "",
        f"{facts.lookups:,} timed lookups per case and side, after {WARMUP_LOOKUPS} warm-up ones, of "
        f"`clicks`, `impressions` and the derived `ctr`, for random keys among {facts.entities:,} entities. "
        "The ratio is Raise's latency over Feast's.",
        "",
        "| case | raise p50 ms | raise p99 ms | feast p50 ms | feast p99 ms | raise/feast p50 | raise/feast p99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case, sides in results.items():
        (raise_p50, raise_p99), (feast_p50, feast_p99) = sides["raise"], sides["feast"]
        lines.append(
            f"| {case} | {raise_p50:.3f} | {raise_p99:.3f} | {feast_p50:.3f} | {feast_p99:.3f} "
            f"| {raise_p50 / feast_p50:.3f} | {raise_p99 / feast_p99:.3f} |"
        )
    lines.append("")
    return lines


def _render_memory(memory: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    reset = all(phase["reset"] for side in memory.values() for phase in side.values())
    method = (
        "The peak is reset just before the phase (by writing 5 to `/proc/self/clear_refs`), so it is the "
        "peak of that phase alone."
        if reset
        else "**The peak could not be reset on this system, so each peak is the process's peak since it "
        "started.**"
    )
    lines = [
        "### Peak memory",
        "",
        "After the timed runs, each phase ran once more per side, alone in a fresh process, so that memory "
        "that earlier steps freed and an allocator kept cannot hide the phase's own use. Raise: a child "
        "process with the benchmark's Python (`python bench/feast_comparison.py --memory-child PHASE`) that "
        "opens the last repeat's store, and for materialize first deletes the group's rows from online.db. "
        "Feast: a new worker process that first applies the definitions in a new folder. So each side runs "
        "its first query of the process, and the time in the child includes that. \"RSS before\" is `VmRSS` "
        "with the libraries and inputs loaded, and \"peak\" is `VmHWM` from `/proc/self/status` right after "
        f"the phase, while the result is still held. {method} RSS counts native memory (DuckDB, Arrow, "
        "numpy). materialize is the materialize_empty case.",
        "",
        "| phase | side | RSS before MiB | peak MiB | increase MiB | time in the child s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for phase in MEMORY_PHASES:
        for side in SIDES:
            measured = memory[side][phase]
            before, peak = measured["before_mib"], measured["peak_mib"]
            lines.append(
                f"| {phase} | {side} | {before:,.0f} | {peak:,.0f} | {peak - before:,.0f} | {measured['seconds']:.2f} |"
            )
    lines.append("")
    return lines


def render_section(facts: RunFacts, timings: dict[str, Timings], lookups: dict[str, dict[str, tuple[float, float]]]) -> str:
    """Return the BENCHMARKS.md section, from its ``##`` heading to a trailing blank line."""
    lines = _render_header(facts)
    lines += _render_semantics(facts)
    lines += _render_phases(facts)
    lines += _render_times(timings, facts)
    lines += _render_lookups(lookups, facts)
    lines += _render_memory(facts.memory)
    return "\n".join(lines)


def print_summary(timings: dict[str, Timings], lookups: dict[str, dict[str, tuple[float, float]]]) -> None:
    """Print each phase's medians and their ratio to standard error."""
    for phase in PHASES:
        if "feast" not in timings[phase].sides:
            print(f"{phase}: raise {timings[phase].median('raise'):.3f} s, feast has no such step", file=sys.stderr)
            continue
        raise_median, feast_median = timings[phase].median("raise"), timings[phase].median("feast")
        print(
            f"{phase}: raise {raise_median:.3f} s, feast {feast_median:.3f} s, raise/feast {raise_median / feast_median:.3f}",
            file=sys.stderr,
        )
    for case, sides in lookups.items():
        for index, name in enumerate(["p50", "p99"]):
            raise_ms, feast_ms = sides["raise"][index], sides["feast"][index]
            print(
                f"lookups {case} {name}: raise {raise_ms:.3f} ms, feast {feast_ms:.3f} ms, raise/feast {raise_ms / feast_ms:.3f}",
                file=sys.stderr,
            )


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=10_000, help="distinct user_id values with feature rows (default: 10,000)")
    parser.add_argument("--rows-per-entity", type=int, default=100, help="feature rows per entity (default: 100)")
    parser.add_argument("--spine-rows", type=int, default=100_000, help="rows of the training spine (default: 100,000)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs of each step per side, after the check (default: 10)")
    parser.add_argument("--lookups", type=int, default=1_000, help="timed online lookups per case and side (default: 1,000)")
    parser.add_argument(
        "--tmp-dir", type=Path, default=None, help="parent folder of the run's data and stores, deleted at the end (default: the system's)"
    )
    parser.add_argument(
        "--feast-venv",
        type=Path,
        default=None,
        help=f"venv with {FEAST_REQUIREMENT}, created and filled with pip when it lacks that version (default: {default_venv()})",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="Markdown file whose benchmark section is replaced (default: print only)"
    )
    # Internal: measure one phase of Raise on the store of --label in --workdir, in a fresh process.
    parser.add_argument("--memory-child", choices=MEMORY_PHASES, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--label", default=None, help=argparse.SUPPRESS)

    args = parser.parse_args(argv)
    for option in ("entities", "rows_per_entity", "spine_rows", "repeats", "lookups"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    if DAYS * US_PER_DAY < args.rows_per_entity:
        parser.error(f"--rows-per-entity {args.rows_per_entity} exceeds the distinct microseconds of {DAYS} days")
    if args.spine_rows * EXACT_TIME_SHARE > args.entities * args.rows_per_entity:
        parser.error("--spine-rows is too large for the feature rows: 1% of the spine copies distinct rows")
    if args.memory_child is not None and (args.workdir is None or args.label is None):
        parser.error("--memory-child needs --workdir and --label")
    return args


def write_inputs(args: argparse.Namespace, workdir: Path, rng: np.random.Generator) -> tuple[pa.Table, pa.Table]:
    """Generate the feature rows and the spine, and write both to Parquet files in ``workdir``."""
    features = generate_features(args.entities, args.rows_per_entity, rng)
    spine = generate_spine(args.spine_rows, features, args.entities, rng)
    pq.write_table(features, workdir / "features.parquet", row_group_size=ROW_GROUP_ROWS)
    pq.write_table(spine, workdir / "spine.parquet")
    print(f"wrote {features.num_rows:,} feature rows and {spine.num_rows:,} spine rows to {workdir}", file=sys.stderr)
    return features, spine


def run(args: argparse.Namespace, command: str, python: Path) -> tuple[RunFacts, dict[str, Timings], dict[str, dict[str, tuple[float, float]]]]:
    """Generate the data, start the Feast worker, and run the check, the repeats, the lookups and the memory runs."""
    started = time.perf_counter()
    rng = np.random.default_rng(SEED)
    with tempfile.TemporaryDirectory(prefix="raise-feast-bench-", dir=args.tmp_dir) as tmp:
        workdir = Path(tmp)
        features, spine = write_inputs(args, workdir, rng)
        window = materialize_window(features)
        check_keys, zero_impression_keys = online_check_keys(features, args.entities, rng)
        spine_frame = pq.read_table(workdir / "spine.parquet").to_pandas()

        worker = FeastWorker(python, workdir / "feast-worker.log")
        try:
            feast_versions = worker.request("versions")["versions"]
            raise_side = RaiseSide(workdir, workdir / "features.parquet", spine_frame, window)
            feast_side = FeastSide(worker, workdir, workdir / "features.parquet", workdir / "spine.parquet", window)

            check = run_check(raise_side, feast_side, workdir, check_keys, zero_impression_keys)
            timings = run_repeats(raise_side, feast_side, args.repeats)
            last = f"repeat-{args.repeats - 1}"
            lookups = run_lookups(raise_side, feast_side, last, args.entities, args.lookups, rng)
            print("measuring peak memory in fresh processes", file=sys.stderr)
            memory = {"raise": measure_raise_memory(workdir, last), "feast": measure_feast_memory(python, workdir, window)}
            print(f"peak memory: {memory}", file=sys.stderr)
            raise_side.close(last)
            feast_side.close(last)
        except RuntimeError:
            print(f"The end of the Feast worker's log:\n{worker.log_tail()}", file=sys.stderr)
            raise
        finally:
            worker.stop()

    facts = RunFacts(
        command=command,
        entities=args.entities,
        rows_per_entity=args.rows_per_entity,
        feature_rows=features.num_rows,
        spine_rows=spine.num_rows,
        exact_time_rows=int(args.spine_rows * EXACT_TIME_SHARE),
        repeats=args.repeats,
        lookups=args.lookups,
        window=window,
        feast_versions=feast_versions,
        check=check,
        memory=memory,
        run_seconds=time.perf_counter() - started,
    )
    return facts, timings, lookups


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child is not None:
        print(json.dumps(raise_memory_child(args.memory_child, args.workdir, args.label)))
        return 0

    command = shlex.join(["python", "bench/feast_comparison.py", *(sys.argv[1:] if argv is None else argv)])
    python = ensure_feast_venv(args.feast_venv or default_venv())

    try:
        facts, timings, lookups = run(args, command, python)
    except MismatchError as error:
        print(f"Raise and Feast disagree. {error}", file=sys.stderr)
        return 1

    print_summary(timings, lookups)
    print(f"The run took {facts.run_seconds:.0f} s", file=sys.stderr)
    section = render_section(facts, timings, lookups)
    print(section)
    if args.output is not None:
        write_section(args.output, SECTION_TITLE, section)
        print(f"Wrote section {SECTION_TITLE!r} of {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
