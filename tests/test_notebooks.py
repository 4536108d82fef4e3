"""The notebooks in notebooks/ run end to end in a real Jupyter kernel (nbclient)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


def run_notebook(name: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """Execute a notebook in a fresh kernel whose RAISE_HOME is ``home``; return it with outputs."""
    monkeypatch.setenv("RAISE_HOME", str(home))
    home.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(home)}})
    client.execute()
    return notebook


def outputs_text(cell: object) -> str:
    parts = []
    for output in cell.outputs:
        if "text" in output:
            parts.append(output["text"])
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_notebooks_saved_without_outputs() -> None:
    for path in NOTEBOOKS.glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), path.name


def test_magics_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = run_notebook("magics.ipynb", tmp_path / "home", monkeypatch)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    by_source = {cell.source.splitlines()[0]: outputs_text(cell) for cell in code}

    assert "FeatureGroup(demo/magics/user-signals)" in by_source["%%raise define user-signals --keys user_id --event-time ts"]
    assert "rows=6" in by_source["%raise ingest user-signals signals --mode upsert"]
    assert "user_id" in by_source["busy"]
    assert "clicks" in by_source["busy"]
    assert "2024-05-01" in by_source["%raise analyze user-signals.clicks avg p50 p99 null_rate --by date"]
    assert "count" in by_source["%raise dist user-signals.clicks --bins 4"]
    assert "['user-signals']" in by_source["%raise groups"]
