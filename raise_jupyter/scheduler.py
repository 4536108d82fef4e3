"""Scheduled tasks in the catalog and the worker that runs them when they are due.

Each alert and live table has one row in the catalog table ``tasks``. Any number of workers,
in ``raise worker`` processes or in notebook kernels (``start_scheduler``), may poll one store
at once. A worker claims a due task by taking a lease on it in a write transaction, runs the
task's handler outside the transaction, renews the lease from a heartbeat thread while the
handler runs, and records the result. A worker that dies stops renewing its lease. Once the
lease expires, another worker claims the task and runs it for the same due time.

A task runs twice for one due time only if its worker died or lost its lease mid-run, so a
handler should be safe to run twice. After downtime, the missed due times of a task add up to
one run, not one run each.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from raise_jupyter.engine import tables
from raise_jupyter.engine.catalog import Catalog, as_utc, utcnow
from raise_jupyter.errors import DefinitionError, NotFoundError, PermissionDenied, StoreError
from raise_jupyter.schedule import Schedule, parse_schedule

__all__ = [
    "Handler",
    "Worker",
    "ensure_task",
    "mark_due",
    "register_handler",
    "remove_task",
    "run_due",
    "set_paused",
    "start_scheduler",
    "task_info",
    "unregister_handler",
]

logger = logging.getLogger(__name__)

Handler = Callable[[Path, int, dt.datetime | None], None]
"""Runs one task: ``handler(store_root, target_id, due_at)``. An exception marks the run failed."""

DEFAULT_LEASE_S = 60.0
LEASE_ENV = "RAISE_LEASE_S"
DEFAULT_POLL_INTERVAL_S = 1.0
# Maximum length of the error text stored in tasks.last_error. The log gets the full traceback.
MAX_ERROR_CHARS = 4000

# Modules that register the handlers of the built-in kinds when imported.
_HANDLER_MODULES = {"alert": "raise_jupyter.alerts", "live_table": "raise_jupyter.live", "job": "raise_jupyter.jobs"}
_NOTIFY_MODULE = "raise_jupyter.notify"

_handlers: dict[str, Handler] = {}
_handlers_lock = threading.Lock()
# Modules whose import failed in this process, so they are neither imported nor logged again.
_failed_modules: set[str] = set()
# Kinds with due tasks that this process has no handler for, already logged once.
_unhandled_kinds_logged: set[str] = set()

_schedulers: dict[Path, Worker] = {}
_schedulers_lock = threading.Lock()


# -- handlers -----------------------------------------------------------------------------------


def register_handler(kind: str, handler: Handler) -> None:
    """Register the function that runs tasks of ``kind``, replacing any earlier one.

    Parameters
    ----------
    kind
        Task kind, such as ``"alert"``, at most 32 characters.
    handler
        Called as ``handler(store_root, target_id, due_at)`` in a worker thread. An exception
        marks the run failed, and the error is recorded in the task's ``last_error``.
    """
    _check_kind(kind)
    if not callable(handler):
        raise DefinitionError(f"The handler of task kind {kind!r} must be callable, got {handler!r}.")
    with _handlers_lock:
        _handlers[kind] = handler


def unregister_handler(kind: str) -> None:
    """Remove the handler of ``kind``, if one is registered."""
    with _handlers_lock:
        _handlers.pop(kind, None)


def _check_kind(kind: str) -> None:
    max_length = tables.tasks.c.kind.type.length
    if not isinstance(kind, str) or not kind or len(kind) > max_length:
        raise DefinitionError(f"Invalid task kind {kind!r}: use a non-empty string of at most {max_length} characters.")


def _import_optional(module: str) -> Any | None:
    """Import ``module``, or return None if it is missing or failed to import, which is logged once."""
    if module in _failed_modules:
        return None
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:
            logger.exception("Import of %s failed", module)
        _failed_modules.add(module)
    except Exception:
        logger.exception("Import of %s failed", module)
        _failed_modules.add(module)
    return None


def _resolve_handler(kind: str) -> Handler | None:
    """Return the handler of ``kind``, importing the module of a built-in kind if needed."""
    handler = _handlers.get(kind)
    if handler is None and kind in _HANDLER_MODULES:
        _import_optional(_HANDLER_MODULES[kind])
        handler = _handlers.get(kind)
    return handler


# -- tasks in the catalog -----------------------------------------------------------------------


def _now_or(now: dt.datetime | None) -> dt.datetime:
    """Return ``now`` as aware UTC (naive means UTC), or the current time."""
    result = as_utc(now)
    return result if result is not None else utcnow()


@contextmanager
def _transaction(catalog: Catalog | sa.Connection) -> Iterator[sa.Connection]:
    """Yield the caller's connection as is, or open a write transaction of the catalog."""
    if isinstance(catalog, sa.Connection):
        yield catalog
        return
    with catalog.write() as conn:
        yield conn


def _task_filter(kind: str, target_id: int) -> sa.ColumnElement[bool]:
    t = tables.tasks
    return sa.and_(t.c.kind == kind, t.c.target_id == target_id)


def _select_task(conn: sa.Connection, kind: str, target_id: int) -> Any | None:
    return conn.execute(sa.select(tables.tasks).where(_task_filter(kind, target_id))).first()


def ensure_task(
    catalog: Catalog | sa.Connection,
    kind: str,
    target_id: int,
    schedule: str | Schedule,
    *,
    now: dt.datetime | None = None,
) -> None:
    """Insert the task of a target, or update its schedule.

    A new task, and a task whose schedule changed, becomes due at ``schedule.next_after(now)``.
    An unchanged schedule leaves the task as it is.

    Parameters
    ----------
    catalog
        The store's catalog, or a connection inside the caller's write transaction, so that a
        definition and its task are written together.
    kind, target_id
        What the task runs, such as ``"alert"`` and the alert's id.
    schedule
        A Schedule or a spec that ``parse_schedule`` accepts.
    now
        Time the first due time is computed from; the current time by default.
    """
    _check_kind(kind)
    schedule = parse_schedule(schedule)
    next_due_at = schedule.next_after(_now_or(now))
    t = tables.tasks
    with _transaction(catalog) as conn:
        row = _select_task(conn, kind, target_id)
        if row is None:
            conn.execute(
                t.insert().values(
                    kind=kind,
                    target_id=target_id,
                    schedule=str(schedule),
                    next_due_at=next_due_at,
                    paused=False,
                    runs=0,
                    failures=0,
                )
            )
        elif row.schedule != str(schedule):
            conn.execute(t.update().where(t.c.id == row.id).values(schedule=str(schedule), next_due_at=next_due_at))


def remove_task(catalog: Catalog | sa.Connection, kind: str, target_id: int) -> bool:
    """Delete the task of a target; return whether there was one.

    A run in progress finishes, but its result is not recorded.
    """
    with _transaction(catalog) as conn:
        result = conn.execute(tables.tasks.delete().where(_task_filter(kind, target_id)))
    return result.rowcount > 0


def set_paused(catalog: Catalog | sa.Connection, kind: str, target_id: int, paused: bool) -> None:
    """Pause or resume a task. A resumed task whose due time has passed runs at the next poll.

    Raises
    ------
    NotFoundError
        If the target has no task.
    """
    t = tables.tasks
    with _transaction(catalog) as conn:
        result = conn.execute(t.update().where(_task_filter(kind, target_id)).values(paused=bool(paused)))
    if result.rowcount == 0:
        raise _task_not_found(kind, target_id)


def mark_due(catalog: Catalog | sa.Connection, kind: str, target_id: int, *, now: dt.datetime | None = None) -> None:
    """Make a task due at ``now``, such as after an ingest, unless it already is due earlier.

    If a worker is running the task, it runs once more after that run.

    Raises
    ------
    NotFoundError
        If the target has no task.
    """
    now = _now_or(now)
    t = tables.tasks
    with _transaction(catalog) as conn:
        row = _select_task(conn, kind, target_id)
        if row is None:
            raise _task_not_found(kind, target_id)
        next_due_at = _marked_due_time(row, now)
        if next_due_at is not None:
            conn.execute(t.update().where(t.c.id == row.id).values(next_due_at=next_due_at))


def _marked_due_time(row: Any, now: dt.datetime) -> dt.datetime | None:
    """Return the new next_due_at for mark_due, or None to keep the current one."""
    current = as_utc(row.next_due_at)
    lease_until = as_utc(row.lease_until)
    leased = row.lease_owner is not None and lease_until is not None and lease_until > utcnow()
    if leased:
        # The worker that finishes the run keeps a next_due_at that differs from the due time
        # it claimed, so the new value must differ from that due time.
        claimed = as_utc(row.last_due_at) or current
        return max(now, claimed + dt.timedelta(microseconds=1))
    if now < current:
        return now
    return None


def _task_not_found(kind: str, target_id: int) -> NotFoundError:
    return NotFoundError(f"No scheduled task for {kind} {target_id}; create it with ensure_task() first.")


def task_info(catalog: Catalog | sa.Connection, kind: str, target_id: int) -> dict[str, Any] | None:
    """Return the task's catalog row as a dict with aware UTC timestamps, or None if it has none."""
    if isinstance(catalog, sa.Connection):
        row = _select_task(catalog, kind, target_id)
    else:
        with catalog.read() as conn:
            row = _select_task(conn, kind, target_id)
    if row is None:
        return None
    info = dict(row._mapping)
    for name, value in info.items():
        if isinstance(value, dt.datetime):
            info[name] = as_utc(value)
    info["paused"] = bool(info["paused"])
    return info


# -- running due tasks --------------------------------------------------------------------------


def lease_seconds() -> float:
    """Return the lease length in seconds: ``$RAISE_LEASE_S``, else DEFAULT_LEASE_S."""
    text = os.environ.get(LEASE_ENV)
    if not text:
        return DEFAULT_LEASE_S
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise StoreError(f"Invalid {LEASE_ENV}={text!r}: set it to a number of seconds above 0, or unset it.")
    return value


def make_owner_id() -> str:
    """Return a new worker id of the form ``hostname:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class _Claim:
    """A task that this worker holds the lease of, and the due time it runs for."""

    id: int
    kind: str
    target_id: int
    due_at: dt.datetime
    # Schedule clock at the claim; the next due time is computed from max(now, due_at).
    now: dt.datetime


def run_due(
    root: Path,
    *,
    owner: str,
    now: dt.datetime | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run the store's due tasks one at a time and return how many ran.

    Each task runs at most once per call, so a task that is due again when its run ends waits
    for the next call. Failed runs are logged and recorded, and count as run.

    Parameters
    ----------
    root
        Store root.
    owner
        Id of this worker in task leases, unique per worker (see ``make_owner_id``).
    now
        Fixed time at which tasks are due, for tests; the current time at each claim by
        default. Leases always use the current time.
    stop
        Event that ends the loop between tasks; the running task finishes first.
    """
    from raise_jupyter.store import open_catalog

    catalog = open_catalog(root)
    lease_s = lease_seconds()
    claimed_ids: list[int] = []
    while stop is None or not stop.is_set():
        claim = _claim_next(catalog, owner, _now_or(now), lease_s, claimed_ids)
        if claim is not None:
            claimed_ids.append(claim.id)
            _run_claimed(root, catalog, claim, owner, lease_s)
        _deliver_notifications(root, catalog, owner)
        if claim is None:
            break
    return len(claimed_ids)


def _claim_next(
    catalog: Catalog, owner: str, now: dt.datetime, lease_s: float, excluded_ids: list[int]
) -> _Claim | None:
    """Take the lease of the earliest due task that this process has a handler for."""
    t = tables.tasks
    lease_now = utcnow()
    due = sa.and_(
        t.c.paused == sa.false(),
        t.c.next_due_at <= now,
        sa.or_(t.c.lease_owner.is_(None), t.c.lease_until.is_(None), t.c.lease_until <= lease_now),
        t.c.id.not_in(excluded_ids),
    )
    kinds = _handled_kinds(catalog, due)
    if not kinds:
        return None

    with catalog.write() as conn:
        # FOR UPDATE SKIP LOCKED matters on Postgres; BEGIN IMMEDIATE already serializes SQLite.
        query = (
            sa.select(t.c.id, t.c.kind, t.c.target_id, t.c.next_due_at)
            .where(due, t.c.kind.in_(kinds))
            .order_by(t.c.next_due_at, t.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        row = conn.execute(query).first()
        if row is None:
            return None
        conn.execute(
            t.update()
            .where(t.c.id == row.id)
            .values(
                lease_owner=owner,
                lease_until=lease_now + dt.timedelta(seconds=lease_s),
                last_due_at=row.next_due_at,
                last_started_at=lease_now,
            )
        )
    return _Claim(row.id, row.kind, row.target_id, as_utc(row.next_due_at), now)


def _handled_kinds(catalog: Catalog, due: sa.ColumnElement[bool]) -> list[str]:
    """Return the kinds of due tasks that this process has handlers for; log the others once."""
    t = tables.tasks
    with catalog.read() as conn:
        due_kinds = list(conn.execute(sa.select(t.c.kind).where(due).distinct()).scalars())

    handled = []
    for kind in due_kinds:
        if _resolve_handler(kind) is not None:
            handled.append(kind)
        elif kind not in _unhandled_kinds_logged:
            _unhandled_kinds_logged.add(kind)
            logger.warning(
                "Tasks of kind %r are due, but this process has no handler for them; they wait for a "
                "worker that calls register_handler(%r, ...).",
                kind,
                kind,
            )
    return handled


def _run_claimed(root: Path, catalog: Catalog, claim: _Claim, owner: str, lease_s: float) -> None:
    """Run the handler of a claimed task while renewing its lease, then record the result."""
    logger.info("Running %s %d due at %s", claim.kind, claim.target_id, claim.due_at.isoformat())
    started = time.monotonic()
    error: str | None = None
    with _heartbeat(catalog, claim, owner, lease_s):
        try:
            handler = _resolve_handler(claim.kind)
            if handler is None:
                # Only when unregister_handler() ran after the claim.
                raise LookupError(f"No handler is registered for task kind {claim.kind!r}.")
            handler(root, claim.target_id, claim.due_at)
        except PermissionDenied as exception:
            # Expected after a role change. The message names who may grant the role, so a traceback adds nothing.
            logger.warning("Task %s %d due at %s was denied: %s", claim.kind, claim.target_id, claim.due_at.isoformat(), exception)
            error = f"PermissionDenied: {exception}"[:MAX_ERROR_CHARS]
        except Exception as exception:
            logger.exception("Task %s %d due at %s failed", claim.kind, claim.target_id, claim.due_at.isoformat())
            error = f"{type(exception).__name__}: {exception}"[:MAX_ERROR_CHARS]

    seconds = time.monotonic() - started
    if error is None:
        logger.info("Finished %s %d in %.3f s", claim.kind, claim.target_id, seconds)
    _record_finish(catalog, claim, owner, error)


@contextmanager
def _heartbeat(catalog: Catalog, claim: _Claim, owner: str, lease_s: float) -> Iterator[None]:
    """Renew the claim's lease every third of the lease length until the block ends."""
    done = threading.Event()
    thread = threading.Thread(
        target=_renew_lease,
        args=(catalog, claim, owner, lease_s, done),
        name=f"raise-lease-{claim.kind}-{claim.target_id}",
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _renew_lease(catalog: Catalog, claim: _Claim, owner: str, lease_s: float, done: threading.Event) -> None:
    t = tables.tasks
    while not done.wait(lease_s / 3):
        try:
            with catalog.write() as conn:
                result = conn.execute(
                    t.update()
                    .where(t.c.id == claim.id, t.c.lease_owner == owner)
                    .values(lease_until=utcnow() + dt.timedelta(seconds=lease_s))
                )
        except Exception:
            logger.exception("Renewing the lease of %s %d failed; retrying", claim.kind, claim.target_id)
            continue
        if result.rowcount == 0:
            logger.warning(
                "Lost the lease of %s %d to another worker or the task was removed; its result will not be recorded",
                claim.kind,
                claim.target_id,
            )
            return


def _record_finish(catalog: Catalog, claim: _Claim, owner: str, error: str | None) -> None:
    """Record a run's result, release the lease and set the next due time.

    The next due time follows max(now, due time), so a task that missed several due times while
    no worker ran runs once, not once per missed time. If next_due_at changed during the run
    (a new schedule, or mark_due), the earlier of that and the computed time is kept.
    """
    t = tables.tasks
    with catalog.write() as conn:
        row = conn.execute(sa.select(t).where(t.c.id == claim.id)).first()
        if row is None:
            logger.warning("Task %s %d was removed while it ran; its result is not recorded", claim.kind, claim.target_id)
            return
        if row.lease_owner != owner:
            logger.warning(
                "Another worker (%s) took over %s %d while this run took longer than its lease; "
                "its result is not recorded",
                row.lease_owner,
                claim.kind,
                claim.target_id,
            )
            return

        next_due_at = parse_schedule(row.schedule).next_after(max(claim.now, claim.due_at))
        current = as_utc(row.next_due_at)
        if current != claim.due_at:
            next_due_at = min(next_due_at, current)
        conn.execute(
            t.update()
            .where(t.c.id == claim.id)
            .values(
                lease_owner=None,
                lease_until=None,
                next_due_at=next_due_at,
                last_finished_at=utcnow(),
                last_status="failed" if error is not None else "succeeded",
                last_error=error,
                runs=t.c.runs + 1,
                failures=t.c.failures + (1 if error is not None else 0),
            )
        )


def _deliver_notifications(root: Path, catalog: Catalog, owner: str) -> None:
    """Send due notifications of the outbox, if the notify module is installed."""
    notify = _import_optional(_NOTIFY_MODULE)
    if notify is None:
        return
    try:
        notify.deliver_due(root, catalog, owner=owner)
    except Exception:
        logger.exception("Delivering notifications of store %s failed", root)


# -- workers ------------------------------------------------------------------------------------


class Worker:
    """A loop that runs due tasks of one store root, in the foreground or in a daemon thread.

    Parameters
    ----------
    root
        Store root; defaults to ``$RAISE_HOME``, else ``~/.raise``.
    poll_interval
        Seconds between checks for due tasks.
    owner
        Id of this worker in task leases; a new ``hostname:pid:random`` id by default.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL_S,
        owner: str | None = None,
    ) -> None:
        from raise_jupyter.store import resolve_root

        if not poll_interval > 0:
            raise DefinitionError(f"Invalid poll_interval {poll_interval!r}: use a number of seconds above 0.")
        lease_seconds()  # Raise on an invalid $RAISE_LEASE_S now, not in the loop.
        self.root = resolve_root(root)
        self.poll_interval = float(poll_interval)
        self.owner = owner or make_owner_id()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"Worker(root={str(self.root)!r}, owner={self.owner!r}, running={self.running})"

    def run(self, stop: threading.Event, *, once: bool = False) -> None:
        """Run due tasks, then wait ``poll_interval`` seconds, until ``stop`` is set.

        A task that has started when ``stop`` is set runs to its end. Errors other than those
        of handlers, such as a catalog that cannot be opened, are logged and retried at the
        next poll. With ``once``, it runs the due tasks once and returns.
        """
        logger.info("Scheduler worker %s started on %s (poll every %s s)", self.owner, self.root, self.poll_interval)
        try:
            while not stop.is_set():
                try:
                    run_due(self.root, owner=self.owner, stop=stop)
                except Exception:
                    logger.exception("Scheduler worker %s failed to run due tasks of %s", self.owner, self.root)
                if once:
                    break
                stop.wait(self.poll_interval)
        finally:
            logger.info("Scheduler worker %s stopped", self.owner)

    def start(self) -> None:
        """Start ``run`` in a daemon thread, unless it is running already."""
        if self.running:
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="raise-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the background thread to stop and wait up to ``timeout`` seconds for it.

        A running task finishes first, so without a timeout this waits for it.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()


def start_scheduler(
    root: str | os.PathLike[str] | None = None, *, poll_interval: float = DEFAULT_POLL_INTERVAL_S
) -> Worker:
    """Start a worker of the store in a daemon thread of this process, such as a notebook kernel.

    A second call for the same root returns the running worker, whatever its poll interval.
    Stop it with ``worker.stop()``.
    """
    from raise_jupyter.store import resolve_root

    resolved = resolve_root(root)
    with _schedulers_lock:
        worker = _schedulers.get(resolved)
        if worker is None or not worker.running:
            worker = Worker(resolved, poll_interval=poll_interval)
            worker.start()
            _schedulers[resolved] = worker
    return worker
