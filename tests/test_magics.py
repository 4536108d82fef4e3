"""The %raise and %%raise magics, driven through a real IPython InteractiveShell."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

IPython = pytest.importorskip("IPython")
from IPython.core.error import UsageError  # noqa: E402
from IPython.testing.globalipapp import start_ipython  # noqa: E402

import raise_jupyter  # noqa: E402
from raise_jupyter import FeatureStore, active  # noqa: E402

def get_ipython():
    """Return the test process's one IPython shell, started on first use."""
    start_ipython()
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance()


DEFINE = """
user_id: int64
ts: timestamp
clicks: int64
impressions: int64
"""


@pytest.fixture
def ip(root: Path):
    shell = get_ipython()
    shell.run_line_magic("load_ext", "raise_jupyter")
    shell.run_line_magic("raise", f"use acme/ml/engagement --root {root}")
    yield shell
    shell.run_line_magic("unload_ext", "raise_jupyter")
    active._active = None


@pytest.fixture
def signals(ip):
    group = ip.run_cell_magic("raise", "define user-signals --keys user_id --event-time ts", DEFINE)
    group.ingest(
        pd.DataFrame(
            {
                "user_id": [1, 2, 3],
                "ts": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-02"], utc=True),
                "clicks": [1, 5, 9],
                "impressions": [10, 10, 10],
            }
        )
    )
    return group


def test_use_sets_current_store(ip, root: Path) -> None:
    store = raise_jupyter.current_store()

    assert store.namespace == "acme/ml/engagement"
    assert store.root == root.resolve()


def test_python_store_can_be_made_active(ip, root: Path) -> None:
    fs = FeatureStore("other/ns", root=root)

    raise_jupyter.use_store(fs)

    assert raise_jupyter.current_store() is fs


def test_define_is_idempotent(ip, signals) -> None:
    again = ip.run_cell_magic("raise", "define user-signals --keys user_id --event-time ts", DEFINE)

    assert [f.name for f in again.features] == ["user_id", "ts", "clicks", "impressions"]
    assert again.keys == ["user_id"]
    assert again.event_time == "ts"
    assert again.count() == 3


def test_sql_cell_with_output_variable(ip, signals) -> None:
    result = ip.run_cell_magic("raise", "-o frame", 'SELECT user_id, clicks FROM "user-signals" ORDER BY user_id')

    assert len(result) == 3
    assert ip.user_ns["frame"]["clicks"].tolist() == [1, 5, 9]


def test_sql_cell_assignment_form(ip, signals) -> None:
    ip.run_cell_magic("raise", "top <<", 'SELECT max(clicks) AS m FROM "user-signals"')

    assert ip.user_ns["top"]["m"].tolist() == [9]


def test_parameters_are_bound_not_pasted(ip, signals) -> None:
    ip.user_ns["evil"] = "'); DROP TABLE x; --"
    ip.user_ns["low"] = 5

    ip.run_cell_magic("raise", "-o hits", 'SELECT {{evil}} AS v, count(*) AS n FROM "user-signals" WHERE clicks >= {{ low }}')

    assert ip.user_ns["hits"]["v"].tolist() == ["'); DROP TABLE x; --"]
    assert ip.user_ns["hits"]["n"].tolist() == [2]
    assert signals.count() == 3


def test_placeholders_in_strings_are_text(ip, signals) -> None:
    ip.run_cell_magic("raise", "-o text", "SELECT '{{evil}}' AS v -- {{missing}}\n")

    assert ip.user_ns["text"]["v"].tolist() == ["{{evil}}"]


def test_unknown_parameter_is_usage_error(ip, signals) -> None:
    with pytest.raises(UsageError, match=r"\{\{nope\}\} names no variable of this kernel"):
        ip.run_cell_magic("raise", "", "SELECT {{nope}}")


def test_sql_error_shows_duckdb_position(ip, signals) -> None:
    with pytest.raises(UsageError, match=r"(?s)Query failed: .*clickz.*LINE 1"):
        ip.run_cell_magic("raise", "", 'SELECT clickz FROM "user-signals"')


def test_unknown_group_suggests_names(ip, signals) -> None:
    with pytest.raises(UsageError, match=r"Did you mean 'user-signals'\?"):
        ip.run_line_magic("raise", "show user-signal")


def test_line_magics(ip, signals) -> None:
    groups = ip.run_line_magic("raise", "groups")
    shown = ip.run_line_magic("raise", "show user-signals")
    analysis = ip.run_line_magic("raise", "analyze user-signals.clicks avg p50 --by date")
    dist = ip.run_line_magic("raise", "dist user-signals.clicks --bins 2")

    assert groups == ["user-signals"]
    assert shown.name == "user-signals"
    assert analysis.series("avg") == [(pd.Timestamp("2024-01-01").date(), 3.0), (pd.Timestamp("2024-01-02").date(), 9.0)]
    assert dist.values["count"] == {"[1, 5)": 1, "[5, 9]": 2}
    assert ip.run_line_magic("raise", "alerts") == []
    assert ip.run_line_magic("raise", "jobs") == []
    assert "%%raise define GROUP" in repr(ip.run_line_magic("raise", "help"))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("frobnicate", "Unknown %raise command 'frobnicate'"),
        ("analyze clicks avg", "Write the feature as GROUP.FEATURE"),
        ("analyze user-signals.clicks average", "Unknown metric 'average'"),
        ("dist user-signals.clicks --bins many", "argument --bins: invalid int value"),
        ("show", "Usage: %raise show GROUP"),
    ],
)
def test_usage_errors(ip, signals, line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("raise", line)


def test_no_active_store(root: Path) -> None:
    shell = get_ipython()
    shell.run_line_magic("load_ext", "raise_jupyter")
    active._active = None
    try:
        with pytest.raises(UsageError, match="No store is active in this kernel"):
            shell.run_line_magic("raise", "groups")
    finally:
        shell.run_line_magic("unload_ext", "raise_jupyter")


def test_unload_removes_magics(ip) -> None:
    ip.run_line_magic("unload_ext", "raise_jupyter")

    assert "raise" not in ip.magics_manager.magics["line"]
    ip.run_line_magic("load_ext", "raise_jupyter")
    assert "raise" in ip.magics_manager.magics["cell"]


def completions(ip, line: str) -> list[str]:
    import warnings

    with warnings.catch_warnings():
        # IPython 8 marks complete() as pending deprecation; its replacement is provisional.
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return ip.complete("", line, len(line))[1]


def test_complete_commands_groups_features_and_metrics(ip, signals) -> None:
    assert completions(ip, "%raise sh") == ["show"]
    assert "user-signals" in completions(ip, "%raise show us")
    assert completions(ip, "%raise analyze user-signals.cl") == ["user-signals.clicks"]
    assert "user-signals.impressions" in completions(ip, "%raise dist user-signals.")
    assert "p99" in completions(ip, "%raise analyze user-signals.clicks avg p9")
    assert "null_rate" in completions(ip, "%raise analyze user-signals.clicks avg null")


def test_ingest_magic(ip, signals) -> None:
    ip.user_ns["more"] = pd.DataFrame({"user_id": [4], "ts": pd.to_datetime(["2024-01-03"], utc=True), "clicks": [2], "impressions": [4]})

    result = ip.run_line_magic("raise", "ingest user-signals more")

    assert result.rows == 1
    assert signals.count() == 4
    with pytest.raises(UsageError, match="'nothing' names no variable of this kernel"):
        ip.run_line_magic("raise", "ingest user-signals nothing")


def cell_completions(ip, text: str) -> list[str]:
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        return [c.text for c in ip.Completer.completions(text, len(text))]


def test_complete_names_in_sql_cells(ip, signals) -> None:
    assert "clicks" in cell_completions(ip, "%%raise\nSELECT cl")
    assert "user-signals" in cell_completions(ip, "%%raise -o x\nSELECT * FROM us")
    assert "user-signals" not in cell_completions(ip, "print(us")


def test_placeholder_names_differing_in_case(ip, signals) -> None:
    ip.user_ns["v"], ip.user_ns["V"] = "lower", "upper"

    with pytest.raises(UsageError, match=r"\{\{V\}\} and \{\{v\}\} differ only in case"):
        ip.run_cell_magic("raise", "", "SELECT {{v}} AS a, {{V}} AS b")


@pytest.mark.parametrize("placeholder", ["{{1x}}", "{{a.b}}", "{{{v}}}"])
def test_invalid_placeholders(ip, signals, placeholder: str) -> None:
    ip.user_ns["v"] = 1

    with pytest.raises(UsageError, match="is not a placeholder"):
        ip.run_cell_magic("raise", "", f"SELECT {placeholder}")


def test_numpy_and_pandas_values_bind(ip, signals) -> None:
    import numpy as np

    ip.user_ns["low"] = np.int64(5)
    ip.user_ns["day"] = pd.Timestamp("2024-01-02", tz="UTC")

    ip.run_cell_magic("raise", "-o rows", 'SELECT count(*) AS n FROM "user-signals" WHERE clicks >= {{low}} AND ts < {{day}}')

    assert ip.user_ns["rows"]["n"].tolist() == [1]


def test_dollar_and_escape_strings_are_text(ip, signals) -> None:
    ip.user_ns["v"] = "value"

    ip.run_cell_magic("raise", "-o text", "SELECT $${{v}}$$ AS a, E'\\'' AS b, {{v}} AS c")

    assert ip.user_ns["text"].iloc[0].tolist() == ["{{v}}", "'", "value"]


@pytest.mark.parametrize(("line", "message"), [("-o 1x", "not a valid Python variable"), ("class <<", "not a valid Python variable"), ("r << -o q", "Give the output variable once")])
def test_bad_output_names(ip, signals, line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("raise", line, "SELECT 1")


def test_define_keys_must_be_features(ip) -> None:
    with pytest.raises(UsageError, match=r"Keys and event time \['nokey'\] are not features of the cell"):
        ip.run_cell_magic("raise", "define bad --keys nokey", "user_id: int64\n")

    assert ip.run_line_magic("raise", "groups") == []
