"""Validation of derived-feature expressions and ``where`` filters.

A derived feature is one row-level SQL expression in DuckDB's dialect. Stored expressions run
later in other users' processes. So anything that could read files or other tables, or that is
not a pure function of the row, is rejected. That covers aggregates, window functions,
subqueries, table functions, parameters, ``*``, extra statements and volatile functions such as
``random()``.
The check walks DuckDB's own parse tree (``json_serialize_sql``), then binds the expression
against the group's columns to find type errors.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from raise_jupyter.dtypes import DType, dtype_from_sql
from raise_jupyter.engine.duck import connection, quote
from raise_jupyter.errors import DefinitionError

if TYPE_CHECKING:
    from raise_jupyter.engine.reader import GroupLayout

MAX_EXPRESSION_LENGTH = 10_000

# Scalar functions that DuckDB's catalog calls deterministic but that read session state, the
# clock, or plan other SQL (json_serialize_plan binds a query, which lists and reads files).
_DENIED_FUNCTIONS = {
    "current_setting",
    "getvariable",
    "getenv",
    "error",
    "version",
    "json_serialize_plan",
    "json_serialize_sql",
    "json_deserialize_sql",
    "json_execute_serialized_sql",
}
_DENIED_PREFIXES = ("current_", "pg_", "has_", "inet_", "duckdb_", "pragma_", "get_current_")

# DuckDB's built-in macros have no stability in its catalog and several of them are aggregates,
# table functions, sleeps or catalog queries, so only these row-level ones are allowed.
_ALLOWED_MACROS = {
    "array_append", "array_pop_back", "array_pop_front", "array_prepend", "array_push_back",
    "array_push_front", "array_reverse", "array_to_string", "array_to_string_comma_default",
    "date_add", "days_in_month", "fdiv", "fmod", "json", "list_any_value", "list_append",
    "list_approx_count_distinct", "list_avg", "list_bit_and", "list_bit_or", "list_bit_xor",
    "list_bool_and", "list_bool_or", "list_count", "list_entropy", "list_first", "list_histogram",
    "list_kurtosis", "list_kurtosis_pop", "list_last", "list_mad", "list_max", "list_median",
    "list_min", "list_mode", "list_prepend", "list_product", "list_reverse", "list_sem",
    "list_skewness", "list_stddev_pop", "list_stddev_samp", "list_string_agg", "list_sum",
    "list_var_pop", "list_var_samp", "map_contains_entry", "map_contains_value",
    "md5_number_lower", "md5_number_upper", "nullif", "round_even", "roundbankers", "split_part",
}  # fmt: skip

_REJECTED_CLASSES = {
    "SUBQUERY": "subqueries",
    "WINDOW": "window functions",
    "STAR": "'*' and COLUMNS(...)",
    "PARAMETER": "query parameters",
    "POSITIONAL_REFERENCE": "positional references such as #1",
    "DEFAULT": "DEFAULT",
}


@dataclass(frozen=True)
class ParsedExpression:
    """A validated expression and the column names it references (lowercased)."""

    text: str
    columns: frozenset[str]


@contextlib.contextmanager
def _cursor() -> Iterator[duckdb.DuckDBPyConnection]:
    cursor = connection().cursor()
    try:
        yield cursor
    finally:
        cursor.close()


@functools.lru_cache(maxsize=1)
def _function_kinds() -> dict[str, tuple[set[str], set[str]]]:
    with _cursor() as cursor:
        rows = cursor.execute("SELECT function_name, function_type, stability FROM duckdb_functions()").fetchall()
    kinds: dict[str, tuple[set[str], set[str]]] = {}
    for name, function_type, stability in rows:
        types, stabilities = kinds.setdefault(name.lower(), (set(), set()))
        types.add(function_type)
        if stability:
            stabilities.add(stability)
    return kinds


def suggest(name: str, candidates: Iterable[str]) -> str:
    """Return a " Did you mean 'x'?" hint for a misspelled name, or an empty string."""
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered:
        return f" Did you mean {lowered[name.lower()]!r}?"
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f" Did you mean {lowered[matches[0]]!r}?" if matches else ""


@functools.lru_cache(maxsize=1024)
def parse_expression(text: object, *, what: str) -> ParsedExpression:
    """Check that ``text`` is one row-level expression and return the columns it uses.

    ``what`` names the expression in errors, such as ``"derived feature 'ctr'"``.
    """
    if not isinstance(text, str) or not text.strip():
        raise DefinitionError(f"The expression of {what} must be a non-empty SQL string, got {text!r}.")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise DefinitionError(
            f"The expression of {what} has {len(text)} characters; the maximum is {MAX_EXPRESSION_LENGTH}."
        )

    tree = _serialize(text, what=what)
    expression = _single_expression(tree, text, what=what)
    columns: set[str] = set()
    _walk(expression, text=text, what=what, columns=columns, bound=set())
    return ParsedExpression(text=text.strip(), columns=frozenset(columns))


def _serialize(text: str, *, what: str) -> dict[str, Any]:
    with _cursor() as cursor:
        try:
            statement_count = len(cursor.extract_statements(f"SELECT {text}"))
        except Exception:  # a syntax error; the parse below reports it
            statement_count = 1
        if statement_count > 1:
            _reject(what, text, "it contains more than one statement")

        # Newlines around the text keep a trailing "--" comment from swallowing the parenthesis.
        sql = f"SELECT (\n{text}\n)"
        raw = cursor.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0]
    tree = json.loads(raw)
    if tree.get("error"):
        message = tree.get("error_message", "syntax error")
        raise DefinitionError(f"The expression of {what} is not valid SQL: {message} (expression: {text!r}).")
    return tree


@functools.lru_cache(maxsize=1024)
def _expression_tree_json(text: str) -> str:
    tree = _serialize(text, what="expression")
    return json.dumps(_single_expression(tree, text, what="expression"))


def expression_tree(text: str) -> dict[str, Any]:
    """Return DuckDB's parse tree of a validated expression (a fresh copy each call)."""
    return json.loads(_expression_tree_json(text))


def _single_expression(tree: dict[str, Any], text: str, *, what: str) -> dict[str, Any]:
    statements = tree.get("statements", [])
    problem = None
    if len(statements) != 1:
        problem = "it contains more than one statement"
    else:
        node = statements[0]["node"]
        extra = (
            node.get("type") != "SELECT_NODE"
            or len(node.get("select_list", [])) != 1
            or node.get("from_table", {}).get("type") != "EMPTY"
            or node.get("where_clause")
            or node.get("group_expressions")
            or node.get("having")
            or node.get("qualify")
            or node.get("modifiers")
            or node.get("cte_map", {}).get("map")
        )
        if extra:
            problem = "it is not a single expression"
        elif node["select_list"][0].get("alias"):
            problem = "it contains an alias; the feature name is the alias"
    if problem:
        raise DefinitionError(
            f"The expression of {what} is rejected because {problem}: {text!r}. "
            "Write one row-level expression such as 'clicks / NULLIF(impressions, 0)'."
        )
    return statements[0]["node"]["select_list"][0]


def _walk(node: Any, *, text: str, what: str, columns: set[str], bound: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, text=text, what=what, columns=columns, bound=bound)
        return
    if not isinstance(node, dict):
        return

    kind = node.get("class")
    if kind in _REJECTED_CLASSES:
        _reject(what, text, f"{_REJECTED_CLASSES[kind]} are not allowed")
    if kind == "COLUMN_REF":
        _check_column(node, text=text, what=what, columns=columns, bound=bound)
        return
    if kind == "LAMBDA":
        _walk_lambda(node, text=text, what=what, columns=columns, bound=bound)
        return
    if kind == "FUNCTION":
        _check_function(node, text=text, what=what)

    for key, value in node.items():
        if key not in ("class", "type"):
            _walk(value, text=text, what=what, columns=columns, bound=bound)


def _check_column(node: dict[str, Any], *, text: str, what: str, columns: set[str], bound: set[str]) -> None:
    names = node.get("column_names", [])
    if len(names) != 1:
        _reject(what, text, f"qualified name {'.'.join(names)!r} is not allowed; write the column name alone")
    if names[0].lower() not in bound:
        columns.add(names[0].lower())


def _walk_lambda(node: dict[str, Any], *, text: str, what: str, columns: set[str], bound: set[str]) -> None:
    parameters: set[str] = set()
    lhs = node.get("lhs")
    for item in lhs if isinstance(lhs, list) else [lhs]:
        if isinstance(item, dict):
            if item.get("class") == "COLUMN_REF":
                parameters.update(name.lower() for name in item.get("column_names", []))
            for child in item.get("children", []):
                parameters.update(name.lower() for name in child.get("column_names", []))
    _walk(node.get("expr"), text=text, what=what, columns=columns, bound=bound | parameters)


def _check_function(node: dict[str, Any], *, text: str, what: str) -> None:
    name = str(node.get("function_name", "")).lower()
    if node.get("is_operator") or not name:
        return

    types, stabilities = _function_kinds().get(name, (set(), set()))
    if name in _DENIED_FUNCTIONS or name.startswith(_DENIED_PREFIXES):
        _reject(what, text, f"function {name}() reads session state or other SQL and is not allowed")
    if "macro" in types and name not in _ALLOWED_MACROS:
        _reject(what, text, f"function {name}() is not a row-level function and is not allowed")
    if types & {"aggregate"} and "scalar" not in types and "macro" not in types:
        _reject(what, text, f"aggregate function {name}() is not allowed in a row-level expression")
    if types & {"table", "table_macro", "pragma"} and not types & {"scalar", "macro"}:
        _reject(what, text, f"table function {name}() is not allowed")
    if stabilities and stabilities <= {"VOLATILE", "CONSISTENT_WITHIN_QUERY"}:
        _reject(
            what,
            text,
            f"function {name}() is not deterministic; a derived feature must give the same value "
            "for the same row every time it is read",
        )
    if node.get("filter") or node.get("order_bys", {}).get("orders") or node.get("distinct"):
        _reject(what, text, f"FILTER, ORDER BY and DISTINCT inside {name}() are aggregate syntax")


def _reject(what: str, text: str, reason: str) -> None:
    raise DefinitionError(f"The expression of {what} is rejected: {reason} (expression: {text!r}).")


def check_columns(parsed: ParsedExpression, available: Iterable[str], *, what: str) -> None:
    """Raise if ``parsed`` references a column that is not in ``available``."""
    available = list(available)
    lowered = {name.lower() for name in available}
    for column in sorted(parsed.columns):
        if column not in lowered:
            raise DefinitionError(
                f"The expression of {what} references unknown column {column!r}."
                f"{suggest(column, available)} Available columns: {', '.join(available) or '(none)'}."
            )


def result_types(
    columns: Mapping[str, DType],
    expressions: Mapping[str, str],
    order: list[list[str]],
    *,
    labels: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Bind ``expressions`` over empty columns of the given dtypes and return their SQL types.

    ``order`` lists the derived names level by level, so that each level can use the ones
    before it. Raises DefinitionError with DuckDB's message on a type error; ``labels`` names
    expressions in that message (default: "derived feature 'name'").
    """
    base = ", ".join(f"CAST(NULL AS {dtype.sql_type}) AS {quote(name)}" for name, dtype in columns.items())
    sql = f"SELECT {base or '1 AS _raise_empty'}"
    types: dict[str, str] = {}
    with _cursor() as cursor:
        for level in order:
            for name in level:
                probe = f"SELECT (\n{expressions[name]}\n) AS {quote(name)} FROM ({sql}) AS t"
                try:
                    described = cursor.execute(f"DESCRIBE {probe}").fetchall()
                except duckdb.Error as error:
                    label = (labels or {}).get(name, f"derived feature {name!r}")
                    raise DefinitionError(
                        f"The expression of {label} is invalid: "
                        f"{_first_line(error)} (expression: {expressions[name]!r})."
                    ) from None
                types[name] = described[0][1]
            selected = ", ".join(f"(\n{expressions[name]}\n) AS {quote(name)}" for name in level)
            sql = f"SELECT *, {selected} FROM ({sql}) AS t"
    return types


def check_filter(where: str, layout: GroupLayout) -> None:
    """Raise unless ``where`` is a valid row-level boolean expression over the layout's columns."""
    parsed = parse_expression(where, what="the where filter")
    check_columns(parsed, layout.names, what="the where filter")

    expressions = {name: expr for name, (expr, _) in layout.derived.items()}
    expressions["_raise_filter"] = where
    types = result_types(
        layout.stored, expressions, [*layout.levels, ["_raise_filter"]], labels={"_raise_filter": "the where filter"}
    )
    if types["_raise_filter"] != "BOOLEAN":
        raise DefinitionError(
            f"The where filter must be a condition, but {where!r} returns {types['_raise_filter']}; "
            "write a comparison such as 'clicks > 0'."
        )


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0]


_WIDENING = {
    "int8": {"int8", "int16", "int32", "int64", "float32", "float64"},
    "int16": {"int16", "int32", "int64", "float32", "float64"},
    "int32": {"int32", "int64", "float64"},
    "int64": {"int64", "float64"},
    "float32": {"float32", "float64"},
    "date": {"date", "timestamp"},
}


def check_result_type(name: str, sql_type: str, declared: DType, expression: str) -> None:
    """Raise unless a result of DuckDB type ``sql_type`` converts to ``declared`` without loss."""
    upper = sql_type.upper()
    if upper.startswith("DECIMAL") and declared.name in ("float32", "float64"):
        return

    result = dtype_from_sql(sql_type)
    if result is not None and (
        result.name == declared.name or declared.name in _WIDENING.get(result.name, set())
    ):
        return

    if upper == '"NULL"':
        return
    hint = f"declare dtype={result.name!r}" if result is not None else "change the declared dtype"
    raise DefinitionError(
        f"Derived feature {name!r} is declared {declared.name} but its expression returns "
        f"{sql_type}, which cannot be stored as {declared.name} without loss: {hint}, or CAST the "
        f"expression (expression: {expression!r})."
    )


def dependency_levels(expressions: Mapping[str, ParsedExpression]) -> list[list[str]]:
    """Order derived features so each depends only on earlier levels; raise on a cycle."""
    lowered = {name.lower(): name for name in expressions}
    depends = {
        name: {lowered[c] for c in parsed.columns if c in lowered and lowered[c] != name}
        for name, parsed in expressions.items()
    }
    for name, parsed in expressions.items():
        if name.lower() in parsed.columns:
            raise DefinitionError(
                f"Derived feature {name!r} references itself (expression: {parsed.text!r})."
            )

    levels: list[list[str]] = []
    done: set[str] = set()
    while len(done) < len(expressions):
        level = sorted(n for n in expressions if n not in done and depends[n] <= done)
        if not level:
            raise DefinitionError(_cycle_message(depends, done))
        levels.append(level)
        done.update(level)
    return levels


def _cycle_message(depends: Mapping[str, set[str]], done: set[str]) -> str:
    remaining = {n: d - done for n, d in depends.items() if n not in done}
    start = min(remaining)
    path = [start]
    while True:
        following = min(remaining[path[-1]])
        if following in path:
            cycle = path[path.index(following):] + [following]
            break
        path.append(following)
    return (
        f"Derived features form a dependency cycle: {' -> '.join(cycle)}. "
        "Change one of these expressions so that it does not depend on the others."
    )


def same_expression(left: str | None, right: str | None) -> bool:
    """Return whether two expressions parse to the same tree, whatever their spacing and case."""
    if left is None or right is None:
        return left is right
    if left.strip() == right.strip():
        return True
    try:
        return _canonical(left) == _canonical(right)
    except DefinitionError:
        return False


def _canonical(text: str) -> str:
    tree = _serialize(text, what="comparison")
    return json.dumps(_without_locations(tree), sort_keys=True)


def _without_locations(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_locations(item) for item in node]
    if isinstance(node, dict):
        canonical = {k: _without_locations(v) for k, v in node.items() if k != "query_location"}
        if "column_names" in canonical:
            canonical["column_names"] = [name.lower() for name in canonical["column_names"]]
        if "function_name" in canonical:
            canonical["function_name"] = canonical["function_name"].lower()
        return canonical
    return node
