"""A compact BIGINT sort key for point-in-time joins, when the data allows one.

The general key of ``pointintime`` is a HUGEINT, event time times 2**64 plus ``_raise_seq``,
which breaks ties among equal event times by ingest order down to the row. Sorting 16-byte keys
makes DuckDB's ASOF JOIN about 1.5 times slower than on timestamps (``bench/training_data.py``).

Most tables never need the row part: if no ingest batch contains two rows with the same keys and
event time, ties can only occur between batches, and the batch number alone breaks them. The key
then fits in 64 bits as ``(event time - first event time) * 2**bits + batch``, with ``bits`` wide
enough for the highest batch number. Each ingest records whether its batch has such duplicates
(``has_ties``, run next to the Delta write), and the event-time range comes from the file
statistics of the Delta log. When anything is unknown or the range does not fit, the caller
keeps the HUGEINT key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from raise_jupyter.engine import offline
from raise_jupyter.engine.catalog import IngestRecord
from raise_jupyter.engine.duck import file_connection, quote

logger = logging.getLogger(__name__)

BATCH_SHIFT = 32  # _raise_seq is batch * 2**32 + row
# deltalake 1.6.6 writes timestamp statistics truncated to the millisecond, so the true range
# may reach up to 1 ms beyond them.
_STATS_SLACK_US = 1_000
_BIGINT_LIMIT = 2**63 - 1


@dataclass(frozen=True)
class CompactKey:
    """Parameters of the BIGINT key of one group's table version.

    Attributes
    ----------
    base_us
        Earliest possible event time in microseconds; the key counts from it.
    last_us
        Latest possible event time in microseconds; later spine times are clamped to it.
    bits
        Low bits that hold the batch number.
    """

    base_us: int
    last_us: int
    bits: int

    def feature_sql(self, event_column: str) -> str:
        """Return the key of a feature row, from its event time and ``_raise_seq``."""
        seq = quote(offline.SEQ_COLUMN)
        return f"((epoch_us({quote(event_column)}) - {self.base_us}) * {2**self.bits} + ({seq} >> {BATCH_SHIFT}))"

    def spine_sql(self, time_column: str) -> str:
        """Return the key of a spine row: after every row at its time, whatever its batch.

        A spine time before ``base_us`` gets -1, below every feature key; one after
        ``last_us`` is clamped to it, which matches the same rows.
        """
        us = f"epoch_us({quote(time_column)})"
        low = 2**self.bits - 1
        return (
            f"CASE WHEN {us} < {self.base_us} THEN -1 "
            f"ELSE (least({us}, {self.last_us}) - {self.base_us}) * {2**self.bits} + {low} END"
        )


def has_ties(table: pa.Table, columns: Sequence[str]) -> bool:
    """Return whether two rows of ``table`` have equal values in all of ``columns``."""
    cursor = file_connection().cursor()
    try:
        cursor.register("batch_rows", table.select(list(columns)))
        listed = ", ".join(quote(c) for c in columns)
        distinct = cursor.execute(f"SELECT count(*) FROM (SELECT DISTINCT {listed} FROM batch_rows)").fetchone()
    finally:
        cursor.close()
    return distinct is None or int(distinct[0]) != table.num_rows


def compact_key(
    files: offline.TableFiles,
    ingests: list[IngestRecord],
    *,
    keys: Sequence[str],
    event_time: str,
    event_column: str,
) -> CompactKey | None:
    """Return the BIGINT key parameters for ``files``, or None when the HUGEINT key is needed.

    Parameters
    ----------
    files
        A table version with ``stats``.
    ingests
        The group's ingest log, with what each batch's tie check found.
    keys, event_time
        The group's key features and event-time feature now.
    event_column
        The Delta column that contains the event time.
    """
    if files.stats is None or not files.paths:
        return None
    batches = _batch_ranges(files.stats)
    event_range = _column_range(files.stats, event_column)
    if batches is None or event_range is None:
        return None
    if not _batches_without_ties(batches, ingests, {*keys, event_time}, event_time):
        return None

    base_us = event_range[0] - _STATS_SLACK_US
    last_us = event_range[1] + _STATS_SLACK_US
    bits = max(hi for _, hi in batches).bit_length()
    if ((last_us - base_us + 1) << bits) > _BIGINT_LIMIT:
        return None
    return CompactKey(base_us=base_us, last_us=last_us, bits=bits)


def _batch_ranges(stats: pa.Table) -> list[tuple[int, int]] | None:
    """Return each file's (lowest, highest) batch number, from its ``_raise_seq`` range."""
    ranges = _file_ranges(stats, offline.SEQ_COLUMN)
    if ranges is None:
        return None
    return [(lo >> BATCH_SHIFT, hi >> BATCH_SHIFT) for lo, hi in ranges]


def _column_range(stats: pa.Table, column: str) -> tuple[int, int] | None:
    ranges = _file_ranges(stats, column)
    if ranges is None:
        return None
    return min(lo for lo, _ in ranges), max(hi for _, hi in ranges)


def _file_ranges(stats: pa.Table, column: str) -> list[tuple[int, int]] | None:
    """Return the per-file (min, max) of ``column`` as integers, or None if any is missing."""
    low_name, high_name = f"min.{column}", f"max.{column}"
    if low_name not in stats.column_names or high_name not in stats.column_names:
        return None
    low, high = stats.column(low_name), stats.column(high_name)
    if low.null_count or high.null_count:
        return None
    if pa.types.is_timestamp(low.type):
        low, high = pc.cast(low, pa.timestamp("us", tz="UTC")), pc.cast(high, pa.timestamp("us", tz="UTC"))
    try:
        low, high = low.cast(pa.int64()), high.cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return list(zip(low.to_pylist(), high.to_pylist(), strict=True))


def _batches_without_ties(
    batches: list[tuple[int, int]], ingests: list[IngestRecord], columns: set[str], event_time: str
) -> bool:
    """Return whether every batch the files may hold was checked and has no ties on ``columns``.

    A batch checked on fewer key columns than the group has now still counts: rows unique on
    some keys and the event time are unique on more keys too.
    """
    by_batch = {ingest.batch: ingest for ingest in ingests}
    for lo, hi in batches:
        for batch in _batches_in(by_batch, lo, hi):
            ingest = by_batch[batch]
            checked = ingest.tie_columns
            if ingest.ties is not False or checked is None:
                logger.debug("Batch %d has ties or was not checked; keeping the HUGEINT key", batch)
                return False
            if event_time not in checked or not set(checked) <= columns:
                return False
        if lo == hi and lo not in by_batch:
            return False
    return True


def _batches_in(by_batch: dict[int, IngestRecord], lo: int, hi: int) -> list[int]:
    if hi - lo < len(by_batch):
        return [b for b in range(lo, hi + 1) if b in by_batch]
    return [b for b in by_batch if lo <= b <= hi]
