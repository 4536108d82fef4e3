"""SQL for point-in-time correct training data: one DuckDB ASOF JOIN per feature group.

For each spine row and group, the join picks the group row with equal keys and the greatest
(event time, ingest sequence) at or before the spine timestamp. Both are packed into one
HUGEINT sort key, event time in microseconds times 2**64 plus ``_raise_seq``, so that among rows
with the same event time the one ingested last wins, without a window over the whole table.
When no ingest batch has two rows with equal keys and event time, a BIGINT key of event time
and batch number does the same faster (``sortkey``).
Groups without an event time are snapshots: the row ingested last per key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raise_jupyter.dtypes import DType
from raise_jupyter.engine import offline
from raise_jupyter.engine.duck import quote
from raise_jupyter.engine.sortkey import CompactKey

ROW_COLUMN = "__raise_row"
MATCHED_COLUMN = "__raise_matched"
SORT_COLUMN = "__raise_sort"
SPINE_SORT_COLUMN = "__raise_spine_sort"
SPINE_TIME_COLUMN = "__raise_spine_ts"
_SHIFT = "18446744073709551616::HUGEINT"


@dataclass
class GroupJoin:
    """One feature group's part of a training-data query.

    Attributes
    ----------
    alias
        Short SQL name of this group's part, such as ``g0``.
    stored_sql
        SELECT of the group's table version with ``_raise_seq`` and the stored columns needed.
    keys
        Group key columns, paired with ``spine_keys``, the spine columns converted to their types.
    derived
        Derived features to compute on the joined rows: name to (expression, dtype), by level.
    outputs
        (feature name, output column name) pairs.
    """

    alias: str
    stored_sql: str
    stored: list[str]
    keys: list[str]
    spine_keys: list[str]
    event_time: str | None
    ttl_us: int | None
    derived: dict[str, tuple[str, DType]] = field(default_factory=dict)
    levels: list[list[str]] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)
    compact: CompactKey | None = None

    @property
    def spine_sort(self) -> str:
        """Spine column that the ASOF condition compares with this group's sort key."""
        return f"__raise_{self.alias}_sort" if self.compact is not None else SPINE_SORT_COLUMN


def _joined_sql(join: GroupJoin) -> str:
    on = " AND ".join(f"s.{quote(s)} = f.{quote(k)}" for s, k in zip(join.spine_keys, join.keys, strict=True))
    if join.event_time is None:
        partition = ", ".join(quote(k) for k in join.keys)
        latest = (
            f"SELECT * FROM ({join.stored_sql}) AS t "
            f"QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {quote(offline.SEQ_COLUMN)} DESC) = 1"
        )
        columns = ", ".join(f"f.{quote(c)}" for c in join.stored)
        matched = f"f.{quote(offline.SEQ_COLUMN)} IS NOT NULL AS {MATCHED_COLUMN}"
        return f"SELECT s.{ROW_COLUMN}, {matched}, {columns} FROM spine AS s LEFT JOIN ({latest}) AS f ON {on}"

    event = quote(join.event_time)
    if join.compact is not None:
        key = join.compact.feature_sql(join.event_time)
    else:
        key = f"epoch_us({event})::HUGEINT * {_SHIFT} + {quote(offline.SEQ_COLUMN)}"
    sortable = f"SELECT *, {key} AS {SORT_COLUMN} FROM ({join.stored_sql}) AS t"
    # DuckDB 1.5.5's ASOF LEFT JOIN can match a NULL spine time once the spine has 64 rows or
    # more, so rows without a time are excluded here explicitly.
    valid = f"f.{SORT_COLUMN} IS NOT NULL AND s.{SPINE_TIME_COLUMN} IS NOT NULL"
    if join.ttl_us is not None:
        valid += f" AND f.{event} >= s.{SPINE_TIME_COLUMN} - to_microseconds({join.ttl_us})"
    columns = ", ".join(f"CASE WHEN {valid} THEN f.{quote(c)} END AS {quote(c)}" for c in join.stored)
    return (
        f"SELECT s.{ROW_COLUMN}, coalesce({valid}, false) AS {MATCHED_COLUMN}, {columns} "
        f"FROM spine AS s ASOF LEFT JOIN ({sortable}) AS f "
        f"ON {on} AND s.{quote(join.spine_sort)} >= f.{SORT_COLUMN}"
    )


def _group_sql(join: GroupJoin) -> str:
    sql = _joined_sql(join)
    for level in join.levels:
        derived = ", ".join(
            f"CAST((\n{join.derived[name][0]}\n) AS {join.derived[name][1].sql_type}) AS {quote(name)}"
            for name in level
        )
        sql = f"SELECT *, {derived} FROM ({sql}) AS t"
    # Without a matching row every feature is null, derived ones included (coalesce() over the
    # all-null row would otherwise give a value).
    outputs = ", ".join(
        f"CASE WHEN {MATCHED_COLUMN} THEN {quote(feature)} END AS {quote(output)}" for feature, output in join.outputs
    )
    return f"SELECT {ROW_COLUMN}, {outputs} FROM ({sql}) AS t"


def spine_sort_sql(joins: list[GroupJoin]) -> str:
    """Return the select items that add the spine side of each group's sort key.

    The HUGEINT key (timestamp, any sequence) is shared by the groups that use it; a group with
    a compact key gets its own column.
    """
    items = []
    timed = [join for join in joins if join.event_time is not None]
    if any(join.compact is None for join in timed):
        items.append(f"epoch_us({SPINE_TIME_COLUMN})::HUGEINT * {_SHIFT} + ({_SHIFT} - 1) AS {SPINE_SORT_COLUMN}")
    for join in timed:
        if join.compact is not None:
            items.append(f"{join.compact.spine_sql(SPINE_TIME_COLUMN)} AS {quote(join.spine_sort)}")
    return "".join(f", {item}" for item in items)


def training_sql(joins: list[GroupJoin]) -> str:
    """Return the query of every output column, one row per spine row in spine order."""
    parts = ", ".join(f"{join.alias} AS ({_group_sql(join)})" for join in joins)
    selected = ", ".join(
        f"{join.alias}.{quote(output)}" for join in joins for _, output in join.outputs
    )
    joined = " ".join(f"LEFT JOIN {join.alias} USING ({ROW_COLUMN})" for join in joins)
    return f"WITH {parts} SELECT s.{ROW_COLUMN}, {selected} FROM spine AS s {joined} ORDER BY s.{ROW_COLUMN}"
