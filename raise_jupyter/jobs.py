"""Jobs: a transform from source feature groups into a target group, run in the background.

``job.run()`` checks the sources, columns and target first (before any model loads), then runs
in a thread of the current process and returns a ``JobRun`` at once. The run reads the source
rows; an incremental run reads only those written since the last successful run, found by their
``_raise_seq``. It transforms them batch by batch with progress and cancellation between
batches, and writes the whole output to the target in one commit at the end. A cancelled or failed run
therefore leaves the target as it was. Scheduled runs execute in the scheduler worker.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import threading
import time
import traceback
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from raise_jupyter import access, audit, definitions, names, scheduler
from raise_jupyter.access import guarded
from raise_jupyter.dtypes import infer_dtype
from raise_jupyter.engine import expressions, offline, reader, tables
from raise_jupyter.engine.catalog import as_utc, utcnow
from raise_jupyter.engine.duck import connection, quote
from raise_jupyter.errors import ConflictError, DefinitionError, NotFoundError, RaiseError
from raise_jupyter.schedule import parse_schedule
from raise_jupyter.transforms import (
    EmbeddingInference,
    PythonTransform,
    SqlTransform,
    Transform,
    check_transform,
    transform_from_spec,
)

if TYPE_CHECKING:
    import pandas

    from raise_jupyter.group import FeatureGroup
    from raise_jupyter.store import FeatureStore

logger = logging.getLogger(__name__)

KIND = "job"
MODES = ("upsert", "append")
# How often a running job writes its progress to the catalog, in seconds.
PROGRESS_INTERVAL_S = 0.5

_runs_lock = threading.Lock()
_active_runs: dict[int, JobRun] = {}


class JobCancelled(RaiseError):
    """A job run was cancelled between two batches."""


@dataclass(frozen=True)
class FeatureGroupSource:
    """Rows of one feature group that a job reads.

    Parameters
    ----------
    group
        Feature group name.
    columns
        Columns to read (keys and event time are always read); all by default.
    where
        A row filter in DuckDB SQL.
    """

    group: str
    columns: tuple[str, ...] | None = None
    where: str | None = None

    def __init__(self, group: str, columns: Sequence[str] | None = None, where: str | None = None) -> None:
        names.validate_group_name(group)
        if isinstance(columns, str):
            columns = [columns]
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "columns", tuple(columns) if columns is not None else None)
        object.__setattr__(self, "where", where)

    def to_spec(self) -> dict[str, Any]:
        return {"group": self.group, "columns": list(self.columns) if self.columns is not None else None, "where": self.where}


@dataclass(frozen=True)
class Target:
    """The feature group a job writes, created with the source's keys and event time when missing.

    ``mode="upsert"`` (the default) replaces rows with equal keys and event time, so running a
    job again does not duplicate rows; ``mode="append"`` adds every output row.
    """

    feature_group: str
    mode: str = "upsert"

    def __post_init__(self) -> None:
        names.validate_group_name(self.feature_group)
        if self.mode not in MODES:
            raise DefinitionError(f"Target mode must be 'upsert' or 'append', got {self.mode!r}.")

    def to_spec(self) -> dict[str, Any]:
        return {"feature_group": self.feature_group, "mode": self.mode}


@dataclass
class Progress:
    """How far a run is: rows done of the total, speed, estimated time left and device."""

    status: str
    rows_done: int
    rows_total: int | None
    rows_per_second: float | None
    eta_seconds: float | None
    elapsed_seconds: float
    device: str | None
    phase: str | None = None

    def __str__(self) -> str:
        total = f"/{self.rows_total:,}" if self.rows_total is not None else ""
        speed = f", {self.rows_per_second:,.0f} rows/s" if self.rows_per_second else ""
        eta = f", about {self.eta_seconds:,.0f} s left" if self.eta_seconds is not None and self.status == "running" else ""
        device = f" on {self.device}" if self.device else ""
        phase = f" ({self.phase})" if self.phase and self.status == "running" else ""
        return f"{self.status}{phase}: {self.rows_done:,}{total} rows{speed}{eta}{device}"


@dataclass
class _RunState:
    """State of a run, updated by its thread and read through the JobRun, in this process."""

    status: str = "running"
    # "reading sources", "loading model", "transforming" or "writing target", while running.
    phase: str | None = None
    rows_done: int = 0
    rows_total: int | None = None
    device: str | None = None
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    target_version: int | None = None


# Runs started in this process. At interpreter exit they are cancelled and awaited, because a
# daemon thread still inside DuckDB or torch during shutdown aborts the process.
_ACTIVE_RUNS: weakref.WeakSet[JobRun] = weakref.WeakSet()
EXIT_WAIT_S = 60.0


def _cancel_runs_at_exit() -> None:
    for run in list(_ACTIVE_RUNS):
        if run._thread is not None and run._thread.is_alive():
            logger.warning("Cancelling run %d of job %s because the process is exiting", run.id, run.job_name)
            run.cancel()
            run._thread.join(EXIT_WAIT_S)


atexit.register(_cancel_runs_at_exit)


class JobRun:
    """One run of a job; see ``Job.run``."""

    def __init__(self, store: FeatureStore, run_id: int, job_name: str) -> None:
        self._store = store
        self.id = run_id
        self.job_name = job_name
        self._state = _RunState()
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def status(self) -> str:
        """``running``, ``succeeded``, ``failed`` or ``cancelled``."""
        return self._state.status

    @property
    def error(self) -> str | None:
        """The error and its traceback of a failed run."""
        return self._state.error

    @property
    def target_version(self) -> int | None:
        """Table version of the target that contains the output of a successful run."""
        return self._state.target_version

    @property
    def progress(self) -> Progress:
        state = self._state
        elapsed = (state.finished or time.monotonic()) - state.started
        speed = state.rows_done / elapsed if elapsed > 0 and state.rows_done else None
        eta = None
        if speed and state.rows_total is not None:
            eta = max(state.rows_total - state.rows_done, 0) / speed
        return Progress(state.status, state.rows_done, state.rows_total, speed, eta, elapsed, state.device, state.phase)

    def wait(self, timeout: float | None = None) -> JobRun:
        """Block until the run ends or ``timeout`` seconds pass; return the run."""
        self._done.wait(timeout)
        return self

    @guarded(access.CANCEL_JOB, kind=KIND, name=lambda self, _: self.job_name)
    def cancel(self) -> JobRun:
        """Ask the run to stop before its next batch; the target stays as it was."""
        self._cancel.set()
        return self

    def __repr__(self) -> str:
        return f"JobRun({self.job_name!r} #{self.id}, {self.progress})"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from raise_jupyter.display import rich_bundle

        def widget() -> Any:
            from raise_jupyter.widgets import JobProgress

            return JobProgress(self)

        return rich_bundle(widget, text=repr(self), html=self._repr_html_)

    def _repr_html_(self) -> str:
        import html

        progress = self.progress
        if progress.rows_total:
            share = progress.rows_done / progress.rows_total
        else:
            share = 1.0 if self._done.is_set() else 0.0
        bar = f'<progress value="{share:.4f}" max="1" style="width: 20em"></progress>'
        error = f"<pre>{html.escape(self.error)}</pre>" if self.error else ""
        return f"<p>Job {html.escape(self.job_name)} run #{self.id}: {bar} {html.escape(str(progress))}</p>{error}"


class Job:
    """A job of a feature store; see ``FeatureStore.create_job``."""

    def __init__(self, store: FeatureStore, job_id: int, transform: Transform | None = None) -> None:
        self._store = store
        self._id = job_id
        self._transform = transform

    def _row(self) -> Any:
        with self._store._catalog.read() as conn:
            row = conn.execute(sa.select(tables.jobs).where(tables.jobs.c.id == self._id)).first()
        if row is None:
            raise NotFoundError(f"Job id {self._id} was deleted; create it again with fs.create_job().")
        return row

    @property
    def name(self) -> str:
        return self._row().name

    @property
    def schedule(self) -> str | None:
        return self._row().schedule

    @property
    def transform(self) -> Transform:
        if self._transform is not None:
            return self._transform
        return transform_from_spec(self._row().transform)

    @guarded(access.RUN_JOB, kind=KIND)
    def run(self, *, full: bool = False) -> JobRun:
        """Start a run in a background thread of this process and return it at once.

        Parameters
        ----------
        full
            Process every source row; by default only the rows written since the last
            successful run (all rows at the first run).
        """
        plan = _plan(self._store, self._row(), self._transform)
        run = _start_run(self._store, self._id, plan.job_name, mode="full" if full else "incremental", due_at=None)
        run._thread = threading.Thread(
            target=_execute, args=(self._store, run, plan, full), name=f"raise-job-{plan.job_name}", daemon=True
        )
        _ACTIVE_RUNS.add(run)
        run._thread.start()
        return run

    @guarded(access.READ, kind=KIND)
    def runs(self) -> pandas.DataFrame:
        """Return the run history, newest first."""
        import pandas as pd

        runs = tables.job_runs
        with self._store._catalog.read() as conn:
            rows = conn.execute(sa.select(runs).where(runs.c.job_id == self._id).order_by(runs.c.id.desc())).all()
        return pd.DataFrame(
            {
                "run": [r.id for r in rows],
                "status": [r.status for r in rows],
                "mode": [r.mode for r in rows],
                "started_at": [as_utc(r.started_at) for r in rows],
                "finished_at": [as_utc(r.finished_at) for r in rows],
                "rows_done": [r.rows_done for r in rows],
                "rows_total": [r.rows_total for r in rows],
                "device": [r.device for r in rows],
                "target_version": [r.target_version for r in rows],
                "due_at": [as_utc(r.due_at) for r in rows],
                "error": [r.error for r in rows],
            }
        )

    @guarded(access.DELETE, kind=KIND)
    def delete(self) -> None:
        """Delete the job, its run history and its schedule; the target group stays."""
        with self._store._catalog.write() as conn:
            scheduler.remove_task(conn, KIND, self._id)
            conn.execute(tables.jobs.delete().where(tables.jobs.c.id == self._id))
        logger.info("Deleted job id %d", self._id)

    def __repr__(self) -> str:
        row = self._row()
        return f"Job({row.name!r}, {row.transform.get('kind')}, target={row.target['feature_group']!r}, schedule={row.schedule!r})"

    def _repr_html_(self) -> str:
        import html

        row = self._row()
        sources = ", ".join(str(source.get("group")) for source in row.sources)
        return (
            f"<p><b>Job {html.escape(row.name)}</b>: {html.escape(str(row.transform.get('kind')))} from "
            f"{html.escape(sources)} into {html.escape(str(row.target['feature_group']))}, "
            f"schedule {html.escape(row.schedule or 'on demand')}</p>"
        )


# -- definition ---------------------------------------------------------------------------------


def create_job(
    store: FeatureStore,
    name: str,
    sources: Sequence[FeatureGroupSource] | FeatureGroupSource,
    transform: Transform,
    target: Target | str,
    schedule: Any,
    *,
    replace: bool,
) -> Job:
    """Create or return a job; see ``FeatureStore.create_job``."""
    job_name = _job_name(name)
    if isinstance(sources, FeatureGroupSource):
        sources = [sources]
    if not sources or not all(isinstance(s, FeatureGroupSource) for s in sources):
        raise DefinitionError(f"sources must be a list of FeatureGroupSource, got {sources!r}.")
    transform = check_transform(transform)
    if isinstance(target, str):
        target = Target(target)
    if not isinstance(target, Target):
        raise DefinitionError(f"target must be a Target such as Target(feature_group='user-embeddings'), got {target!r}.")
    schedule_text = str(parse_schedule(schedule)) if schedule is not None else None
    if schedule_text is not None and isinstance(transform, PythonTransform) and transform.reference is None:
        raise DefinitionError(
            "A scheduled job runs in worker processes, which cannot import a function defined in a notebook "
            "or script; define the python_transform function in a module, or drop the schedule."
        )

    values = {
        "sources": [s.to_spec() for s in sources],
        "transform": transform.to_spec(),
        "target": target.to_spec(),
        "schedule": schedule_text,
    }
    # The same checks as a run's, so a misspelled column fails here and not hours later.
    _plan(store, SimpleNamespace(id=0, name=job_name, **values), transform)
    job_id = _save(store, job_name, values, replace=replace)
    return Job(store, job_id, transform if isinstance(transform, PythonTransform) else None)


def _job_name(name: object) -> str:
    try:
        return names.validate_live_table_name(name)
    except DefinitionError as error:
        raise DefinitionError(str(error).replace("Live table name", "Job name")) from None


def _save(store: FeatureStore, name: str, values: dict[str, Any], *, replace: bool) -> int:
    jobs = tables.jobs
    now = utcnow()
    with store._catalog.write() as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.namespace == store.namespace, jobs.c.name == name)).first()
        if row is not None:
            changed = [key for key, value in values.items() if getattr(row, key) != value]
            if not changed:
                audit.unchanged()
                return int(row.id)
            if not replace:
                raise ConflictError(
                    f"Job {name!r} exists with a different {', '.join(changed)}; pass replace=True to redefine it, "
                    "or choose another name."
                )
            conn.execute(jobs.update().where(jobs.c.id == row.id).values(**values, defined_by=store.user, updated_at=now))
            job_id = int(row.id)
        else:
            result = conn.execute(
                jobs.insert().values(namespace=store.namespace, name=name, defined_by=store.user, created_at=now, updated_at=now, **values)
            )
            job_id = int(result.inserted_primary_key[0])
        if values["schedule"] is None:
            scheduler.remove_task(conn, KIND, job_id)
        else:
            scheduler.ensure_task(conn, KIND, job_id, values["schedule"])
    logger.info("Saved job %s (id %d)", name, job_id)
    return job_id


def get_job(store: FeatureStore, name: str) -> Job:
    jobs = tables.jobs
    with store._catalog.read() as conn:
        job_id = conn.execute(sa.select(jobs.c.id).where(jobs.c.namespace == store.namespace, jobs.c.name == name)).scalar()
    if job_id is None:
        known = ", ".join(j.name for j in list_jobs(store)) or "(none)"
        raise NotFoundError(f"Job {name!r} not found in namespace {store.namespace!r}. Jobs: {known}.")
    return Job(store, int(job_id))


def list_jobs(store: FeatureStore) -> list[Job]:
    jobs = tables.jobs
    with store._catalog.read() as conn:
        ids = conn.execute(sa.select(jobs.c.id).where(jobs.c.namespace == store.namespace).order_by(jobs.c.name)).scalars()
        return [Job(store, int(i)) for i in ids]


# -- planning: every check before any model loads ------------------------------------------------


@dataclass
class _Source:
    group: FeatureGroup
    spec: FeatureGroupSource
    columns: list[str]


@dataclass
class _Plan:
    job_id: int
    job_name: str
    sources: list[_Source]
    transform: Transform
    target: Target
    keys: list[str]
    event_time: str | None


def _plan(store: FeatureStore, row: Any, transform: Transform | None) -> _Plan:
    transform = transform or transform_from_spec(row.transform)
    specs = [FeatureGroupSource(s["group"], s.get("columns"), s.get("where")) for s in row.sources]
    target = Target(**row.target)
    sources = [_check_source(store, spec) for spec in specs]
    first = sources[0].group
    record = first._record()
    keys = list(record.keys or [])
    if not keys:
        raise DefinitionError(f"Source group {first.name!r} has no keys; set them with group.set_keys(...) so outputs can be matched.")

    if isinstance(transform, (EmbeddingInference, PythonTransform)) and len(sources) != 1:
        raise DefinitionError(f"A {transform.kind} job reads exactly one source, got {len(sources)}; use sql_transform to combine groups.")
    if isinstance(transform, EmbeddingInference):
        _check_embedding(sources[0], transform)
    if isinstance(transform, SqlTransform):
        _check_sql(store, sources, transform, [*keys, *([record.event_time] if record.event_time else [])])
    _check_target(store, target, transform, keys)
    return _Plan(row.id, row.name, sources, transform, target, keys, record.event_time)


def _check_sql(store: FeatureStore, sources: list[_Source], transform: SqlTransform, required: list[str]) -> None:
    """Plan the query over empty tables of the sources' columns; raise on unknown names or missing keys."""
    import duckdb

    from raise_jupyter.store import _check_single_select

    _check_single_select(transform.query)
    empty = {}
    for source in sources:
        layout = definitions.layout_of(*source.group._load())
        empty[source.group.name] = layout.arrow_schema(source.columns).empty_table()
    cursor = connection(store.root).cursor()
    try:
        _register_sources(cursor, empty)
        columns = [row[0] for row in cursor.execute(f"DESCRIBE {transform.query}").fetchall()]
    except duckdb.Error as error:
        raise DefinitionError(f"The sql_transform query is invalid: {str(error).strip().splitlines()[0]}") from None
    finally:
        cursor.close()
    missing = [c for c in required if c not in columns]
    if missing:
        raise DefinitionError(f"The sql_transform query must return the key and event time columns {missing}; select them too.")


def _register_sources(cursor: Any, sources: dict[str, pa.Table]) -> None:
    """Make each source table queryable under its group name."""
    for index, (name, table) in enumerate(sources.items()):
        registered = f"__raise_source_{index}"
        cursor.register(registered, table)
        cursor.execute(f"CREATE OR REPLACE TEMP VIEW {quote(name)} AS SELECT * FROM {quote(registered)}")


def _check_source(store: FeatureStore, spec: FeatureGroupSource) -> _Source:
    group = store.get_feature_group(spec.group)
    layout = definitions.layout_of(*group._load())
    record = group._record()
    required = [*(record.keys or []), *([record.event_time] if record.event_time else [])]
    requested = list(spec.columns) if spec.columns is not None else list(layout.names)
    for column in requested:
        if column not in layout.names:
            raise NotFoundError(
                f"Source column {column!r} is not in group {group.name!r}.{expressions.suggest(column, layout.names)} "
                f"Columns: {', '.join(layout.names)}."
            )
    if spec.where is not None:
        expressions.check_filter(spec.where, layout)
    return _Source(group, spec, list(dict.fromkeys([*required, *requested])))


def _check_embedding(source: _Source, transform: EmbeddingInference) -> None:
    layout = definitions.layout_of(*source.group._load())
    if transform.input_column not in source.columns:
        raise NotFoundError(
            f"input_column {transform.input_column!r} is not read from group {source.group.name!r}."
            f"{expressions.suggest(transform.input_column, layout.names)} Columns: {', '.join(source.columns)}."
        )
    dtype = layout.dtype(transform.input_column)
    if dtype.name != "string":
        raise DefinitionError(f"input_column {transform.input_column!r} has dtype {dtype}; embedding_inference needs a string column.")


def _check_target(store: FeatureStore, target: Target, transform: Transform, keys: list[str]) -> None:
    existing = {g.name: g for g in store.list_feature_groups()}
    group = existing.get(target.feature_group)
    if group is None:
        return
    record = group._record()
    if target.mode == "upsert" and list(record.keys or []) != keys:
        raise DefinitionError(
            f"Target group {group.name!r} has keys {list(record.keys or [])}, but the source has {keys}; an upsert "
            "matches rows by keys, so use a target with the same keys or mode='append'."
        )
    if isinstance(transform, EmbeddingInference):
        layout = definitions.layout_of(*group._load())
        if transform.output_column in layout.names:
            dtype = layout.dtype(transform.output_column)
            if dtype.kind != "vector":
                raise DefinitionError(
                    f"Target feature {group.name}.{transform.output_column} has dtype {dtype}; embeddings need "
                    "float32[dim]. Choose another output_column."
                )


# -- running ------------------------------------------------------------------------------------


# A "running" run whose progress has not been written for this long belongs to a process that died.
STALE_RUN_S = 30.0


def _start_run(store: FeatureStore, job_id: int, job_name: str, *, mode: str, due_at: dt.datetime | None) -> JobRun:
    now = utcnow()
    with store._catalog.write() as conn:
        _claim_job(conn, job_id, job_name, now)
        result = conn.execute(
            tables.job_runs.insert().values(
                job_id=job_id, status="running", mode=mode, due_at=due_at, started_at=now, updated_at=now,
                worker=scheduler.make_owner_id(),
            )
        )
        run_id = int(result.inserted_primary_key[0])
        audit.record(
            store._actor, action=access.RUN_JOB.action, kind=KIND, name=job_name, namespace=store.namespace, outcome="ok",
            detail={"run": run_id, "event": "start", "mode": mode}, conn=conn,
        )
    run = JobRun(store, run_id, job_name)
    with _runs_lock:
        _active_runs[run_id] = run
    logger.info("Started run %d of job %s (%s)", run_id, job_name, mode)
    return run


def _claim_job(conn: sa.Connection, job_id: int, job_name: str, now: dt.datetime) -> None:
    """Raise ConflictError if a live run of the job exists; mark runs of dead processes abandoned."""
    runs = tables.job_runs
    running = conn.execute(sa.select(runs.c.id, runs.c.updated_at).where(runs.c.job_id == job_id, runs.c.status == "running")).all()
    for run_id, updated in running:
        if (now - as_utc(updated)).total_seconds() < STALE_RUN_S:
            raise ConflictError(
                f"Job {job_name!r} is already running (run {run_id}); wait for it or cancel it before starting another."
            )
        conn.execute(
            runs.update()
            .where(runs.c.id == run_id)
            .values(status="failed", finished_at=now, updated_at=now, error="abandoned: the process running it stopped reporting progress")
        )
        logger.warning("Marked run %d of job %s as failed: its process stopped reporting progress", run_id, job_name)


def _execute(store: FeatureStore, run: JobRun, plan: _Plan, full: bool) -> None:
    """Run a planned job to the end and record the outcome; errors are recorded, not raised."""
    reporter = threading.Thread(target=_report_progress, args=(store, run), name="raise-job-progress", daemon=True)
    reporter.start()
    positions: dict[str, int] = {}
    try:
        run._state.phase = "reading sources"
        tables_by_group, positions = _read_sources(store, plan, full)
        run._state.rows_total = sum(t.num_rows for t in tables_by_group.values())
        run._state.phase = "transforming"
        output = _transform(store, run, plan, tables_by_group)
        if run._cancel.is_set():
            raise JobCancelled("cancelled")
        if not _run_exists(store, run.id):
            # The job was deleted during the run, perhaps with its target group by a cascade;
            # writing now would create that group again.
            logger.warning("Job %s was deleted during run %d; its output is dropped", plan.job_name, run.id)
            raise JobCancelled("the job was deleted")
        run._state.phase = "writing target"
        run._state.target_version = _write_target(store, plan, output, tables_by_group)
        _finish(store, run, "succeeded", positions=positions)
    except JobCancelled:
        _finish(store, run, "cancelled")
    except Exception as error:
        logger.warning("Run %d of job %s failed: %s", run.id, plan.job_name, error)
        _finish(store, run, "failed", error="".join(traceback.format_exception(error)).strip())
    finally:
        run._done.set()
        with _runs_lock:
            _active_runs.pop(run.id, None)


def _report_progress(store: FeatureStore, run: JobRun) -> None:
    """Write the run's progress to the catalog every PROGRESS_INTERVAL_S, for other processes."""
    while not run._done.wait(PROGRESS_INTERVAL_S):
        state = run._state
        try:
            with store._catalog.write() as conn:
                conn.execute(
                    tables.job_runs.update()
                    .where(tables.job_runs.c.id == run.id, tables.job_runs.c.status == "running")
                    .values(rows_done=state.rows_done, rows_total=state.rows_total, device=state.device, updated_at=utcnow())
                )
        except sa.exc.OperationalError as error:  # a busy catalog delays a report, nothing more
            logger.debug("Progress of run %d not recorded: %s", run.id, error)


def _finish(store: FeatureStore, run: JobRun, status: str, *, positions: dict[str, int] | None = None, error: str | None = None) -> None:
    state = run._state
    state.status, state.error, state.finished = status, error, time.monotonic()
    with store._catalog.write() as conn:
        conn.execute(
            tables.job_runs.update()
            .where(tables.job_runs.c.id == run.id)
            .values(
                status=status, finished_at=utcnow(), updated_at=utcnow(), rows_done=state.rows_done,
                rows_total=state.rows_total, device=state.device, error=error,
                target_version=state.target_version, source_positions=positions,
            )
        )
        audit.record(
            store._actor, action=access.RUN_JOB.action, kind=KIND, name=run.job_name, namespace=store.namespace,
            outcome="failed" if status == "failed" else "ok",
            detail={"run": run.id, "event": "end", "status": status, "rows": state.rows_done}, conn=conn,
        )
    logger.info("Run %d of job %s %s: %s", run.id, run.job_name, status, run.progress)


def _last_positions(store: FeatureStore, job_id: int) -> dict[str, int]:
    """Return the source positions of the last successful run since the job was last (re)defined."""
    runs = tables.job_runs
    with store._catalog.read() as conn:
        defined = conn.execute(sa.select(tables.jobs.c.updated_at).where(tables.jobs.c.id == job_id)).scalar()
        positions = conn.execute(
            sa.select(runs.c.source_positions)
            .where(runs.c.job_id == job_id, runs.c.status == "succeeded", runs.c.started_at >= defined)
            .order_by(runs.c.id.desc())
            .limit(1)
        ).scalar()
    return dict(positions or {})


def _read_sources(store: FeatureStore, plan: _Plan, full: bool) -> tuple[dict[str, pa.Table], dict[str, int]]:
    """Read each source's rows (new ones only unless ``full``) and the highest ``_raise_seq`` seen."""
    previous = {} if full else _last_positions(store, plan.job_id)
    tables_by_group: dict[str, pa.Table] = {}
    positions: dict[str, int] = {}
    for source in plan.sources:
        group = source.group
        record, records = group._load()
        layout = definitions.layout_of(record, records)
        files = group._files(None, record)
        sql = reader.relation_sql(store.root, layout, files, columns=source.columns, where=source.spec.where, include_seq=True)
        # Positions are kept by table path, which a group created again under the same name
        # does not share, so its rows are all read again.
        position_key = record.table_path
        after = previous.get(position_key)
        if after is not None:
            sql = f"SELECT * FROM ({sql}) AS s WHERE {quote(offline.SEQ_COLUMN)} > {int(after)}"
        if plan.target.mode == "upsert":
            # Rows with equal keys and event time would replace each other in the target anyway:
            # keep the one ingested last, before any work is spent on the others.
            partition = ", ".join(quote(c) for c in [*(record.keys or []), *([record.event_time] if record.event_time else [])])
            sql = (
                f"SELECT * FROM ({sql}) AS d QUALIFY row_number() OVER "
                f"(PARTITION BY {partition} ORDER BY {quote(offline.SEQ_COLUMN)} DESC) = 1"
            )
        table = group._read(sql, None, files.version)
        seq = table.column(offline.SEQ_COLUMN)
        highest = pc.max(seq).as_py() if table.num_rows else None
        positions[position_key] = max(v for v in (highest, after, -1) if v is not None)
        tables_by_group[group.name] = table.drop_columns([offline.SEQ_COLUMN])
    # NOTE: an ingest that took its batch number before this read but commits after it has
    # lower _raise_seq values than rows already read, so an incremental run can miss it.
    return tables_by_group, positions


def _transform(store: FeatureStore, run: JobRun, plan: _Plan, sources: dict[str, pa.Table]) -> pa.Table:
    transform = plan.transform
    if isinstance(transform, EmbeddingInference):
        return _embed(run, plan, transform, next(iter(sources.values())))
    if isinstance(transform, SqlTransform):
        return _run_sql(store, run, transform, sources)
    return _run_python(run, transform, next(iter(sources.values())))


def _embed(run: JobRun, plan: _Plan, transform: EmbeddingInference, source: pa.Table) -> pa.Table:
    from raise_jupyter import inference

    run._state.phase = "loading model"
    model = inference.load_embedding_model(
        transform.model_uri,
        gpu_type=transform.gpu_type,
        strict=transform.strict,
        max_length=transform.max_length,
        normalize=transform.normalize,
        precision=transform.precision,
    )
    run._state.device = model.device
    run._state.phase = "embedding"

    def on_batch(rows: int) -> None:
        run._state.rows_done += rows

    texts = source.column(transform.input_column).to_pylist()
    try:
        vectors = model.embed(texts, batch_size=transform.batch_size, on_batch=on_batch, cancel=run._cancel)
    except inference.Cancelled:
        raise JobCancelled("cancelled") from None
    keep = [*plan.keys, *([plan.event_time] if plan.event_time else [])]
    flat = pa.array(vectors.reshape(-1), pa.float32())
    # A missing text gets a null vector, not the NaN row that embed() returns for it.
    missing = pa.array([text is None for text in texts], pa.bool_())
    embedded = pa.FixedSizeListArray.from_arrays(flat, model.dimension, mask=missing)
    return source.select(keep).append_column(transform.output_column, embedded)


def _run_sql(store: FeatureStore, run: JobRun, transform: SqlTransform, sources: dict[str, pa.Table]) -> pa.Table:
    from raise_jupyter.store import _check_single_select

    _check_single_select(transform.query)
    cursor = connection(store.root).cursor()
    try:
        _register_sources(cursor, sources)
        output = cursor.execute(transform.query).to_arrow_table()
    finally:
        cursor.close()
    run._state.rows_done = run._state.rows_total or 0
    return output


def _run_python(run: JobRun, transform: PythonTransform, source: pa.Table) -> pa.Table:
    from raise_jupyter.engine import sources as input_sources

    parts = []
    for start in range(0, max(source.num_rows, 1), transform.batch_rows):
        if run._cancel.is_set():
            raise JobCancelled("cancelled")
        batch = source.slice(start, transform.batch_rows)
        result = transform.function(batch.to_pandas())
        parts.append(input_sources.to_arrow_table(result).replace_schema_metadata(None))
        run._state.rows_done += batch.num_rows
    return pa.concat_tables(parts, promote_options="permissive") if parts else pa.table({})


def _run_exists(store: FeatureStore, run_id: int) -> bool:
    runs = tables.job_runs
    with store._catalog.read() as conn:
        return conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first() is not None


def _write_target(store: FeatureStore, plan: _Plan, output: pa.Table, sources: dict[str, pa.Table]) -> int | None:
    """Create the target group if needed and write ``output`` in one commit; return its version."""
    required = [*plan.keys, *([plan.event_time] if plan.event_time else [])]
    missing = [c for c in required if c not in output.column_names]
    if missing:
        raise DefinitionError(f"The transform's output lacks the key or event time columns {missing}; select them too.")
    group = _target_group(store, plan, output, sources)
    if output.num_rows == 0:
        return group.version
    return group.ingest(output, mode=plan.target.mode).version


def _target_group(store: FeatureStore, plan: _Plan, output: pa.Table, sources: dict[str, pa.Table]) -> FeatureGroup:
    source_layout = definitions.layout_of(*plan.sources[0].group._load())
    group = store.create_feature_group(plan.target.feature_group, keys=plan.keys, event_time=plan.event_time)
    layout = definitions.layout_of(*group._load())
    schema: dict[str, str] = {}
    for field_ in output.schema:
        if field_.name in layout.names:
            continue
        if field_.name in source_layout.names:
            schema[field_.name] = source_layout.dtype(field_.name).name
            continue
        dtype = infer_dtype(field_.type)
        if dtype is None:
            raise DefinitionError(f"Cannot store output column {field_.name!r} of type {field_.type}; cast it in the transform.")
        schema[field_.name] = dtype.name
    if schema:
        group.create_features_from_schema(schema)
    return group


# -- scheduler ----------------------------------------------------------------------------------


def run_task(root: Path, target_id: int, due_at: dt.datetime | None) -> None:
    """Scheduler handler: run job ``target_id`` incrementally and wait for it."""
    from raise_jupyter.store import FeatureStore, open_catalog

    with open_catalog(root).read() as conn:
        row = conn.execute(sa.select(tables.jobs).where(tables.jobs.c.id == target_id)).first()
    if row is None:
        raise NotFoundError(f"Job id {target_id} no longer exists.")
    store = FeatureStore._for_scheduler(row.namespace, root, row.defined_by)
    access.check(store._actor, access.RUN_JOB, path=row.namespace, kind=KIND, name=row.name)
    plan = _plan(store, row, None)
    run = _start_run(store, target_id, row.name, mode="incremental", due_at=due_at)
    _execute(store, run, plan, False)
    if run.status != "succeeded":
        last_line = (run.error or "").strip().splitlines()[-1:] or [""]
        raise RaiseError(f"Run {run.id} of job {row.name!r} {run.status}: {last_line[0]}")


scheduler.register_handler(KIND, run_task)
