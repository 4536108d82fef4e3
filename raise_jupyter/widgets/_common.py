"""Helpers shared by the widgets: bundled assets, display bundles and background work."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raise_jupyter.display import WIDGET_MIME, in_kernel, widget_view

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"

# Largest widget message the widgets are built to stay under; the tests check every message.
MESSAGE_LIMIT = 1_000_000

def asset(name: str) -> str:
    """Return the text of a bundled file of ``static/`` (JS and CSS ship inside the wheel)."""
    return (STATIC / name).read_text(encoding="utf-8")


def esm(name: str) -> str:
    """Return a widget's script with the shared DOM helper of ``static/dom.js`` in front."""
    return asset("dom.js") + "\n" + asset(name)


def cut(text: str, limit: int) -> str:
    """Return ``text`` shortened to ``limit`` characters, ending with an ellipsis if cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def css(name: str) -> str:
    """Return the shared stylesheet followed by the widget's own."""
    return asset("raise.css") + "\n" + asset(name)


def widget_bundle(widget: Any, *, text: str, html: str) -> dict[str, Any]:
    """Return the display bundle of an existing widget, with plain text and static HTML."""
    bundle: dict[str, Any] = {"text/plain": text, "text/html": html}
    if in_kernel():
        bundle[WIDGET_MIME] = widget_view(widget)
    return bundle


def start_thread(target: Callable[[], None], *, name: str) -> threading.Thread:
    """Run ``target`` in a background thread, logging (not raising) its errors.

    The thread is not a daemon: the interpreter waits for it at exit, because a DuckDB query
    still running during interpreter shutdown aborts the process.
    """

    def run() -> None:
        try:
            target()
        except Exception:
            logger.exception("Widget background task %s failed", name)

    thread = threading.Thread(target=run, name=f"raise-{name}", daemon=False)
    thread.start()
    return thread


def json_number(value: Any) -> Any:
    """Return ``value`` with NaN and infinities replaced by None, for JSON messages."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def short_error(error: BaseException) -> str:
    """Return an error message as widgets show it inline."""
    text = str(error).strip() or type(error).__name__
    # A message that repeats a huge value would make the widget's messages huge too.
    return text if len(text) <= 1000 else text[:997] + "..."
