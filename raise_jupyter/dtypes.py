"""Feature data types: parsing, normalization and their Arrow, Delta and DuckDB forms.

A dtype is stored as its canonical spelling, such as ``"int64"``, ``"float32[512]"`` or
``"list<string>"``. Fixed-length vectors are stored in Delta Lake as variable lists (Delta has no
fixed-size list type); Raise checks their length on ingest and reads them back as fixed-size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

from raise_jupyter.errors import DefinitionError

__all__ = ["DType", "parse_dtype"]

_SCALARS: dict[str, tuple[pa.DataType, str]] = {
    "bool": (pa.bool_(), "BOOLEAN"),
    "int8": (pa.int8(), "TINYINT"),
    "int16": (pa.int16(), "SMALLINT"),
    "int32": (pa.int32(), "INTEGER"),
    "int64": (pa.int64(), "BIGINT"),
    "float32": (pa.float32(), "FLOAT"),
    "float64": (pa.float64(), "DOUBLE"),
    "string": (pa.string(), "VARCHAR"),
    "date": (pa.date32(), "DATE"),
    # Timestamps are stored with microsecond precision in UTC, as Delta Lake defines them.
    "timestamp": (pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ"),
    "bytes": (pa.binary(), "BLOB"),
}

_ALIASES = {
    "boolean": "bool",
    "tinyint": "int8",
    "smallint": "int16",
    "int": "int64",
    "integer": "int64",
    "long": "int64",
    "bigint": "int64",
    "float": "float64",
    "double": "float64",
    "real": "float32",
    "str": "string",
    "text": "string",
    "varchar": "string",
    "datetime": "timestamp",
    "timestamptz": "timestamp",
    "binary": "bytes",
    "blob": "bytes",
}

_VECTOR_ELEMENTS = ("float32", "float64", "int64")
_VECTOR = re.compile(r"(\w+)\s*\[\s*(\d+)\s*\]")
_LIST = re.compile(r"list\s*<\s*(.+)\s*>")

MAX_VECTOR_LENGTH = 65_536

VALID_DTYPES_TEXT = (
    "bool, int8, int16, int32, int64, float32, float64, string, date, timestamp, bytes, "
    "float32[N], float64[N], int64[N] (fixed-length vectors) and list<T> "
    "(aliases: int, integer, bigint, float, double, str, text, boolean, datetime, binary)"
)


@dataclass(frozen=True)
class DType:
    """A parsed feature dtype.

    Attributes
    ----------
    name
        Canonical spelling, such as ``"int64"`` or ``"float32[512]"``.
    kind
        ``"scalar"``, ``"vector"`` or ``"list"``.
    element
        Element dtype of a vector or list, ``None`` for scalars.
    length
        Length of a vector, ``None`` otherwise.
    """

    name: str
    kind: str
    element: DType | None = None
    length: int | None = None

    @property
    def arrow_type(self) -> pa.DataType:
        """Arrow type that reads return (fixed-size lists for vectors)."""
        if self.kind == "scalar":
            return _SCALARS[self.name][0]
        assert self.element is not None
        if self.kind == "vector":
            return pa.list_(self.element.arrow_type, self.length)
        return pa.list_(self.element.arrow_type)

    @property
    def storage_type(self) -> pa.DataType:
        """Arrow type written to Delta Lake (variable lists for vectors)."""
        if self.kind == "scalar":
            return _SCALARS[self.name][0]
        assert self.element is not None
        return pa.list_(self.element.storage_type)

    @property
    def sql_type(self) -> str:
        """DuckDB type name."""
        if self.kind == "scalar":
            return _SCALARS[self.name][1]
        assert self.element is not None
        if self.kind == "vector":
            return f"{self.element.sql_type}[{self.length}]"
        return f"{self.element.sql_type}[]"

    @property
    def is_numeric(self) -> bool:
        return self.kind == "scalar" and (self.name.startswith("int") or self.name.startswith("float"))

    @property
    def can_be_key(self) -> bool:
        """Whether values of this dtype compare exactly, as entity keys must."""
        return self.name in ("int8", "int16", "int32", "int64", "string", "bytes", "date")

    @property
    def can_be_event_time(self) -> bool:
        return self.name in ("timestamp", "date")

    def __str__(self) -> str:
        return self.name


def parse_dtype(value: object) -> DType:
    """Parse a dtype spelling such as ``"int"``, ``"float32[512]"`` or ``"list<str>"``.

    Aliases normalize to one canonical spelling (``"int"`` and ``"bigint"`` become ``"int64"``).

    Examples
    --------
    >>> parse_dtype("bigint").name
    'int64'
    >>> parse_dtype("float32[4]").arrow_type
    FixedSizeListType(fixed_size_list<item: float>[4])
    """
    if isinstance(value, DType):
        return value

    if not isinstance(value, str) or not value.strip():
        raise DefinitionError(f"Invalid dtype {value!r}: use one of {VALID_DTYPES_TEXT}.")

    text = value.strip().lower()
    text = _ALIASES.get(text, text)
    if text in _SCALARS:
        return DType(text, "scalar")

    vector = _VECTOR.fullmatch(text)
    if vector:
        return _parse_vector(value, vector.group(1), int(vector.group(2)))

    listed = _LIST.fullmatch(text)
    if listed:
        element = parse_dtype(listed.group(1))
        return DType(f"list<{element.name}>", "list", element=element)

    raise DefinitionError(f"Unknown dtype {value!r}: use one of {VALID_DTYPES_TEXT}.")


def _parse_vector(value: str, element_text: str, length: int) -> DType:
    element_name = _ALIASES.get(element_text, element_text)
    if element_name not in _VECTOR_ELEMENTS:
        raise DefinitionError(
            f"Invalid vector dtype {value!r}: the element type must be one of "
            f"{', '.join(_VECTOR_ELEMENTS)}, as in 'float32[512]'."
        )

    if not 1 <= length <= MAX_VECTOR_LENGTH:
        raise DefinitionError(
            f"Invalid vector dtype {value!r}: the length must be between 1 and {MAX_VECTOR_LENGTH}."
        )
    return DType(f"{element_name}[{length}]", "vector", element=DType(element_name, "scalar"), length=length)


def infer_dtype(arrow_type: pa.DataType) -> DType | None:
    """Return the dtype that stores ``arrow_type`` without loss, or None if there is none."""
    t = pa.types
    if t.is_dictionary(arrow_type):
        return infer_dtype(arrow_type.value_type)

    simple = [
        (t.is_boolean, "bool"),
        (lambda x: t.is_int8(x), "int8"),
        (lambda x: t.is_int16(x) or t.is_uint8(x), "int16"),
        (lambda x: t.is_int32(x) or t.is_uint16(x), "int32"),
        (lambda x: t.is_int64(x) or t.is_uint32(x) or t.is_uint64(x), "int64"),
        (lambda x: t.is_float16(x) or t.is_float32(x), "float32"),
        (t.is_float64, "float64"),
        (lambda x: t.is_string(x) or t.is_large_string(x) or t.is_string_view(x), "string"),
        (lambda x: t.is_binary(x) or t.is_large_binary(x) or t.is_binary_view(x), "bytes"),
        (t.is_timestamp, "timestamp"),
        (t.is_date, "date"),
    ]
    for predicate, name in simple:
        if predicate(arrow_type):
            return DType(name, "scalar")

    if t.is_fixed_size_list(arrow_type):
        element = infer_dtype(arrow_type.value_type)
        if element is not None and element.name in _VECTOR_ELEMENTS:
            return parse_dtype(f"{element.name}[{arrow_type.list_size}]")

    if t.is_list(arrow_type) or t.is_large_list(arrow_type) or t.is_fixed_size_list(arrow_type):
        element = infer_dtype(arrow_type.value_type)
        if element is not None:
            return DType(f"list<{element.name}>", "list", element=element)
    return None


def dtype_from_sql(sql_type: str) -> DType | None:
    """Return the dtype of a DuckDB result type name, or None if Raise has no such dtype."""
    text = sql_type.strip().upper()
    for name, (_, sql_name) in _SCALARS.items():
        if text == sql_name:
            return DType(name, "scalar")

    extra = {"TIMESTAMP WITH TIME ZONE": "timestamp", "TIMESTAMP": "timestamp", "INTEGER": "int32"}
    if text in extra:
        return DType(extra[text], "scalar")

    array = re.fullmatch(r"(.+)\[(\d*)\]", text)
    if array:
        element = dtype_from_sql(array.group(1))
        if element is None:
            return None
        if array.group(2):
            try:
                return parse_dtype(f"{element.name}[{array.group(2)}]")
            except DefinitionError:
                return None
        return DType(f"list<{element.name}>", "list", element=element)
    return None
