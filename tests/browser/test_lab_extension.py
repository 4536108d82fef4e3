"""The JupyterLab extension in a real JupyterLab and Chromium: the Feature Store sidebar,
SQL highlighting of %%raise cells, and completion served by the server extension."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from lab import artifacts_dir, cell, open_notebook, run_cell, screenshot, set_theme  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NAMESPACE = "lab/sidebar"
# The kernel inherits the server's RAISE_HOME, so both see the same store.
MAKE_GROUP = (
    "import pandas as pd\n"
    "from raise_jupyter import FeatureStore\n"
    f"fs = FeatureStore({NAMESPACE!r})\n"
    "group = fs.create_feature_group('kernel-made', keys='user_id', description='Made by a kernel')\n"
    "group.create_features_from_schema({'user_id': 'int64', 'clicks': 'int64', 'impressions': 'int64'})\n"
    "group.create_feature('ctr', dtype='float64', derived_from='clicks / NULLIF(impressions, 0)', description='Click rate')\n"
    "group.ingest(pd.DataFrame({'user_id': [1, 2], 'clicks': [3, 4], 'impressions': [10, 20]}))"
)
SQL_CELL = '%%raise\nSELECT user_id FROM "kernel-made" WHERE cl'
PYTHON_CELL = "SELECT = 1\nimport os"

_SOURCE = "(index) => window.jupyterapp.shell.currentWidget.content.widgets[index].model.sharedModel.getSource()"


def _open_sidebar(page: Any) -> Any:
    tab = page.locator('.jp-SideBar [data-id="raise-feature-store"]')
    tab.click()
    sidebar = page.locator("#raise-feature-store")
    sidebar.wait_for()
    return sidebar


def _token_color(page: Any, index: int, line: int, word: str) -> str:
    """Return the computed color of ``word`` on ``line`` of the editor of cell ``index``."""
    return page.evaluate(
        """([index, line, word]) => {
          const cell = window.jupyterapp.shell.currentWidget.content.widgets[index];
          const row = cell.node.querySelectorAll('.cm-line')[line];
          const walker = document.createTreeWalker(row, NodeFilter.SHOW_TEXT);
          while (walker.nextNode()) {
            if (walker.currentNode.textContent.includes(word)) {
              return getComputedStyle(walker.currentNode.parentElement).color;
            }
          }
          return null;
        }""",
        [index, line, word],
    )


def test_sidebar_shows_group_made_by_kernel(lab: Any, page: Any) -> None:
    name = lab.write_notebook("sidebar.ipynb", [MAKE_GROUP, "x = 1"])
    open_notebook(page, lab, name)
    sidebar = _open_sidebar(page)
    assert sidebar.locator('.raise-tree-group[data-group="kernel-made"]').count() == 0

    run_cell(page, 0)
    sidebar.locator(".raise-sidebar-refresh").click()
    group = sidebar.locator('.raise-tree-group[data-group="kernel-made"]')
    group.wait_for()
    assert "2 rows" in group.locator(".raise-tree-group-rows").inner_text()

    group.locator(".raise-tree-group-summary").click()
    ctr = group.locator('.raise-tree-feature[data-feature="ctr"]')
    ctr.wait_for()
    assert "derived: clicks / NULLIF(impressions, 0)" in ctr.get_attribute("title")
    assert "Click rate" in ctr.get_attribute("title")

    sidebar.locator(".raise-sidebar-search").fill("impr")
    assert sidebar.locator(".raise-tree-feature").count() == 1
    sidebar.locator(".raise-sidebar-search").fill("")
    for theme in ("light", "dark"):
        set_theme(page, theme)
        screenshot(sidebar, artifacts_dir(), f"sidebar-{theme}")
    set_theme(page, "light")


def test_feature_click_inserts_reference(lab: Any, page: Any) -> None:
    name = lab.write_notebook("insert.ipynb", [MAKE_GROUP.replace("create_feature_group", "create_feature_group", 1), "x = "])
    open_notebook(page, lab, name)
    run_cell(page, 0)
    sidebar = _open_sidebar(page)
    sidebar.locator(".raise-sidebar-refresh").click()
    group = sidebar.locator('.raise-tree-group[data-group="kernel-made"]')
    group.wait_for()

    # Put the cursor at the end of the second cell, then click a feature in the sidebar.
    cell(page, 1).locator(".cm-content").click()
    page.keyboard.press("End")
    group.locator(".raise-tree-group-summary").click()
    group.locator('.raise-tree-feature[data-feature="clicks"]').click()
    assert page.evaluate(_SOURCE, 1) == 'x = "kernel-made".clicks'

    group.locator(".raise-tree-group-show").click()
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.content.widgets.length === 3")
    assert page.evaluate(_SOURCE, 2) == "%raise show kernel-made"


def test_raise_cell_highlighted_as_sql(lab: Any, page: Any) -> None:
    name = lab.write_notebook("highlight.ipynb", [SQL_CELL, PYTHON_CELL, "%%raise define kernel-made\nclicks: int64"])
    open_notebook(page, lab, name)
    cell(page, 2).locator(".cm-line").first.wait_for()

    sql_keyword = _token_color(page, 0, 1, "SELECT")
    python_name = _token_color(page, 1, 0, "SELECT")
    python_keyword = _token_color(page, 1, 1, "import")

    # SELECT is a keyword in the %%raise cell and a plain name in the Python cell.
    assert sql_keyword == python_keyword
    assert python_name != python_keyword
    # In the YAML cell the key and its value get different colors.
    assert _token_color(page, 2, 1, "clicks") != _token_color(page, 2, 1, "int64")
    screenshot(cell(page, 0), artifacts_dir(), "raise-cell-sql-light")
    screenshot(cell(page, 1), artifacts_dir(), "python-cell-light")


def test_completion_offers_feature_names(lab: Any, page: Any) -> None:
    name = lab.write_notebook("complete.ipynb", [MAKE_GROUP, SQL_CELL])
    open_notebook(page, lab, name)
    run_cell(page, 0)

    editor = cell(page, 1).locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.press("Tab")
    completer = page.locator(".jp-Completer")
    completer.wait_for()
    matches = completer.locator(".jp-Completer-item .jp-Completer-match")
    labels = [matches.nth(i).inner_text().strip() for i in range(matches.count())]
    assert "clicks" in labels
    screenshot(page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)"), artifacts_dir(), "raise-cell-completion-light")

    page.keyboard.press("Enter")
    page.wait_for_function(f"() => ({_SOURCE})(1).endsWith('WHERE clicks')")
