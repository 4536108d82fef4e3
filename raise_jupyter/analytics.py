"""Run ``Aggregation`` and ``Distribution`` analyses on a feature group with DuckDB.

Each analysis is one or two SQL queries over one table version of the group, with derived
features computed as in reads. Histograms follow ``numpy.histogram`` bin for bin: equal-width
edges from ``numpy.linspace``, the bin of a value computed the way numpy computes it, and the
last bin closed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from raise_jupyter import definitions
from raise_jupyter.analysis import (
    ANY_TYPE_METRICS,
    NUMERIC_METRICS,
    TIME_BUCKETS,
    Aggregation,
    Analysis,
    Distribution,
    check_analysis,
    percentile_of,
)
from raise_jupyter.dtypes import DType
from raise_jupyter.engine import expressions, reader
from raise_jupyter.engine.duck import quote
from raise_jupyter.errors import DefinitionError, NotFoundError
from raise_jupyter.results import AnalysisResult

if TYPE_CHECKING:
    from raise_jupyter.engine.catalog import GroupRecord
    from raise_jupyter.group import FeatureGroup

logger = logging.getLogger(__name__)

VALUE = "__raise_value"
QUANTILES = "__raise_quantiles"
# Bucket labels of values that fall outside every bin; they keep the counts summing to the
# number of non-null values.
NAN_BUCKET, NEG_INF_BUCKET, POS_INF_BUCKET = "NaN", "-inf", "inf"
BELOW_BUCKET, ABOVE_BUCKET = "below first edge", "above last edge"
OTHER_VALUE = "(other)"


@dataclass(frozen=True)
class _Plan:
    """The resolved parts of an analysis on one group."""

    record: GroupRecord
    layout: reader.GroupLayout
    feature: str
    dtype: DType
    group_by: list[tuple[str, str]]  # (output name, SQL expression over the relation)
    relation: str
    version: int


def analyze(group: FeatureGroup, analysis: Analysis, *, as_of: Any = None) -> AnalysisResult:
    """Run ``analysis`` on ``group``; see ``FeatureGroup.analyze``."""
    analysis = check_analysis(analysis)
    plan = _plan(group, analysis, as_of)
    if isinstance(analysis, Aggregation):
        table = _aggregate(group, plan, analysis)
    else:
        table = _distribution(group, plan, analysis)
    logger.info("Analyzed %s.%s (version %d): %d result rows", group.name, plan.feature, plan.version, table.num_rows)
    result = AnalysisResult(table, analysis=analysis, group=group.name, version=plan.version)
    result._group = group
    return result


def check(group: FeatureGroup, analysis: Analysis) -> None:
    """Raise if ``analysis`` cannot run on ``group`` (unknown feature, metric or column)."""
    _plan(group, check_analysis(analysis), None)


def resolve_feature(group_name: str, feature: str) -> str:
    """Return the feature name of ``feature``, which may be written ``"group.feature"``."""
    prefix, dot, rest = feature.partition(".")
    if dot and prefix == group_name:
        return rest
    return feature


# -- planning -----------------------------------------------------------------------------------


def _plan(group: FeatureGroup, analysis: Analysis, as_of: Any) -> _Plan:
    record, records = group._load()
    layout = definitions.layout_of(record, records)
    feature = resolve_feature(group.name, analysis.feature)
    if feature not in layout.names:
        raise NotFoundError(
            f"Feature {analysis.feature!r} is not in group {group.name!r}."
            f"{expressions.suggest(feature, layout.names)} Features: {', '.join(layout.names) or '(none)'}."
        )
    dtype = layout.dtype(feature)
    if isinstance(analysis, Aggregation):
        _check_metrics(analysis, feature, dtype)
    group_by = _group_by(group.name, analysis.group_by, layout, record)
    if analysis.where is not None:
        expressions.check_filter(analysis.where, layout)

    needed = [feature, *[name for name, _ in group_by if name in layout.names]]
    if any(name not in layout.names for name, _ in group_by):
        needed.append(record.event_time)  # type: ignore[arg-type]
    files = group._files(as_of, record)
    relation = reader.relation_sql(group._store.root, layout, files, columns=list(dict.fromkeys(needed)), where=analysis.where)
    return _Plan(record, layout, feature, dtype, group_by, relation, files.version)


def _check_metrics(analysis: Aggregation, feature: str, dtype: DType) -> None:
    numeric = dtype.is_numeric or dtype.name == "bool"
    for metric in analysis.metrics:
        if dtype.kind != "scalar" and metric not in ANY_TYPE_METRICS:
            raise DefinitionError(
                f"Metric {metric!r} does not apply to {feature!r} of dtype {dtype}; metrics of vectors and "
                f"lists: {', '.join(sorted(ANY_TYPE_METRICS))}. Use Distribution for their norms."
            )
        needs_number = metric in NUMERIC_METRICS or (percentile_of(metric) is not None and metric != "median")
        if needs_number and not numeric and not (percentile_of(metric) is not None and dtype.name in ("date", "timestamp")):
            raise DefinitionError(
                f"Metric {metric!r} needs numbers, but {feature!r} has dtype {dtype}; use count, "
                "count_distinct, min, max, null_count or null_rate."
            )


def _group_by(
    group_name: str, names: tuple[str, ...], layout: reader.GroupLayout, record: GroupRecord
) -> list[tuple[str, str]]:
    resolved = []
    for name in names:
        if name in layout.names:
            resolved.append((name, quote(name)))
        elif name in TIME_BUCKETS and record.event_time is not None:
            event = quote(record.event_time)
            expression = f"CAST({event} AS DATE)" if name == "date" else f"date_trunc('hour', {event})"
            resolved.append((name, expression))
        else:
            choices = list(layout.names)
            if record.event_time is not None:
                choices += [b for b in TIME_BUCKETS if b not in layout.names]
            raise NotFoundError(
                f"Cannot group by {name!r}: it is not a column of group {group_name!r}."
                f"{expressions.suggest(name, choices)} Valid choices: {', '.join(choices)}."
                + ("" if record.event_time else " 'date' and 'hour' need an event time.")
            )
    return resolved


# -- aggregation --------------------------------------------------------------------------------


def _metric_sql(metric: str, dtype: DType) -> str:
    value = quote(VALUE)
    number = f"CAST({value} AS INTEGER)" if dtype.name == "bool" else value
    fraction = percentile_of(metric)
    if fraction is not None:
        return f"quantile_cont({number}, {fraction!r})"
    if metric == "sum":
        return f"CAST(sum({number}) AS BIGINT)" if dtype.name.startswith("int") or dtype.name == "bool" else f"sum({number})"
    if metric in ("stddev", "variance") and dtype.name.startswith("float"):
        # DuckDB raises "out of range" when a value is NaN or infinite; numpy and pandas give NaN.
        function = "stddev_samp" if metric == "stddev" else "var_samp"
        finite = f"{function}(CASE WHEN isfinite({value}) THEN {value} END)"
        return f"CASE WHEN count(*) FILTER (WHERE NOT isfinite({value})) > 0 THEN 'NaN'::DOUBLE ELSE {finite} END"
    simple = {
        "count": f"count({value})",
        "count_distinct": f"count(DISTINCT {value})",
        "avg": f"avg({number})",
        "mean": f"avg({number})",
        "min": f"min({value})",
        "max": f"max({value})",
        "stddev": f"stddev_samp({number})",
        "variance": f"var_samp({number})",
        "null_count": f"count(*) - count({value})",
        "null_rate": f"CAST(count(*) - count({value}) AS DOUBLE) / NULLIF(count(*), 0)",
    }
    return simple[metric]


def _aggregate(group: FeatureGroup, plan: _Plan, analysis: Aggregation) -> pa.Table:
    keys = [f"{expression} AS {quote(name)}" for name, expression in plan.group_by]
    # DuckDB computes several quantiles of one column in one pass when they come as a list,
    # which takes about as long as one quantile alone.
    fractions = sorted({f for m in analysis.metrics if (f := percentile_of(m)) is not None})
    inner = [f"{_metric_sql(m, plan.dtype)} AS {quote(m)}" for m in analysis.metrics if percentile_of(m) is None]
    if fractions:
        listed = ", ".join(repr(f) for f in fractions)
        inner.append(f"quantile_cont({_number_sql(plan.dtype)}, [{listed}]) AS {quote(QUANTILES)}")
    source = f"SELECT *, {quote(plan.feature)} AS {quote(VALUE)} FROM ({plan.relation}) AS r"
    sql = f"SELECT {', '.join([*keys, *inner])} FROM ({source}) AS s"
    if plan.group_by:
        positions = ", ".join(str(i + 1) for i in range(len(plan.group_by)))
        sql += f" GROUP BY {positions} ORDER BY {positions} NULLS LAST"

    outputs = [quote(name) for name, _ in plan.group_by]
    for metric in analysis.metrics:
        fraction = percentile_of(metric)
        if fraction is None:
            outputs.append(quote(metric))
        else:
            outputs.append(f"{quote(QUANTILES)}[{fractions.index(fraction) + 1}] AS {quote(metric)}")
    return group._read(f"SELECT {', '.join(outputs)} FROM ({sql}) AS a", None, plan.version)


def _number_sql(dtype: DType) -> str:
    value = quote(VALUE)
    return f"CAST({value} AS INTEGER)" if dtype.name == "bool" else value


# -- distribution -------------------------------------------------------------------------------


def _distribution(group: FeatureGroup, plan: _Plan, analysis: Distribution) -> pa.Table:
    dtype = plan.dtype
    if dtype.kind == "scalar" and dtype.name in ("string", "bool", "bytes"):
        return _value_counts(group, plan, analysis)
    if dtype.is_numeric:
        return _histogram(group, plan, analysis, f"CAST({quote(plan.feature)} AS DOUBLE)")
    if dtype.kind in ("vector", "list") and dtype.element is not None and dtype.element.is_numeric:
        vector = f"CAST({quote(plan.feature)} AS DOUBLE[])"
        # Null elements add nothing to the norm, and an empty list has norm 0.
        squares = f"list_sum(list_transform({vector}, lambda e: e * e))"
        norm = f"CASE WHEN {vector} IS NULL THEN NULL ELSE sqrt(coalesce({squares}, 0)) END"
        return _histogram(group, plan, analysis, norm)
    raise DefinitionError(
        f"Distribution does not apply to {plan.feature!r} of dtype {dtype}; for times, count rows per "
        "day with Aggregation(feature, metrics=['count'], group_by=['date'])."
    )


def _value_counts(group: FeatureGroup, plan: _Plan, analysis: Distribution) -> pa.Table:
    value = quote(plan.feature)
    sql = (
        f"SELECT CAST({value} AS VARCHAR) AS value, count(*) AS count FROM ({plan.relation}) AS r "
        f"WHERE {value} IS NOT NULL GROUP BY 1 ORDER BY count DESC, value"
    )
    counts = group._read(sql, None, plan.version)
    top = counts.slice(0, analysis.top)
    rest = sum(counts.column("count").to_pylist()[analysis.top :])
    values = top.column("value").to_pylist() + ([OTHER_VALUE] if rest else [])
    numbers = top.column("count").to_pylist() + ([rest] if rest else [])
    return pa.table({"value": pa.array(values, pa.string()), "count": pa.array(numbers, pa.int64())})


def _histogram(group: FeatureGroup, plan: _Plan, analysis: Distribution, expression: str) -> pa.Table:
    source = f"SELECT {expression} AS x FROM ({plan.relation}) AS r WHERE {expression} IS NOT NULL"
    finite = "isfinite(x)"
    stats = group._read(
        f"SELECT min(x) FILTER (WHERE {finite}) AS lo, max(x) FILTER (WHERE {finite}) AS hi, "
        f"count(*) FILTER (WHERE isnan(x)) AS nan, count(*) FILTER (WHERE x = 'inf'::DOUBLE) AS pos, "
        f"count(*) FILTER (WHERE x = '-inf'::DOUBLE) AS neg FROM ({source}) AS v",
        None,
        plan.version,
    ).to_pylist()[0]

    edges = _edges(analysis.bins, stats["lo"], stats["hi"])
    counts: list[int] = [0] * (len(edges) - 1)
    below = above = 0
    if len(edges) >= 2 and stats["lo"] is not None:
        index = _bin_index_sql(edges, uniform=isinstance(analysis.bins, int))
        rows = group._read(
            f"SELECT {index} AS i, count(*) AS n FROM ({source}) AS v WHERE {finite} GROUP BY 1", None, plan.version
        ).to_pylist()
        for row in rows:
            if row["i"] < 0:
                below += row["n"]
            elif row["i"] >= len(counts):
                above += row["n"]
            else:
                counts[row["i"]] = row["n"]
    return _histogram_table(edges, counts, below, above, stats)


def _edges(bins: int | tuple[float, ...], lo: float | None, hi: float | None) -> list[float]:
    """Return the bin edges, as ``numpy.histogram`` chooses them for a bin count."""
    if isinstance(bins, tuple):
        return list(bins)
    if lo is None or hi is None:
        return []
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1, endpoint=True).tolist()


def _bin_index_sql(edges: list[float], *, uniform: bool) -> str:
    """Return SQL of the 0-based bin of ``x``: -1 below the first edge, len(edges) - 1 above the last."""
    bins = len(edges) - 1
    listed = "([" + ", ".join(repr(float(e)) for e in edges) + "]::DOUBLE[])"
    # Cast, because DuckDB reads a literal such as -2.768 as a DECIMAL, and a difference of
    # two DECIMALs with many digits overflows.
    first, last = f"CAST({float(edges[0])!r} AS DOUBLE)", f"CAST({float(edges[-1])!r} AS DOUBLE)"
    if not uniform:
        # Bins [e0, e1), [e1, e2), ..., [e(n-1), en]: the number of edges at or below x, minus 1.
        inner = f"len(list_filter({listed}, lambda e: e <= x)) - 1"
        return f"CASE WHEN x < {first} THEN -1 WHEN x > {last} THEN {bins} WHEN x = {last} THEN {bins - 1} ELSE {inner} END"

    # numpy's rule: truncate (x - first) / (last - first) * bins, move a value at the last
    # edge into the last bin, then correct by one where rounding crossed an edge.
    guess = f"least(CAST(trunc((x - {first}) / ({last} - {first}) * {bins}) AS BIGINT), {bins - 1})"
    lowered = f"({guess} - CASE WHEN x < {listed}[{guess} + 1] THEN 1 ELSE 0 END)"
    raised = f"({lowered} + CASE WHEN x >= {listed}[{lowered} + 2] AND {lowered} <> {bins - 1} THEN 1 ELSE 0 END)"
    return f"CASE WHEN x < {first} THEN -1 WHEN x > {last} THEN {bins} ELSE {raised} END"


def _histogram_table(edges: list[float], counts: list[int], below: int, above: int, stats: dict[str, Any]) -> pa.Table:
    buckets, starts, ends, numbers = [], [], [], []
    for i, count in enumerate(counts):
        closing = "]" if i == len(counts) - 1 else ")"
        buckets.append(f"[{edges[i]:.6g}, {edges[i + 1]:.6g}{closing}")
        starts.append(edges[i])
        ends.append(edges[i + 1])
        numbers.append(count)
    extras = [
        (BELOW_BUCKET, below),
        (ABOVE_BUCKET, above),
        (NAN_BUCKET, stats["nan"]),
        (NEG_INF_BUCKET, stats["neg"]),
        (POS_INF_BUCKET, stats["pos"]),
    ]
    for label, count in extras:
        if count:
            buckets.append(label)
            starts.append(None)
            ends.append(None)
            numbers.append(count)
    return pa.table(
        {
            "bucket": pa.array(buckets, pa.string()),
            "start": pa.array(starts, pa.float64()),
            "end": pa.array(ends, pa.float64()),
            "count": pa.array(numbers, pa.int64()),
        }
    )
