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
import json
import logging
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


def catalog_exists(root: Path) -> bool:
    """Return whether ``root`` contains a store, without creating one."""
    from raise_jupyter.config import setting

    return (root / "catalog.db").exists() or setting(root, "catalog_url") is not None


# -- reads --------------------------------------------------------------------------------------


def list_namespaces(root: Path) -> list[dict[str, Any]]:
    """Return each namespace of the store with its number of groups."""
    from raise_jupyter.engine import tables
    from raise_jupyter.store import open_catalog

    groups = tables.feature_groups
    query = sa.select(groups.c.namespace, sa.func.count().label("groups")).group_by(groups.c.namespace).order_by(groups.c.namespace)
    with open_catalog(root).read() as conn:
        return [{"namespace": row.namespace, "groups": int(row.groups)} for row in conn.execute(query)]


def list_groups(root: Path, namespace: str | None, *, rows: bool) -> list[dict[str, Any]]:
    """Return the groups (of one namespace, or all) with their features and, if asked, row counts."""
    from raise_jupyter.engine import tables
    from raise_jupyter.store import FeatureStore, open_catalog

    groups = tables.feature_groups
    query = sa.select(groups.c.namespace, groups.c.name).order_by(groups.c.namespace, groups.c.name)
    if namespace is not None:
        query = query.where(groups.c.namespace == namespace)
    with open_catalog(root).read() as conn:
        pairs = [(row.namespace, row.name) for row in conn.execute(query)]

    stores: dict[str, Any] = {}
    listed = []
    for space, name in pairs:
        store = stores.setdefault(space, FeatureStore(space, root=root))
        try:
            group = store.get_feature_group(name)
            record, records = group._load()
        except Exception as error:  # deleted between the two reads
            logger.info("Skipped group %s/%s while listing: %s", space, name, error)
            continue
        entry = {
            "namespace": space,
            "name": name,
            "description": record.description or "",
            "keys": list(record.keys or []),
            "event_time": record.event_time,
            "online": bool(record.online),
            "features": [_feature(record, r) for r in records],
        }
        if rows:
            entry["rows"], entry["version"] = _row_count(group)
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


def _row_count(group: Any) -> tuple[int | None, int | None]:
    try:
        files = group._files(None, group._record())
        return group.count(as_of=files.version), files.version
    except Exception as error:
        logger.warning("Counting rows of %s/%s failed: %s", group.namespace, group.name, error)
        return None, None


# -- handlers -----------------------------------------------------------------------------------


class _Handler(APIHandler):
    """Base of the handlers: finds the store and runs reads off the event loop."""

    @property
    def root(self) -> Path:
        return self.settings["raise_root"]

    def require_store(self) -> None:
        if not catalog_exists(self.root):
            raise tornado.web.HTTPError(
                404,
                reason=f"No Raise store at {self.root}; create one with FeatureStore(namespace, root=...) "
                "or set c.RaiseExtension.root to an existing store.",
            )

    async def answer(self, function: Any, *args: Any, **kwargs: Any) -> None:
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(None, lambda: function(*args, **kwargs))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(result))


class StoresHandler(_Handler):
    """GET /raise/api/stores: the configured store root and its namespaces."""

    @tornado.web.authenticated
    async def get(self) -> None:
        exists = catalog_exists(self.root)
        namespaces = await asyncio.get_running_loop().run_in_executor(None, list_namespaces, self.root) if exists else []
        self.finish(json.dumps({"stores": [{"root": str(self.root), "exists": exists, "namespaces": namespaces}]}))


class NamespacesHandler(_Handler):
    """GET /raise/api/namespaces: each namespace and its number of groups."""

    @tornado.web.authenticated
    async def get(self) -> None:
        self.require_store()
        await self.answer(list_namespaces, self.root)


class GroupsHandler(_Handler):
    """GET /raise/api/groups[?namespace=NS][&rows=0]: groups with features and row counts."""

    @tornado.web.authenticated
    async def get(self) -> None:
        self.require_store()
        namespace = self.get_query_argument("namespace", None)
        rows = self.get_query_argument("rows", "1") not in ("0", "false", "no")
        await self.answer(list_groups, self.root, namespace, rows=rows)


class GroupHandler(_Handler):
    """GET /raise/api/group?namespace=NS&name=GROUP: one group, 404 if it does not exist."""

    @tornado.web.authenticated
    async def get(self) -> None:
        self.require_store()
        namespace = self.get_query_argument("namespace")
        name = self.get_query_argument("name")
        groups = await asyncio.get_running_loop().run_in_executor(None, lambda: list_groups(self.root, namespace, rows=True))
        found = [g for g in groups if g["name"] == name]
        if not found:
            raise tornado.web.HTTPError(404, reason=f"Feature group {name!r} not found in namespace {namespace!r}.")
        self.finish(json.dumps(found[0]))


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
