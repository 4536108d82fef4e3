"""Declarative analyses of a feature: ``Aggregation`` and ``Distribution``.

They only describe what to compute; ``FeatureGroup.analyze`` runs them (``analytics``), and
alerts and live tables store them in the catalog as JSON (``to_spec`` / ``analysis_from_spec``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from raise_jupyter.errors import DefinitionError

# Metric name to what it computes, for error messages and docs.
METRICS: dict[str, str] = {
    "count": "number of non-null values",
    "count_distinct": "number of distinct non-null values",
    "sum": "sum",
    "avg": "arithmetic mean",
    "mean": "arithmetic mean (alias of avg)",
    "min": "minimum",
    "max": "maximum",
    "stddev": "sample standard deviation (ddof=1, as pandas)",
    "variance": "sample variance (ddof=1, as pandas)",
    "null_count": "number of nulls",
    "null_rate": "share of rows that are null, 0 to 1",
    "median": "50th percentile",
}
VALID_METRICS_TEXT = ", ".join(METRICS) + " and percentiles pN such as p50, p95, p99 or p99.9"
# Metrics that need numbers (booleans count as 0 and 1).
NUMERIC_METRICS = frozenset({"sum", "avg", "mean", "stddev", "variance", "median"})
# Metrics that also apply to vectors and lists.
ANY_TYPE_METRICS = frozenset({"count", "null_count", "null_rate"})
TIME_BUCKETS = ("date", "hour")

_PERCENTILE = re.compile(r"p(\d{1,3}(?:\.\d+)?)")


def percentile_of(metric: str) -> float | None:
    """Return the fraction of a percentile metric (``"p99.9"`` gives 0.999), else None."""
    if metric == "median":
        return 0.5
    match = _PERCENTILE.fullmatch(metric)
    if match is None:
        return None
    value = float(match.group(1))
    if value > 100:
        return None
    return value / 100


def check_metric(metric: object) -> str:
    """Return ``metric`` if it is a valid metric name; raise DefinitionError otherwise."""
    if isinstance(metric, str) and (metric in METRICS or percentile_of(metric) is not None):
        return metric
    raise DefinitionError(f"Unknown metric {metric!r}. Valid metrics: {VALID_METRICS_TEXT}.")


def _names(value: str | Sequence[str] | None, *, what: str, noun: str = "column name") -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    names = tuple(value)
    if not all(isinstance(name, str) and name for name in names):
        raise DefinitionError(f"{what} must be a {noun} or a list of them, got {value!r}.")
    if len(set(names)) != len(names):
        raise DefinitionError(f"{what} lists a name twice: {list(names)!r}.")
    return names


def _feature_name(feature: object) -> str:
    if not isinstance(feature, str) or not feature.strip():
        raise DefinitionError(f"feature must be a feature name such as 'ctr' or 'user-signals.ctr', got {feature!r}.")
    return feature.strip()


@dataclass(frozen=True)
class Aggregation:
    """Metrics of one feature over a group's rows, optionally per group of rows.

    Parameters
    ----------
    feature
        Feature name (stored or derived), or ``"group.feature"`` where the group must be named.
    metrics
        Metric names: ``count``, ``count_distinct``, ``sum``, ``avg`` (alias ``mean``),
        ``min``, ``max``, ``stddev``, ``variance``, ``null_count``, ``null_rate``, ``median``,
        and any percentile ``pN`` (``p50``, ``p95``, ``p99``, ``p99.9``). Percentiles
        interpolate linearly between the two nearest values, as ``numpy.percentile`` does by
        default; ``stddev`` and ``variance`` are the sample statistics (ddof=1), as pandas
        computes them.
    group_by
        Columns (stored or derived features) to compute the metrics per value of. ``"date"`` and
        ``"hour"`` are the event time truncated to the day or hour (UTC), unless the group has a
        column of that name.
    where
        A row filter in DuckDB SQL, such as ``"impressions > 0"``.

    Examples
    --------
    >>> Aggregation(feature="ctr", metrics=["avg", "p50", "p99", "null_rate"])
    Aggregation(feature='ctr', metrics=('avg', 'p50', 'p99', 'null_rate'))
    """

    feature: str
    metrics: tuple[str, ...] = ("count", "avg")
    group_by: tuple[str, ...] = ()
    where: str | None = None

    def __init__(
        self,
        feature: str,
        metrics: str | Sequence[str] = ("count", "avg"),
        group_by: str | Sequence[str] | None = None,
        where: str | None = None,
    ) -> None:
        names = _names(metrics, what="metrics", noun="metric name")
        if not names:
            raise DefinitionError(f"metrics is empty; pass at least one of: {VALID_METRICS_TEXT}.")
        if where is not None and (not isinstance(where, str) or not where.strip()):
            raise DefinitionError(f"where must be a SQL condition such as 'clicks > 0', got {where!r}.")
        object.__setattr__(self, "feature", _feature_name(feature))
        object.__setattr__(self, "metrics", tuple(check_metric(m) for m in names))
        object.__setattr__(self, "group_by", _names(group_by, what="group_by"))
        object.__setattr__(self, "where", where)

    def __repr__(self) -> str:
        parts = [f"feature={self.feature!r}", f"metrics={self.metrics!r}"]
        if self.group_by:
            parts.append(f"group_by={self.group_by!r}")
        if self.where is not None:
            parts.append(f"where={self.where!r}")
        return f"Aggregation({', '.join(parts)})"

    def to_spec(self) -> dict[str, Any]:
        """Return a JSON-ready description, the inverse of ``analysis_from_spec``."""
        return {
            "kind": "aggregation",
            "feature": self.feature,
            "metrics": list(self.metrics),
            "group_by": list(self.group_by),
            "where": self.where,
        }

    def with_feature(self, feature: str) -> Aggregation:
        """Return a copy that names ``feature`` instead."""
        return Aggregation(feature, self.metrics, self.group_by or None, self.where)


@dataclass(frozen=True)
class Distribution:
    """The distribution of one feature's values.

    Numbers give a histogram: ``bins`` equal-width bins from the minimum to the maximum, or
    explicit bin edges, with the last bin closed as in ``numpy.histogram``. Strings and
    booleans give value counts: the ``top`` most frequent values and an "(other)" row for the
    rest. Vectors give a histogram of their Euclidean norms. Nulls are not counted, so the
    counts sum to the number of non-null values.

    Examples
    --------
    >>> Distribution(feature="clicks", bins=50)
    Distribution(feature='clicks', bins=50)
    """

    feature: str
    bins: int | tuple[float, ...] = 50
    top: int = 20
    where: str | None = None

    def __init__(
        self, feature: str, bins: int | Sequence[float] = 50, *, top: int = 20, where: str | None = None
    ) -> None:
        object.__setattr__(self, "feature", _feature_name(feature))
        object.__setattr__(self, "bins", _check_bins(bins))
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise DefinitionError(f"top must be a positive number of values, got {top!r}.")
        object.__setattr__(self, "top", top)
        object.__setattr__(self, "where", where)

    def __repr__(self) -> str:
        parts = [f"feature={self.feature!r}", f"bins={self.bins!r}"]
        if self.top != 20:
            parts.append(f"top={self.top!r}")
        if self.where is not None:
            parts.append(f"where={self.where!r}")
        return f"Distribution({', '.join(parts)})"

    @property
    def metrics(self) -> tuple[str, ...]:
        return ("count",)

    @property
    def group_by(self) -> tuple[str, ...]:
        return ()

    def to_spec(self) -> dict[str, Any]:
        """Return a JSON-ready description, the inverse of ``analysis_from_spec``."""
        bins = list(self.bins) if isinstance(self.bins, tuple) else self.bins
        return {"kind": "distribution", "feature": self.feature, "bins": bins, "top": self.top, "where": self.where}

    def with_feature(self, feature: str) -> Distribution:
        """Return a copy that names ``feature`` instead."""
        return Distribution(feature, self.bins, top=self.top, where=self.where)


def _check_bins(bins: object) -> int | tuple[float, ...]:
    if isinstance(bins, int) and not isinstance(bins, bool):
        if not 1 <= bins <= 10_000:
            raise DefinitionError(f"bins must be between 1 and 10,000, got {bins!r}.")
        return bins
    if isinstance(bins, Sequence) and not isinstance(bins, str):
        try:
            edges = tuple(float(edge) for edge in bins)
        except (TypeError, ValueError):
            edges = ()
        increasing = all(a < b for a, b in zip(edges, edges[1:]))
        if len(edges) >= 2 and increasing and all(math.isfinite(e) for e in edges):
            return edges
    raise DefinitionError(
        f"bins must be a number of bins or at least two increasing finite edges such as [0, 10, 100], got {bins!r}."
    )


Analysis = Union[Aggregation, Distribution]


def analysis_from_spec(spec: Mapping[str, Any]) -> Analysis:
    """Rebuild an analysis from ``to_spec()`` output."""
    kind = spec.get("kind")
    if kind == "aggregation":
        return Aggregation(spec["feature"], spec["metrics"], spec.get("group_by") or None, spec.get("where"))
    if kind == "distribution":
        return Distribution(spec["feature"], spec["bins"], top=spec.get("top", 20), where=spec.get("where"))
    raise DefinitionError(f"Unknown analysis kind {kind!r}; expected 'aggregation' or 'distribution'.")


def check_analysis(analysis: object) -> Analysis:
    """Return ``analysis`` if it is an Aggregation or Distribution; raise DefinitionError otherwise."""
    if isinstance(analysis, (Aggregation, Distribution)):
        return analysis
    raise DefinitionError(
        f"Expected an Aggregation or Distribution, got {analysis!r}; for example "
        "Aggregation(feature='ctr', metrics=['avg'])."
    )
