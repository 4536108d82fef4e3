"""Display bundles of Raise objects: a live widget in a Jupyter kernel, static HTML and plain
text everywhere, so that nbconvert and GitHub still show something useful."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def in_kernel() -> bool:
    """Return whether code runs in a Jupyter kernel, where widgets can be shown."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def rich_bundle(make_widget: Callable[[], Any], *, text: str, html: Callable[[], str]) -> dict[str, Any]:
    """Return a display bundle: plain text, static HTML and, in a kernel, a live widget.

    If the widget cannot be made (a missing front-end package, a group deleted meanwhile),
    the bundle keeps the text and HTML and the reason is logged.
    """
    data: dict[str, Any] = {"text/plain": text}
    try:
        data["text/html"] = html()
    except Exception as error:
        logger.warning("Could not render HTML for %s: %s", text, error)
    if not in_kernel():
        return data
    try:
        widget = make_widget()
    except Exception as error:
        logger.warning("Showing %s without a widget: %s", text, error)
        return data
    data[WIDGET_MIME] = widget_view(widget)
    return data


def widget_view(widget: Any) -> dict[str, Any]:
    """Return the widget-view part of a widget's display bundle."""
    return {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}
