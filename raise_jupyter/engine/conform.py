"""Checking ingested data against a feature group's schema and converting it without loss.

Only conversions that keep every value are applied: integers to wider integers or floats,
floats to narrower types when each value survives the round trip, timestamps to microseconds
in UTC, ISO 8601 strings to timestamps and dates. Anything else is an IngestError that names
the column, the rows and the fix. Naive timestamps are taken as UTC; dates become midnight UTC.
NaN and infinity in float columns are stored as values (a pandas DataFrame is the exception:
pandas marks missing floats with NaN, so they arrive as nulls).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from raise_jupyter.dtypes import DType, infer_dtype
from raise_jupyter.engine.expressions import suggest
from raise_jupyter.errors import IngestError

MAX_ROWS_LISTED = 10

_t = pa.types


def describe_rows(indices: list[int], total: int, singular: str, plural: str) -> str:
    """Format rows and a verb for an error message, such as "2 rows (0-based: 3, 9) have"."""
    if total == 1:
        return f"row {indices[0]:,} (0-based) {singular}"
    shown = ", ".join(f"{i:,}" for i in indices[:MAX_ROWS_LISTED])
    more = ", ..." if total > len(indices[:MAX_ROWS_LISTED]) else ""
    return f"{total:,} rows (0-based: {shown}{more}) {plural}"


def _mask_indices(mask: pa.ChunkedArray | pa.Array) -> tuple[list[int], int]:
    mask = pc.fill_null(mask, False)
    indices = pc.indices_nonzero(mask)
    total = len(indices)
    return indices[:MAX_ROWS_LISTED].to_pylist(), total


def _failing_rows(mask: pa.ChunkedArray | pa.Array, rows: pa.Array | None) -> tuple[list[int], int, list[int]]:
    """Return (first rows, number of rows, first values' positions) where ``mask`` is true.

    ``rows`` maps each value to its row when the values are the elements of a list column.
    """
    if rows is None:
        indices, total = _mask_indices(mask)
        return indices, total, indices
    positions = pc.indices_nonzero(pc.fill_null(mask, False))
    bad_rows = pc.unique(pc.take(rows, positions))
    return bad_rows[:MAX_ROWS_LISTED].to_pylist(), len(bad_rows), positions[:MAX_ROWS_LISTED].to_pylist()


def _values_at(column: pa.ChunkedArray, indices: list[int]) -> str:
    shown = []
    for i in indices[:3]:
        try:
            shown.append(repr(column[i].as_py()))
        except (OverflowError, ValueError):  # values Python's types cannot hold, such as year 10000
            storage = pa.int64() if _t.is_temporal(column.type) else column.type
            raw = column.slice(i, 1).cast(storage, safe=False)[0].as_py()
            shown.append(f"{raw} ({column.type})")
    return ", ".join(shown)


def _decode(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if _t.is_dictionary(column.type):
        return _decode(column.cast(column.type.value_type))
    if _t.is_float16(column.type):
        # Arrow has no cast from float16; every float16 value is exact in float32.
        import numpy as np

        chunks = [
            pa.array(c.to_numpy(zero_copy_only=False).astype(np.float32), mask=c.is_null().to_numpy(zero_copy_only=False))
            for c in column.chunks
        ]
        return pa.chunked_array(chunks, type=pa.float32())
    if _t.is_large_string(column.type) or _t.is_string_view(column.type):
        return column.cast(pa.string())
    if _t.is_large_binary(column.type) or _t.is_binary_view(column.type) or _t.is_fixed_size_binary(column.type):
        return column.cast(pa.binary())
    return column


def _same_or_both_missing(left: pa.ChunkedArray, right: pa.ChunkedArray) -> pa.ChunkedArray:
    equal = pc.fill_null(pc.equal(left, right), False)
    both_null = pc.and_(pc.is_null(left), pc.is_null(right))
    result = pc.or_(equal, both_null)
    if _t.is_floating(left.type) and _t.is_floating(right.type):
        result = pc.or_(result, pc.fill_null(pc.and_(pc.is_nan(left), pc.is_nan(right)), False))
    return result


def _round_trip(
    name: str, column: pa.ChunkedArray, target: pa.DataType, dtype: DType, rows: pa.Array | None
) -> pa.ChunkedArray:
    """Cast ``column`` to ``target`` and raise if any value changes on the way back."""
    try:
        converted = column.cast(target, safe=False)
        back = converted.cast(column.type, safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        _wrong_type(name, column.type, dtype)

    changed = pc.invert(_same_or_both_missing(column, back))
    if _t.is_integer(column.type) and _t.is_integer(target):
        # Wrapped integers survive the round trip, so check the target's range instead.
        changed = pc.or_(changed, _out_of_range(column, target))
    bad_rows, total, positions = _failing_rows(changed, rows)
    if total:
        raise IngestError(
            f"Column {name!r} ({column.type}) cannot be stored as {dtype.name} without loss: "
            f"{describe_rows(bad_rows, total, 'holds', 'hold')} {_values_at(column, positions)}. Convert or "
            f"round these values first, or declare the feature with a dtype that holds them."
        )
    return converted


def _out_of_range(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    import numpy as np

    info = np.iinfo(target.to_pandas_dtype())
    source = np.iinfo(column.type.to_pandas_dtype())
    too_big = pc.greater(column, pa.scalar(min(info.max, source.max), column.type))
    too_small = pc.less(column, pa.scalar(max(info.min, source.min), column.type))
    return pc.or_(too_big, too_small)


def _wrong_type(name: str, source: pa.DataType, dtype: DType) -> None:
    inferred = infer_dtype(source)
    hint = f" or declare the feature as {inferred.name!r}" if inferred else ""
    raise IngestError(
        f"Column {name!r} has type {source}, which cannot be stored in feature {name!r} "
        f"({dtype.name}): convert the column{hint}."
    )


def _convert_decimal(name: str, column: pa.ChunkedArray, dtype: DType, rows: pa.Array | None) -> pa.ChunkedArray:
    """Convert decimals to integers when they are whole and in range, or to floats that print the same."""
    import decimal

    import numpy as np

    values = column.to_pylist()
    converted: list[object] = []
    lossy: list[bool] = []
    for value in values:
        if value is None:
            converted.append(None)
            lossy.append(False)
        elif dtype.name.startswith("int"):
            fits = value == value.to_integral_value() and -(2**63) <= int(value) < 2**63
            converted.append(int(value) if fits else None)
            lossy.append(not fits)
        else:
            number = float(value)
            # The shortest text of the value at the target precision must equal the decimal.
            shown = repr(float(number)) if dtype.name == "float64" else str(np.float32(number))
            converted.append(number)
            lossy.append(decimal.Decimal(shown) != value)

    mask = pa.array(lossy)
    if not any(lossy) and dtype.name.startswith("int"):
        integers = pa.chunked_array([pa.array(converted, pa.int64())])
        return _round_trip(name, integers, dtype.storage_type, dtype, rows)
    bad_rows, total, positions = _failing_rows(mask, rows)
    if total:
        raise IngestError(
            f"Column {name!r} ({column.type}) cannot be stored as {dtype.name} without loss: "
            f"{describe_rows(bad_rows, total, 'holds', 'hold')} {_values_at(column, positions)}. Round "
            "these values first, or declare the feature with a dtype that holds them."
        )
    return pa.chunked_array([pa.array(converted, dtype.storage_type)])


def _parse_timestamps(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Parse ISO 8601 strings with or without a zone offset; those without one are UTC."""
    # A zone offset follows a time of day; "2024-01-01" ends in "-01" but has no zone.
    has_zone = pc.match_substring_regex(column, r"\d{2}:\d{2}(:\d{2}(\.\d*)?)?\s*([Zz]|[+-]\d{2}(:?\d{2})?)$")
    with_zone = pc.if_else(has_zone, column, pa.scalar(None, column.type))
    without_zone = pc.if_else(has_zone, pa.scalar(None, column.type), column)
    target = pa.timestamp("us", tz="UTC")
    aware = with_zone.cast(target)
    naive = without_zone.cast(pa.timestamp("us")).cast(target)
    return pc.if_else(has_zone, aware, naive)


def _parse_strings(name: str, column: pa.ChunkedArray, dtype: DType, rows: pa.Array | None) -> pa.ChunkedArray:
    target = dtype.storage_type
    attempts = [target] if dtype.name == "date" else [target, pa.timestamp("us")]
    try:
        return column.cast(target) if dtype.name == "date" else _parse_timestamps(column)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass

    bad = [i for i in range(min(len(column), 1_000_000)) if not _parses(column[i].as_py(), attempts)]
    mask = pa.array([False] * min(len(column), 1_000_000))
    if bad:
        mask = pc.is_in(pa.array(range(len(mask))), pa.array(bad))
    bad_rows, total, positions = _failing_rows(mask, rows)
    where = f"{describe_rows(bad_rows, total, 'holds', 'hold')} {_values_at(column, positions)}" if total else "some rows do not parse"
    example = "'2024-05-01'" if dtype.name == "date" else "'2024-05-01T12:00:00Z' or '2024-05-01 12:00:00'"
    raise IngestError(f"Column {name!r} contains strings that are not ISO 8601 {dtype.name}s: {where}. Use a form such as {example}.")


def _parses(value: object, attempts: list[pa.DataType]) -> bool:
    if value is None:
        return True
    for attempt in attempts:
        try:
            pa.array([value]).cast(attempt)
            return True
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return False


def _convert_scalar(name: str, column: pa.ChunkedArray, dtype: DType, rows: pa.Array | None) -> pa.ChunkedArray:
    source = column.type
    target = dtype.storage_type
    if source == target:
        return column
    if _t.is_null(source):
        return pa.chunked_array([pa.nulls(len(column), target)], type=target)

    if dtype.is_numeric and _t.is_decimal(source):
        return _convert_decimal(name, column, dtype, rows)
    if dtype.is_numeric and (_t.is_integer(source) or _t.is_floating(source)):
        return _round_trip(name, column, target, dtype, rows)

    temporal = _t.is_timestamp(source) or _t.is_date(source)
    if dtype.name in ("timestamp", "date") and temporal:
        if _t.is_timestamp(source) and source.tz is None:
            # Naive timestamps are taken as UTC.
            column = column.cast(pa.timestamp(source.unit, tz="UTC"))
        return _round_trip(name, column, target, dtype, rows)

    if dtype.name in ("timestamp", "date") and _t.is_string(source):
        return _parse_strings(name, column, dtype, rows)
    if dtype.name == "string" and _t.is_string(source):
        return column
    if dtype.name == "bytes" and _t.is_binary(source):
        return column

    _wrong_type(name, source, dtype)
    raise AssertionError("unreachable")


def _list_like(arrow_type: pa.DataType) -> bool:
    return _t.is_list(arrow_type) or _t.is_large_list(arrow_type) or _t.is_fixed_size_list(arrow_type)


def _convert_list(name: str, column: pa.ChunkedArray, dtype: DType) -> pa.ChunkedArray:
    assert dtype.element is not None
    if _t.is_null(column.type):
        return pa.chunked_array([pa.nulls(len(column), dtype.storage_type)], type=dtype.storage_type)
    if not _list_like(column.type):
        _wrong_type(name, column.type, dtype)

    column = column.cast(pa.list_(column.type.value_type))
    if dtype.kind == "vector":
        lengths = pc.list_value_length(column)
        wrong = pc.and_(pc.not_equal(lengths, dtype.length), pc.is_valid(column))
        indices, total = _mask_indices(wrong)
        if total:
            found = ", ".join(str(lengths[i].as_py()) for i in indices[:3])
            raise IngestError(
                f"Column {name!r} must hold vectors of length {dtype.length} ({dtype.name}), but "
                f"{describe_rows(indices, total, 'has', 'have')} length {found}."
            )

    # Only the visible elements of valid lists are checked: flatten() skips null lists and
    # the values outside a slice.
    import numpy as np

    chunks = []
    row_offset = 0
    for chunk in column.chunks:
        elements = pa.chunked_array([chunk.flatten()], type=chunk.type.value_type)
        parents = pc.add(pc.list_parent_indices(chunk), row_offset)
        converted = convert_column(name, elements, dtype.element, rows=parents)
        lengths = pc.fill_null(pc.list_value_length(chunk), 0).to_numpy(zero_copy_only=False)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        rebuilt = pa.ListArray.from_arrays(offsets, converted.combine_chunks(), mask=chunk.is_null())
        chunks.append(rebuilt.cast(dtype.storage_type))
        row_offset += len(chunk)
    return pa.chunked_array(chunks, type=dtype.storage_type)


def convert_column(name: str, column: pa.ChunkedArray, dtype: DType, *, rows: pa.Array | None = None) -> pa.ChunkedArray:
    """Return ``column`` in the storage type of ``dtype``; raise IngestError if that loses data.

    ``rows`` gives the row of each value when ``column`` contains a list column's elements.
    """
    try:
        column = _decode(column)
        if dtype.kind == "scalar":
            return _convert_scalar(name, column, dtype, rows)
        return _convert_list(name, column, dtype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        raise IngestError(
            f"Column {name!r} ({column.type}) cannot be converted to {dtype.name}: {error}. "
            "Convert the column to a supported type first."
        ) from None


def check_columns(
    table: pa.Table,
    stored: Mapping[str, DType],
    *,
    derived: Iterable[str],
    required: Iterable[str],
) -> None:
    """Raise for duplicate, derived, unknown or missing required columns of ``table``."""
    names = table.column_names
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise IngestError(f"The data has duplicate columns {duplicates}; rename them first.")

    derived_names = set(derived)
    computed = [n for n in names if n in derived_names]
    if computed:
        raise IngestError(
            f"Column {computed[0]!r} is a derived feature, computed when the group is read; "
            "drop it from the data."
        )

    for name in names:
        if name not in stored:
            raise IngestError(
                f"Column {name!r} is not a feature of this group.{suggest(name, stored)} "
                f"Features: {', '.join(stored)}. Create the feature first, or drop the column."
            )

    for name in required:
        if name not in names:
            raise IngestError(f"The data has no column {name!r}, which the group needs (key or event time).")


def check_not_null(table: pa.Table, columns: Iterable[str], *, role: str) -> None:
    """Raise if any of ``columns`` contains a null, naming the rows."""
    for name in columns:
        column = table.column(name)
        if column.null_count:
            indices, total = _mask_indices(pc.is_null(column))
            raise IngestError(
                f"{describe_rows(indices, total, 'has', 'have').capitalize()} a null {role} {name!r}; "
                "nothing was written. Drop or fill those rows and ingest again."
            )


def conform(table: pa.Table, stored: Mapping[str, DType]) -> pa.Table:
    """Return a table with every stored column, in the storage types, filling absent ones with null."""
    arrays = []
    for name, dtype in stored.items():
        if name in table.column_names:
            arrays.append(convert_column(name, table.column(name), dtype))
        else:
            arrays.append(pa.chunked_array([pa.nulls(table.num_rows, dtype.storage_type)], type=dtype.storage_type))
    schema = pa.schema([pa.field(name, dtype.storage_type) for name, dtype in stored.items()])
    return pa.Table.from_arrays(arrays, schema=schema)
