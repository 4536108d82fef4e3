"""The Python evaluator of derived expressions returns DuckDB's results, or declines."""

from __future__ import annotations

import math
import random

import duckdb
import pytest

from raise_jupyter.dtypes import parse_dtype
from raise_jupyter.engine import expressions, rowexpr

KINDS = {"a": "int", "b": "int", "x": "float", "y": "float", "f": "bool"}
SQL_TYPES = {"a": "BIGINT", "b": "INTEGER", "x": "DOUBLE", "y": "DOUBLE", "f": "BOOLEAN"}

EXPRESSIONS = [
    ("a / NULLIF(b, 0)", "float64"),
    ("a + b * 2 - 7", "int64"),
    ("-a", "int64"),
    ("x * y + a", "float64"),
    ("x / y", "float64"),
    ("CASE WHEN a > b THEN x WHEN f THEN 2 ELSE NULL END", "float64"),
    ("coalesce(a, b, 0)", "int64"),
    ("coalesce(x, a)", "float64"),
    ("a = b OR (x < y AND NOT f)", "bool"),
    ("a IS NULL OR x IS NOT NULL", "bool"),
    ("CAST(x AS BIGINT)", "int64"),
    ("CAST(a AS DOUBLE) / 3", "float64"),
    ("nullif(x, 2)", "float64"),
    ("a >= 3 AND b <= -2", "bool"),
    ("x > 0", "bool"),
    ("a / b > 0", "bool"),
    ("nullif(x, x)", "float64"),
]


def _random_row(rng: random.Random) -> dict[str, object]:
    def maybe(value: object) -> object:
        return None if rng.random() < 0.15 else value

    return {
        "a": maybe(rng.choice([0, 1, -1, 3, rng.randint(-1000, 1000)])),
        "b": maybe(rng.choice([0, 2, -2, rng.randint(-1000, 1000)])),
        "x": maybe(rng.choice([0.0, -0.0, 0.5, 2.5, -2.5, 1e300, math.nan, rng.uniform(-100, 100)])),
        "y": maybe(rng.choice([0.0, 3.0, -0.5, rng.uniform(-100, 100)])),
        "f": maybe(rng.random() < 0.5),
    }


def _duckdb_value(expression: str, dtype: str, row: dict[str, object]) -> object:
    columns = ", ".join(f"CAST(? AS {SQL_TYPES[name]}) AS {name}" for name in row)
    sql = f"SELECT CAST(({expression}) AS {parse_dtype(dtype).sql_type}) FROM (SELECT {columns})"
    return duckdb.execute(sql, list(row.values())).fetchone()[0]


def _same(left: object, right: object) -> bool:
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left) and math.isnan(right):
        return True
    return left == right and type(left) is type(right)


@pytest.mark.parametrize(("expression", "dtype"), EXPRESSIONS, ids=[e for e, _ in EXPRESSIONS])
def test_rowexpr_matches_duckdb(expression: str, dtype: str) -> None:
    compiled = rowexpr.compile_expression(expressions.expression_tree(expression), KINDS, parse_dtype(dtype))
    assert compiled is not None, "the expression should be supported"

    rng = random.Random(expression)
    checked = 0
    for _ in range(300):
        row = _random_row(rng)
        try:
            value = compiled(row)
        except rowexpr.Fallback:
            continue
        try:
            expected = _duckdb_value(expression, dtype, row)
        except duckdb.Error:
            pytest.fail(f"Python gave {value!r} where DuckDB raises, for {row}")
        assert _same(value, expected), f"{expression} on {row}: Python {value!r}, DuckDB {expected!r}"
        checked += 1
    assert checked > 200


@pytest.mark.parametrize(
    "expression",
    ["(clicks * 1.0 + shares * 2.0) / NULLIF(impressions, 0)", "upper(name)", "a // 2", "a % 3", "TRY_CAST(x AS BIGINT)"],
)
def test_rowexpr_declines_unsupported(expression: str) -> None:
    kinds = {**KINDS, "clicks": "int", "shares": "int", "impressions": "int"}

    assert rowexpr.compile_expression(expressions.expression_tree(expression), kinds, parse_dtype("float64")) is None


def test_rowexpr_declines_narrow_ints() -> None:
    from raise_jupyter.dtypes import parse_dtype as dtype

    kinds = {"s": rowexpr.column_kind(dtype("int8"))}

    assert kinds["s"] is None
    assert rowexpr.compile_expression(expressions.expression_tree("CAST(a AS TINYINT)"), KINDS, dtype("int64")) is None
