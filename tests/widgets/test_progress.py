"""JobProgress: live updates from a background thread, cancel, and the summary of a finished run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pandas as pd
import pytest
from flight_data import FLIGHT_ROWS, flight_rows

from raise_jupyter import FeatureStore
from raise_jupyter.jobs import FeatureGroupSource, JobRun, Target
from raise_jupyter.transforms import python_transform
from raise_jupyter.widgets import JobProgress

BATCH_ROWS = 25
BATCHES = FLIGHT_ROWS // BATCH_ROWS
# Update interval of the widgets under test, shorter than the default so that tests run fast.
INTERVAL = 0.05


def to_km(batch: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"flight_id": batch["flight_id"], "sched_dep": batch["sched_dep"], "distance_km": batch["distance"] * 1.609})


def start_run(fs: FeatureStore, transform: Callable[[pd.DataFrame], pd.DataFrame]) -> JobRun:
    """Start a job that converts the distances of ``flights`` in batches of BATCH_ROWS rows."""
    job = fs.create_job(
        "distance-km",
        [FeatureGroupSource("flights", columns=["distance"])],
        python_transform(transform, batch_rows=BATCH_ROWS),
        Target("flights-km"),
        replace=True,
    )
    return job.run(full=True)


def finish(progress: JobProgress, run: JobRun) -> None:
    """Wait for the run and for the widget's last update."""
    run.wait(60)
    progress._thread.join(60)
    assert not progress._thread.is_alive()


def slow(batch: pd.DataFrame) -> pd.DataFrame:
    time.sleep(0.1)
    return to_km(batch)


class Gate:
    """A transform that blocks in its first batch until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        self.entered.set()
        assert self.opened.wait(60), "the test never opened the gate"
        return to_km(batch)


# -- live updates -------------------------------------------------------------------------------


def test_rows_done_increase_over_time(recorder, fs: FeatureStore, flights) -> None:
    run = start_run(fs, slow)

    progress = JobProgress(run, interval=INTERVAL)
    finish(progress, run)

    done = recorder.updates(progress, "rows_done")
    assert done == sorted(done)
    assert len(set(done)) >= 3
    assert done[-1] == FLIGHT_ROWS
    assert set(done) <= {BATCH_ROWS * i for i in range(BATCHES + 1)}
    assert progress.rows_total == FLIGHT_ROWS


def test_updates_sent_while_main_thread_busy(recorder, fs: FeatureStore, flights) -> None:
    gate = Gate()
    run = start_run(fs, gate)
    progress = JobProgress(run, interval=INTERVAL)
    assert gate.entered.wait(60)
    before = len(recorder.of(progress))

    time.sleep(1.0)  # a busy cell: the kernel's main thread does not return

    during = recorder.of(progress)[before:]
    gate.opened.set()
    finish(progress, run)
    assert len(during) >= 2
    assert all(m.kind == "comm_msg" for m in during)
    assert all("elapsed_seconds" in m.state for m in during)
    elapsed = [m.state["elapsed_seconds"] for m in during]
    assert elapsed == sorted(elapsed)


def test_phase_and_status_sent(recorder, fs: FeatureStore, flights) -> None:
    gate = Gate()
    run = start_run(fs, gate)
    progress = JobProgress(run, interval=INTERVAL)
    assert gate.entered.wait(60)

    progress.update()
    gate.opened.set()
    finish(progress, run)

    assert "transforming" in recorder.updates(progress, "phase")
    assert recorder.updates(progress, "status")[0] == "running"
    assert recorder.updates(progress, "status")[-1] == "succeeded"
    assert progress.job == "distance-km"
    assert progress.run_id == run.id


# -- outcomes -----------------------------------------------------------------------------------


def test_success_summary_names_rows(recorder, fs: FeatureStore, flights) -> None:
    run = start_run(fs, to_km)

    progress = JobProgress(run, interval=INTERVAL)
    finish(progress, run)

    target = fs.get_feature_group("flights-km")
    assert progress.status == "succeeded"
    assert progress.rows_done == FLIGHT_ROWS
    assert progress.eta_seconds is None
    assert progress.error == ""
    assert progress.summary.startswith(f"Succeeded: {FLIGHT_ROWS:,} rows in ")
    assert progress.summary.endswith(f"; target version {target.version}.")
    assert target.count() == FLIGHT_ROWS


def test_cancel_message_cancels_run(recorder, fs: FeatureStore, flights) -> None:
    first = start_run(fs, to_km).wait(60)
    assert first.status == "succeeded"
    target = fs.get_feature_group("flights-km")
    version, rows = target.version, target.count()
    flights.ingest(flight_rows(FLIGHT_ROWS, 10))
    gate = Gate()
    run = start_run(fs, gate)
    progress = JobProgress(run, interval=INTERVAL)
    assert gate.entered.wait(60)

    progress._handle_custom_msg({"type": "cancel"}, [])
    gate.opened.set()
    finish(progress, run)

    assert run.status == "cancelled"
    assert progress.cancel_requested is True
    assert progress.status == "cancelled"
    assert progress.rows_done == BATCH_ROWS
    assert progress.summary.startswith("Cancelled after ")
    assert progress.summary.endswith(f"at {BATCH_ROWS:,} rows; the target is unchanged.")
    assert target.version == version
    assert target.count() == rows


def test_failing_run_shows_error(recorder, fs: FeatureStore, flights) -> None:
    def broken(batch: pd.DataFrame) -> pd.DataFrame:
        raise ValueError("the model exploded")

    run = start_run(fs, broken)

    progress = JobProgress(run, interval=INTERVAL)
    finish(progress, run)

    assert progress.status == "failed"
    assert progress.error == "ValueError: the model exploded"
    assert progress.summary.startswith("Failed after ")
    assert progress.summary.endswith(": ValueError: the model exploded")
    assert "Traceback" in run.error


def test_finished_run_shown_at_once(recorder, fs: FeatureStore, flights) -> None:
    run = start_run(fs, to_km).wait(60)

    progress = JobProgress(run, interval=INTERVAL)

    # The constructor copies the run's state before the thread starts following it.
    assert progress.status == "succeeded"
    assert progress.rows_done == FLIGHT_ROWS
    assert progress.summary.startswith(f"Succeeded: {FLIGHT_ROWS:,} rows")
    # The opening message carries the final state, so the browser never shows it as running.
    assert recorder.updates(progress, "status")[0] == "succeeded"
    assert recorder.updates(progress, "summary")[0] == progress.summary


def test_close_stops_updates(recorder, fs: FeatureStore, flights) -> None:
    gate = Gate()
    run = start_run(fs, gate)
    progress = JobProgress(run, interval=INTERVAL)
    assert gate.entered.wait(60)

    progress.close()
    progress._thread.join(60)
    sent = len(recorder.messages)
    gate.opened.set()
    run.wait(60)

    assert not progress._thread.is_alive()
    assert run.status == "succeeded"
    assert len(recorder.messages) == sent


@pytest.mark.parametrize("content", [{"type": "pause"}, ["cancel"], {}])
def test_other_messages_do_not_cancel(recorder, fs: FeatureStore, flights, content: object) -> None:
    gate = Gate()
    run = start_run(fs, gate)
    progress = JobProgress(run, interval=INTERVAL)
    assert gate.entered.wait(60)

    progress._handle_custom_msg(content, [])
    gate.opened.set()
    finish(progress, run)

    assert progress.cancel_requested is False
    assert run.status == "succeeded"
