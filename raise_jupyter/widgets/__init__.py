"""Notebook widgets of Raise: group panel, distribution chart, alert editor, job progress and
store browser.

Importing this module imports ipywidgets and anywidget; Altair is imported when the first
chart is drawn. Displaying a ``FeatureGroup``, ``FeatureStore`` or ``JobRun`` in a Jupyter
kernel shows these widgets; elsewhere the objects show plain text and static HTML.
"""

from raise_jupyter.widgets._alert_editor import AlertEditor
from raise_jupyter.widgets._browser import StoreBrowser
from raise_jupyter.widgets._chart import DistributionChart
from raise_jupyter.widgets._panel import GroupPanel
from raise_jupyter.widgets._progress import JobProgress

__all__ = ["AlertEditor", "DistributionChart", "GroupPanel", "JobProgress", "StoreBrowser"]
