"""Conversion of everything ``FeatureGroup.ingest`` accepts into one Arrow table."""

from __future__ import annotations

import datetime as dt
import glob
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from raise_jupyter.engine.duck import file_connection, literal
from raise_jupyter.errors import IngestError

ACCEPTED_INPUTS = (
    "a pandas or polars DataFrame, a pyarrow Table, RecordBatch or RecordBatchReader, "
    "a list of dicts, a dict of columns, or a path or glob of Parquet, CSV or JSON files"
)

_READERS = {
    ".parquet": "read_parquet",
    ".pq": "read_parquet",
    ".csv": "read_csv",
    ".tsv": "read_csv",
    ".json": "read_json_auto",
    ".jsonl": "read_json_auto",
    ".ndjson": "read_json_auto",
}


def to_arrow_table(data: Any) -> pa.Table:
    """Return ``data`` as an Arrow table, raising IngestError for unsupported inputs."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.RecordBatchReader):
        # NOTE: the whole stream is read into memory so that it can be checked before anything
        # is written; ingest very large inputs in several calls.
        return data.read_all()
    if isinstance(data, (str, os.PathLike)):
        return _read_files(data)

    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return _from_pandas(data)
    if module == "polars":
        return _from_polars(data)
    if isinstance(data, Mapping):
        return _from_columns(data)
    if isinstance(data, Sequence) and not isinstance(data, (bytes, bytearray)):
        return _from_rows(data)
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data)

    raise IngestError(f"Cannot ingest an object of type {type(data).__name__}: pass {ACCEPTED_INPUTS}.")


def _from_pandas(frame: Any) -> pa.Table:
    import pandas as pd

    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    if not isinstance(frame, pd.DataFrame):
        raise IngestError(f"Cannot ingest an object of type {type(frame).__name__}: pass {ACCEPTED_INPUTS}.")
    if any(name is not None for name in frame.index.names):
        frame = frame.reset_index()

    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise IngestError(f"The DataFrame has duplicate column names {duplicated}; rename them first.")
    try:
        # pandas marks missing float values with NaN, so pyarrow turns NaN into null here.
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise IngestError(f"Cannot convert the DataFrame to Arrow: {error}") from None


def _from_polars(frame: Any) -> pa.Table:
    if hasattr(frame, "collect") and not hasattr(frame, "to_arrow"):
        frame = frame.collect()
    if hasattr(frame, "to_frame") and not hasattr(frame, "columns"):
        frame = frame.to_frame()
    try:
        return frame.to_arrow()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        schema = ", ".join(f"{name}: {dtype}" for name, dtype in frame.schema.items())
        raise IngestError(
            f"Cannot convert the polars DataFrame to Arrow ({error}); cast columns of types Arrow "
            f"lacks, such as Int128, first. Schema: {schema}."
        ) from None


def _dates_as_datetimes(values: Any) -> Any:
    """Turn dates into midnight datetimes in a list that mixes the two, which Arrow rejects."""
    if not isinstance(values, list):
        return values
    kinds = {type(v) for v in values if v is not None}
    has_datetime = any(issubclass(k, dt.datetime) for k in kinds)
    has_date = any(issubclass(k, dt.date) and not issubclass(k, dt.datetime) for k in kinds)
    if not (has_datetime and has_date):
        return values
    return [
        dt.datetime(v.year, v.month, v.day) if isinstance(v, dt.date) and not isinstance(v, dt.datetime) else v
        for v in values
    ]


def _from_columns(columns: Mapping[Any, Any]) -> pa.Table:
    arrays = {}
    for name, values in columns.items():
        try:
            if isinstance(values, (pa.Array, pa.ChunkedArray)):
                arrays[str(name)] = values
            else:
                arrays[str(name)] = pa.array(_dates_as_datetimes(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as error:
            raise IngestError(f"Column {name!r} {_describe_bad_values(values, error)}") from None
    try:
        return pa.table(arrays)
    except pa.ArrowInvalid as error:
        raise IngestError(f"The columns have different lengths: {error}") from None


def _describe_bad_values(values: Any, error: BaseException) -> str:
    """Say which row of a Python column Arrow could not convert, and why."""
    if isinstance(error, OverflowError):
        for index, value in enumerate(values):
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                return f"has a value that does not fit in a signed 64-bit integer at row {index} (0-based): {value}."
    if isinstance(values, list):
        first = next((v for v in values if v is not None), None)
        for index, value in enumerate(values):
            if value is not None and type(value) is not type(first):
                return (
                    f"mixes types: row {index} (0-based) holds a {type(value).__name__} {value!r} where "
                    f"earlier rows hold {type(first).__name__} values. Use one type per column."
                )
    return f"has values Arrow cannot convert: {error}"


def _from_rows(rows: Sequence[Any]) -> pa.Table:
    if not rows:
        return pa.table({})
    names: dict[str, None] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise IngestError(
                f"Row {index} is an object of type {type(row).__name__}, not a dict: a list input must "
                "contain one dict per row, such as [{'user_id': 1, 'clicks': 3}]."
            )
        names.update(dict.fromkeys(str(key) for key in row))
    return _from_columns({name: [row.get(name) for row in rows] for name in names})


def _read_files(location: str | os.PathLike[str]) -> pa.Table:
    text = os.fspath(location)
    paths = sorted(glob.glob(text, recursive=True)) if glob.has_magic(text) else [text]
    if not paths or not all(Path(p).exists() for p in paths):
        raise IngestError(f"No file matches {text!r}; check the path or glob.")

    expanded = []
    for path in paths:
        if Path(path).is_dir():
            expanded.extend(sorted(str(p) for p in Path(path).rglob("*") if _reader_of(p) and p.is_file()))
        else:
            expanded.append(path)

    readers = {_reader_of(Path(p)) for p in expanded}
    if None in readers or len(readers) != 1:
        found = sorted({"".join(Path(p).suffixes) or "(no extension)" for p in expanded})
        raise IngestError(
            f"Cannot read {text!r}: the files must all be Parquet (.parquet), CSV (.csv, .tsv) "
            f"or JSON (.json, .jsonl, .ndjson) files of one kind, but the extensions found are "
            f"{', '.join(found) or '(no files)'}. Pass a glob such as 'data/*.parquet' to pick one kind."
        )

    reader = readers.pop()
    files = ", ".join(literal(p) for p in expanded)
    options = ", union_by_name = true" if reader != "read_json_auto" else ""
    cursor = file_connection().cursor()
    try:
        return cursor.execute(f"SELECT * FROM {reader}([{files}]{options})").to_arrow_table()
    except Exception as error:  # duckdb reports unreadable files with several Error classes
        raise IngestError(f"Cannot read {text!r}: {str(error).splitlines()[0]}") from None
    finally:
        cursor.close()


def _reader_of(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".zst"):
        suffixes = suffixes[:-1]
    return _READERS.get(suffixes[-1]) if suffixes else None
