"""The YAML cells of ``%%raise``: alerts, live tables and training sets, and the parsing they share.

Each cell body is a small YAML mapping whose keys are the keyword arguments of the Python call
it stands for, so a cell and the API read alike::

    %%raise alert late-days
    feature: flights.dep_delay
    metrics: [avg]
    group_by: [date]
    condition: GREATER_THAN(60)
    notify: [log]
"""

from __future__ import annotations

import logging
import re
import reprlib
from collections.abc import Callable, Mapping
from typing import Any

from IPython.core.error import UsageError

from raise_jupyter.conditions import Condition

logger = logging.getLogger(__name__)

_CALL = re.compile(r"^\s*([A-Za-z_]+)\s*\(([^()]*)\)\s*$")
_SYMBOL = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")
# A finite decimal number in ASCII digits, such as 60, -0.5 or 1e3.
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$", re.ASCII)
_SYMBOLS = {"<": "less_than", ">": "greater_than", "==": "equals", "!=": "not_equals"}

ALERT_KEYS = ("feature", "metrics", "group_by", "where", "condition", "notify", "schedule", "on_ingest", "replace")
LIVE_KEYS = ("feature", "metrics", "bins", "top", "group_by", "where", "refresh", "replace")
TRAINING_KEYS = ("spine", "features", "timestamp_column", "key_map", "full_names", "name")
BOOLEAN_KEYS = ("replace", "on_ingest", "full_names")
_SCALARS = (str, int, float, bool, type(None))


def read_document(body: str, *, cell: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
    """Parse a cell body as a YAML mapping with only ``allowed`` keys and every ``required`` one."""
    import yaml

    try:
        document = yaml.safe_load(body) if body.strip() else {}
    except yaml.YAMLError as error:
        raise UsageError(f"The {cell} cell is not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise UsageError(f"The {cell} cell must be a YAML mapping such as 'feature: flights.dep_delay', got {short(document)}.")

    unknown = sorted(str(key) for key in document if key not in allowed)
    if unknown:
        raise UsageError(f"The {cell} cell has unknown keys {unknown}; use {', '.join(allowed)}.")
    missing = [key for key in required if key not in document]
    if missing:
        raise UsageError(f"The {cell} cell needs the keys {missing}; see %raise help.")
    for key, value in document.items():
        _check_value(cell, key, value)
    return document


def _check_value(cell: str, key: str, value: Any) -> None:
    """Check that a cell's value is a scalar, a flat list of scalars or a flat mapping of them."""
    if key in BOOLEAN_KEYS and not isinstance(value, bool):
        raise UsageError(f"{key} in the {cell} cell must be true or false, got {short(value)}.")
    if isinstance(value, list):
        nested = not all(isinstance(item, _SCALARS) for item in value)
    elif isinstance(value, dict):
        nested = not all(isinstance(k, str) and isinstance(v, _SCALARS) for k, v in value.items())
    else:
        nested = not isinstance(value, _SCALARS)
    if nested:
        raise UsageError(f"{key} in the {cell} cell must be a value or a flat list of values, got {short(value)}.")


def short(value: Any) -> str:
    """Return a repr of ``value`` cut to a few dozen characters, however large or deep it is."""
    return reprlib.repr(value)


def parse_condition(text: Any) -> Condition:
    """Read a condition written as ``GREATER_THAN(60)``, ``BETWEEN(1, 5)`` or ``> 60``.

    Examples
    --------
    >>> parse_condition("LESS_THAN(0.01)")
    Condition.LESS_THAN(0.01)
    >>> parse_condition("> 60")
    Condition.GREATER_THAN(60)
    """
    hint = "Write the condition as GREATER_THAN(60), BETWEEN(1, 5), CHANGED_BY(20) or '> 60'"
    if not isinstance(text, str):
        raise UsageError(f"{hint}; got {short(text)}.")

    symbol = _SYMBOL.match(text)
    if symbol is not None:
        if symbol.group(1) not in _SYMBOLS:
            raise UsageError(f"{symbol.group(1)!r} has no alert condition. {hint}.")
        return Condition(_SYMBOLS[symbol.group(1)], (_number(symbol.group(2), text),))

    call = _CALL.match(text)
    if call is None:
        raise UsageError(f"{hint}; got {short(text)}.")
    inside = call.group(2).strip()
    operands = tuple(_number(part, text) for part in inside.split(",")) if inside else ()
    return Condition(call.group(1).lower(), operands)


def _number(text: str, condition: str) -> float:
    if not _NUMBER.match(text.strip()):
        raise UsageError(f"{short(text.strip())} in the condition {short(condition)} is not a number such as 60 or 0.5.")
    return float(text.strip())


def split_reference(reference: Any, *, cell: str) -> tuple[str, str]:
    """Split ``"group.feature"`` into its two names."""
    group, dot, feature = str(reference).partition(".")
    if not isinstance(reference, str) or not dot or not group or not feature:
        raise UsageError(f"The {cell} cell's feature must be GROUP.FEATURE, such as flights.dep_delay; got {short(reference)}.")
    return group, feature


def create_alert(store: Any, name: str, document: Mapping[str, Any]) -> Any:
    """Create the alert of a ``%%raise alert NAME`` cell."""
    from raise_jupyter.analysis import Aggregation

    group, feature = split_reference(document["feature"], cell="%%raise alert")
    analysis = Aggregation(feature, document.get("metrics", ["avg"]), document.get("group_by"), document.get("where"))
    options = {key: document[key] for key in ("schedule", "on_ingest", "replace") if key in document}
    return store.create_alert(
        name, analysis, parse_condition(document.get("condition")), document.get("notify", ["log"]), group=group, **options
    )


def create_live_table(store: Any, name: str, document: Mapping[str, Any]) -> Any:
    """Create the live table of a ``%%raise live NAME`` cell: an aggregation, or a distribution with ``bins``."""
    from raise_jupyter.analysis import Aggregation, Distribution

    group, feature = split_reference(document["feature"], cell="%%raise live")
    if "bins" in document and "metrics" in document:
        raise UsageError("Give a live table either metrics (an aggregation) or bins (a distribution), not both.")
    if "bins" in document:
        analysis: Any = Distribution(feature, document["bins"], top=document.get("top", 20), where=document.get("where"))
    else:
        analysis = Aggregation(feature, document.get("metrics", ["avg"]), document.get("group_by"), document.get("where"))

    options = {"replace": document["replace"]} if "replace" in document else {}
    return store.get_feature_group(group).create_live_table(name, analysis, document.get("refresh", "hourly"), **options)


def training_data(store: Any, document: Mapping[str, Any], *, lookup: Callable[[str], Any], bind: Callable[[str], Any]) -> Any:
    """Build the training set of a ``%%raise training`` cell.

    ``spine`` names a kernel variable (found with ``lookup``) or is a SQL query over the store,
    whose ``{{name}}`` placeholders ``bind`` turns into parameters.
    """
    spine = document["spine"]
    if not isinstance(spine, str) or not spine.strip():
        raise UsageError(f"spine must be a variable name or a SELECT query over the store, got {spine!r}.")
    if spine.strip().isidentifier():
        rows = lookup(spine.strip())
    else:
        query, params = bind(spine)
        rows = store.sql(query, params or None).to_arrow()

    features = document["features"]
    if isinstance(features, str):
        features = [features]
    options = {key: document[key] for key in ("timestamp_column", "key_map", "full_names", "name") if key in document}
    return store.get_training_data(rows, features, **options)
