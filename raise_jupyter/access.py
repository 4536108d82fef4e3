"""Access control: roles granted on namespace paths, and the check every public operation runs.

A grant gives a user one role on a namespace path and on every path below it: ``editor`` on
``acme/ml`` covers ``acme/ml`` and ``acme/ml/engagement``, not ``acme/mlx``. The empty path is
the whole store. A user's role on a path is the highest role of the grants that cover it.

A store without any grant is open: every local user may do everything, so a single researcher
never meets access control. The first grant ends that. It first makes the granting user owner of
the whole store, so that the granter keeps control.

Identity is claimed, not proven: a local user picks it with ``user=`` or ``$RAISE_USER``, and
anyone with file access to the store can change the catalog directly. The HTTP server, which
takes identity from bearer tokens, is where these rules are enforced for a team.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import inspect
import os
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from raise_jupyter import audit
from raise_jupyter.engine import tables
from raise_jupyter.errors import DefinitionError, PermissionDenied, RaiseError, StoreError

if TYPE_CHECKING:
    from raise_jupyter.engine.catalog import Catalog

__all__ = ["ROLES", "Actor", "Grant", "Operation", "check", "guard", "guarded", "resolve_user"]

ROLES = ("viewer", "editor", "owner")
_RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}
MAX_USER_LENGTH = 200

Method = TypeVar("Method", bound=Callable[..., Any])


@dataclass(frozen=True)
class Operation:
    """A kind of public operation: its audit action, the least role it needs and its message verb.

    ``audited`` is False for operations that change nothing (reads) or whose changes are
    recorded elsewhere; their denials are recorded all the same.
    """

    action: str
    role: str
    verb: str
    audited: bool = True


READ = Operation("read", "viewer", "read", audited=False)
DEFINE = Operation("define", "editor", "define")
UPDATE = Operation("update", "editor", "update")
DELETE = Operation("delete", "editor", "delete")
DELETE_GROUP = Operation("delete", "owner", "delete")
INGEST = Operation("ingest", "editor", "ingest into")
MATERIALIZE = Operation("materialize", "editor", "materialize")
COMPACT = Operation("compact", "editor", "compact")
REFRESH = Operation("refresh", "editor", "refresh")
# An evaluation records only a change of the alert's state (action "alert_state", in alerts.py).
EVALUATE = Operation("evaluate", "editor", "evaluate", audited=False)
# A job run records its start and its end (action "job_run", in jobs.py).
RUN_JOB = Operation("job_run", "editor", "run", audited=False)
CANCEL_JOB = Operation("job_cancel", "editor", "cancel a run of")
TEST_NOTIFICATION = Operation("test_notification", "editor", "send test notifications for")
GRANT = Operation("grant", "owner", "grant roles on")
REVOKE = Operation("revoke", "owner", "revoke roles on")
READ_AUDIT_LOG = Operation("read_audit_log", "owner", "read the audit log of", audited=False)
CREATE_TOKEN = Operation("token_create", "owner", "create tokens in")
REVOKE_TOKEN = Operation("token_revoke", "owner", "revoke tokens in")
LIST_TOKENS = Operation("token_list", "owner", "list the tokens of", audited=False)


@dataclass(frozen=True)
class Actor:
    """The identity a store acts with: the user, the store's catalog, and ``via`` for scheduled work.

    ``via="scheduler"`` marks a scheduled run that acts as the user who defined the alert, live
    table or job. The audit log records it in the entry's detail.
    """

    user: str
    catalog: Catalog
    via: str | None = None


@dataclass(frozen=True)
class Grant:
    """One role of one user on a namespace path (``""`` is the whole store)."""

    user: str
    role: str
    path: str
    granted_by: str
    granted_at: Any


# -- users, roles and paths ---------------------------------------------------------------------


def validate_user(user: object) -> str:
    """Return ``user`` if it is a valid user name: 1 to 200 visible characters, no whitespace.

    Control and format characters (such as a zero-width space) are rejected too, because they
    would make two different names look alike in grants and the audit log.
    """
    invalid = (
        not isinstance(user, str)
        or not user
        or len(user) > MAX_USER_LENGTH
        or any(c.isspace() or unicodedata.category(c) in ("Cc", "Cf") for c in user)
    )
    if invalid:
        raise DefinitionError(
            f"User name {user!r} is invalid: use 1 to {MAX_USER_LENGTH} visible characters without spaces, such as 'alice'."
        )
    return user


def resolve_user(user: str | None) -> str:
    """Return ``user``, else ``$RAISE_USER``, else the operating-system user."""
    if user is None:
        user = os.environ.get("RAISE_USER") or None
    if user is None:
        try:
            user = getpass.getuser()
        except (OSError, KeyError):
            raise StoreError("Cannot find the operating-system user name; set RAISE_USER or pass user=.") from None
    return validate_user(user)


def validate_role(role: object) -> str:
    if role not in _RANK:
        raise DefinitionError(f"Role {role!r} is invalid: use one of {', '.join(ROLES)}.")
    return str(role)


def normalize_path(path: object) -> str:
    """Return a namespace path without surrounding slashes; ``""`` or ``"/"`` is the whole store."""
    from raise_jupyter import names

    if not isinstance(path, str):
        raise DefinitionError(f"Path {path!r} is invalid: pass a namespace path such as 'acme/ml', or '' for the whole store.")
    stripped = path.strip("/")
    return names.validate_namespace(stripped) if stripped else ""


def covers(grant_path: str, path: str) -> bool:
    """Return whether a grant on ``grant_path`` applies to ``path``: the same path or one below it."""
    return grant_path == "" or path == grant_path or path.startswith(grant_path + "/")


def describe_path(path: str) -> str:
    return path if path else "the whole store"


def role_of(grants: tuple[Grant, ...], user: str, path: str) -> str | None:
    """Return the highest role of ``user`` on ``path``, or None without one."""
    roles = [g.role for g in grants if g.user == user and covers(g.path, path)]
    return max(roles, key=_RANK.__getitem__) if roles else None


def owners_of(grants: tuple[Grant, ...], path: str) -> list[Grant]:
    """Return the owner grants that cover ``path``, the nearest path first."""
    owners = [g for g in grants if g.role == "owner" and covers(g.path, path)]
    return sorted(owners, key=lambda g: (-len(g.path), g.user))


def has_role(grants: tuple[Grant, ...], user: str, path: str, role: str) -> bool:
    current = role_of(grants, user, path)
    return current is not None and _RANK[current] >= _RANK[role]


# -- grants, cached per thread while the catalog is unchanged -----------------------------------

_cache = threading.local()


def _grant_of(row: Any) -> Grant:
    return Grant(row.user, row.role, row.path, row.granted_by, row.granted_at)


def select_grants(conn: sa.Connection) -> tuple[Grant, ...]:
    t = tables.grants
    rows = conn.execute(sa.select(t).order_by(t.c.path, t.c.user, t.c.role)).all()
    return tuple(_grant_of(row) for row in rows)


def load_grants(catalog: Catalog) -> tuple[Grant, ...]:
    """Return every grant of the store, from a cache that any commit to the catalog invalidates.

    The cache is per thread because ``change_token`` numbers are per connection, and catalogs
    other than SQLite have no change token, so there every call reads the table.
    """
    token = catalog.change_token()
    entries = getattr(_cache, "entries", None)
    if entries is None:
        entries = _cache.entries = {}
    cached = entries.get(catalog.url)
    if token is not None and cached is not None and cached[0] == token:
        return cached[1]
    with catalog.read() as conn:
        grants = select_grants(conn)
    entries[catalog.url] = (token, grants)
    return grants


def readable_filter(column: sa.ColumnElement[str], grants: tuple[Grant, ...], user: str) -> sa.ColumnElement[bool] | None:
    """Return a condition on a namespace column that keeps what ``user`` may read; None keeps all.

    Listings that read the catalog directly (the store browser, the Jupyter server extension)
    use it to show only the namespaces the user has a role on.
    """
    if not grants:
        return None
    paths = {g.path for g in grants if g.user == user}
    if "" in paths:
        return None
    if not paths:
        return sa.false()
    return sa.or_(*(sa.or_(column == path, column.startswith(path + "/", autoescape=True)) for path in sorted(paths)))


# -- the check ----------------------------------------------------------------------------------

_KIND_LABELS = {"alert": "alert ", "live_table": "live table ", "job": "job "}


def _target_text(kind: str, name: str, namespace: str) -> str:
    # Grants and tokens are named by the path they act on.
    if kind in ("namespace", "grant", "token"):
        return describe_path(namespace)
    label = _KIND_LABELS.get(kind, "")
    return f"{label}{namespace}/{name}" if namespace else f"{label}{name}"


def denial_message(grants: tuple[Grant, ...], user: str, operation: Operation, path: str, target: str) -> str:
    current = role_of(grants, user, path)
    where = "on the whole store" if path == "" else f"on {path} or a path above it"
    has = f"{user} has {current} there" if current else f"{user} has no role there"
    owners = owners_of(grants, path)
    if owners:
        listed = ", ".join(f"{g.user} (on {describe_path(g.path)})" for g in owners)
        who = f"Owners who can grant it: {listed}."
    else:
        who = "No user owns it or a path above it, so an owner of the whole store must be granted first."
    return f"{user} may not {operation.verb} {target}: that needs the {operation.role} role {where}, and {has}. {who}"


def check(actor: Actor, operation: Operation, *, path: str, kind: str, name: str, namespace: str | None = None) -> None:
    """Raise PermissionDenied, after recording the denial, if ``actor`` lacks the role on ``path``.

    A store without grants allows everything.
    """
    grants = load_grants(actor.catalog)
    if not grants or has_role(grants, actor.user, path, operation.role):
        return
    namespace = path if namespace is None else namespace
    message = denial_message(grants, actor.user, operation, path, _target_text(kind, name, namespace))
    audit.record(
        actor,
        action=operation.action,
        kind=kind,
        name=name,
        namespace=namespace,
        outcome="denied",
        detail={"needs": operation.role, "has": role_of(grants, actor.user, path), "message": message},
    )
    raise PermissionDenied(message)


@contextlib.contextmanager
def guard(actor: Actor, operation: Operation, *, path: str, kind: str, name: str) -> Iterator[None]:
    """Check ``operation``, then record the outcome of the block in the audit log if it is audited."""
    check(actor, operation, path=path, kind=kind, name=name)
    if not operation.audited:
        yield
        return
    with audit.recording(actor, action=operation.action, kind=kind, name=name, namespace=path):
        yield


def _object_name(obj: Any) -> str:
    try:
        return str(obj.name)
    except RaiseError:
        # The object was deleted; the method itself raises the NotFoundError.
        return f"id {getattr(obj, '_id', '?')}"


def guarded(operation: Operation, *, kind: str, name: str | Callable[[Any, dict[str, Any]], str] | None = None) -> Callable[[Method], Method]:
    """Decorate a method of a store object so that each call runs under ``guard``.

    The object is the method's ``self`` (a FeatureStore) or ``self._store``. ``name`` is the
    argument that names the object, a function of ``(self, arguments)``, or None for
    ``self.name``; the path checked is the store's namespace.
    """

    def decorate(method: Method) -> Method:
        signature = inspect.signature(method)

        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            store = getattr(self, "_store", self)
            if name is None:
                object_name = _object_name(self)
            else:
                arguments = signature.bind_partial(self, *args, **kwargs).arguments
                if callable(name):
                    object_name = name(self, arguments)
                else:
                    value = arguments.get(name)
                    object_name = str(getattr(value, "name", value))
            with guard(store._actor, operation, path=store.namespace, kind=kind, name=object_name):
                return method(self, *args, **kwargs)

        wrapper.operation = operation  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


# -- grants and revokes -------------------------------------------------------------------------


def _insert_grant(conn: sa.Connection, actor: Actor, user: str, role: str, path: str, *, reason: str | None = None) -> None:
    from raise_jupyter.engine.catalog import utcnow

    conn.execute(tables.grants.insert().values(user=user, role=role, path=path, granted_by=actor.user, granted_at=utcnow()))
    detail: dict[str, Any] = {"user": user, "role": role}
    if reason is not None:
        detail["reason"] = reason
    audit.record(actor, action="grant", kind="grant", name=f"{role} for {user}", namespace=path, outcome="ok", detail=detail, conn=conn)


def _grant_namespace_creators(conn: sa.Connection, actor: Actor) -> None:
    """Make the creator of each namespace of an open store its owner, at the store's first grant.

    The creator is the user of the namespace's first group creation in the audit log. Without
    this, the first grant would lock out everyone but the granter from their own namespaces.
    """
    log = tables.audit_log
    groups = tables.feature_groups
    live_namespaces = set(conn.execute(sa.select(groups.c.namespace).distinct()).scalars())
    first = (
        sa.select(log.c.namespace, log.c.user)
        .where(log.c.action == "define", log.c.object_kind == "feature_group", log.c.outcome == "ok")
        .order_by(log.c.id)
    )
    owners: dict[str, str] = {}
    for namespace, user in conn.execute(first):
        owners.setdefault(namespace, user)
    for namespace, user in sorted(owners.items()):
        # As when a namespace is created later: owning a path that contains another user's
        # namespace below it would give control of that namespace too.
        below = [n for n in live_namespaces if n.startswith(f"{namespace}/")]
        if namespace in live_namespaces and user != actor.user and all(owners.get(n) == user for n in below):
            _insert_grant(conn, actor, user, "owner", namespace, reason="created the namespace before the first grant")


def grant(actor: Actor, user: str, role: str, path: str) -> bool:
    """Give ``user`` the ``role`` on ``path``; return False if the grant already existed.

    The new role replaces another role of ``user`` on exactly ``path``, so one user has one role
    per path. In a store without grants, the granting user first becomes owner of the whole store.
    """
    user = validate_user(user)
    role = validate_role(role)
    name = f"{role} for {user}"
    check(actor, GRANT, path=path, kind="grant", name=name)
    with actor.catalog.write() as conn:
        current = select_grants(conn)
        # Grants may have changed since the check, such as by a first grant of another user.
        allowed = not current or has_role(current, actor.user, path, "owner")
        if allowed and not current:
            _insert_grant(conn, actor, actor.user, "owner", "", reason="first grant of the store")
            _grant_namespace_creators(conn, actor)
            current = select_grants(conn)
        exists = any(g.user == user and g.role == role and g.path == path for g in current)
        if allowed and not exists:
            replaced = [g for g in current if g.user == user and g.path == path]
            if replaced:
                _check_revocable(current, replaced, user, None, path)
                _delete_grants(conn, actor, replaced)
            _insert_grant(conn, actor, user, role, path)
    if not allowed:
        check(actor, GRANT, path=path, kind="grant", name=name)
    return allowed and not exists


def revoke(actor: Actor, user: str, role: str | None, path: str) -> int:
    """Remove the grants of ``user`` on exactly ``path`` (of one role, or all); return how many."""
    user = validate_user(user)
    if role is not None:
        role = validate_role(role)
    described = f"{role or 'every role'} of {user}"
    check(actor, REVOKE, path=path, kind="grant", name=described)
    with actor.catalog.write() as conn:
        current = select_grants(conn)
        # Grants may have changed since the check; a denial is recorded after the transaction.
        allowed = not current or has_role(current, actor.user, path, "owner")
        matched = [g for g in current if g.user == user and g.path == path and (role is None or g.role == role)]
        if allowed:
            _check_revocable(current, matched, user, role, path)
            _delete_grants(conn, actor, matched)
    if not allowed:
        check(actor, REVOKE, path=path, kind="grant", name=described)
        return 0
    return len(matched)


def _check_revocable(current: tuple[Grant, ...], matched: list[Grant], user: str, role: str | None, path: str) -> None:
    """Raise if nothing matches, or if the store would keep grants but lose its last owner of ``""``."""
    if not matched:
        held = ", ".join(f"{g.role} on {describe_path(g.path)}" for g in current if g.user == user) or "none"
        raise DefinitionError(
            f"{user} has no {role or 'role'} granted on {describe_path(path)}; grants of {user}: {held}. "
            "Revoke the grant on the path it was given on."
        )
    remaining = [g for g in current if g not in matched]
    if remaining and not any(g.role == "owner" and g.path == "" for g in remaining):
        raise DefinitionError(
            f"Revoking {role or 'every role'} of {user} on {describe_path(path)} would leave the store without an "
            "owner of the whole store while other grants remain; grant owner on '' to another user first."
        )


def _delete_grants(conn: sa.Connection, actor: Actor, matched: list[Grant]) -> None:
    t = tables.grants
    for g in matched:
        conn.execute(t.delete().where(t.c.user == g.user, t.c.role == g.role, t.c.path == g.path))
        audit.record(
            actor, action="revoke", kind="grant", name=f"{g.role} for {g.user}", namespace=g.path,
            outcome="ok", detail={"user": g.user, "role": g.role}, conn=conn,
        )


def claim_namespace(conn: sa.Connection, actor: Actor, namespace: str) -> None:
    """Make ``actor`` owner of a namespace it has just created, unless the store is open.

    Call it in the transaction that inserted the namespace's first feature group.
    """
    current = select_grants(conn)
    if not current or has_role(current, actor.user, namespace, "owner"):
        return
    groups = tables.feature_groups
    # Ownership of a path covers every namespace below it. So a path is new only when it and the
    # paths below it contain no other group: a group in "acme" must not make its creator owner
    # of "acme/ml", which someone else created.
    below = sa.or_(groups.c.namespace == namespace, groups.c.namespace.startswith(f"{namespace}/", autoescape=True))
    count = conn.execute(sa.select(sa.func.count()).select_from(groups).where(below)).scalar()
    if count == 1:
        _insert_grant(conn, actor, actor.user, "owner", namespace, reason="created the namespace")
