"""Child process of test_scheduler.py: ``raise worker`` with a handler of task kind "test".

Run as ``python scheduler_worker.py CONFIG_PATH worker --root ROOT [...]``. Everything after
the config path goes to ``raise_jupyter.cli.main``. The JSON config sets what the handler does:

- ``started``: file that gets a line ``<target_id> <due_at> <pid>`` when a run starts.
- ``log``: file that gets the same line when a run succeeds.
- ``sleep``: seconds to sleep per target id (keys are strings), before succeeding or failing.
- ``fail``: target ids whose runs raise RuntimeError.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def append_line(path: Path, line: str) -> None:
    """Append one line in a single write, so lines of concurrent processes do not interleave."""
    with path.open("a", encoding="utf-8") as file:
        file.write(line + "\n")
        file.flush()
        os.fsync(file.fileno())


def make_handler(config: dict[str, Any]) -> Any:
    sleeps = {int(target): float(seconds) for target, seconds in config.get("sleep", {}).items()}
    failing = set(config.get("fail", []))

    def handle(root: Path, target_id: int, due_at: dt.datetime | None) -> None:
        line = f"{target_id} {due_at.isoformat() if due_at else None} {os.getpid()}"
        append_line(Path(config["started"]), line)
        time.sleep(sleeps.get(target_id, 0.0))
        if target_id in failing:
            raise RuntimeError(f"test handler failed on target {target_id} as configured")
        append_line(Path(config["log"]), line)

    return handle


def main() -> int:
    config = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))

    from raise_jupyter import cli
    from raise_jupyter.scheduler import register_handler

    register_handler("test", make_handler(config))
    return cli.main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
