"""Job progress: a live progress bar of a ``JobRun`` with a Cancel button."""

from __future__ import annotations

import logging
import re
import threading
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from raise_jupyter.widgets._common import css, esm, widget_bundle

if TYPE_CHECKING:
    from raise_jupyter.jobs import JobRun

__all__ = ["JobProgress"]

logger = logging.getLogger(__name__)

UPDATE_SECONDS = 0.5


class JobProgress(anywidget.AnyWidget):
    """Progress of one job run, updated from a background thread until the run ends.

    The thread sends an update every half second, so the bar moves while the kernel is idle
    and while other cells run. Cancel calls ``run.cancel()``.

    Parameters
    ----------
    run
        The run to follow, from ``job.run()``.

    Examples
    --------
    >>> run = job.run()  # doctest: +SKIP
    >>> JobProgress(run)  # the same as displaying ``run``  # doctest: +SKIP
    """

    _esm = esm("progress.js")
    _css = css("progress.css")

    job = traitlets.Unicode("").tag(sync=True)
    run_id = traitlets.Int(0).tag(sync=True)
    status = traitlets.Unicode("running").tag(sync=True)
    phase = traitlets.Unicode("").tag(sync=True)
    rows_done = traitlets.Int(0).tag(sync=True)
    rows_total = traitlets.Int(None, allow_none=True).tag(sync=True)
    rows_per_second = traitlets.Float(None, allow_none=True).tag(sync=True)
    eta_seconds = traitlets.Float(None, allow_none=True).tag(sync=True)
    elapsed_seconds = traitlets.Float(0.0).tag(sync=True)
    device = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    summary = traitlets.Unicode("").tag(sync=True)
    cancel_requested = traitlets.Bool(False).tag(sync=True)

    def __init__(self, run: JobRun, *, interval: float = UPDATE_SECONDS) -> None:
        # The opening message already carries the run's state, so a finished run never shows
        # as running.
        super().__init__(job=run.job_name, run_id=run.id, **_traits_of(run))
        self.run = run
        self._interval = interval
        self._stop = threading.Event()
        self.on_msg(self._on_message)
        self._thread = threading.Thread(target=self._follow, name=f"raise-progress-{run.id}", daemon=True)
        self._thread.start()

    def update(self) -> None:
        """Copy the run's progress into the widget (one message)."""
        with self.hold_sync():
            for name, value in _traits_of(self.run).items():
                setattr(self, name, value)

    def cancel(self) -> None:
        """Ask the run to stop before its next batch."""
        self.cancel_requested = True
        self.run.cancel()
        logger.info("Cancel requested for run %d of job %s", self.run.id, self.run.job_name)

    def _follow(self) -> None:
        try:
            while not self._stop.is_set():
                self.run.wait(self._interval)
                self.update()
                if self.status != "running":
                    return
        except Exception:
            logger.exception("Following run %d of job %s failed", self.run.id, self.run.job_name)

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: list[Any]) -> None:
        if isinstance(content, dict) and content.get("type") == "cancel":
            self.cancel()

    def close(self) -> None:
        self._stop.set()
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return widget_bundle(self, text=repr(self), html=self.run._repr_html_())

    def __repr__(self) -> str:
        return f"JobProgress({self.run!r})"


def _traits_of(run: JobRun) -> dict[str, Any]:
    """Return the widget's trait values for the run's current progress."""
    progress = run.progress
    traits = {
        "status": progress.status,
        "phase": (progress.phase or "") if progress.status == "running" else "",
        "rows_done": progress.rows_done,
        "rows_total": progress.rows_total,
        "rows_per_second": progress.rows_per_second,
        "eta_seconds": progress.eta_seconds if progress.status == "running" else None,
        "elapsed_seconds": progress.elapsed_seconds,
        "device": progress.device or "",
    }
    if progress.status != "running":
        traits["error"] = _last_line(run.error)
        traits["summary"] = summary(run)
    return traits


def summary(run: JobRun) -> str:
    """Return one line on how a finished run went."""
    progress = run.progress
    speed = f" ({progress.rows_per_second:,.0f} rows/s)" if progress.rows_per_second else ""
    device = f" on {progress.device}" if progress.device else ""
    took = f"{progress.elapsed_seconds:,.1f} s"
    if progress.status == "succeeded":
        version = f"; target version {run.target_version}" if run.target_version is not None else ""
        return f"Succeeded: {progress.rows_done:,} rows in {took}{device}{speed}{version}."
    if progress.status == "cancelled":
        return f"Cancelled after {took} at {progress.rows_done:,} rows; the target is unchanged."
    return f"Failed after {took}: {_last_line(run.error)}"


def _last_line(text: str | None) -> str:
    """Return the exception line of a traceback, such as ``ValueError: bad input``.

    It is the last line that starts with an exception name, so a message that ends with a
    caret line (as DuckDB's do) still shows the exception. The line is cut to 500 characters.
    """
    if not text:
        return ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    found = next((line for line in reversed(lines) if _EXCEPTION_LINE.match(line)), lines[-1])
    return found if len(found) <= 500 else found[:497] + "..."


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Cancelled|Interrupt|Exit|Warning)\b.*:")
