"""The audit log: who changed what, when, and with which outcome, denials included.

Each entry has the time (UTC), the user, the action, the object's kind, name and namespace, the
outcome (``"ok"``, ``"denied"`` or ``"failed"``) and a JSON detail. Raise only inserts entries.
On a SQLite catalog, triggers make UPDATE and DELETE of ``audit_log`` fail. Other databases get no
triggers, so grant the application's database role only INSERT and SELECT on the table.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from raise_jupyter.engine import tables
from raise_jupyter.errors import DefinitionError

if TYPE_CHECKING:
    import pandas

    from raise_jupyter.access import Actor

__all__ = ["note", "read_log", "record", "recording", "unchanged"]

logger = logging.getLogger(__name__)

COLUMNS = ["at", "user", "action", "object_kind", "object", "namespace", "outcome", "detail"]
# Characters of an error message kept in the detail of a failed operation.
ERROR_CHARS = 500


@dataclass
class _Entry:
    detail: dict[str, Any] = field(default_factory=dict)
    changed: bool = True


# The entries of the operations running in this thread or task, innermost last.
_open_entries: contextvars.ContextVar[tuple[_Entry, ...]] = contextvars.ContextVar("raise_audit_entries", default=())


def record(
    actor: Actor,
    *,
    action: str,
    kind: str,
    name: str,
    namespace: str,
    outcome: str,
    detail: dict[str, Any] | None = None,
    conn: sa.Connection | None = None,
) -> None:
    """Append one entry, in the transaction ``conn`` if given, else in a transaction of its own."""
    from raise_jupyter.engine.catalog import utcnow

    values = dict(detail or {})
    if actor.via is not None:
        values["via"] = actor.via
    row = {
        "at": utcnow(),
        "user": actor.user,
        "action": action,
        "object_kind": kind,
        "object": name,
        "namespace": namespace,
        "outcome": outcome,
        "detail": values,
    }
    if conn is not None:
        conn.execute(tables.audit_log.insert().values(**row))
        return
    with actor.catalog.write() as own:
        own.execute(tables.audit_log.insert().values(**row))


def note(**detail: Any) -> None:
    """Add fields to the detail of the innermost operation being recorded, if any."""
    entries = _open_entries.get()
    if entries:
        entries[-1].detail.update(detail)


def unchanged() -> None:
    """Mark the innermost operation being recorded as a no-op, which is not recorded."""
    entries = _open_entries.get()
    if entries:
        entries[-1].changed = False


@contextlib.contextmanager
def recording(actor: Actor, *, action: str, kind: str, name: str, namespace: str) -> Iterator[None]:
    """Record the block as an entry: ``ok`` when it returns, ``failed`` with the error when it raises.

    A block that calls ``unchanged()`` and returns leaves no entry, so repeating an identical
    definition does not fill the log.
    """
    entry = _Entry()
    reset = _open_entries.set((*_open_entries.get(), entry))
    try:
        yield
    except BaseException as error:
        _open_entries.reset(reset)
        entry.detail["error"] = f"{type(error).__name__}: {error}"[:ERROR_CHARS]
        try:
            record(actor, action=action, kind=kind, name=name, namespace=namespace, outcome="failed", detail=entry.detail)
        except Exception:
            logger.exception("Recording the failed %s of %s %s in the audit log failed", action, kind, name)
        raise
    _open_entries.reset(reset)
    if entry.changed:
        record(actor, action=action, kind=kind, name=name, namespace=namespace, outcome="ok", detail=entry.detail)


def _as_utc(value: Any, name: str) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise DefinitionError(f"{name} {value!r} is not an ISO 8601 time, such as '2026-12-01T08:00'.") from None
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        raise DefinitionError(f"{name} must be a datetime, a date or an ISO 8601 string, got {value!r}.")
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def read_log(
    actor: Actor, *, path: str, since: Any = None, user: str | None = None, action: str | None = None
) -> pandas.DataFrame:
    """Return the entries of ``path`` and the paths below it (every entry for ``""``), oldest first."""
    import pandas as pd

    from raise_jupyter.engine.catalog import as_utc

    t = tables.audit_log
    query = sa.select(t).order_by(t.c.id)
    if path:
        query = query.where(sa.or_(t.c.namespace == path, t.c.namespace.startswith(path + "/", autoescape=True)))
    if since is not None:
        query = query.where(t.c.at >= _as_utc(since, "since"))
    if user is not None:
        query = query.where(t.c.user == user)
    if action is not None:
        query = query.where(t.c.action == action)
    with actor.catalog.read() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(
        {
            "at": pd.to_datetime([as_utc(r.at) for r in rows], utc=True),
            "user": [r.user for r in rows],
            "action": [r.action for r in rows],
            "object_kind": [r.object_kind for r in rows],
            "object": [r.object for r in rows],
            "namespace": [r.namespace for r in rows],
            "outcome": [r.outcome for r in rows],
            "detail": [r.detail for r in rows],
        },
        columns=COLUMNS,
    )
    return frame
