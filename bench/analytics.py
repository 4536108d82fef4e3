"""Benchmark Raise's Aggregation analysis against the same query written by hand in DuckDB, and pandas.

Raise: ``group.analyze(Aggregation("ctr", metrics=["avg", "p50", "p99", "null_rate"]))``, where
``ctr`` is the derived feature ``clicks / NULLIF(impressions, 0)``, over all rows and per day
(``group_by=["date"]``). DuckDB: the same aggregation written by hand over the Parquet files of
the same table version, on a fresh connection. pandas: the columns read with pyarrow into a
DataFrame, then ``mean``, ``quantile`` and ``isna().mean()``, timed as load and compute.

The rows are generated with numpy. A check runs every side once and requires the same groups and
the same values, within a relative 1e-9, before timing. The sides run alternately within each
repeat, so that load from other processes hits them alike.

Run ``python bench/analytics.py --help`` for the options. ``--output BENCHMARKS.md`` replaces this
benchmark's section of that file and keeps the other sections.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from _common import Timings, alternate, render_run_header, timed, verdict, write_section
from deltalake import DeltaTable

from raise_jupyter import Aggregation, FeatureStore
from raise_jupyter.group import FeatureGroup

SECTION_TITLE = "Analytics: aggregation of a derived feature"
STORE_NAME = "bench/analytics"
GROUP_NAME = "g"
KEY = "user_id"
EVENT_TIME = "ts"
STORED_FEATURES = {"clicks": "int64", "impressions": "int64", "spend": "float64"}
DERIVED_NAME = "ctr"
DERIVED_EXPRESSION = "clicks / NULLIF(impressions, 0)"
METRICS = ["avg", "p50", "p99", "null_rate"]
DATE = "date"
TARGET = 1.2  # Raise's time over the hand-written DuckDB query's, at most
RELATIVE_TOLERANCE = 1e-9

SEED = 20261205
START = np.datetime64("2026-01-01T00:00:00", "us")
US_PER_DAY = 86_400 * 10**6
DAYS = 90
ENTITIES = 100_000
TIMESTAMP = pa.timestamp("us", tz="UTC")

# Each case is analyzed without grouping ("all") and per day of the event time ("by_date").
CASES = {"all": False, "by_date": True}
SIDES = ["raise", "duckdb", "pandas"]
PANDAS_PHASES = ["pandas_load", "pandas_compute", "pandas_load_compute"]

# One result row: the group (None without grouping) and the metric values in METRICS order.
ResultRow = tuple[object, ...]


# -- data -------------------------------------------------------------------------------------


def generate_rows(rows: int, rng: np.random.Generator) -> pa.Table:
    """Return ``rows`` rows of ``ENTITIES`` users over ``DAYS`` days, in event-time order.

    Event times are uniform random microseconds, sorted as an event log arrives. About 1 in 50
    rows has 0 impressions, which makes ``ctr`` NULL.
    """
    event_us = np.sort(START.astype(np.int64) + rng.integers(0, DAYS * US_PER_DAY, rows))
    impressions = rng.integers(0, 50, rows)
    clicks = rng.binomial(impressions, 0.05).astype(np.int64)
    return pa.table(
        {
            KEY: rng.integers(0, ENTITIES, rows),
            EVENT_TIME: pa.array(event_us, TIMESTAMP),
            "clicks": clicks,
            "impressions": impressions,
            "spend": rng.gamma(2.0, 0.5, rows),
        }
    )


def build_group(store: FeatureStore, rows: pa.Table, batches: int) -> FeatureGroup:
    """Create the feature group and ingest ``rows`` in ``batches`` calls of equal size (one file each)."""
    group = store.create_feature_group(GROUP_NAME, keys=[KEY], event_time=EVENT_TIME)
    group.create_features_from_schema({KEY: "int64", EVENT_TIME: "timestamp", **STORED_FEATURES})
    group.create_feature(DERIVED_NAME, dtype="float64", derived_from=DERIVED_EXPRESSION)
    size = math.ceil(rows.num_rows / batches)
    for start in range(0, rows.num_rows, size):
        group.ingest(rows.slice(start, size))
    return group


def group_files(group: FeatureGroup) -> list[str]:
    """Return the Parquet files of the group's latest table version."""
    # FeatureGroup has no public accessor for its Delta table location.
    return DeltaTable(str(group._path)).file_uris()


# -- the measured operations ------------------------------------------------------------------


def raise_aggregation(by_date: bool) -> Aggregation:
    return Aggregation(DERIVED_NAME, metrics=METRICS, group_by=[DATE] if by_date else None)


def raise_rows(table: pa.Table, by_date: bool) -> list[ResultRow]:
    """Return the rows of Raise's result table as (group, *metrics) tuples."""
    groups = table.column(DATE).to_pylist() if by_date else [None] * table.num_rows
    columns = [table.column(metric).to_pylist() for metric in METRICS]
    return [(group, *values) for group, *values in zip(groups, *columns, strict=True)]


def duckdb_sql(files: list[str], by_date: bool) -> str:
    """Return the hand-written aggregation over ``files``, per day of ``ts`` when ``by_date``."""
    listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    metrics = (
        "avg(ctr), quantile_cont(ctr, 0.5), quantile_cont(ctr, 0.99), "
        "CAST(count(*) - count(ctr) AS DOUBLE) / NULLIF(count(*), 0)"
    )
    ctr = f"CAST({DERIVED_EXPRESSION} AS DOUBLE) AS ctr"
    if not by_date:
        return f"SELECT {metrics} FROM (SELECT {ctr} FROM read_parquet({listed}))"
    return (
        f"SELECT CAST({EVENT_TIME} AS DATE), {metrics} "
        f"FROM (SELECT {EVENT_TIME}, {ctr} FROM read_parquet({listed})) "
        f"GROUP BY CAST({EVENT_TIME} AS DATE) ORDER BY 1"
    )


def duckdb_connection() -> duckdb.DuckDBPyConnection:
    """Open the baseline's connection, in UTC as Raise's, so that ``CAST(ts AS DATE)`` cuts days alike."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def duckdb_rows(table: pa.Table, by_date: bool) -> list[ResultRow]:
    columns = [column.to_pylist() for column in table.columns]
    if by_date:
        return list(zip(*columns, strict=True))
    return [(None, *values) for values in zip(*columns, strict=True)]


def pandas_load(files: list[str], by_date: bool) -> pd.DataFrame:
    columns = [EVENT_TIME, "clicks", "impressions"] if by_date else ["clicks", "impressions"]
    return pq.read_table(files, columns=columns).to_pandas()


def pandas_compute(frame: pd.DataFrame, by_date: bool) -> pd.DataFrame:
    """Compute ctr (NaN where impressions is 0) and the metrics, one row per day or one in all.

    The quantiles interpolate linearly, as DuckDB's ``quantile_cont`` does.
    """
    ctr = frame["clicks"] / frame["impressions"].where(frame["impressions"] != 0)
    if not by_date:
        values = [ctr.mean(), ctr.quantile(0.5), ctr.quantile(0.99), ctr.isna().mean()]
        return pd.DataFrame([values], columns=METRICS)

    day = frame[EVENT_TIME].dt.floor("D")
    grouped = ctr.groupby(day)
    metrics = {
        "avg": grouped.mean(),
        "p50": grouped.quantile(0.5),
        "p99": grouped.quantile(0.99),
        "null_rate": ctr.isna().groupby(day).mean(),
    }
    return pd.DataFrame(metrics).sort_index()


def pandas_rows(frame: pd.DataFrame, by_date: bool) -> list[ResultRow]:
    groups = [day.date() for day in frame.index] if by_date else [None] * len(frame)
    columns = [frame[metric].tolist() for metric in METRICS]
    return [(group, *values) for group, *values in zip(groups, *columns, strict=True)]


@dataclass
class Sides:
    """Everything the measured operations need, prepared before timing."""

    group: FeatureGroup
    files: list[str]

    def run_raise(self, by_date: bool) -> tuple[float, list[ResultRow]]:
        analysis = raise_aggregation(by_date)
        result: list[pa.Table] = []
        seconds = timed(lambda: result.append(self.group.analyze(analysis).to_arrow()))
        return seconds, raise_rows(result[0], by_date)

    def run_duckdb(self, by_date: bool) -> tuple[float, list[ResultRow]]:
        """Time the baseline on a fresh connection, opened and closed outside the timing."""
        con = duckdb_connection()
        sql = duckdb_sql(self.files, by_date)
        result: list[pa.Table] = []
        seconds = timed(lambda: result.append(con.execute(sql).to_arrow_table()))
        con.close()
        return seconds, duckdb_rows(result[0], by_date)

    def run_pandas(self, by_date: bool) -> tuple[float, float, list[ResultRow]]:
        """Time reading the files into a DataFrame, then computing the metrics on it."""
        loaded: list[pd.DataFrame] = []
        load_seconds = timed(lambda: loaded.append(pandas_load(self.files, by_date)))
        computed: list[pd.DataFrame] = []
        compute_seconds = timed(lambda: computed.append(pandas_compute(loaded[0], by_date)))
        return load_seconds, compute_seconds, pandas_rows(computed[0], by_date)


# -- checks -----------------------------------------------------------------------------------


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _same_value(actual: object, expected: object) -> bool:
    """Return whether two result values agree: equal groups, or numbers within RELATIVE_TOLERANCE.

    DuckDB returns NULL and pandas NaN for a metric of no values, so the two count as equal.
    """
    if _is_missing(actual) or _is_missing(expected):
        return _is_missing(actual) and _is_missing(expected)
    if isinstance(expected, float):
        return math.isclose(actual, expected, rel_tol=RELATIVE_TOLERANCE, abs_tol=0.0)
    return actual == expected


def check_same_results(case: str, results: dict[str, list[ResultRow]]) -> None:
    """Raise AssertionError unless every side returns the groups of the raise side, in order, with equal values.

    Groups must be equal, and metric values within RELATIVE_TOLERANCE of each other.
    """
    reference = results["raise"]
    for side, rows in results.items():
        if len(rows) != len(reference):
            raise AssertionError(f"{case}: {side} returned {len(rows)} rows, but raise returned {len(reference)}")
        for actual_row, expected_row in zip(rows, reference, strict=True):
            for name, actual, expected in zip([DATE, *METRICS], actual_row, expected_row, strict=True):
                if not _same_value(actual, expected):
                    raise AssertionError(
                        f"{case}: {side} returned {name} = {actual!r} for group {actual_row[0]!r}, "
                        f"but raise returned {expected!r}"
                    )


def run_checks(sides: Sides) -> dict[str, list[ResultRow]]:
    """Run every side once per case, check that they agree, and return Raise's rows per case."""
    reference = {}
    for case, by_date in CASES.items():
        results = {
            "raise": sides.run_raise(by_date)[1],
            "duckdb": sides.run_duckdb(by_date)[1],
            "pandas": sides.run_pandas(by_date)[2],
        }
        check_same_results(case, results)
        reference[case] = results["raise"]
    return reference


# -- the benchmark ----------------------------------------------------------------------------


def _time_side(sides: Sides, timings: Timings, case: str, side: str) -> None:
    by_date = CASES[case]
    if side == "raise":
        timings.add(f"{case}/raise", sides.run_raise(by_date)[0])
    elif side == "duckdb":
        timings.add(f"{case}/duckdb", sides.run_duckdb(by_date)[0])
    else:
        load_seconds, compute_seconds, _ = sides.run_pandas(by_date)
        timings.add(f"{case}/pandas_load", load_seconds)
        timings.add(f"{case}/pandas_compute", compute_seconds)
        timings.add(f"{case}/pandas_load_compute", load_seconds + compute_seconds)


def measure(sides: Sides, repeats: int) -> Timings:
    """Time every side of every case ``repeats`` times, alternating the order of the sides."""
    timings = Timings()
    for repeat in range(repeats):
        for case in CASES:
            for side in alternate(SIDES, repeat):
                _time_side(sides, timings, case, side)
                reported = f"{case}/pandas_load_compute" if side == "pandas" else f"{case}/{side}"
                print(f"repeat {repeat} {reported}: {timings.sides[reported][-1]:.3f} s", file=sys.stderr)
    return timings


# -- report -----------------------------------------------------------------------------------


@dataclass
class RunFacts:
    """Sizes and counts of one run, for the report."""

    command: str
    rows: int
    files: int
    ingest_batches: int
    ingest_seconds: float
    null_ctr_rows: int
    days: int
    first_day: dt.date
    last_day: dt.date
    repeats: int


def _render_header(facts: RunFacts) -> list[str]:
    lines = render_run_header(SECTION_TITLE, facts.command, {"pandas": pd.__version__, "numpy": np.__version__})
    lines += [
        "",
        (
            f"Data, generated with numpy: {facts.rows:,} rows of {ENTITIES:,} users (`{KEY}`) at uniform random "
            f"microseconds over {DAYS} days, in event-time order. Stored features: "
            f"{', '.join(f'{name} {dtype}' for name, dtype in STORED_FEATURES.items())}, with impressions uniform "
            f"in 0 to 49 and clicks binomial(impressions, 0.05). The derived feature is `{DERIVED_NAME} = "
            f"{DERIVED_EXPRESSION}`, NULL in the {facts.null_ctr_rows:,} rows with 0 impressions. The group is "
            f"keyed by `{KEY}` with event time `{EVENT_TIME}` and was filled by {facts.ingest_batches} ingest "
            f"calls of equal size ({facts.files} files, {facts.ingest_seconds:.1f} s in all, not part of the "
            f"comparison). The `by_date` case has {facts.days} groups, {facts.first_day} to {facts.last_day} (UTC)."
        ),
        "",
        (
            f"Cases: `all` computes {', '.join(METRICS)} of `{DERIVED_NAME}` over all rows, and `by_date` "
            "computes them per day of the event time. A check before timing runs every side of each case "
            f"once and requires the same groups in the same order and values within a relative "
            f"{RELATIVE_TOLERANCE:g} on all sides (the sums behind avg may add in a different order). Then each "
            f"side ran {facts.repeats} times, with the order of the sides reversed on every other repeat. "
            "Times are wall-clock `time.perf_counter()` seconds. Ratios are of medians unless marked min, and "
            "the paired ratio is the median over repeats of the ratio within one repeat. Other processes may "
            "have shared the machine, so where the median, min and paired ratios disagree, load spikes moved "
            "some runs."
        ),
        "",
    ]
    return lines


def _render_sides() -> list[str]:
    return [
        "### Time",
        "",
        (
            f"- raise: `group.analyze(Aggregation(\"{DERIVED_NAME}\", metrics={json.dumps(METRICS)}))`, with "
            f"`group_by=[\"{DATE}\"]` in the by_date case. It loads the group's definition from the catalog, "
            "lists the files of the latest table version, and runs one query on the store's DuckDB connection, "
            "which is reused across calls and caches Parquet metadata. The query reads the files with "
            "`union_by_name = true`, computes the derived feature with a CAST to its dtype in nested `SELECT`s, "
            "and aggregates with the same functions as the duckdb side except that both percentiles come "
            "from one `quantile_cont(ctr, [0.5, 0.99])` call, plus `GROUP BY 1 ORDER BY 1 NULLS LAST` "
            "in the by_date case. The result is an Arrow table."
        ),
        (
            "- duckdb: a fresh `duckdb.connect()` with `SET TimeZone = 'UTC'`, opened before timing. Timed: "
            "`SELECT avg(ctr), quantile_cont(ctr, 0.5), quantile_cont(ctr, 0.99), CAST(count(*) - count(ctr) "
            "AS DOUBLE) / NULLIF(count(*), 0) FROM (SELECT CAST(clicks / NULLIF(impressions, 0) AS DOUBLE) AS "
            "ctr FROM read_parquet([...]))` and `.to_arrow_table()`; in the by_date case the subquery also "
            "selects `ts`, the outer query selects `CAST(ts AS DATE)` first and ends with `GROUP BY CAST(ts AS "
            "DATE) ORDER BY 1`. The files are those of the same table version, from "
            "`DeltaTable(path).file_uris()` (listed before timing)."
        ),
        (
            "- pandas (for reference): `pq.read_table(files, columns=[...]).to_pandas()` of clicks and "
            "impressions, plus ts in the by_date case (load). Then compute: `ctr = clicks / "
            "impressions.where(impressions != 0)`, and `ctr.mean()`, `ctr.quantile(0.5)`, `ctr.quantile(0.99)` "
            "and `ctr.isna().mean()`, per `ts.dt.floor(\"D\")` through `groupby` in the by_date case. "
            "pandas_compute excludes the load, pandas_load_compute includes it."
        ),
        "",
    ]


def _ratios(timings: Timings, numerator: str, denominator: str) -> str:
    median = timings.median(numerator) / timings.median(denominator)
    minimum = timings.min(numerator) / timings.min(denominator)
    paired = timings.paired_ratio(numerator, denominator)
    return f"{median:.3f} at the median, {minimum:.3f} at the min, {paired:.3f} paired"


def _render_times(timings: Timings, facts: RunFacts) -> list[str]:
    lines = [
        "| case | side | median s | min s | rows/s at median |",
        "|---|---|---:|---:|---:|",
    ]
    for case in CASES:
        for side in ["raise", "duckdb", *PANDAS_PHASES]:
            name = f"{case}/{side}"
            lines.append(
                f"| {case} | {side} | {timings.median(name):.3f} | {timings.min(name):.3f} "
                f"| {facts.rows / timings.median(name):,.0f} |"
            )
    lines.append("")
    for case in CASES:
        ratio = timings.median(f"{case}/raise") / timings.median(f"{case}/duckdb")
        lines += [
            (
                f"{case}: time raise/duckdb {_ratios(timings, f'{case}/raise', f'{case}/duckdb')} (target at most "
                f"{TARGET}: {verdict(ratio <= TARGET)}). Time raise/pandas_load_compute "
                f"{_ratios(timings, f'{case}/raise', f'{case}/pandas_load_compute')}."
            ),
            "",
        ]
    return lines


def render_section(facts: RunFacts, timings: Timings) -> str:
    """Return the BENCHMARKS.md section, from its ``##`` heading to a trailing blank line."""
    lines = _render_header(facts) + _render_sides() + _render_times(timings, facts)
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the feature group (default: 10,000,000)")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs of each side of each case after the checking run (default: 15)")
    parser.add_argument(
        "--ingest-batches", type=int, default=10, help="ingest calls, one file each, that fill the group (default: 10)"
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="Markdown file whose benchmark section is replaced (default: print only)"
    )
    parser.add_argument(
        "--tmp-dir", type=Path, default=None, help="parent folder of the temporary store (default: the system's)"
    )
    args = parser.parse_args(argv)
    for option in ("rows", "repeats", "ingest_batches"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    if args.ingest_batches > args.rows:
        parser.error(f"--ingest-batches ({args.ingest_batches}) must not exceed --rows ({args.rows})")
    return args


def _fill_store(workdir: Path, rows: int, batches: int) -> tuple[FeatureGroup, float, int]:
    """Generate the rows and ingest them into a new store under ``workdir``.

    Returns the group, the ingest time in seconds and the number of rows with 0 impressions.
    """
    table = generate_rows(rows, np.random.default_rng(SEED))
    print(f"{table.num_rows:,} rows, {table.nbytes / 1024**2:.0f} MiB in memory", file=sys.stderr)
    null_ctr_rows = pc.sum(pc.equal(table.column("impressions"), 0)).as_py()
    store = FeatureStore(STORE_NAME, root=workdir / "store")
    start = time.perf_counter()
    group = build_group(store, table, batches)
    return group, time.perf_counter() - start, null_ctr_rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python", "bench/analytics.py", *(sys.argv[1:] if argv is None else argv)])

    with tempfile.TemporaryDirectory(prefix="raise-bench-", dir=args.tmp_dir) as tmp:
        group, ingest_seconds, null_ctr_rows = _fill_store(Path(tmp), args.rows, args.ingest_batches)
        files = group_files(group)
        print(f"ingested in {ingest_seconds:.1f} s, {len(files)} files", file=sys.stderr)

        sides = Sides(group=group, files=files)
        reference = run_checks(sides)
        print("all sides return the same values", file=sys.stderr)
        timings = measure(sides, args.repeats)

    days = [row[0] for row in reference["by_date"]]
    facts = RunFacts(
        command=command,
        rows=args.rows,
        files=len(files),
        ingest_batches=args.ingest_batches,
        ingest_seconds=ingest_seconds,
        null_ctr_rows=null_ctr_rows,
        days=len(days),
        first_day=days[0],
        last_day=days[-1],
        repeats=args.repeats,
    )
    section = render_section(facts, timings)
    print(section)
    if args.output is not None:
        write_section(args.output, SECTION_TITLE, section)
        print(f"Wrote section {SECTION_TITLE!r} of {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
