"""Jupyter server extension: read-only REST handlers under ``/raise/api/``.

The JupyterLab sidebar and the ``%%raise`` completer read namespaces, groups and features
here. Every handler requires the server's authentication (a token or a login cookie) and only
reads: it never creates a store, so a request for a missing store gets a 404. The SQLite catalog runs in
WAL mode, so these reads do not block kernels that write to it.

Configuration: ``c.RaiseExtension.root`` in a Jupyter server config file, else
``$RAISE_HOME``, else ``~/.raise``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from traitlets import Unicode
from traitlets.config import Configurable

logger = logging.getLogger(__name__)

API = "raise/api"


class RaiseExtension(Configurable):
    """Settings of the Raise server extension."""

    root = Unicode(
        "",
        config=True,
        help="Store root the sidebar shows. Empty: $RAISE_HOME, else ~/.raise.",
    )


def store_root(configured: str) -> Path:
    """Return the store root from the configuration, ``$RAISE_HOME`` or ``~/.raise``."""
    from raise_jupyter.store import resolve_root

    return resolve_root(configured or None)


class StoreUnavailable(Exception):
    """The store cannot be read: missing, corrupt, or of another catalog schema revision."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def catalog_url(root: Path) -> str | None:
    """Return the catalog URL of the store at ``root``, or None if it has no catalog."""
    from raise_jupyter.config import setting

    configured = setting(root, "catalog_url")
    if configured:
        return configured
    path = root / "catalog.db"
    if not path.is_file():
        return None
    # Read-only: the server never migrates, creates or writes a catalog. The path is quoted for
    # the file: URI, and its "%" escaped again for SQLAlchemy's URL parsing.
    quoted = urllib.parse.quote(str(path)).replace("%", "%25")
    return f"sqlite:///file:{quoted}?mode=ro&uri=true"


def catalog_exists(root: Path) -> bool:
    """Return whether ``root`` contains a store, without creating one."""
    return catalog_url(root) is not None


@contextlib.contextmanager
def read_catalog(root: Path) -> Iterator[sa.Connection]:
    """Yield a read-only connection to the catalog, after checking its schema revision.

    A new engine per request, so a store deleted and made again at the same path is read anew.
    """
    from raise_jupyter.engine.catalog import CATALOG_REVISION

    url = catalog_url(root)
    if url is None:
        raise StoreUnavailable(
            404, f"No Raise store at {root}; create one with FeatureStore(namespace, root=...) or set c.RaiseExtension.root."
        )
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            try:
                revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            except sa.exc.SQLAlchemyError as error:
                raise StoreUnavailable(500, f"The catalog of the store at {root} cannot be read: {_first_line(error)}") from None
            if revision != CATALOG_REVISION:
                raise StoreUnavailable(
                    409,
                    f"The catalog of the store at {root} has schema revision {revision!r}, and this Raise reads "
                    f"{CATALOG_REVISION!r}. Open the store once from Python with the same Raise version as the "
                    "server (that upgrades an older catalog), or upgrade the server's Raise for a newer one.",
                )
            yield conn
    finally:
        engine.dispose()


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# -- reads --------------------------------------------------------------------------------------


def list_namespaces(root: Path) -> list[dict[str, Any]]:
    """Return each namespace of the store with its number of groups."""
    from raise_jupyter.engine import tables

    groups = tables.feature_groups
    query = sa.select(groups.c.namespace, sa.func.count().label("groups")).group_by(groups.c.namespace).order_by(groups.c.namespace)
    with read_catalog(root) as conn:
        query = _readable(conn, query)
        return [{"namespace": row.namespace, "groups": int(row.groups)} for row in conn.execute(query)]


def _readable(conn: sa.Connection, query: sa.Select) -> sa.Select:
    """Keep the namespaces that the server's user ($RAISE_USER, else the OS user) has a role on."""
    from raise_jupyter import access
    from raise_jupyter.engine import tables

    condition = access.readable_filter(tables.feature_groups.c.namespace, access.select_grants(conn), access.resolve_user(None))
    return query if condition is None else query.where(condition)


def list_groups(root: Path, namespace: str | None, *, rows: bool, name: str | None = None) -> list[dict[str, Any]]:
    """Return the groups (of one namespace, or all; or the one called ``name``) with features."""
    from raise_jupyter.engine import tables

    groups, features = tables.feature_groups, tables.features
    query = sa.select(groups).order_by(groups.c.namespace, groups.c.name)
    if namespace is not None:
        query = query.where(groups.c.namespace == namespace)
    if name is not None:
        query = query.where(groups.c.name == name)
    with read_catalog(root) as conn:
        records = conn.execute(_readable(conn, query)).all()
        feature_rows = conn.execute(
            sa.select(features).where(features.c.group_id.in_([r.id for r in records])).order_by(features.c.position, features.c.id)
        ).all()

    by_group: dict[int, list[Any]] = {}
    for feature in feature_rows:
        by_group.setdefault(feature.group_id, []).append(feature)
    listed = []
    for record in records:
        entry = {
            "namespace": record.namespace,
            "name": record.name,
            "description": record.description or "",
            "keys": list(record.keys or []),
            "event_time": record.event_time,
            "online": bool(record.online),
            "features": [_feature(record, f) for f in by_group.get(record.id, [])],
        }
        if rows:
            entry["rows"], entry["version"] = _row_count(root / record.table_path)
        listed.append(entry)
    return listed


def _feature(record: Any, feature: Any) -> dict[str, Any]:
    if feature.name in (record.keys or ()):
        role = "key"
    elif feature.name == record.event_time:
        role = "event time"
    elif feature.derived_from:
        role = "derived"
    else:
        role = "stored"
    return {
        "name": feature.name,
        "dtype": feature.dtype,
        "derived": feature.derived_from or "",
        "description": feature.description or "",
        "role": role,
    }


def _row_count(path: Path) -> tuple[int | None, int | None]:
    """Return the rows and version of a group's Delta table, from the log's file statistics."""
    import pyarrow as pa
    from deltalake import DeltaTable

    try:
        table = DeltaTable(str(path))
        actions = pa.table(table.get_add_actions(flatten=True))
        counts = actions.column("num_records").to_pylist() if actions.num_rows else []
        if any(count is None for count in counts):
            return None, table.version()
        return int(sum(counts)), table.version()
    except Exception as error:
        logger.warning("Counting rows of the table at %s failed: %s", path, error)
        return None, None


# -- handlers -----------------------------------------------------------------------------------


class _Handler(APIHandler):
    """Base of the handlers: runs reads off the event loop and turns store errors into JSON."""

    @property
    def root(self) -> Path:
        return self.settings["raise_root"]

    async def answer(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, lambda: function(*args, **kwargs))
        except StoreUnavailable as error:
            if error.status >= 500:
                logger.warning("Raise store at %s unavailable: %s", self.root, error)
            # The message goes in the JSON body; a long reason in the status line would be cut.
            raise tornado.web.HTTPError(error.status, str(error)) from None

    def reply(self, body: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class StoresHandler(_Handler):
    """GET /raise/api/stores: the configured store root and its namespaces."""

    @tornado.web.authenticated
    async def get(self) -> None:
        exists = catalog_exists(self.root)
        namespaces = await self.answer(list_namespaces, self.root) if exists else []
        self.reply({"stores": [{"root": str(self.root), "exists": exists, "namespaces": namespaces}]})


class NamespacesHandler(_Handler):
    """GET /raise/api/namespaces: each namespace and its number of groups."""

    @tornado.web.authenticated
    async def get(self) -> None:
        self.reply(await self.answer(list_namespaces, self.root))


class GroupsHandler(_Handler):
    """GET /raise/api/groups[?namespace=NS][&rows=0]: groups with features and row counts."""

    @tornado.web.authenticated
    async def get(self) -> None:
        namespace = self.get_query_argument("namespace", None)
        rows = self.get_query_argument("rows", "1") not in ("0", "false", "no")
        self.reply(await self.answer(list_groups, self.root, namespace, rows=rows))


class GroupHandler(_Handler):
    """GET /raise/api/group?namespace=NS&name=GROUP: one group, 404 if it does not exist."""

    @tornado.web.authenticated
    async def get(self) -> None:
        namespace = self.get_query_argument("namespace")
        name = self.get_query_argument("name")
        found = await self.answer(list_groups, self.root, namespace, rows=True, name=name)
        if not found:
            shown = name if len(name) <= 200 else name[:200] + "..."
            raise tornado.web.HTTPError(404, f"Feature group {shown!r} not found in namespace {namespace!r}.")
        self.reply(found[0])


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the handlers on the Jupyter server."""
    settings = RaiseExtension(config=serverapp.config)
    root = store_root(settings.root)
    web_app = serverapp.web_app
    web_app.settings["raise_root"] = root
    base = web_app.settings["base_url"]
    handlers = [
        (url_path_join(base, API, "stores"), StoresHandler),
        (url_path_join(base, API, "namespaces"), NamespacesHandler),
        (url_path_join(base, API, "groups"), GroupsHandler),
        (url_path_join(base, API, "group"), GroupHandler),
    ]
    web_app.add_handlers(".*$", handlers)
    serverapp.log.info("Raise server extension serves the store at %s under /%s/", root, API)
