"""Steps the browser tests take in JupyterLab: open a notebook, run cells, switch themes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[2]


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("RAISE_TEST_ARTIFACTS", REPOSITORY / "test-artifacts")) / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}

_WAIT_FOR = """
(selector) => new Promise((resolve) => {
  const tick = () => document.querySelector(selector) ? resolve(true) : setTimeout(tick, 10);
  tick();
})
"""

_RUN_CELL = """
async ({ index, selectors }) => {
  const app = window.jupyterapp;
  const notebook = app.shell.currentWidget.content;
  notebook.activeCellIndex = index;
  const node = notebook.widgets[index].node;
  const started = performance.now();
  // The command's promise settles when the cell has finished running.
  const finished = app.commands.execute("notebook:run-cell");
  const times = [];
  for (const selector of selectors) {
    await new Promise((resolve, reject) => {
      const tick = () => {
        if (node.querySelector(selector)) resolve();
        else if (performance.now() - started > 60000) reject(new Error("no " + selector + " in cell " + index + " after 60 s"));
        else setTimeout(tick, 5);
      };
      tick();
    });
    times.push(performance.now() - started);
  }
  await finished;
  return times;
}
"""


def open_notebook(page: Any, lab: Any, name: str) -> None:
    """Open ``name`` alone in a fresh workspace and wait until its kernel is idle."""
    workspace = name.replace(".", "-")
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{name}?reset&token={lab.token}")
    page.wait_for_function(
        "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
        " return k && k.status === 'idle'; }",
        timeout=120_000,
    )


def run_cell(page: Any, index: int, *, wait_for: str | list[str] | None = None) -> list[float]:
    """Run cell ``index``; with ``wait_for``, wait for each selector in turn inside the cell.

    Returns the milliseconds from the run command to each selector appearing.
    """
    selectors = [wait_for] if isinstance(wait_for, str) else list(wait_for or [])
    elapsed = page.evaluate(_RUN_CELL, {"index": index, "selectors": selectors})
    wait_idle(page)
    return [float(ms) for ms in elapsed]


def wait_idle(page: Any) -> None:
    """Wait until the kernel has finished what it was asked to run."""
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return w.sessionContext.session.kernel.status === 'idle'; }",
        timeout=120_000,
    )


def cell(page: Any, index: int) -> Any:
    """Return a locator of cell ``index`` of the open notebook."""
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)


def set_theme(page: Any, theme: str) -> None:
    """Switch JupyterLab to the ``light`` or ``dark`` theme and wait until it applies."""
    page.evaluate("(name) => window.jupyterapp.commands.execute('apputils:change-theme', { theme: name })", THEMES[theme])
    light = "true" if theme == "light" else "false"
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'")
    page.wait_for_timeout(300)


def screenshot(locator: Any, folder: Path, name: str) -> Path:
    """Save a screenshot of ``locator`` as ``folder/name.png``."""
    path = folder / f"{name}.png"
    locator.screenshot(path=str(path))
    return path
