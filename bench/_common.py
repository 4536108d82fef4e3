"""Helpers shared by the benchmark scripts: timing, run order, machine facts and BENCHMARKS.md output.

The scripts run from the repository root as ``python bench/<script>.py``, which puts this folder
on ``sys.path``, so they import this module as ``_common``.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import deltalake
import duckdb
import pyarrow as pa

import raise_jupyter
from _memory import reset_peak_rss, status_kib  # noqa: F401 - re-exported for the bench scripts


@dataclass
class Timings:
    """Seconds per repeat of each side of one comparison, in run order."""

    sides: dict[str, list[float]] = field(default_factory=dict)

    def add(self, side: str, seconds: float) -> None:
        self.sides.setdefault(side, []).append(seconds)

    def median(self, side: str) -> float:
        return statistics.median(self.sides[side])

    def min(self, side: str) -> float:
        return min(self.sides[side])

    def paired_ratio(self, numerator: str, denominator: str) -> float:
        """Return the median over repeats of numerator time / denominator time in that repeat."""
        pairs = zip(self.sides[numerator], self.sides[denominator], strict=True)
        return statistics.median(a / b for a, b in pairs)


def timed(operation: Callable[[], object]) -> float:
    """Run ``operation`` once after a garbage collection and return its wall time in seconds."""
    gc.collect()
    start = time.perf_counter()
    operation()
    return time.perf_counter() - start


def alternate(sides: list[str], repeat: int) -> list[str]:
    """Return ``sides`` in run order for ``repeat``: as given on even repeats, reversed on odd ones."""
    return sides if repeat % 2 == 0 else sides[::-1]


def machine_description() -> dict[str, str]:
    cpu_model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    return {
        "CPUs (nproc)": str(len(os.sched_getaffinity(0))),
        "CPU model": cpu_model,
        "RAM": memory,
        "OS": f"{platform.system()} {platform.release()}",
    }


def git_revision() -> str:
    """Return the short commit of the repository, marked "modified" if raise_jupyter/ has changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--", "raise_jupyter"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} (raise_jupyter/ modified)" if changes else commit


def versions(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the versions of Python, the engine libraries, ``extra`` packages and raise_jupyter."""
    return {
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "deltalake": deltalake.__version__,
        "pyarrow": pa.__version__,
        **(extra or {}),
        "raise_jupyter": f"{raise_jupyter.__version__} at commit {git_revision()}",
    }


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def render_run_header(title: str, command: str, extra_versions: Mapping[str, str] | None = None) -> list[str]:
    """Return the opening lines of a section: heading, date, command, machine and versions."""
    lines = [
        f"## {title}",
        "",
        f"Run on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC with:",
        "",
        "```",
        command,
        "```",
        "",
    ]
    lines += [f"- {key}: {value}" for key, value in machine_description().items()]
    lines.append("- Versions: " + ", ".join(f"{name} {version}" for name, version in versions(extra_versions).items()))
    return lines


def write_section(path: Path, title: str, section: str) -> None:
    """Replace the ``## title`` section of ``path`` (or append it), keeping the others."""
    heading = f"## {title}"
    if path.exists():
        lines = path.read_text(encoding="utf-8").splitlines()
    else:
        lines = ["# Benchmarks", "", "Measured performance of Raise, one section per benchmark script.", ""]

    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = section.splitlines() + [""] * (end < len(lines))
    else:
        if lines and lines[-1] != "":
            lines.append("")
        lines += section.splitlines()
    path.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
