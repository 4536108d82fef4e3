"""Install Feast into its own virtual environment and run ``_feast_side.py`` there, for ``feast_comparison.py``.

Feast pins versions of pandas, DuckDB and others that clash with Raise's, so it gets a venv of its
own, created with this Python's ``venv`` module and filled with pip. Before installing, pip
resolves the requirement without installing anything, and the install stops when that
resolution contains a GPU stack such as torch.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

FEAST_VERSION = "0.67.0"
FEAST_REQUIREMENT = f"feast[duckdb]=={FEAST_VERSION}"
# Distributions that must not come in with Feast, because GPU stacks weigh gigabytes.
FORBIDDEN_DISTRIBUTIONS = {"torch", "tensorflow", "jax", "jaxlib", "triton"}
FORBIDDEN_PREFIXES = ("nvidia-",)
WORKER = Path(__file__).resolve().parent / "_feast_side.py"


def default_venv() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "raise-bench" / f"feast-{FEAST_VERSION}"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def installed_feast_version(venv: Path) -> str | None:
    """Return the Feast version that imports with DuckDB and ibis in ``venv``, or None."""
    python = venv_python(venv)
    if not python.exists():
        return None
    probe = "import importlib.metadata, duckdb, feast, ibis; print(importlib.metadata.version('feast'))"
    completed = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
    return completed.stdout.strip() if completed.returncode == 0 else None


def forbidden_in_resolution(python: Path) -> list[str]:
    """Resolve Feast's dependencies without installing them and return the forbidden ones that pip would install."""
    command = [
        str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
        "--dry-run", "--quiet", "--report", "-", FEAST_REQUIREMENT,
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"pip could not resolve {FEAST_REQUIREMENT} (exit code {completed.returncode}):\n{completed.stderr}")

    report = json.loads(completed.stdout)
    # Normalized as PEP 503 does, so that "nvidia_cublas" and "nvidia-cublas" compare alike.
    names = sorted(re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower() for item in report["install"])
    print(f"pip would install {len(names)} distributions: {', '.join(names)}", file=sys.stderr)
    return [name for name in names if name in FORBIDDEN_DISTRIBUTIONS or name.startswith(FORBIDDEN_PREFIXES)]


def ensure_feast_venv(venv: Path) -> Path:
    """Return the Python of a venv with Feast, creating the venv and installing Feast when needed."""
    found = installed_feast_version(venv)
    if found == FEAST_VERSION:
        print(f"Reusing Feast {found} in {venv}", file=sys.stderr)
        return venv_python(venv)

    print(f"Installing {FEAST_REQUIREMENT} into {venv} (found: {found or 'no Feast'})", file=sys.stderr)
    if not venv_python(venv).exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)

    python = venv_python(venv)
    forbidden = forbidden_in_resolution(python)
    if forbidden:
        raise RuntimeError(
            f"Installing {FEAST_REQUIREMENT} would also install {', '.join(forbidden)}, which are too large "
            f"for this benchmark, so nothing was installed. Install Feast into {venv} by hand without them, "
            "or pass --feast-venv with a venv that has it."
        )

    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", FEAST_REQUIREMENT]
    completed = subprocess.run(command, stdout=sys.stderr, stderr=sys.stderr, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"pip install {FEAST_REQUIREMENT} into {venv} failed with exit code {completed.returncode}. Its output is above.")
    found = installed_feast_version(venv)
    if found != FEAST_VERSION:
        raise RuntimeError(f"After pip install, {venv} has Feast {found}, expected {FEAST_VERSION}")
    print(f"Installed Feast {found} in {venv}", file=sys.stderr)
    return python


# -- the Feast worker -------------------------------------------------------------------------


class FeastWorker:
    """The child process that runs Feast's side, with one JSON request and one JSON reply per line."""

    def __init__(self, python: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log: IO[str] = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(python), str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return its reply, raising RuntimeError with the worker's error or log on failure."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            raise RuntimeError(f"The Feast worker exited during {op!r}. The end of its log:\n{self.log_tail()}")

        reply = json.loads(line)
        if not reply.pop("ok"):
            raise RuntimeError(f"The Feast worker failed on {op!r}:\n{reply['error']}")
        return reply

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(encoding="utf-8").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self._log.close()
