"""A Python evaluator for simple derived-feature expressions, for fast online lookups.

A lookup of one key through DuckDB costs a few hundred microseconds of query overhead, more than
everything else in the lookup. Expressions built only from integer, double and boolean columns,
integer and double constants, ``+ - * /``, comparisons, ``AND OR NOT``, ``IS [NOT] NULL``,
``NULLIF``, ``COALESCE``, ``CASE`` and casts between those types are evaluated here instead,
following DuckDB's rules: ``/`` divides as doubles with IEEE results for zero, casts to integers
round half to even, and NULL propagates as in SQL. Anything else (DECIMAL literals such
as ``1.0``, float32 columns, strings, other functions) compiles to None and runs in DuckDB. At
run time, integers beyond what doubles hold exactly, or beyond the int32 range where DuckDB's
own integer arithmetic could overflow, raise ``Fallback`` so that DuckDB computes the lookup.
A test compares both on random values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from raise_jupyter.dtypes import DType

Row = Mapping[str, Any]
Compiled = Callable[[Row], Any]

_INT_TYPES = {"INTEGER", "BIGINT"}
_EXACT = 2**53
_SAFE_INT = 2**31


class Fallback(Exception):
    """A value outside the range where this evaluator matches DuckDB exactly."""


class _Unsupported(Exception):
    pass


def column_kind(dtype: DType) -> str | None:
    """Return the evaluator's kind of a column dtype, or None if it cannot be evaluated here."""
    # int8 and int16 overflow at their own widths in DuckDB, so they stay in DuckDB.
    if dtype.name in ("int32", "int64"):
        return "int"
    if dtype.name == "float64":
        return "float"
    if dtype.name == "bool":
        return "bool"
    return None


def _check_int(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _SAFE_INT:
        raise Fallback
    return value


def _divide(left: float, right: float) -> float:
    try:
        return left / right
    except ZeroDivisionError:
        if left == 0 or math.isnan(left):
            return math.nan
        return math.copysign(math.inf, left) * math.copysign(1.0, right)


def _round_half_even(value: float) -> int:
    if math.isnan(value) or math.isinf(value):
        raise Fallback
    return round(value)


def _unify(kinds: list[str]) -> str:
    kinds = [k for k in kinds if k != "null"]
    if not kinds:
        return "null"
    if all(k == kinds[0] for k in kinds):
        return kinds[0]
    if set(kinds) <= {"int", "float"}:
        return "float"
    raise _Unsupported


def _as_kind(compiled: Compiled, source: str, target: str) -> Compiled:
    if source == target or source == "null":
        return compiled
    if source == "int" and target == "float":
        return lambda row: None if (v := compiled(row)) is None else float(v)
    raise _Unsupported


def _compile(node: Mapping[str, Any], kinds: Mapping[str, str]) -> tuple[Compiled, str]:
    kind = node.get("class")
    handler = _HANDLERS.get(kind)
    if handler is None:
        raise _Unsupported
    return handler(node, kinds)


def _column(node: Mapping[str, Any], kinds: Mapping[str, str]) -> tuple[Compiled, str]:
    name = node["column_names"][0].lower()
    if name not in kinds:
        raise _Unsupported
    return (lambda row: row[name]), kinds[name]


def _constant(node: Mapping[str, Any], kinds: Mapping[str, str]) -> tuple[Compiled, str]:
    value = node["value"]
    if value.get("is_null"):
        return (lambda row: None), "null"
    type_id = value["type"]["id"]
    if type_id in _INT_TYPES:
        number = _check_int(int(value["value"]))
        return (lambda row: number), "int"
    if type_id == "DOUBLE":
        number = float(value["value"])
        return (lambda row: number), "float"
    if type_id == "BOOLEAN":
        flag = bool(value["value"])
        return (lambda row: flag), "bool"
    raise _Unsupported


def _arithmetic(name: str, left: Compiled, right: Compiled, result: str) -> Compiled:
    if name == "/":
        def divide(row: Row) -> Any:
            a, b = left(row), right(row)
            return None if a is None or b is None else _divide(float(_exact(a)), float(_exact(b)))

        return divide

    operation = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}[name]

    def apply(row: Row) -> Any:
        a, b = left(row), right(row)
        if a is None or b is None:
            return None
        if result == "float":
            return operation(float(_exact(a)), float(_exact(b)))
        return _check_int(operation(_check_int(a), _check_int(b)))

    return apply


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _exact(value: Any) -> Any:
    if isinstance(value, int) and abs(value) >= _EXACT:
        raise Fallback
    return value


def _function(node: Mapping[str, Any], kinds: Mapping[str, str]) -> tuple[Compiled, str]:
    name = str(node.get("function_name", "")).lower()
    children = [_compile(child, kinds) for child in node.get("children", [])]
    if node.get("filter") or node.get("distinct") or node.get("order_bys", {}).get("orders"):
        raise _Unsupported

    if name in ("+", "-", "*", "/") and len(children) == 2:
        (left, left_kind), (right, right_kind) = children
        if {left_kind, right_kind} - {"int", "float", "null"}:
            raise _Unsupported
        result = "float" if name == "/" else _unify([left_kind, right_kind])
        return _arithmetic(name, left, right, result if result != "null" else "int"), result
    if name == "-" and len(children) == 1:
        (child, child_kind), = children
        if child_kind not in ("int", "float"):
            raise _Unsupported
        return (lambda row: None if (v := child(row)) is None else _check_int(-v)), child_kind
    if name == "nullif" and len(children) == 2:
        (left, left_kind), (right, right_kind) = children
        _unify([left_kind, right_kind])

        def nullif(row: Row) -> Any:
            a, b = left(row), right(row)
            if _is_nan(a) or _is_nan(b):
                raise Fallback
            return None if a is not None and b is not None and _exact(a) == _exact(b) else a

        return nullif, left_kind
    raise _Unsupported


def _comparison(node: Mapping[str, Any], kinds: Mapping[str, str]) -> tuple[Compiled, str]:
    operators = {
        "COMPARE_EQUAL": lambda a, b: a == b,
        "COMPARE_NOTEQUAL": lambda a, b: a != b,
        "COMPARE_LESSTHAN": lambda a, b: a < b,
        "COMPARE_GREATERTHAN": lambda a, b: a > b,
        "COMPARE_LESSTHANOREQUALTO": lambda a, b: a <= b,
        "COMPARE_GREATERTHANOREQUALTO": lambda a, b: a >= b,
    }
    operation = operators.get(node["type"])
    if operation is None:
        raise _Unsupported
    left, left_kind = _compile(node["left"], kinds)
    right, right_kind = _compile(node["right"], kinds)
    _unify([left_kind, right_kind])

    def compare(row: Row) -> Any:
        a, b = left(row), right(row)
        if a is None or b is None:
            return None
        if _is_nan(a) or _is_nan(b):
            raise Fallback  # DuckDB orders NaN above every number and equal to itself
        return operation(_exact(a), _exact(b))

    return compare, "bool"


def _conjunction(node: Mapping[str, Any], kinds: Mapping[str, str]) -> tuple[Compiled, str]:
    children = [_compile(child, kinds) for child in node["children"]]
    if any(k not in ("bool", "null") for _, k in children):
        raise _Unsupported
    is_and = node["type"] == "CONJUNCTION_AND"

    # SQL's three-valued logic: a deciding value wins over NULL, and NULL wins over the rest.
    deciding = not is_and

    def combine(row: Row) -> Any:
        values = [child(row) for child, _ in children]
        if deciding in values:
            return deciding
        if None in values:
            return None
        return not deciding

    return combine, "bool"


def _operator(node: Mapping[str, Any], kinds: Mapping[str, str]) -> tuple[Compiled, str]:
    kind = node["type"]
    children = [_compile(child, kinds) for child in node["children"]]
    if kind == "OPERATOR_NOT":
        (child, child_kind), = children
        if child_kind not in ("bool", "null"):
            raise _Unsupported
        return (lambda row: None if (v := child(row)) is None else not v), "bool"
    if kind == "OPERATOR_IS_NULL":
        (child, _), = children
        return (lambda row: child(row) is None), "bool"
    if kind == "OPERATOR_IS_NOT_NULL":
        (child, _), = children
        return (lambda row: child(row) is not None), "bool"
    if kind == "OPERATOR_COALESCE":
        result = _unify([k for _, k in children])
        converted = [_as_kind(child, k, result) for child, k in children]

        def coalesce(row: Row) -> Any:
            for child in converted:
                value = child(row)
                if value is not None:
                    return value
            return None

        return coalesce, result
    raise _Unsupported


def _case(node: Mapping[str, Any], kinds: Mapping[str, str]) -> tuple[Compiled, str]:
    checks = [(_compile(c["when_expr"], kinds), _compile(c["then_expr"], kinds)) for c in node["case_checks"]]
    otherwise = _compile(node["else_expr"], kinds) if node.get("else_expr") else ((lambda row: None), "null")
    if any(when_kind not in ("bool", "null") for (_, when_kind), _ in checks):
        raise _Unsupported
    result = _unify([k for _, (_, k) in checks] + [otherwise[1]])
    branches = [(when, _as_kind(then, kind, result)) for (when, _), (then, kind) in checks]
    fallback = _as_kind(otherwise[0], otherwise[1], result)

    def choose(row: Row) -> Any:
        for when, then in branches:
            if when(row) is True:
                return then(row)
        return fallback(row)

    return choose, result


def _cast(node: Mapping[str, Any], kinds: Mapping[str, str]) -> tuple[Compiled, str]:
    if node.get("try_cast"):
        raise _Unsupported
    child, child_kind = _compile(node["child"], kinds)
    target = node["cast_type"]["id"]
    if target == "DOUBLE" and child_kind in ("int", "float", "null"):
        return (lambda row: None if (v := child(row)) is None else float(_exact(v))), "float"
    if target in _INT_TYPES and child_kind in ("int", "null"):
        return (lambda row: _check_int(child(row))), "int"
    if target in _INT_TYPES and child_kind == "float":
        return (lambda row: None if (v := child(row)) is None else _check_int(_round_half_even(v))), "int"
    raise _Unsupported


_HANDLERS = {
    "COLUMN_REF": _column,
    "CONSTANT": _constant,
    "FUNCTION": _function,
    "COMPARISON": _comparison,
    "CONJUNCTION": _conjunction,
    "OPERATOR": _operator,
    "CASE": _case,
    "CAST": _cast,
}


def compile_expression(tree: Mapping[str, Any], kinds: Mapping[str, str], declared: DType) -> Compiled | None:
    """Return a function of a row (lowercase column name to value), or None if unsupported.

    ``tree`` is the expression's node from DuckDB's ``json_serialize_sql``; ``declared`` is the
    feature's dtype, to which the result is cast as DuckDB would.
    """
    target = column_kind(declared)
    if target is None:
        return None
    try:
        compiled, kind = _compile(tree, kinds)
        if kind == target or kind == "null":
            return compiled
        if kind == "int" and target == "float":
            return _as_kind(compiled, kind, target)
        return None
    except (_Unsupported, Fallback, KeyError, TypeError, ValueError):
        return None
