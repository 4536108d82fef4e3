"""Peak-memory and timing helpers with no third-party imports (Linux only).

The Feast side of ``feast_comparison.py`` runs in Feast's own virtual environment, which lacks
Raise's libraries, so these helpers live apart from ``_common``. Both sides import them.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any


def status_kib(field_name: str) -> int:
    """Return a size field of ``/proc/self/status``, such as ``VmRSS`` or ``VmHWM``, in KiB."""
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field_name} field")


def reset_peak_rss() -> bool:
    """Reset the process's peak RSS, VmHWM (Linux 4.0 and later); return False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def run_phase(operation: Callable[[], Any], memory: bool) -> tuple[Any, dict[str, Any]]:
    """Run ``operation`` once after a garbage collection and return its result and measurements.

    The measurements are ``seconds`` and, with ``memory``, ``before_mib`` (RSS before),
    ``peak_mib`` (``VmHWM`` after resetting it, read while the result is still held) and
    ``reset`` (whether the peak could be reset first).
    """
    gc.collect()
    facts: dict[str, Any] = {}
    if memory:
        facts["reset"] = reset_peak_rss()
        facts["before_mib"] = status_kib("VmRSS") / 1024

    start = time.perf_counter()
    result = operation()
    facts["seconds"] = time.perf_counter() - start

    if memory:
        facts["peak_mib"] = status_kib("VmHWM") / 1024
    return result, facts
