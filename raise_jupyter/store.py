"""``FeatureStore``: the entry point, one namespace of a store root."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import threading
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from pathlib import Path
import duckdb
import sqlalchemy as sa

from raise_jupyter import access, audit, names
from raise_jupyter.access import guarded
from raise_jupyter.config import setting
from raise_jupyter.engine import offline
from raise_jupyter.engine.catalog import Catalog, GroupRecord
from raise_jupyter.engine.duck import connection, quote
from raise_jupyter.engine.expressions import suggest
from raise_jupyter.errors import ConflictError, DefinitionError, NotFoundError, QueryError, StoreError
from raise_jupyter.feature import normalize_tags
from raise_jupyter.group import FeatureGroup
from raise_jupyter.results import QueryResult
from raise_jupyter.online import OnlineFeatures, get_online_features, online_store
from raise_jupyter.training import TrainingData, get_training_data

if TYPE_CHECKING:
    import pandas

    from raise_jupyter.alerts import Alert
    from raise_jupyter.jobs import Job
    from raise_jupyter.lineage import Lineage
    from raise_jupyter.live import LiveTable
    from raise_jupyter.tokens import CreatedToken

__all__ = ["FeatureStore"]

logger = logging.getLogger(__name__)

_catalogs: dict[str, Catalog] = {}
_catalogs_lock = threading.Lock()


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """Return the store root: ``root``, else ``$RAISE_HOME``, else ``~/.raise``."""
    if root is None:
        root = os.environ.get("RAISE_HOME") or "~/.raise"
    return Path(root).expanduser().resolve()


def _catalog_url(root: Path) -> str:
    # Built by SQLAlchemy, so that "?", "#" and "%" in the root are escaped in the URL.
    default = sa.engine.URL.create("sqlite", database=str(root / "catalog.db")).render_as_string()
    return setting(root, "catalog_url") or default


def _make_root(root: Path) -> None:
    unusable = sorted({c for c in str(root) if c in "[]" or unicodedata.category(c) == "Cc"})
    unusable += re.findall(r"%[0-9A-Fa-f]{2}", str(root))
    if unusable:
        # Delta Lake's object-store paths reject these characters and decode %XX sequences.
        raise StoreError(f"Store root {str(root)!r} contains {unusable}, which Delta Lake cannot use in paths; pass another root.")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StoreError(f"Store root {str(root)!r} is a file, not a directory; pass another root.") from None
    except OSError as error:
        raise StoreError(
            f"Cannot create store root {str(root)!r}: {error.strerror}. Pass a writable directory as "
            "root= or set RAISE_HOME."
        ) from None


def open_catalog(root: str | os.PathLike[str]) -> Catalog:
    """Return this process's catalog connection of a store root, migrating it if needed."""
    root = Path(root)
    _make_root(root)
    url = _catalog_url(root)
    with _catalogs_lock:
        catalog = _catalogs.get(url)
        if catalog is None:
            catalog = Catalog(url, lock_path=root / "catalog.lock")
            _catalogs[url] = catalog
    return catalog


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0]


def _check_single_select(query: str) -> None:
    cursor = connection().cursor()
    try:
        statements = cursor.extract_statements(query)
    except duckdb.Error as error:
        raise QueryError(f"Query failed: {str(error).strip()}") from None
    finally:
        cursor.close()

    if len(statements) != 1:
        raise DefinitionError(f"sql() runs one query, but the text has {len(statements)} statements.")
    kind = statements[0].type
    # EXPLAIN is rejected too, because EXPLAIN ANALYZE runs the statement it explains.
    if kind != duckdb.StatementType.SELECT:
        raise DefinitionError(
            f"sql() runs SELECT queries only, got a {kind.name} statement; use DuckDB directly for other statements."
        )
    _check_no_file_reads(query)


def _names_a_file(node: dict[str, Any]) -> bool:
    """Return whether a table reference can make DuckDB read a file, as "x.parquet" or "dir".parquet do."""
    if any(c in str(node.get("table_name", "")) for c in "./\\"):
        return True
    # Groups and live tables are unqualified views. A schema or catalog such as "/data/x" in
    # "/data/x".parquet is a file path, which DuckDB's replacement scan would read.
    qualifiers = {str(node.get("schema_name") or "").lower(), str(node.get("catalog_name") or "").lower()}
    return not qualifiers <= {"", "main", "temp", "memory"}


# Table functions that compute rows instead of reading them from files.
_ROW_FUNCTIONS = {"range", "generate_series", "unnest"}


def _check_no_file_reads(query: str) -> None:
    """Reject table functions and file names in FROM, so a query reads only groups and live tables.

    The connection may read every namespace's table files. Access control decides which groups
    a query may name, so a query must not reach files by path, as read_parquet('.../*.parquet') would.
    """
    import json

    cursor = connection().cursor()
    try:
        tree = json.loads(cursor.execute("SELECT json_serialize_sql(?)", [query]).fetchone()[0])
    finally:
        cursor.close()

    stack: list[Any] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if node.get("type") == "TABLE_FUNCTION":
            name = str((node.get("function") or {}).get("function_name", "")).lower()
            if name not in _ROW_FUNCTIONS:
                raise DefinitionError(
                    f"sql() does not run the table function {name}(): queries read feature groups and live "
                    "tables by name, such as SELECT * FROM \"user-signals\". Use DuckDB directly for files."
                )
        if node.get("type") == "BASE_TABLE" and _names_a_file(node):
            name = ".".join(str(node.get(k)) for k in ("catalog_name", "schema_name", "table_name") if node.get(k))
            raise DefinitionError(f"sql() reads feature groups and live tables by name, not files such as {name!r}.")
        stack.extend(node.values())


def _referenced_tables(query: str) -> set[str] | None:
    """Return the lowercased table names a query references, or None if the parser cannot tell."""
    cursor = connection().cursor()
    try:
        return {name.lower() for name in cursor.get_table_names(query)}
    except duckdb.Error:
        return None
    finally:
        cursor.close()


class FeatureStore:
    """A namespace of feature groups in a store root.

    Opening a store needs no server: the catalog (SQLite) and the Delta tables live under the
    root, which is created if missing. Any number of processes can use one root at once.

    Parameters
    ----------
    namespace
        Path of 1 to 5 segments such as ``"acme/ml/engagement"`` (lowercase letters, digits,
        ``-`` and ``_``).
    root
        Store root directory; defaults to ``$RAISE_HOME``, else ``~/.raise``.
    user
        The user this store object acts as; defaults to ``$RAISE_USER``, else the
        operating-system user. Every operation checks this user's role on the namespace (see
        ``grant``). Locally the name is taken on trust; the HTTP server takes it from a token.

    Examples
    --------
    >>> fs = FeatureStore("acme/ml/engagement")                   # doctest: +SKIP
    >>> group = fs.create_feature_group("user-signals", keys="user_id", event_time="ts")  # doctest: +SKIP
    """

    def __init__(self, namespace: str, root: str | os.PathLike[str] | None = None, *, user: str | None = None) -> None:
        self.namespace = names.validate_namespace(namespace)
        self.user = access.resolve_user(user)
        self.root = resolve_root(root)
        self._catalog = open_catalog(self.root)
        self._actor = access.Actor(self.user, self._catalog)

    @classmethod
    def _for_scheduler(cls, namespace: str, root: Path, defined_by: str | None) -> FeatureStore:
        """Return the store a scheduled run acts in: as the user who defined the work, checked like them.

        Work defined before users were recorded (``defined_by`` is None) runs as the local user.
        """
        store = cls(namespace, root=root, user=defined_by)
        store._actor = access.Actor(store.user, store._catalog, via="scheduler")
        return store

    def __repr__(self) -> str:
        return f"FeatureStore({self.namespace!r}, root={str(self.root)!r}, user={self.user!r})"

    def _repr_html_(self) -> str:
        import html

        groups = self.list_feature_groups()
        items = "".join(
            f"<li><code>{html.escape(g.name)}</code> {html.escape(g.description or '')}</li>" for g in groups
        )
        return (
            f"<p><b>Feature store {html.escape(self.namespace)}</b> at <code>{html.escape(str(self.root))}</code>: "
            f"{len(groups)} feature group{'s' if len(groups) != 1 else ''}</p><ul>{items}</ul>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from raise_jupyter.display import rich_bundle

        return rich_bundle(self.browser, text=repr(self), html=self._repr_html_)

    def browser(self) -> Any:
        """Return a ``StoreBrowser`` of every namespace and group under this store's root."""
        from raise_jupyter.widgets import StoreBrowser

        return StoreBrowser(self)

    def alert_editor(self, name: str | None = None, *, group: str | None = None, feature: str | None = None) -> Any:
        """Return an ``AlertEditor`` form, for a new alert or to edit alert ``name``.

        Examples
        --------
        >>> fs.alert_editor()  # doctest: +SKIP
        >>> fs.alert_editor("delay-spike")  # doctest: +SKIP
        """
        from raise_jupyter.widgets import AlertEditor

        return AlertEditor(self, alert=name, group=group, feature=feature)

    # -- access control and the audit log ----------------------------------------------------

    def _path(self, path: str | None) -> str:
        return self.namespace if path is None else access.normalize_path(path)

    def grant(self, user: str, role: str, *, path: str | None = None) -> None:
        """Give ``user`` a role on a namespace path and every path below it.

        Parameters
        ----------
        user
            The user name, as ``FeatureStore(user=...)``, ``$RAISE_USER`` or a token gives it.
        role
            ``"viewer"`` (read data and definitions), ``"editor"`` (also define, ingest, run jobs
            and manage alerts and live tables) or ``"owner"`` (also grant, revoke and delete
            feature groups).
        path
            Namespace path such as ``"acme/ml"``; ``""`` is the whole store. Defaults to this
            store's namespace.

        Notes
        -----
        Granting needs the owner role on the path or a path above it. In a store without
        grants, where everyone may do everything, the first grant also makes the granting user
        owner of the whole store.

        Examples
        --------
        >>> fs.grant("alice", "editor", path="acme/ml")  # doctest: +SKIP
        """
        if access.grant(self._actor, user, role, self._path(path)):
            logger.info("Granted %s on %r to %s", role, self._path(path), user)

    def revoke(self, user: str, role: str | None = None, *, path: str | None = None) -> None:
        """Remove the grants of ``user`` on exactly ``path`` (one role, or every role with None).

        Grants on other paths, such as a path above, stay; ``permissions()`` lists them.
        """
        count = access.revoke(self._actor, user, role, self._path(path))
        logger.info("Revoked %d grants of %s on %r", count, user, self._path(path))

    def permissions(self, path: str | None = None) -> pandas.DataFrame:
        """Return the grants on ``path``, on the paths above it and below it, as a DataFrame.

        Columns: ``user``, ``role``, ``path``, ``granted_by`` and ``granted_at``. Defaults to
        this store's namespace; ``""`` lists every grant of the store.
        """
        import pandas as pd

        from raise_jupyter.engine.catalog import as_utc

        path = self._path(path)
        access.check(self._actor, access.READ, path=path, kind="namespace", name=path)
        related = [g for g in access.load_grants(self._catalog) if access.covers(g.path, path) or access.covers(path, g.path)]
        return pd.DataFrame(
            {
                "user": [g.user for g in related],
                "role": [g.role for g in related],
                "path": [g.path for g in related],
                "granted_by": [g.granted_by for g in related],
                "granted_at": [as_utc(g.granted_at) for g in related],
            },
            columns=["user", "role", "path", "granted_by", "granted_at"],
        )

    def audit_log(
        self, since: Any = None, user: str | None = None, action: str | None = None, *, path: str | None = None
    ) -> pandas.DataFrame:
        """Return the audit log of this namespace and the namespaces below it, oldest first.

        Reading it needs the owner role on the path. Columns: ``at`` (UTC), ``user``,
        ``action``, ``object_kind``, ``object``, ``namespace``, ``outcome`` (``ok``, ``denied``
        or ``failed``) and ``detail``.

        Parameters
        ----------
        since
            Only entries at or after this time (a datetime, date or ISO 8601 string; naive is UTC).
        user, action
            Only the entries of this user, or of this action (such as ``"ingest"``).
        path
            Namespace path to read instead of this store's namespace; ``""`` is the whole store,
            with token entries.
        """
        path = self._path(path)
        access.check(self._actor, access.READ_AUDIT_LOG, path=path, kind="namespace", name=path)
        return audit.read_log(self._actor, path=path, since=since, user=user, action=action)

    def create_token(self, user: str) -> CreatedToken:
        """Create a bearer token for ``user`` and return it; its secret ``.token`` is shown only now.

        Needs the owner role on the whole store, or a store without grants.
        """
        from raise_jupyter import tokens

        return tokens.create_token(self._actor, user)

    def list_tokens(self) -> pandas.DataFrame:
        """Return every token of the store, without secrets, as a DataFrame."""
        from raise_jupyter import tokens

        return tokens.list_tokens(self._actor)

    def revoke_token(self, token_id: int) -> bool:
        """Revoke the token with id ``token_id``; return False if it was revoked already."""
        from raise_jupyter import tokens

        return tokens.revoke_token(self._actor, token_id)

    # -- feature groups ---------------------------------------------------------------------

    @guarded(access.DEFINE, kind="feature_group", name="name")
    def create_feature_group(
        self,
        name: str,
        *,
        keys: str | Sequence[str] | None = None,
        event_time: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | Sequence[str] | None = None,
        ttl: dt.timedelta | float | None = None,
        online: bool = False,
        replace: bool = False,
    ) -> FeatureGroup:
        """Create a feature group, or return the existing one if the definition matches.

        Parameters
        ----------
        name
            Group name, such as ``"user-signals"``; it is also the table name in ``sql()``.
        keys
            Entity key column(s). Optional here; set them before the first ingest with
            ``group.set_keys(...)`` if training data or online lookups will need them.
        event_time
            Timestamp or date column with the time at which each row's values were observed.
        description, tags
            Documentation.
        ttl
            How long a row's values stay valid after its event time (a timedelta or seconds).
            Training data treats older rows as missing, and online lookups report them expired.
            None keeps values forever.
        online
            Also keep each key's latest values in the online store for ``get_online_features``
            (needs keys). True on an existing group enables it; False leaves it as it is.
        replace
            Replace a different existing definition instead of raising ConflictError. Keys and
            event time of a group that has data cannot change.
        """
        name = names.validate_group_name(name)
        keys_list = names.normalize_keys(keys)
        if event_time is not None:
            event_time = names.validate_feature_name(event_time)
        if keys_list and event_time in keys_list:
            raise DefinitionError(f"Column {event_time!r} cannot be both a key and the event time.")
        if description is not None and not isinstance(description, str):
            raise DefinitionError(f"description must be a string, got {description!r}.")
        tag_map = normalize_tags(tags, what=f"feature group {name!r}")
        ttl_us = names.normalize_ttl(ttl)

        with self._catalog.read() as conn:
            existing = self._catalog.get_group(conn, self.namespace, name)
        if existing is None:
            if online and not keys_list:
                raise DefinitionError(f"Online feature group {name!r} needs keys, such as keys='user_id'.")
            if any(live.name == name for live in self.list_live_tables()):
                raise ConflictError(f"{name!r} is a live table of this namespace; give the feature group another name.")
            created = self._insert_group(name, keys_list, event_time, description, tag_map or {}, ttl_us, online)
            if created is not None:
                audit.note(created=True)
                logger.info("Created feature group %s/%s", self.namespace, name)
                return FeatureGroup(self, created)
            with self._catalog.read() as conn:
                existing = self._catalog.get_group(conn, self.namespace, name)
            assert existing is not None

        group = FeatureGroup(self, existing)
        group._apply_group_definition(
            keys=keys_list, event_time=event_time, description=description, tags=tag_map, ttl_us=ttl_us, replace=replace
        )
        if online and not group.online:
            group.enable_online()
        return group

    def _insert_group(
        self,
        name: str,
        keys: list[str] | None,
        event_time: str | None,
        description: str | None,
        tags: dict[str, str],
        ttl_us: int | None,
        online: bool,
    ) -> GroupRecord | None:
        # The suffix keeps two processes creating the group at once from sharing a folder, and
        # contains a dot, which namespace segments cannot, so no namespace folder ever equals it.
        relative = Path("tables", *self.namespace.split("/"), f"{name}.{uuid.uuid4().hex[:8]}")
        offline.create_table(self.root / relative)
        try:
            with self._catalog.write() as conn:
                record = self._catalog.insert_group(
                    conn,
                    namespace=self.namespace,
                    name=name,
                    keys=keys,
                    event_time=event_time,
                    description=description,
                    tags=tags,
                    table_path=relative.as_posix(),
                    ttl_us=ttl_us,
                    online=online,
                )
                access.claim_namespace(conn, self._actor, self.namespace)
                return record
        except sa.exc.IntegrityError:
            # Another process created the group first; drop this table and use theirs.
            offline.delete_table(self.root / relative, self.root / "trash")
            return None

    def _live_views(self, referenced: set[str] | None, lowered: str) -> list[tuple[str, str]]:
        """Return (name, SELECT) of the live tables that a query names, for ``sql()``."""
        from raise_jupyter import live
        from raise_jupyter.engine import tables

        with self._catalog.read() as conn:
            rows = conn.execute(sa.select(tables.live_tables).where(tables.live_tables.c.namespace == self.namespace)).all()
        views = []
        for row in rows:
            used = row.name in referenced if referenced is not None else row.name in lowered
            view = live.view_sql(self.root, row) if used else None
            if view is not None:
                views.append((row.name, view))
        return views

    def _group_name_by_id(self, group_id: int, owner: str) -> str:
        """Return the name of group ``group_id``; raise NotFoundError naming ``owner`` if it was deleted."""
        from raise_jupyter.engine import tables

        with self._catalog.read() as conn:
            name = conn.execute(sa.select(tables.feature_groups.c.name).where(tables.feature_groups.c.id == group_id)).scalar()
        if name is None:
            raise NotFoundError(f"The feature group of {owner} (id {group_id}) was deleted.")
        return str(name)

    @guarded(access.READ, kind="feature_group", name="name")
    def get_feature_group(self, name: str) -> FeatureGroup:
        """Return the feature group ``name``; raise NotFoundError listing the existing ones."""
        names.validate_group_name(name)
        with self._catalog.read() as conn:
            record = self._catalog.get_group(conn, self.namespace, name)
            if record is None:
                existing = [g.name for g in self._catalog.list_groups(conn, self.namespace)]
        if record is None:
            raise NotFoundError(
                f"Feature group {name!r} does not exist in namespace {self.namespace!r}."
                f"{suggest(name, existing)} Existing groups: {', '.join(existing) or '(none)'}; "
                "create it with create_feature_group()."
            )
        return FeatureGroup(self, record)

    def __getitem__(self, name: str) -> FeatureGroup:
        return self.get_feature_group(name)

    @guarded(access.READ, kind="namespace", name=lambda self, _: self.namespace)
    def list_feature_groups(self) -> list[FeatureGroup]:
        """Return the feature groups of this namespace, sorted by name."""
        with self._catalog.read() as conn:
            records = self._catalog.list_groups(conn, self.namespace)
        return [FeatureGroup(self, record) for record in records]

    def _remove_live_files(self, live_ids: list[int]) -> None:
        """Remove the result files of deleted live tables, after their catalog rows are gone."""
        for live_id in live_ids:
            shutil.rmtree(self.root / "live" / str(live_id), ignore_errors=True)

    @guarded(access.DELETE_GROUP, kind="feature_group", name="name")
    def delete_feature_group(self, name: str, *, missing_ok: bool = False, cascade: bool = False) -> None:
        """Delete a feature group with its definitions and all of its stored data.

        Parameters
        ----------
        name
            The group to delete.
        missing_ok
            Return quietly when the group does not exist, instead of raising NotFoundError.
        cascade
            Also delete what uses the group: its alerts and live tables, and the jobs that read
            it or write it. Without it, a group with such dependents raises ConflictError
            listing them. The group's own derived features are deleted with it either way, and
            recorded training sets never block a delete.
        """
        from raise_jupyter import dependencies

        names.validate_group_name(name)
        with self._catalog.write() as conn:
            record = self._catalog.get_group(conn, self.namespace, name)
            if record is None:
                if missing_ok:
                    return
                raise NotFoundError(f"Feature group {name!r} does not exist in namespace {self.namespace!r}.")
            snapshot = dependencies.load(self._catalog, conn, self.namespace)
            dependents = dependencies.dependents_of_group(snapshot, record.id)
            if dependents and not cascade:
                raise ConflictError(dependencies.rejection_message(f"Feature group {name!r}", dependents))
            if dependents:
                # The audit entry of this delete names what the cascade removed with it.
                audit.note(cascaded=dependents.describe())
            live_ids = dependencies.delete_dependents(self._catalog, conn, dependents)
            self._catalog.delete_group(conn, record.id)
        self._remove_live_files(live_ids)
        offline.delete_table(self.root / record.table_path, self.root / "trash")
        online_store(self.root).drop(record.id)
        logger.info("Deleted feature group %s/%s", self.namespace, name)

    # -- alerts, live tables and the scheduler ------------------------------------------------

    @guarded(access.DEFINE, kind="alert", name="name")
    def create_alert(
        self,
        name: str,
        analysis: Any,
        condition: Any,
        notify: Sequence[str] | str = ("log",),
        *,
        group: str | FeatureGroup | None = None,
        schedule: Any = "hourly",
        on_ingest: bool = True,
        replace: bool = False,
    ) -> Alert:
        """Watch an aggregation of a feature and notify when a condition starts or stops holding.

        Parameters
        ----------
        name
            Alert name, unique in the namespace, such as ``"ctr-drift"``.
        analysis
            An ``Aggregation``. Its feature is found by name across the namespace's groups, or
            as ``"group.feature"``; a name found in several groups must be qualified.
        condition
            A ``Condition`` such as ``Condition.LESS_THAN(0.01)``; the alert fires while any
            metric value (per group with ``group_by``) meets it.
        notify
            E-mail addresses, http(s) webhook URLs (Slack-compatible JSON) and ``"log"``.
            Notifications are sent when the alert starts firing and when it stops, through a
            persistent outbox that retries until delivery. E-mails need ``smtp_url`` in the
            store's config.yaml or ``RAISE_SMTP_URL``.
        group
            The feature group, when the feature name alone is ambiguous.
        schedule
            ``"hourly"``, ``"daily"``, ``"every 10m"``, a five-field cron string or a
            ``Schedule``; a running ``raise worker`` or ``fs.start_scheduler()`` evaluates it.
        on_ingest
            Also evaluate right after each ingest into the group.
        replace
            Redefine an existing alert of that name; without it, a different definition raises
            ConflictError and an identical one returns the existing alert.

        Examples
        --------
        >>> fs.create_alert("ctr-drop", Aggregation(feature="ctr", metrics=["avg"]),
        ...                 Condition.LESS_THAN(0.01), notify=["team@example.com"])  # doctest: +SKIP
        """
        from raise_jupyter import alerts

        return alerts.create_alert(
            self, name, analysis, condition, notify, group=group, schedule=schedule, on_ingest=on_ingest, replace=replace
        )

    @guarded(access.READ, kind="alert", name="name")
    def get_alert(self, name: str) -> Alert:
        """Return the alert called ``name``."""
        from raise_jupyter import alerts

        return alerts.get_alert(self, name)

    @guarded(access.READ, kind="namespace", name=lambda self, _: self.namespace)
    def list_alerts(self) -> list[Alert]:
        """Return the alerts of this namespace, sorted by name."""
        from raise_jupyter import alerts

        return alerts.list_alerts(self)

    @guarded(access.READ, kind="live_table", name="name")
    def get_live_table(self, name: str) -> LiveTable:
        """Return the live table called ``name``."""
        from raise_jupyter import live

        return live.get_live_table(self, name)

    @guarded(access.READ, kind="namespace", name=lambda self, _: self.namespace)
    def list_live_tables(self) -> list[LiveTable]:
        """Return the live tables of this namespace, sorted by name."""
        from raise_jupyter import live

        return live.list_live_tables(self)

    @guarded(access.DEFINE, kind="job", name="name")
    def create_job(
        self,
        name: str,
        sources: Any,
        transform: Any,
        target: Any,
        schedule: Any = None,
        *,
        replace: bool = False,
    ) -> Job:
        """Define a job that transforms source groups into a target group, such as an embedding job.

        Parameters
        ----------
        name
            Job name, unique in the namespace.
        sources
            ``FeatureGroupSource`` objects (one for embeddings and Python functions, any number
            for ``sql_transform``).
        transform
            ``embedding_inference(...)``, ``sql_transform(...)`` or ``python_transform(...)``.
        target
            ``Target(feature_group=..., mode="upsert")``; the group is created when missing, with
            the first source's keys and event time.
        schedule
            A ``Schedule`` or schedule string for runs by ``raise worker`` or
            ``fs.start_scheduler()``. Scheduled runs process only the rows written since the last
            successful run. None (the default) runs only on ``job.run()``.
        replace
            Redefine an existing job of that name; an identical definition returns it unchanged.

        Examples
        --------
        >>> job = fs.create_job(
        ...     name="generate_embeddings",
        ...     sources=[FeatureGroupSource(group="user-profiles")],
        ...     transform=embedding_inference("hf://sentence-transformers/all-MiniLM-L6-v2", "bio", "bio_embedding"),
        ...     target=Target(feature_group="user-embeddings"),
        ... )  # doctest: +SKIP
        >>> job.run().wait().status  # doctest: +SKIP
        'succeeded'
        """
        from raise_jupyter import jobs

        return jobs.create_job(self, name, sources, transform, target, schedule, replace=replace)

    @guarded(access.READ, kind="job", name="name")
    def get_job(self, name: str) -> Job:
        """Return the job called ``name``."""
        from raise_jupyter import jobs

        return jobs.get_job(self, name)

    @guarded(access.READ, kind="namespace", name=lambda self, _: self.namespace)
    def list_jobs(self) -> list[Job]:
        """Return the jobs of this namespace, sorted by name."""
        from raise_jupyter import jobs

        return jobs.list_jobs(self)

    def start_scheduler(self, *, poll_interval: float = 1.0) -> Any:
        """Run due alert evaluations, live-table refreshes and notifications in a background thread.

        The thread serves the whole store root, like ``raise worker``; several schedulers and
        workers may run at once, and each due run happens once. Call ``.stop()`` on the
        returned object to end it.
        """
        from raise_jupyter import scheduler

        return scheduler.start_scheduler(self.root, poll_interval=poll_interval)

    # -- lineage ----------------------------------------------------------------------------

    @guarded(access.READ, kind="namespace", name=lambda self, _: self.namespace)
    def lineage(self, reference: Any) -> Lineage:
        """Return what feeds a feature, group, job, alert, live table or training set, and what it feeds.

        The graph is computed from the stored definitions. Derived features depend on their
        inputs, and alerts and live tables on the features their analysis uses. Jobs read
        their source groups (or the source columns they name) and write their target group.
        Training sets depend on the features and table versions they read.

        Parameters
        ----------
        reference
            ``"group.feature"``, ``"group"``, ``"job:NAME"``, ``"alert:NAME"``, ``"live:NAME"``,
            ``"training:NAME"`` (the newest training set of that name) or ``"training:#ID"``;
            or the ``FeatureGroup``, ``Feature``, ``Job``, ``Alert``, ``LiveTable`` or
            ``TrainingData`` object.

        Returns
        -------
        Lineage
            Nodes and edges with ``upstream``, ``downstream`` and ``to_pandas()``; it prints as
            a text tree and displays as a diagram in notebooks.

        Examples
        --------
        >>> fs.lineage("user-signals.ctr")  # doctest: +SKIP
        >>> fs.lineage("user-signals.ctr").to_pandas()  # doctest: +SKIP
        """
        from raise_jupyter.lineage import lineage

        return lineage(self, reference)

    # -- training data ----------------------------------------------------------------------

    @guarded(access.READ, kind="namespace", name=lambda self, _: self.namespace)
    def training_sets(self) -> pandas.DataFrame:
        """Return the recorded ``get_training_data`` calls of this namespace, newest first.

        The columns are ``id`` (for ``fs.lineage("training:#ID")``), ``name``, ``user``,
        ``created_at`` (UTC), ``features``, ``versions`` (the table version read from each
        group) and ``spine_rows``.
        """
        from raise_jupyter import training_sets

        return training_sets.history(self)

    @guarded(access.READ, kind="namespace", name=lambda self, _: self.namespace)
    def get_training_data(
        self,
        spine: Any,
        features: Sequence[str],
        *,
        timestamp_column: str | None = None,
        key_map: Mapping[str, str] | None = None,
        full_names: bool = False,
        as_of: Any = None,
        name: str | None = None,
    ) -> TrainingData:
        """Join feature values onto a spine as of each spine row's timestamp, without leakage.

        For each spine row and group, the values come from the row with equal keys and the
        greatest event time at or before the spine timestamp (and within the group's ``ttl``).
        Among rows with that event time, the one ingested last wins. Groups without an event
        time give each key's latest row. No match gives nulls. Derived features are computed on
        the joined rows.

        Parameters
        ----------
        spine
            pandas, polars or Arrow rows with key columns and a timestamp column; every column
            is kept, in spine order, duplicates included. Naive timestamps are UTC, dates are
            midnight UTC, and the output timestamps are UTC.
        features
            References ``"group.feature"``, or ``"group.*"`` for all features of a group.
        timestamp_column
            Spine column with each row's point in time. By default it is the column named like a
            group's event time, else the spine's only timestamp or date column.
        key_map
            Spine column to group key name, for keys named differently in the spine, such as
            ``{"uid": "user_id"}``.
        full_names
            Name feature columns ``group__feature``; needed when two groups share a feature name.
        as_of
            Table versions to read, as ``TrainingData.versions`` returns them (a dict of group
            name to version), or one version or timestamp for every group.
        name
            A label for this training set in the catalog's record and in ``fs.lineage``. Every
            call is recorded, named or not, with the user, the features and the table version
            read from each group.

        Examples
        --------
        >>> training = fs.get_training_data(labels, ["user-signals.ctr", "users.country"])  # doctest: +SKIP
        >>> again = fs.get_training_data(labels, [...], as_of=training.versions)             # doctest: +SKIP
        """
        return get_training_data(
            self,
            spine,
            features,
            timestamp_column=timestamp_column,
            key_map=key_map,
            full_names=full_names,
            as_of=as_of,
            name=name,
        )

    # -- online serving ---------------------------------------------------------------------

    @guarded(access.READ, kind="namespace", name=lambda self, _: self.namespace)
    def get_online_features(
        self, features: Sequence[str], entities: Mapping[str, Any], *, full_names: bool = False
    ) -> OnlineFeatures:
        """Look up the latest values of features for the given entity keys.

        Parameters
        ----------
        features
            References ``"group.feature"`` (or ``"group.*"``) of online groups.
        entities
            Key name to a list of values, one per requested row, such as ``{"user_id": [7, 0]}``.
            Values are converted to the key's dtype without loss (``1.0`` matches an int key).
        full_names
            Name feature columns ``group__feature``; needed when two groups share a feature name.

        Returns
        -------
        OnlineFeatures
            One row per requested entity, in request order, with the keys, the features (nulls
            for unknown or expired keys) and a ``status`` of ``found``, ``missing`` or
            ``expired``. With several groups the status columns are ``status__<group>``, and a
            feature named ``status`` moves the status column to ``_status``.
            Derived features are computed at lookup.

        Examples
        --------
        >>> fs.get_online_features(["user-signals.ctr"], entities={"user_id": [1, 2]}).to_pandas()  # doctest: +SKIP
        """
        return get_online_features(self, features, entities, full_names=full_names)

    # -- SQL --------------------------------------------------------------------------------

    @guarded(access.READ, kind="namespace", name=lambda self, _: self.namespace)
    def sql(self, query: str, params: Mapping[str, Any] | Sequence[Any] | None = None) -> QueryResult:
        """Run one DuckDB ``SELECT`` query in which every feature group is a table named after it.

        Group names contain ``-``, so quote them: ``SELECT avg(ctr) FROM "user-signals"``.
        Values enter the query only as bound parameters: ``$name`` with a dict for ``params``, or
        ``?`` with a list.
        Derived features are columns like any other. Each call reads the latest version of each
        group it names, and ``QueryResult.versions`` records which. Statements other than a
        single query (``CREATE``, ``COPY``, ``ATTACH``, several statements) are rejected.

        Examples
        --------
        >>> fs.sql('SELECT carrier, avg(speed_mph) FROM "flights" GROUP BY carrier')  # doctest: +SKIP
        """
        if not isinstance(query, str) or not query.strip():
            raise DefinitionError(f"sql() needs a query string, got {query!r}.")

        _check_single_select(query)
        groups = self.list_feature_groups()
        referenced = _referenced_tables(query)
        lowered = query.lower()
        cursor = connection(self.root).cursor()
        try:
            versions = {}
            for group in groups:
                used = group.name in referenced if referenced is not None else group.name in lowered
                if not used:
                    continue
                view_sql, version = group._view_sql()
                cursor.execute(f"CREATE OR REPLACE TEMP VIEW {quote(group.name)} AS {view_sql}")
                versions[group.name] = version
            for name, live_sql in self._live_views(referenced, lowered):
                try:
                    cursor.execute(f"CREATE OR REPLACE TEMP VIEW {quote(name)} AS {live_sql}")
                except duckdb.IOException:
                    raise QueryError(f"Live table {name!r} was replaced while the query started; run it again.") from None
            try:
                table = cursor.execute(query, params).to_arrow_table() if params is not None else cursor.execute(query).to_arrow_table()
            except duckdb.CatalogException as error:
                names_text = ", ".join(f'"{g.name}"' for g in groups) or "(none)"
                live_text = ", ".join(t.name for t in self.list_live_tables()) or "(none)"
                raise QueryError(
                    f"Query failed: {_first_line(error)} Feature groups of namespace "
                    f"{self.namespace!r}: {names_text}. Live tables: {live_text}."
                ) from None
            except duckdb.Error as error:
                raise QueryError(f"Query failed: {str(error).strip()}") from None
        finally:
            cursor.close()
        return QueryResult(table, versions=versions)
