"""The scheduler: tasks in a real SQLite catalog, run_due in this process, and worker processes.

In-process tests register a handler of task kind "test" that records its calls. Process tests
start scheduler_worker.py, which runs ``raise worker`` with a "test" handler that appends
``<target_id> <due_at> <pid>`` to a file when a run starts and when it succeeds. The lease is
2 s in child processes, so a killed worker's task is free again soon. Waits poll with generous
deadlines, and no assertion depends on timing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from raise_jupyter import scheduler
from raise_jupyter.engine.catalog import Catalog
from raise_jupyter.errors import DefinitionError, NotFoundError
from raise_jupyter.schedule import Schedule
from raise_jupyter.scheduler import (
    ensure_task,
    mark_due,
    register_handler,
    remove_task,
    run_due,
    set_paused,
    start_scheduler,
    task_info,
    unregister_handler,
)
from raise_jupyter.store import open_catalog

WORKER = Path(__file__).with_name("scheduler_worker.py")
KIND = "test"
CHILD_LEASE_S = "2"
# Guard against a hung child or thread, not a performance limit: a healthy one needs seconds.
MAX_WAIT_S = 120.0
POLL_S = 0.05


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# -- in-process handler --------------------------------------------------------------------------


@dataclass
class Recorder:
    """The "test" handler of this process: records each call and runs an optional action per target."""

    calls: list[tuple[int, dt.datetime | None]] = field(default_factory=list)
    actions: dict[int, Callable[[Path, int, dt.datetime | None], None]] = field(default_factory=dict)
    called: threading.Event = field(default_factory=threading.Event)

    def __call__(self, root: Path, target_id: int, due_at: dt.datetime | None) -> None:
        self.calls.append((target_id, due_at))
        self.called.set()
        action = self.actions.get(target_id)
        if action is not None:
            action(root, target_id, due_at)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    handler = Recorder()
    register_handler(KIND, handler)
    yield handler
    unregister_handler(KIND)


@pytest.fixture
def catalog(root: Path) -> Catalog:
    return open_catalog(root)


def _fail(_root: Path, target_id: int, _due_at: dt.datetime | None) -> None:
    raise RuntimeError(f"boom on target {target_id}")


# -- task rows -----------------------------------------------------------------------------------


def test_ensure_task_inserts_and_updates(catalog: Catalog) -> None:
    now = dt.datetime(2024, 1, 31, 10, 20, tzinfo=dt.timezone.utc)
    ensure_task(catalog, KIND, 1, "hourly", now=now)
    info = task_info(catalog, KIND, 1)

    assert info is not None
    assert info["schedule"] == "hourly"
    assert info["next_due_at"] == dt.datetime(2024, 1, 31, 11, 0, tzinfo=dt.timezone.utc)
    assert info["paused"] is False
    assert info["runs"] == 0
    assert info["failures"] == 0
    assert info["lease_owner"] is None

    # The same schedule, even spelled differently, keeps the due time.
    ensure_task(catalog, KIND, 1, "@hourly", now=now + dt.timedelta(hours=5))
    assert task_info(catalog, KIND, 1)["next_due_at"] == info["next_due_at"]

    ensure_task(catalog, KIND, 1, Schedule.every(minutes=15), now=now)
    changed = task_info(catalog, KIND, 1)
    assert changed["schedule"] == "every 15m"
    assert changed["next_due_at"] == dt.datetime(2024, 1, 31, 10, 30, tzinfo=dt.timezone.utc)
    assert task_info(catalog, KIND, 2) is None


def test_ensure_task_rejects_bad_input(catalog: Catalog) -> None:
    with pytest.raises(DefinitionError, match=r"Invalid schedule 'every 0s'"):
        ensure_task(catalog, KIND, 1, "every 0s")
    with pytest.raises(DefinitionError, match=r"Invalid task kind ''"):
        ensure_task(catalog, "", 1, "hourly")
    assert task_info(catalog, KIND, 1) is None


def test_ensure_task_in_callers_transaction(catalog: Catalog) -> None:
    with pytest.raises(RuntimeError, match="rolled back"), catalog.write() as conn:
        ensure_task(conn, KIND, 1, "daily")
        assert task_info(conn, KIND, 1) is not None
        raise RuntimeError("rolled back")

    assert task_info(catalog, KIND, 1) is None


def test_remove_pause_and_missing_tasks(catalog: Catalog) -> None:
    ensure_task(catalog, KIND, 1, "daily")
    set_paused(catalog, KIND, 1, True)
    assert task_info(catalog, KIND, 1)["paused"] is True

    assert remove_task(catalog, KIND, 1) is True
    assert remove_task(catalog, KIND, 1) is False
    assert task_info(catalog, KIND, 1) is None
    with pytest.raises(NotFoundError, match=r"No scheduled task for test 1; create it with ensure_task"):
        set_paused(catalog, KIND, 1, False)
    with pytest.raises(NotFoundError, match=r"No scheduled task for test 1"):
        mark_due(catalog, KIND, 1)


# -- run_due in this process ---------------------------------------------------------------------


def test_missed_schedule_runs_once(root: Path, catalog: Catalog, recorder: Recorder) -> None:
    ensure_task(catalog, KIND, 1, "every 15m", now=utcnow() - dt.timedelta(hours=5))
    missed_due = task_info(catalog, KIND, 1)["next_due_at"]
    assert missed_due < utcnow() - dt.timedelta(hours=4)

    ran = run_due(root, owner="worker-a")
    before_second_call = utcnow()
    again = run_due(root, owner="worker-a")
    info = task_info(catalog, KIND, 1)

    assert ran == 1
    assert again == 0
    assert recorder.calls == [(1, missed_due)]
    assert info["runs"] == 1
    assert info["last_status"] == "succeeded"
    assert info["last_due_at"] == missed_due
    assert info["next_due_at"] > before_second_call
    assert info["next_due_at"] <= before_second_call + dt.timedelta(minutes=15)
    assert info["lease_owner"] is None
    assert info["lease_until"] is None


def test_failing_handler_recorded(
    root: Path, catalog: Catalog, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    past = utcnow() - dt.timedelta(hours=2)
    ensure_task(catalog, KIND, 1, "hourly", now=past)
    ensure_task(catalog, KIND, 2, "hourly", now=past)
    recorder.actions[1] = _fail

    with caplog.at_level(logging.ERROR, logger="raise_jupyter.scheduler"):
        ran = run_due(root, owner="worker-a")
    failed = task_info(catalog, KIND, 1)
    succeeded = task_info(catalog, KIND, 2)

    assert ran == 2
    assert [target for target, _ in recorder.calls] == [1, 2]
    assert failed["last_status"] == "failed"
    assert failed["last_error"] == "RuntimeError: boom on target 1"
    assert failed["failures"] == 1
    assert failed["runs"] == 1
    assert failed["next_due_at"] > utcnow()
    assert failed["lease_owner"] is None
    assert succeeded["last_status"] == "succeeded"
    assert succeeded["last_error"] is None
    assert succeeded["failures"] == 0
    assert succeeded["runs"] == 1
    failure_logs = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failure_logs) == 1
    assert "Task test 1 due at" in failure_logs[0].getMessage()
    assert failure_logs[0].exc_info is not None


def test_paused_and_future_tasks_wait(root: Path, catalog: Catalog, recorder: Recorder) -> None:
    ensure_task(catalog, KIND, 1, "hourly", now=utcnow() - dt.timedelta(hours=2))
    ensure_task(catalog, KIND, 2, "daily")
    set_paused(catalog, KIND, 1, True)

    assert run_due(root, owner="worker-a") == 0
    assert recorder.calls == []

    set_paused(catalog, KIND, 1, False)
    assert run_due(root, owner="worker-a") == 1
    assert [target for target, _ in recorder.calls] == [1]


def test_fixed_now_decides_what_is_due(root: Path, catalog: Catalog, recorder: Recorder) -> None:
    start = dt.datetime(2024, 1, 31, 10, 20, tzinfo=dt.timezone.utc)
    ensure_task(catalog, KIND, 1, "hourly", now=start)

    assert run_due(root, owner="worker-a", now=start + dt.timedelta(minutes=39)) == 0
    assert run_due(root, owner="worker-a", now=start + dt.timedelta(hours=3)) == 1
    info = task_info(catalog, KIND, 1)

    assert recorder.calls == [(1, dt.datetime(2024, 1, 31, 11, 0, tzinfo=dt.timezone.utc))]
    assert info["next_due_at"] == dt.datetime(2024, 1, 31, 14, 0, tzinfo=dt.timezone.utc)


def test_mark_due_runs_task_now(root: Path, catalog: Catalog, recorder: Recorder) -> None:
    ensure_task(catalog, KIND, 1, "daily")
    assert run_due(root, owner="worker-a") == 0

    marked_at = utcnow()
    mark_due(catalog, KIND, 1, now=marked_at)

    assert task_info(catalog, KIND, 1)["next_due_at"] == marked_at
    assert run_due(root, owner="worker-a") == 1
    assert recorder.calls == [(1, marked_at)]
    assert task_info(catalog, KIND, 1)["next_due_at"] > utcnow()


def test_mark_due_during_run_runs_again(root: Path, catalog: Catalog, recorder: Recorder) -> None:
    ensure_task(catalog, KIND, 1, "daily", now=utcnow() - dt.timedelta(days=2))
    recorder.actions[1] = lambda root, target, due: mark_due(open_catalog(root), KIND, target)

    assert run_due(root, owner="worker-a") == 1
    info = task_info(catalog, KIND, 1)
    assert info["next_due_at"] <= utcnow()
    assert info["runs"] == 1

    recorder.actions.clear()
    assert run_due(root, owner="worker-a") == 1
    assert len(recorder.calls) == 2
    assert task_info(catalog, KIND, 1)["next_due_at"] > utcnow()


def test_lease_taken_over_not_recorded(
    root: Path, catalog: Catalog, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    ensure_task(catalog, KIND, 1, "hourly", now=utcnow() - dt.timedelta(hours=2))

    def take_over(root: Path, target_id: int, _due_at: dt.datetime | None) -> None:
        # What another worker does once this worker's lease has expired.
        from raise_jupyter.engine import tables

        t = tables.tasks
        with open_catalog(root).write() as conn:
            conn.execute(t.update().where(t.c.target_id == target_id).values(lease_owner="worker-b"))

    recorder.actions[1] = take_over
    with caplog.at_level(logging.WARNING, logger="raise_jupyter.scheduler"):
        assert run_due(root, owner="worker-a") == 1
    info = task_info(catalog, KIND, 1)

    assert info["lease_owner"] == "worker-b"
    assert info["runs"] == 0
    assert info["last_status"] is None
    assert any("Another worker (worker-b) took over test 1" in r.getMessage() for r in caplog.records)


def test_unhandled_kind_waits(root: Path, catalog: Catalog, caplog: pytest.LogCaptureFixture) -> None:
    ensure_task(catalog, "nobody-handles", 1, "hourly", now=utcnow() - dt.timedelta(hours=2))

    with caplog.at_level(logging.WARNING, logger="raise_jupyter.scheduler"):
        assert run_due(root, owner="worker-a") == 0
    info = task_info(catalog, "nobody-handles", 1)

    assert info["runs"] == 0
    assert info["lease_owner"] is None
    assert any("'nobody-handles' are due, but this process has no handler" in r.getMessage() for r in caplog.records)


def test_notify_hook_called_and_errors_logged(
    root: Path, catalog: Catalog, recorder: Recorder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[tuple[Path, Catalog, str]] = []

    def deliver_due(root: Path, catalog: Catalog, *, owner: str) -> None:
        calls.append((root, catalog, owner))
        if len(calls) == 1:
            raise ConnectionError("mail server down")

    fake = types.ModuleType("raise_jupyter.notify")
    fake.deliver_due = deliver_due  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "raise_jupyter.notify", fake)
    monkeypatch.setattr(scheduler, "_failed_modules", set())
    ensure_task(catalog, KIND, 1, "hourly", now=utcnow() - dt.timedelta(hours=2))

    with caplog.at_level(logging.ERROR, logger="raise_jupyter.scheduler"):
        ran = run_due(root, owner="worker-a")

    assert ran == 1
    # Once after the task ran and once when nothing was due any more.
    assert calls == [(root, catalog, "worker-a"), (root, catalog, "worker-a")]
    assert any("Delivering notifications" in r.getMessage() for r in caplog.records)


def test_start_scheduler_runs_and_stops(root: Path, catalog: Catalog, recorder: Recorder) -> None:
    ensure_task(catalog, KIND, 1, "hourly", now=utcnow() - dt.timedelta(hours=2))

    worker = start_scheduler(root, poll_interval=0.05)
    try:
        assert start_scheduler(root, poll_interval=0.05) is worker
        assert worker.running
        assert recorder.called.wait(MAX_WAIT_S), f"The scheduler thread did not run the due task in {MAX_WAIT_S} s."
        deadline = time.monotonic() + MAX_WAIT_S
        while task_info(catalog, KIND, 1)["runs"] != 1:
            assert time.monotonic() < deadline, "The scheduler thread ran the task but never recorded it."
            time.sleep(POLL_S)
    finally:
        worker.stop(timeout=MAX_WAIT_S)

    assert not worker.running
    assert recorder.calls[0][0] == 1
    assert len(recorder.calls) == 1
    restarted = start_scheduler(root, poll_interval=0.05)
    assert restarted is not worker
    restarted.stop(timeout=MAX_WAIT_S)
    assert not restarted.running


# -- worker processes ----------------------------------------------------------------------------


@dataclass
class Child:
    """A scheduler_worker.py process and its output file."""

    name: str
    process: subprocess.Popen[bytes]
    output: Path

    def tail(self, lines: int = 40) -> str:
        text = self.output.read_text(encoding="utf-8", errors="replace") if self.output.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class HandlerFiles:
    """The files that the "test" handlers of all children append to."""

    started: Path
    log: Path

    def started_lines(self) -> list[list[str]]:
        return _read_lines(self.started)

    def log_lines(self) -> list[list[str]]:
        return _read_lines(self.log)


def _read_lines(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture
def files(tmp_path: Path) -> HandlerFiles:
    return HandlerFiles(started=tmp_path / "started.txt", log=tmp_path / "log.txt")


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        if child.process.poll() is None:
            child.process.kill()
            child.process.wait()


def _start_child(
    tmp_path: Path,
    children: list[Child],
    name: str,
    root: Path,
    files: HandlerFiles,
    *,
    sleep: dict[int, float] | None = None,
    once: bool = False,
) -> Child:
    config = {"started": str(files.started), "log": str(files.log), "sleep": {str(k): v for k, v in (sleep or {}).items()}}
    config_path = tmp_path / f"{name}.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    command = [sys.executable, str(WORKER), str(config_path), "worker", "--root", str(root), "--poll-interval", "0.05"]
    if once:
        command.append("--once")
    env = {**os.environ, scheduler.LEASE_ENV: CHILD_LEASE_S}
    output = tmp_path / f"{name}.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    child = Child(name, process, output)
    children.append(child)
    return child


def _wait_until(condition: Callable[[], bool], children: list[Child], what: str) -> None:
    """Poll until ``condition()`` holds; fail if a running child exits first or MAX_WAIT_S passes."""
    deadline = time.monotonic() + MAX_WAIT_S
    while not condition():
        exited = [c for c in children if c.process.poll() is not None and c.process.returncode != -signal.SIGKILL]
        if exited:
            details = "\n".join(f"--- {c.name} (status {c.process.returncode}):\n{c.tail()}" for c in exited)
            pytest.fail(f"A worker exited while waiting for {what}:\n{details}")
        if time.monotonic() > deadline:
            details = "\n".join(f"--- {c.name}:\n{c.tail()}" for c in children)
            pytest.fail(f"Timed out after {MAX_WAIT_S} s waiting for {what}.\n{details}")
        time.sleep(POLL_S)


def _stop(child: Child, signum: int = signal.SIGTERM) -> int:
    """Send ``signum`` and return the exit status; fail if the child outlives MAX_WAIT_S."""
    child.process.send_signal(signum)
    try:
        return child.process.wait(timeout=MAX_WAIT_S)
    except subprocess.TimeoutExpired:
        child.process.kill()
        pytest.fail(f"{child.name} was still running {MAX_WAIT_S} s after {signal.Signals(signum).name}:\n{child.tail()}")


@pytest.mark.slow
def test_worker_once_runs_missed_task(
    tmp_path: Path, root: Path, catalog: Catalog, files: HandlerFiles, children: list[Child]
) -> None:
    ensure_task(catalog, KIND, 1, "every 10m", now=utcnow() - dt.timedelta(hours=3))
    missed_due = task_info(catalog, KIND, 1)["next_due_at"]

    started_at = utcnow()
    child = _start_child(tmp_path, children, "once", root, files, once=True)
    returncode = child.process.wait(timeout=MAX_WAIT_S)
    info = task_info(catalog, KIND, 1)

    assert returncode == 0, child.tail()
    assert files.log_lines() == [["1", missed_due.isoformat(), str(child.process.pid)]]
    assert info["runs"] == 1
    assert info["next_due_at"] > started_at
    assert "Running test 1 due at" in child.tail()
    assert "stopped" in child.tail()


@pytest.mark.slow
def test_two_workers_run_each_due_time_once(
    tmp_path: Path, root: Path, catalog: Catalog, files: HandlerFiles, children: list[Child]
) -> None:
    targets = (1, 2)
    for target in targets:
        ensure_task(catalog, KIND, target, "every 1s")
    sleeps = {target: 0.2 for target in targets}
    workers = [_start_child(tmp_path, children, f"worker-{i}", root, files, sleep=sleeps) for i in range(2)]

    runs_per_target = 4
    _wait_until(
        lambda: all(sum(1 for line in files.log_lines() if line[0] == str(t)) >= runs_per_target for t in targets),
        workers,
        f"{runs_per_target} runs of each task",
    )
    returncodes = [_stop(worker) for worker in workers]

    assert returncodes == [0, 0], "\n".join(w.tail() for w in workers)
    lines = files.log_lines()
    due_times = [(target, due) for target, due, _ in lines]
    duplicates = sorted({item for item in due_times if due_times.count(item) > 1})
    assert not duplicates, f"These (target, due time) pairs ran more than once: {duplicates}"
    for target in targets:
        info = task_info(catalog, KIND, target)
        ran = sum(1 for line in lines if line[0] == str(target))
        assert info["runs"] == ran, f"target {target}"
        assert info["failures"] == 0, f"target {target}"
        assert info["lease_owner"] is None, f"target {target}"
    pids = {pid for _, _, pid in lines}
    print(f"{len(lines)} runs by {len(pids)} of 2 workers")


@pytest.mark.slow
def test_heartbeat_keeps_lease_of_long_task(
    tmp_path: Path, root: Path, catalog: Catalog, files: HandlerFiles, children: list[Child]
) -> None:
    ensure_task(catalog, KIND, 1, "hourly", now=utcnow() - dt.timedelta(hours=2))
    # The run lasts more than twice the 2 s lease, so only lease renewals keep the other worker off.
    workers = [_start_child(tmp_path, children, f"worker-{i}", root, files, sleep={1: 5.0}) for i in range(2)]

    _wait_until(lambda: task_info(catalog, KIND, 1)["runs"] >= 1, workers, "the task to finish")
    returncodes = [_stop(worker) for worker in workers]

    assert returncodes == [0, 0], "\n".join(w.tail() for w in workers)
    assert len(files.started_lines()) == 1, f"The task started more than once: {files.started_lines()}"
    assert len(files.log_lines()) == 1
    assert task_info(catalog, KIND, 1)["runs"] == 1


@pytest.mark.slow
def test_killed_worker_task_completed_by_other(
    tmp_path: Path, root: Path, catalog: Catalog, files: HandlerFiles, children: list[Child]
) -> None:
    ensure_task(catalog, KIND, 1, "hourly", now=utcnow() - dt.timedelta(hours=2))
    due = task_info(catalog, KIND, 1)["next_due_at"]

    doomed = _start_child(tmp_path, children, "doomed", root, files, sleep={1: 600})
    _wait_until(lambda: len(files.started_lines()) == 1, [doomed], "the first worker to start the task")
    assert task_info(catalog, KIND, 1)["lease_owner"] is not None
    doomed.process.send_signal(signal.SIGKILL)
    assert doomed.process.wait(timeout=MAX_WAIT_S) == -signal.SIGKILL

    survivor = _start_child(tmp_path, children, "survivor", root, files)
    _wait_until(lambda: task_info(catalog, KIND, 1)["runs"] >= 1, [survivor], "the second worker to record the run")
    returncode = _stop(survivor)
    info = task_info(catalog, KIND, 1)

    assert returncode == 0, survivor.tail()
    assert files.started_lines() == [
        ["1", due.isoformat(), str(doomed.process.pid)],
        ["1", due.isoformat(), str(survivor.process.pid)],
    ]
    assert files.log_lines() == [["1", due.isoformat(), str(survivor.process.pid)]]
    assert info["runs"] == 1
    assert info["failures"] == 0
    assert info["last_status"] == "succeeded"
    assert info["last_due_at"] == due
    assert info["lease_owner"] is None
    assert info["next_due_at"] > utcnow()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_finishes_running_task(
    tmp_path: Path, root: Path, catalog: Catalog, files: HandlerFiles, children: list[Child], signum: int
) -> None:
    ensure_task(catalog, KIND, 1, "hourly", now=utcnow() - dt.timedelta(hours=2))
    ensure_task(catalog, KIND, 2, "hourly", now=utcnow() - dt.timedelta(hours=1))
    child = _start_child(tmp_path, children, "worker", root, files, sleep={1: 2.0})

    _wait_until(lambda: len(files.started_lines()) == 1, [child], "the worker to start the task")
    returncode = _stop(child, signum)
    info = task_info(catalog, KIND, 1)

    assert returncode == 0, child.tail()
    assert [line[0] for line in files.log_lines()] == ["1"]
    assert info["runs"] == 1
    assert info["last_status"] == "succeeded"
    assert info["lease_owner"] is None
    # The stop request came before task 2 was claimed, so it is left for the next worker.
    assert task_info(catalog, KIND, 2)["runs"] == 0
    assert f"Received {signal.Signals(signum).name}" in child.tail()
    assert "stopped" in child.tail()
