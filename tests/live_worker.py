"""Child process of test_live_workers.py: ``raise worker`` whose live-table refreshes can stall.

Run as ``python live_worker.py STALL_FILE worker --root ROOT [...]``. Everything after the first
argument goes to ``raise_jupyter.cli.main``. When STALL_FILE exists, each refresh creates
``STALL_FILE.started`` after computing its result and then sleeps before writing it, so that a
test can kill the worker in the middle of a refresh.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main() -> int:
    stall = Path(sys.argv[1])

    from raise_jupyter import cli, live

    write_file = live._write_file

    def stalling_write(root, table_id, table):
        if stall.exists():
            stall.with_suffix(".started").write_text("started", encoding="utf-8")
            time.sleep(600)
        return write_file(root, table_id, table)

    live._write_file = stalling_write
    return cli.main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
