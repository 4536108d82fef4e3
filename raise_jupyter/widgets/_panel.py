"""The feature-group panel: definitions, statistics, preview, and the group's alerts, live
tables and jobs, with a distribution chart that opens when a feature is clicked."""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets
import sqlalchemy as sa
import traitlets

from raise_jupyter.engine import tables
from raise_jupyter.widgets._common import css, cut, esm, short_error, start_thread, widget_bundle
from raise_jupyter.widgets._preview import pack_preview

if TYPE_CHECKING:
    from raise_jupyter.group import FeatureGroup
    from raise_jupyter.widgets._alert_editor import AlertEditor
    from raise_jupyter.widgets._chart import DistributionChart

__all__ = ["GroupPanel"]

logger = logging.getLogger(__name__)

# Features profiled per query; the panel shows each batch as it arrives.
PROFILE_BATCH = 100
# Text in statistics and definitions is cut to these lengths, so that 2,000 features with
# long names, values or descriptions stay within the widget message limit.
STAT_CHARS = 40
DESCRIPTION_CHARS = 300
# Panels whose statistics are still computing are stopped at interpreter exit.
_OPEN_PANELS: weakref.WeakSet[GroupPanel] = weakref.WeakSet()
TABS = ("features", "preview", "alerts", "live", "jobs")


class GroupPanelView(anywidget.AnyWidget):
    """The front-end part of ``GroupPanel``; its traits are what the browser receives."""

    _esm = esm("panel.js")
    _css = css("panel.css")

    header = traitlets.Dict().tag(sync=True)
    features = traitlets.List().tag(sync=True)
    stats = traitlets.Dict().tag(sync=True)
    stats_status = traitlets.Unicode("").tag(sync=True)
    stats_done = traitlets.Bool(False).tag(sync=True)
    tab = traitlets.Unicode("features").tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    preview = traitlets.Bytes(b"").tag(sync=True)
    preview_columns = traitlets.List().tag(sync=True)
    preview_note = traitlets.Unicode("").tag(sync=True)
    related = traitlets.Dict().tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)


class GroupPanel(ipywidgets.VBox):
    """A panel for one feature group; shown when a ``FeatureGroup`` is displayed.

    The feature table appears at once; statistics are computed in DuckDB in the background
    and fill in batch by batch. Clicking a feature opens its distribution chart below.

    Parameters
    ----------
    group
        The feature group to show.

    Examples
    --------
    >>> GroupPanel(fs["flights"])  # doctest: +SKIP
    """

    def __init__(self, group: FeatureGroup) -> None:
        self.group = group
        self.view = GroupPanelView()
        self.chart: DistributionChart | None = None
        self.editor: AlertEditor | None = None
        self._slot = ipywidgets.VBox([])
        self._lock = threading.Lock()
        self._loaded_tabs: set[str] = set()
        self._threads: list[threading.Thread] = []
        # Counts refreshes, so that statistics of an earlier refresh are dropped when they finish last.
        self._generation = 0
        self._closed = False
        _OPEN_PANELS.add(self)
        super().__init__([self.view, self._slot])

        self.view.observe(self._on_select, "selected")
        self.view.observe(self._on_tab, "tab")
        self.view.on_msg(self._on_message)
        self.refresh()

    # -- loading ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload definitions now, and statistics and the open tab in the background."""
        try:
            self.view.header, self.view.features = _definitions(self.group)
            self.view.error = ""
        except Exception as error:
            self.view.error = short_error(error)
            return
        self._loaded_tabs = {self.view.tab}
        self.view.stats_done = False
        with self._lock:
            self._generation += 1
            generation = self._generation
        self._background(lambda: self._load_stats(generation), "panel-stats")
        self._background(_prepare_charts, "panel-charts")
        if self.view.tab != "features":
            self._background(lambda: self._load_tab(self.view.tab), "panel-tab")

    def wait(self, timeout: float | None = 60) -> GroupPanel:
        """Block until background loading has finished (for scripts and tests)."""
        for thread in list(self._threads):
            thread.join(timeout)
        return self

    def _background(self, target: Any, name: str) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(start_thread(target, name=name))

    def _load_stats(self, generation: int) -> None:
        from raise_jupyter.profile import plan_profile, profile_features, sample_note

        def show(**traits: Any) -> None:
            with self._lock:
                if generation == self._generation:
                    for name, value in traits.items():
                        setattr(self.view, name, value)

        try:
            plan = plan_profile(self.group)
            names = plan.layout.names
            show(stats_status=f"Computing statistics of {len(names)} features from {sample_note(plan.rows, plan.sample_rows)}\u2026")
            stats: dict[str, Any] = {}
            for start in range(0, len(names), PROFILE_BATCH):
                if generation != self._generation or self._closed:
                    # A newer refresh or close() took over; its batches replace these.
                    return
                for profile in profile_features(self.group, plan, names[start : start + PROFILE_BATCH]):
                    stats[profile.name] = _shorten_text(profile.to_dict())
                show(stats=dict(stats))
            show(stats_status=f"Statistics of version {plan.files.version} from {sample_note(plan.rows, plan.sample_rows)}.", stats_done=True)
        except Exception as error:
            logger.warning("Statistics of %s failed: %s", self.group.name, error)
            show(stats_status=f"Statistics failed: {short_error(error)}", stats_done=True)

    def _on_tab(self, change: dict[str, Any]) -> None:
        tab = change["new"]
        if tab in self._loaded_tabs or tab not in TABS or tab == "features":
            return
        self._loaded_tabs.add(tab)
        self._background(lambda: self._load_tab(tab), f"panel-{tab}")

    def _load_tab(self, tab: str) -> None:
        generation = self._generation
        try:
            if tab == "preview":
                traits = self._preview_traits()
            elif tab in ("alerts", "live", "jobs"):
                traits = {"related": _related(self.group)}
            else:
                return
        except Exception as error:
            logger.warning("Loading the %s tab of %s failed: %s", tab, self.group.name, error)
            traits = {"error": short_error(error)}

        # A refresh that started meanwhile loads the tab again; drop this older result.
        with self._lock:
            if generation == self._generation:
                with self.view.hold_sync():
                    for name, value in traits.items():
                        setattr(self.view, name, value)

    def _preview_traits(self) -> dict[str, Any]:
        from raise_jupyter.engine.duck import quote

        sql, _, version = self.group._select_sql(None, None, None)
        event_time = self.group.event_time
        order = f" ORDER BY {quote(event_time)}" if event_time else ""
        table = self.group._read(f"SELECT * FROM ({sql}) AS t{order} LIMIT 50", None, version)
        preview = pack_preview(table, total_rows=self.view.header.get("rows"))
        which = f"earliest by {event_time}" if event_time else "in storage order"
        return {
            "preview_columns": preview.columns,
            "preview_note": f"Version {version}, {preview.note} ({which}).",
            "preview": preview.data,
        }

    # -- interaction ------------------------------------------------------------------------

    def _on_select(self, change: dict[str, Any]) -> None:
        name = change["new"]
        # open_chart() sets ``selected`` too, and that must not compute the chart a second time.
        if name and (self.chart is None or self.chart.feature != name):
            self.open_chart(name)

    def open_chart(self, feature: str) -> DistributionChart:
        """Show the distribution chart of ``feature`` below the panel and return it."""
        from raise_jupyter.widgets._chart import DistributionChart

        with self._lock:
            if self.chart is None:
                self.chart = DistributionChart(self.group, feature)
            else:
                self.chart.show(feature)
            self._slot.children = [self.chart]
        if self.view.selected != feature:
            self.view.selected = feature
        return self.chart

    def open_alert_editor(self) -> AlertEditor:
        """Show an alert editor for this group below the panel and return it."""
        from raise_jupyter.widgets._alert_editor import AlertEditor

        with self._lock:
            self.editor = AlertEditor(self.group._store, group=self.group.name, feature=self.view.selected or None)
            self._slot.children = [self.editor]
        return self.editor

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: list[Any]) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "refresh":
            self.refresh()
        elif kind == "new_alert":
            self.open_alert_editor()

    def close(self) -> None:
        """Close the panel and its chart or editor; statistics stop after the current batch."""
        self._closed = True
        for child in (self.chart, self.editor, self.view, self._slot):
            if child is not None:
                child.close()
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return widget_bundle(self, text=repr(self), html=self.group._repr_html_())

    def __repr__(self) -> str:
        return f"GroupPanel({self.group.namespace}/{self.group.name})"


def _definitions(group: FeatureGroup) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return the panel header and the feature rows, from the catalog and table metadata."""
    record, records = group._load()
    files = group._files(None, record)
    rows = group.count(as_of=files.version)
    header = {
        "namespace": group.namespace,
        "name": group.name,
        "keys": list(record.keys or []),
        "event_time": record.event_time,
        "rows": rows,
        "version": files.version,
        "online": bool(record.online),
        "description": cut(record.description or "", DESCRIPTION_CHARS),
        "ttl": str(record.ttl) if record.ttl else "",
    }
    features = [
        {
            "name": r.name,
            "dtype": r.dtype,
            "derived": cut(r.derived_from or "", DESCRIPTION_CHARS),
            "description": cut(r.description or "", DESCRIPTION_CHARS),
            "role": _role(record, r),
        }
        for r in records
    ]
    return header, features


def _shorten_text(stats: dict[str, Any]) -> dict[str, Any]:
    """Cut text values of a feature's statistics to STAT_CHARS characters.

    Without the cut, a text feature of long documents sends its minimum, maximum and top values
    in full, and one stats message can exceed the widget message limit.
    """

    def shorten(value: Any) -> Any:
        return cut(value, STAT_CHARS) if isinstance(value, str) else value

    return {**stats, "min": shorten(stats["min"]), "max": shorten(stats["max"]), "labels": [shorten(label) for label in stats["labels"]]}


def _role(record: Any, feature: Any) -> str:
    """Return a feature's role in its group: key, event time, derived or stored."""
    if feature.name in (record.keys or ()):
        return "key"
    if feature.name == record.event_time:
        return "event time"
    if feature.derived_from:
        return "derived"
    return "stored"


def _related(group: FeatureGroup) -> dict[str, list[dict[str, Any]]]:
    """Return the alerts, live tables and jobs that read or write ``group``."""
    from raise_jupyter.conditions import condition_from_spec

    group._record()  # raises if the group was deleted, even if its id was reused
    catalog = group._catalog
    with catalog.read() as conn:
        alerts = conn.execute(sa.select(tables.alerts).where(tables.alerts.c.group_id == group._id).order_by(tables.alerts.c.name)).all()
        lives = conn.execute(sa.select(tables.live_tables).where(tables.live_tables.c.group_id == group._id).order_by(tables.live_tables.c.name)).all()
        jobs = conn.execute(sa.select(tables.jobs).where(tables.jobs.c.namespace == group.namespace).order_by(tables.jobs.c.name)).all()
    return {
        "alerts": [
            {
                "name": a.name,
                "metric": f"{', '.join(a.analysis.get('metrics', []))} of {a.analysis.get('feature')}",
                "condition": condition_from_spec(a.condition).describe(),
                "state": a.state or "not evaluated",
                "schedule": a.schedule,
                "paused": bool(a.paused),
            }
            for a in alerts
        ],
        "live": [
            {
                "name": t.name,
                "refresh": t.refresh,
                "rows": t.rows,
                "refreshed_at": t.refreshed_at.isoformat(sep=" ", timespec="seconds") if t.refreshed_at else "never",
            }
            for t in lives
        ],
        "jobs": [
            {
                "name": j.name,
                "role": _job_role(group.name, j.sources, j.target),
                "transform": str(j.transform.get("kind", "")),
                "schedule": j.schedule or "on demand",
            }
            for j in jobs
            if _job_role(group.name, j.sources, j.target)
        ],
    }


def _job_role(name: str, sources: Any, target: Any) -> str:
    reads = any(isinstance(s, dict) and s.get("group") == name for s in sources or [])
    writes = isinstance(target, dict) and target.get("feature_group") == name
    if reads and writes:
        return "reads and writes"
    if reads:
        return "reads"
    if writes:
        return "writes"
    return ""


def _prepare_charts() -> None:
    """Import Altair and its bundled JavaScript ahead of the first click on a feature."""
    from raise_jupyter.widgets._chart import load_altair

    load_altair()


def _stop_panels_at_exit() -> None:
    for panel in list(_OPEN_PANELS):
        panel._closed = True


# The statistics threads are not daemons, and the interpreter joins them before it runs atexit
# functions. threading's own exit hook runs before that join, so it is used here, as
# concurrent.futures does.
getattr(threading, "_register_atexit", atexit.register)(_stop_panels_at_exit)
