"""Live tables refreshed by real ``raise worker`` processes: once per due time, and after a kill."""

from __future__ import annotations

import collections
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from raise_jupyter import Aggregation, FeatureStore, scheduler
from raise_jupyter.engine import tables
from raise_jupyter.engine.catalog import utcnow
from raise_jupyter.store import open_catalog

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("live_worker.py")
MAX_WAIT_S = 60.0
LEASE_S = "2"


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def start_worker(root: Path, stall: Path, log: Path, processes: list[subprocess.Popen]) -> subprocess.Popen:
    command = [sys.executable, str(WORKER), str(stall), "worker", "--root", str(root), "--poll-interval", "0.05"]
    env = {**os.environ, scheduler.LEASE_ENV: LEASE_S}
    with log.open("ab") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    processes.append(process)
    return process


def wait_until(condition: Callable[[], bool], what: str, log: Path) -> None:
    deadline = time.monotonic() + MAX_WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out waiting for {what}. Worker output:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)


def refreshes(fs: FeatureStore, table_id: int) -> list[tuple[str, dt.datetime | None]]:
    runs = tables.live_refreshes
    with open_catalog(fs.root).read() as conn:
        rows = conn.execute(sa.select(runs.c.status, runs.c.due_at).where(runs.c.live_table_id == table_id)).all()
    return [(row.status, row.due_at.replace(tzinfo=dt.timezone.utc) if row.due_at else None) for row in rows]


@pytest.fixture
def clicks(fs: FeatureStore):
    group = fs.create_feature_group("events", event_time="ts")
    group.create_features_from_schema({"ts": "timestamp", "clicks": "int64"})
    group.ingest({"ts": [dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)], "clicks": [1]})
    return group


def test_two_workers_refresh_once_per_due_time(fs: FeatureStore, clicks, tmp_path: Path, processes) -> None:
    table = clicks.create_live_table("totals", Aggregation("clicks", ["sum"]), refresh="every 1s")
    log = tmp_path / "workers.log"

    first = start_worker(fs.root, tmp_path / "no-stall", log, processes)
    second = start_worker(fs.root, tmp_path / "no-stall", log, processes)
    wait_until(lambda: sum(1 for status, due in refreshes(fs, table._id) if due and status == "succeeded") >= 4, "4 scheduled refreshes", log)
    for process in (first, second):
        process.send_signal(signal.SIGTERM)
    codes = [process.wait(timeout=MAX_WAIT_S) for process in (first, second)]

    scheduled = [due for status, due in refreshes(fs, table._id) if due is not None]
    per_due_time = collections.Counter(scheduled)
    assert codes == [0, 0]
    assert max(per_due_time.values()) == 1, per_due_time
    assert all(status == "succeeded" for status, due in refreshes(fs, table._id))
    assert table.read().to_pandas()["sum"].tolist() == [1]


def test_killed_refresh_keeps_previous_table(fs: FeatureStore, clicks, tmp_path: Path, processes) -> None:
    table = clicks.create_live_table("totals", Aggregation("clicks", ["sum"]), refresh="hourly")
    clicks.ingest({"ts": [dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc)], "clicks": [10]})
    catalog = open_catalog(fs.root)
    scheduler.mark_due(catalog, "live_table", table._id)
    stall, log = tmp_path / "stall", tmp_path / "workers.log"
    stall.write_text("stall", encoding="utf-8")

    doomed = start_worker(fs.root, stall, log, processes)
    wait_until(lambda: stall.with_suffix(".started").exists(), "the first worker to start the refresh", log)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=MAX_WAIT_S)
    during = table.read().to_pandas()["sum"].tolist()
    sql_during = fs.sql("SELECT * FROM totals").to_pandas()["sum"].tolist()

    stall.unlink()
    survivor = start_worker(fs.root, stall, log, processes)
    finished = lambda: scheduler.task_info(catalog, "live_table", table._id)["runs"] >= 1  # noqa: E731
    wait_until(finished, "the second worker to finish the refresh", log)
    survivor.send_signal(signal.SIGTERM)

    assert survivor.wait(timeout=MAX_WAIT_S) == 0
    assert during == [1]
    assert sql_during == [1]
    assert table.read().to_pandas()["sum"].tolist() == [11]
    statuses = collections.Counter(status for status, due in refreshes(fs, table._id) if due is not None)
    assert statuses == {"running": 1, "succeeded": 1}
    due = scheduler.task_info(catalog, "live_table", table._id)["last_due_at"]
    assert [status for status, at in refreshes(fs, table._id) if at == due] == ["running", "succeeded"]
