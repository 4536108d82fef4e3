"""The store browser: every namespace and feature group under a store root; clicking a group
opens its panel."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets
import sqlalchemy as sa
import traitlets

from raise_jupyter.engine import tables
from raise_jupyter.widgets._common import css, cut, esm, short_error, widget_bundle

if TYPE_CHECKING:
    from raise_jupyter.store import FeatureStore
    from raise_jupyter.widgets._panel import GroupPanel

__all__ = ["StoreBrowser"]

logger = logging.getLogger(__name__)

# Groups listed at most, and description characters per group; a store with more groups shows
# the count of the rest. Both keep the listing within the widget message limit.
MAX_GROUPS = 1_000
DESCRIPTION_CHARS = 200


class StoreBrowserView(anywidget.AnyWidget):
    """The front-end part of ``StoreBrowser``."""

    _esm = esm("browser.js")
    _css = css("browser.css")

    root = traitlets.Unicode("").tag(sync=True)
    current = traitlets.Unicode("").tag(sync=True)
    namespaces = traitlets.List().tag(sync=True)
    hidden = traitlets.Int(0).tag(sync=True)
    opened = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)


class StoreBrowser(ipywidgets.VBox):
    """Namespaces and feature groups of a store root, as a clickable list.

    Parameters
    ----------
    store
        A ``FeatureStore``; the browser lists every namespace under its root and marks the
        store's own.

    Examples
    --------
    >>> StoreBrowser(fs)  # the same as displaying ``fs``  # doctest: +SKIP
    """

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self.view = StoreBrowserView(root=str(store.root), current=store.namespace)
        self.panel: GroupPanel | None = None
        self._slot = ipywidgets.VBox([])
        self._lock = threading.Lock()
        super().__init__([self.view, self._slot])
        self.view.on_msg(self._on_message)
        self.refresh()

    def refresh(self) -> None:
        """Read the namespaces and groups again."""
        try:
            self.view.namespaces, self.view.hidden = _listing(self.store)
            self.view.error = ""
        except Exception as error:
            self.view.error = short_error(error)

    # Not named "open": ipywidgets.Widget.open() opens the widget's comm and runs in __init__.
    def open_group(self, namespace: str, name: str) -> GroupPanel:
        """Show the panel of group ``name`` in ``namespace`` below the list and return it."""
        from raise_jupyter.store import FeatureStore
        from raise_jupyter.widgets._panel import GroupPanel

        store = self.store if namespace == self.store.namespace else FeatureStore(namespace, root=self.store.root, user=self.store.user)
        with self._lock:
            self.panel = GroupPanel(store.get_feature_group(name))
            self._slot.children = [self.panel]
        self.view.opened = f"{namespace}/{name}"
        return self.panel

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: list[Any]) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "refresh":
            self.refresh()
        elif content.get("type") == "open":
            try:
                self.open_group(str(content.get("namespace")), str(content.get("name")))
            except Exception as error:
                self.view.error = short_error(error)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return widget_bundle(self, text=repr(self), html=self.store._repr_html_())

    def __repr__(self) -> str:
        return f"StoreBrowser({str(self.store.root)!r})"


def _listing(store: FeatureStore) -> tuple[list[dict[str, Any]], int]:
    groups, features = tables.feature_groups, tables.features
    count = sa.select(sa.func.count()).where(features.c.group_id == groups.c.id).scalar_subquery()
    query = (
        sa.select(groups.c.namespace, groups.c.name, groups.c.description, groups.c.online, count.label("features"))
        .order_by(groups.c.namespace, groups.c.name)
        .limit(MAX_GROUPS + 1)
    )
    from raise_jupyter import access

    readable = access.readable_filter(groups.c.namespace, access.load_grants(store._catalog), store.user)
    total_query = sa.select(sa.func.count()).select_from(groups)
    if readable is not None:
        query, total_query = query.where(readable), total_query.where(readable)
    with store._catalog.read() as conn:
        rows = conn.execute(query).all()
        total = conn.execute(total_query).scalar() or 0
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for row in rows[:MAX_GROUPS]:
        by_namespace.setdefault(row.namespace, []).append(
            {
                "name": row.name,
                "description": cut(row.description or "", DESCRIPTION_CHARS),
                "online": bool(row.online),
                "features": int(row.features),
            }
        )
    listing = [{"namespace": ns, "groups": items} for ns, items in by_namespace.items()]
    return listing, max(int(total) - MAX_GROUPS, 0)

