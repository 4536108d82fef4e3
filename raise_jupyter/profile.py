"""Per-feature summary statistics of a feature group, as the group panel shows them.

A profile gives, for every feature, the null rate, the minimum, maximum and mean and a small
histogram (or the most frequent values of text). It runs two DuckDB queries per batch of
features over one table version. Large groups are profiled on a uniform sample of rows, so a
panel opens in about the same time for 300 thousand rows as for 10 million.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from raise_jupyter import definitions
from raise_jupyter.dtypes import DType
from raise_jupyter.engine import reader
from raise_jupyter.engine.duck import quote, string_literal

if TYPE_CHECKING:
    import pandas

    from raise_jupyter.engine.catalog import GroupRecord
    from raise_jupyter.engine.offline import TableFiles
    from raise_jupyter.group import FeatureGroup

__all__ = ["FeatureProfile", "GroupProfile", "ProfilePlan", "plan_profile", "profile_features", "profile_group"]

logger = logging.getLogger(__name__)

# Profiles read at most this many feature values (rows times features) before sampling rows.
PROFILE_VALUES = 50_000_000
MIN_SAMPLE_ROWS = 100_000
# DuckDB's reservoir sampling slows down with the sample size: on 5 million rows of a narrow
# group, a 2.5-million-row sample took 7 times as long as reading every row (2 cores).
MAX_SAMPLE_ROWS = 500_000
HISTOGRAM_BINS = 20
TOP_VALUES = 5


@dataclass(frozen=True)
class FeatureProfile:
    """Summary statistics of one feature.

    Attributes
    ----------
    name, dtype, role
        The feature, its dtype and its role: ``key``, ``event time``, ``stored`` or ``derived``.
    count
        Number of non-null values.
    null_rate
        Share of rows where the feature is null; None for an empty group.
    min, max, mean
        Over finite values. Times give ISO strings and no mean; vectors describe their norms.
    histogram
        Counts of ``HISTOGRAM_BINS`` equal-width bins from ``min`` to ``max`` (one bin when
        they are equal), or of the values in ``labels`` for text and booleans.
    labels
        The most frequent values, for text and booleans; empty otherwise.
    """

    name: str
    dtype: str
    role: str
    count: int = 0
    null_rate: float | None = None
    min: float | str | None = None
    max: float | str | None = None
    mean: float | None = None
    histogram: tuple[int, ...] = ()
    labels: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (non-finite numbers become None)."""
        values = asdict(self)
        for key in ("min", "max", "mean", "null_rate"):
            if isinstance(values[key], float) and not math.isfinite(values[key]):
                values[key] = None
        values["histogram"] = list(self.histogram)
        values["labels"] = list(self.labels)
        return values


@dataclass(frozen=True)
class GroupProfile:
    """The profile of every feature of a group at one table version."""

    group: str
    version: int
    rows: int
    sampled_rows: int | None
    features: tuple[FeatureProfile, ...] = field(default_factory=tuple)

    @property
    def note(self) -> str:
        """Say what the statistics were computed on."""
        return sample_note(self.rows, self.sampled_rows)

    def to_pandas(self) -> pandas.DataFrame:
        """Return one row per feature: name, dtype, role, count, null_rate, min, max, mean."""
        import pandas as pd

        columns = ["name", "dtype", "role", "count", "null_rate", "min", "max", "mean"]
        return pd.DataFrame([{c: getattr(f, c) for c in columns} for f in self.features], columns=columns)

    def __repr__(self) -> str:
        return f"GroupProfile({self.group!r} version {self.version}, {self.note})\n{self.to_pandas()}"

    def _repr_html_(self) -> str:
        title = html.escape(f"Profile of {self.group}, version {self.version}: {self.note}")
        return f"<p>{title}</p>{self.to_pandas().to_html(index=False)}"


@dataclass(frozen=True)
class ProfilePlan:
    """The input of a profile: one table version, and all of its rows or a sample."""

    record: GroupRecord
    layout: reader.GroupLayout
    files: TableFiles
    rows: int
    sample_rows: int | None


def sample_note(rows: int, sampled_rows: int | None) -> str:
    """Return "all 336,776 rows" or "a uniform sample of 100,000 of 10,000,000 rows"."""
    if sampled_rows is None:
        return f"all {rows:,} rows"
    return f"a uniform sample of {sampled_rows:,} of {rows:,} rows"


def plan_profile(group: FeatureGroup, *, as_of: Any = None) -> ProfilePlan:
    """Choose the table version and whether to sample, from the row count in file metadata."""
    record, records = group._load()
    layout = definitions.layout_of(record, records)
    files = group._files(as_of, record)
    rows = group.count(as_of=files.version)
    budget_rows = min(max(MIN_SAMPLE_ROWS, PROFILE_VALUES // max(len(layout.names), 1)), MAX_SAMPLE_ROWS)
    sample_rows = budget_rows if rows > budget_rows else None
    return ProfilePlan(record, layout, files, rows, sample_rows)


def profile_group(group: FeatureGroup, *, as_of: Any = None, batch: int = 100) -> GroupProfile:
    """Profile every feature of ``group``; see ``FeatureGroup.profile``."""
    plan = plan_profile(group, as_of=as_of)
    names = plan.layout.names
    profiles: list[FeatureProfile] = []
    for start in range(0, len(names), batch):
        profiles.extend(profile_features(group, plan, names[start : start + batch]))
    return GroupProfile(group.name, plan.files.version, plan.rows, plan.sample_rows, tuple(profiles))


def profile_features(group: FeatureGroup, plan: ProfilePlan, names: Sequence[str]) -> list[FeatureProfile]:
    """Profile the features ``names`` of ``group`` with two queries."""
    names = list(names)
    if not names:
        return []
    relation = reader.relation_sql(
        group._store.root, plan.layout, plan.files, columns=names, sample_rows=plan.sample_rows
    )
    kinds = {name: _kind(plan.layout.dtype(name)) for name in names}

    first = _first_pass(group, plan, relation, names, kinds)
    second = _second_pass(group, plan, relation, names, kinds, first)

    rows = first["n"] or 0
    return [_feature_profile(plan, name, kinds[name], first, second, rows, i) for i, name in enumerate(names)]


# -- queries ------------------------------------------------------------------------------------


def _kind(dtype: DType) -> str:
    """Return how a dtype is summarized: number, time, text, norm or none."""
    if dtype.kind == "scalar":
        if dtype.is_numeric or dtype.name == "bool":
            return "bool" if dtype.name == "bool" else "number"
        if dtype.name in ("date", "timestamp"):
            return "time"
        if dtype.name == "string":
            return "text"
        return "none"
    if dtype.element is not None and dtype.element.is_numeric:
        return "norm"
    return "none"


def _value_sql(name: str, kind: str) -> str:
    """Return the SQL of the number a feature is binned on."""
    column = quote(name)
    if kind == "number":
        return f"CAST({column} AS DOUBLE)"
    if kind == "time":
        return f"CAST(epoch({column}) AS DOUBLE)"
    if kind == "norm":
        vector = f"CAST({column} AS DOUBLE[])"
        squares = f"list_sum(list_transform({vector}, lambda e: e * e))"
        return f"CASE WHEN {vector} IS NULL THEN NULL ELSE sqrt(coalesce({squares}, 0)) END"
    raise ValueError(kind)


def _first_pass(
    group: FeatureGroup, plan: ProfilePlan, relation: str, names: list[str], kinds: dict[str, str]
) -> dict[str, Any]:
    items = ["count(*) AS n"]
    for i, name in enumerate(names):
        kind = kinds[name]
        items.append(f"count({quote(name)}) AS c{i}")
        if kind in ("number", "time", "norm"):
            x = _value_sql(name, kind)
            finite = f"FILTER (WHERE isfinite({x}))"
            items += [f"min({x}) {finite} AS lo{i}", f"max({x}) {finite} AS hi{i}", f"avg({x}) {finite} AS mean{i}"]
            items.append(f"count({x}) {finite} AS finite{i}")
        if kind == "time":
            items += [f"CAST(min({quote(name)}) AS VARCHAR) AS tmin{i}", f"CAST(max({quote(name)}) AS VARCHAR) AS tmax{i}"]
        if kind == "text":
            items += [f"approx_top_k({quote(name)}, {TOP_VALUES}) AS top{i}", f"min({quote(name)}) AS tmin{i}", f"max({quote(name)}) AS tmax{i}"]
    sql = f"SELECT {', '.join(items)} FROM ({relation}) AS r"
    return group._read(sql, None, plan.files.version).to_pylist()[0]


def _second_pass(
    group: FeatureGroup,
    plan: ProfilePlan,
    relation: str,
    names: list[str],
    kinds: dict[str, str],
    first: dict[str, Any],
) -> dict[str, Any]:
    items = []
    for i, name in enumerate(names):
        kind = kinds[name]
        if kind in ("number", "time", "norm") and first[f"lo{i}"] is not None and first[f"lo{i}"] < first[f"hi{i}"]:
            items.append(f"histogram({_bin_sql(_value_sql(name, kind), first[f'lo{i}'], first[f'hi{i}'])}) AS h{i}")
        elif kind == "bool":
            items.append(f"count(*) FILTER (WHERE {quote(name)}) AS t{i}")
        elif kind == "text":
            for j, value in enumerate(first[f"top{i}"] or []):
                items.append(f"count(*) FILTER (WHERE {quote(name)} = {_literal(value)}) AS v{i}_{j}")
    if not items:
        return {}
    sql = f"SELECT {', '.join(items)} FROM ({relation}) AS r"
    return group._read(sql, None, plan.files.version).to_pylist()[0]


def _bin_sql(x: str, lo: float, hi: float) -> str:
    """Return the 0-based bin of ``x`` among equal-width bins from ``lo`` to ``hi``; null outside."""
    bins = HISTOGRAM_BINS
    # Without the casts DuckDB reads the literals as DECIMALs, and their difference can overflow.
    lo_sql, hi_sql = f"CAST({lo!r} AS DOUBLE)", f"CAST({hi!r} AS DOUBLE)"
    index = f"least(greatest(CAST(floor(({x} - {lo_sql}) / ({hi_sql} - {lo_sql}) * {bins}) AS INTEGER), 0), {bins - 1})"
    return f"CASE WHEN isfinite({x}) THEN {index} END"


def _literal(value: str) -> str:
    return string_literal(value)


def _feature_profile(
    plan: ProfilePlan, name: str, kind: str, first: dict[str, Any], second: dict[str, Any], rows: int, i: int
) -> FeatureProfile:
    count = int(first[f"c{i}"] or 0)
    base = {
        "name": name,
        "dtype": plan.layout.dtype(name).name,
        "role": _role(plan, name),
        "count": count,
        "null_rate": (rows - count) / rows if rows else None,
    }
    if kind in ("number", "norm"):
        return FeatureProfile(**base, min=first[f"lo{i}"], max=first[f"hi{i}"], mean=first[f"mean{i}"], histogram=_bins(first, second, i))
    if kind == "time":
        return FeatureProfile(**base, min=first[f"tmin{i}"], max=first[f"tmax{i}"], histogram=_bins(first, second, i))
    if kind == "bool":
        true = int(second.get(f"t{i}") or 0)
        return FeatureProfile(**base, mean=true / count if count else None, histogram=(count - true, true), labels=("false", "true"))
    if kind == "text":
        # approx_top_k finds the values; their counts are exact, and order the values.
        top = [(int(second.get(f"v{i}_{j}") or 0), str(v)) for j, v in enumerate(first[f"top{i}"] or [])]
        top.sort(key=lambda pair: (-pair[0], pair[1]))
        counts, labels = tuple(n for n, _ in top), tuple(v for _, v in top)
        return FeatureProfile(**base, min=first[f"tmin{i}"], max=first[f"tmax{i}"], histogram=counts, labels=labels)
    return FeatureProfile(**base)


def _bins(first: dict[str, Any], second: dict[str, Any], i: int) -> tuple[int, ...]:
    lo, hi = first[f"lo{i}"], first[f"hi{i}"]
    if lo is None:
        return ()
    if lo == hi:
        return (int(first[f"finite{i}"] or 0),)
    found = dict(second.get(f"h{i}") or [])
    return tuple(int(found.get(b, 0)) for b in range(HISTOGRAM_BINS))


def _role(plan: ProfilePlan, name: str) -> str:
    if name in (plan.record.keys or ()):
        return "key"
    if name == plan.record.event_time:
        return "event time"
    return "derived" if name in plan.layout.derived else "stored"
