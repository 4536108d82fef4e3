"""AlertEditor: saving, validation per field, editing existing alerts and test notifications."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flight_data import FLIGHT_ROWS, flight_rows
from servers import free_port

from raise_jupyter import Aggregation, Condition, FeatureStore, alerts
from raise_jupyter.schedule import parse_schedule
from raise_jupyter.widgets import AlertEditor
from raise_jupyter.widgets._common import MESSAGE_LIMIT

AVERAGE_DELAY = float(flight_rows(0, FLIGHT_ROWS)["dep_delay"].dropna().astype(float).mean())


@pytest.fixture(autouse=True)
def _deliver_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deliver alert notifications only when a test sends them, and never through a proxy."""
    monkeypatch.setattr(alerts, "DELIVER_IN_BACKGROUND", False)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def valid_form(**changes: Any) -> dict[str, Any]:
    form = {
        "name": "late-departures",
        "group": "flights",
        "feature": "dep_delay",
        "metric": "avg",
        "condition": "greater_than",
        "low": "30",
        "high": "",
        "notify": "log",
        "schedule": "every 10m",
        "on_ingest": False,
    }
    return {**form, **changes}


def send(editor: AlertEditor, kind: str, **content: Any) -> None:
    """Send a custom message as the browser does."""
    editor._handle_custom_msg({"type": kind, **content}, [])


def expected_state(condition: Condition) -> str:
    return "firing" if condition.holds(AVERAGE_DELAY) else "ok"


# -- the form -----------------------------------------------------------------------------------


def test_options_list_groups_features_alerts(recorder, fs: FeatureStore, flights) -> None:
    fs.create_alert("existing", Aggregation("distance", ["max"]), Condition.GREATER_THAN(5000), notify="log")

    editor = AlertEditor(fs)

    assert list(editor.options["groups"]) == ["flights"]
    assert editor.options["groups"]["flights"] == [{"name": f.name, "dtype": str(f.dtype)} for f in flights.features]
    assert editor.options["alerts"] == ["existing"]
    assert "p95" in editor.options["metrics"]


def test_new_form_preselects_group_and_feature(recorder, fs: FeatureStore, flights) -> None:
    assert AlertEditor(fs).form["feature"] == flights.features[0].name
    assert AlertEditor(fs, group="flights", feature="distance").form["feature"] == "distance"
    assert AlertEditor(fs, group="flights", feature="nope").form["feature"] == flights.features[0].name


# -- saving -------------------------------------------------------------------------------------


def test_save_creates_alert(recorder, fs: FeatureStore, flights) -> None:
    editor = AlertEditor(fs)

    send(editor, "save", form=valid_form())

    [alert] = fs.list_alerts()
    assert alert.name == "late-departures"
    assert alert.group == "flights"
    assert alert.analysis == Aggregation("dep_delay", ["avg"])
    assert alert.condition == Condition.GREATER_THAN(30)
    assert alert.notify == ["log"]
    assert alert.schedule == str(parse_schedule("every 10m"))
    assert alert._row().on_ingest is False
    assert alert.state == expected_state(Condition.GREATER_THAN(30))
    assert editor.errors == {}
    assert editor.message == f"Saved alert 'late-departures'; its state is {alert.state}."
    assert editor.form["editing"] == "late-departures"
    assert editor.options["alerts"] == ["late-departures"]


def test_save_by_setting_form(recorder, fs: FeatureStore, flights, webhook) -> None:
    editor = AlertEditor(fs)
    editor.form = valid_form(
        name="delay-band", metric="p95", condition="between", low="-5", high="1200", notify=f"log; {webhook.url}", schedule="daily"
    )

    saved = editor.save()

    alert = fs.get_alert("delay-band")
    assert saved is not None
    assert saved.name == alert.name
    assert alert.analysis == Aggregation("dep_delay", ["p95"])
    assert alert.condition == Condition.BETWEEN(-5, 1200)
    assert alert.notify == ["log", webhook.url]
    assert alert.schedule == str(parse_schedule("daily"))


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"low": "abc"}, "low", r"The threshold must be a number, got 'abc'"),
        ({"low": ""}, "low", r"The threshold must be a number, got ''"),
        ({"condition": "between", "low": "1", "high": "many"}, "low", r"The upper bound must be a number, got 'many'"),
        ({"condition": "between", "low": "5", "high": "1"}, "low", r"needs the lower bound first"),
        ({"condition": "changed_by", "low": "0"}, "low", r"positive percentage"),
        ({"name": "Late Departures!"}, "name", r"Alert name 'Late Departures!' is invalid"),
        ({"name": ""}, "name", r"Alert name must not be empty"),
        ({"schedule": "every tuesday"}, "schedule", r"Invalid schedule 'every tuesday'"),
        ({"notify": "log, pager-duty"}, "notify", r"pager-duty"),
        ({"group": "trains"}, "group", r"'trains' is not one of flights"),
        ({"feature": "dep_dalay"}, "feature", r"Choose a feature of 'flights'"),
        ({"metric": "p12.x"}, "metric", r"p12.x"),
    ],
    ids=[
        "threshold", "empty-threshold", "upper-bound", "bounds-reversed", "changed-by-zero", "name",
        "empty-name", "schedule", "notify", "group", "feature", "metric",
    ],
)
def test_invalid_field_stores_nothing(recorder, fs: FeatureStore, flights, changes: dict, field: str, message: str) -> None:
    editor = AlertEditor(fs)

    send(editor, "save", form=valid_form(**changes))

    assert list(editor.errors) == [field]
    assert re.search(message, editor.errors[field]), editor.errors[field]
    assert editor.message == "Fix the marked fields; nothing was saved."
    assert fs.list_alerts() == []


def test_several_invalid_fields_all_marked(recorder, fs: FeatureStore, flights) -> None:
    editor = AlertEditor(fs)

    send(editor, "save", form=valid_form(name="", low="x", schedule="sometimes", notify="nobody"))

    assert sorted(editor.errors) == ["low", "name", "notify", "schedule"]
    assert fs.list_alerts() == []


@pytest.mark.parametrize(
    "changes",
    [{"low": "45"}, {"schedule": "daily"}, {"notify": "log, team@example.com"}],
    ids=["threshold", "schedule", "notify"],
)
def test_name_clash_rejected(recorder, fs: FeatureStore, flights, changes: dict) -> None:
    fs.create_alert("late-departures", Aggregation("dep_delay", ["avg"]), Condition.GREATER_THAN(30), notify="log", schedule="every 10m")
    editor = AlertEditor(fs)

    send(editor, "save", form=valid_form(**changes))

    assert list(editor.errors) == ["name"]
    assert "Alert 'late-departures' exists with a different" in editor.errors["name"]
    assert editor.message == "Nothing was saved."
    alert = fs.get_alert("late-departures")
    assert alert.condition == Condition.GREATER_THAN(30)
    assert alert.schedule == str(parse_schedule("every 10m"))
    assert alert.notify == ["log"]


# -- editing ------------------------------------------------------------------------------------


@pytest.fixture
def delay_band(fs: FeatureStore, flights, webhook):
    """An alert with bounds that need more than six significant digits."""
    return fs.create_alert(
        "delay-band",
        Aggregation("dep_delay", ["p95"]),
        Condition.OUTSIDE(-5.5, 1234567.25),
        notify=["log", webhook.url],
        schedule="daily",
        on_ingest=False,
    )


def test_load_fills_form(recorder, fs: FeatureStore, delay_band, webhook) -> None:
    editor = AlertEditor(fs)

    send(editor, "load", name="delay-band")

    form = editor.form
    assert form["name"] == "delay-band"
    assert form["editing"] == "delay-band"
    assert form["group"] == "flights"
    assert form["feature"] == "dep_delay"
    assert form["metric"] == "p95"
    assert form["condition"] == "outside"
    assert float(form["low"]) == -5.5
    assert float(form["high"]) == 1234567.25
    assert [t.strip() for t in form["notify"].split(",")] == ["log", webhook.url]
    assert form["schedule"] == delay_band.schedule
    assert form["on_ingest"] is False
    assert editor.message == "Editing alert 'delay-band'."


def test_alert_argument_loads_alert(recorder, fs: FeatureStore, delay_band) -> None:
    editor = fs.alert_editor("delay-band")

    assert editor.form["editing"] == "delay-band"
    assert editor.current["alert"] == "delay-band"


def test_saving_loaded_form_keeps_alert(recorder, fs: FeatureStore, delay_band) -> None:
    editor = AlertEditor(fs, alert="delay-band")
    updated_at = delay_band._row().updated_at

    send(editor, "save")

    assert editor.errors == {}
    assert delay_band.condition == Condition.OUTSIDE(-5.5, 1234567.25)
    assert delay_band._row().updated_at == updated_at


def test_loaded_alert_updated_with_new_threshold(recorder, fs: FeatureStore, delay_band) -> None:
    editor = AlertEditor(fs, alert="delay-band")

    send(editor, "save", form={"high": "50"})

    assert editor.errors == {}
    assert [a.name for a in fs.list_alerts()] == ["delay-band"]
    assert delay_band.condition == Condition.OUTSIDE(-5.5, 50)
    assert delay_band.schedule == str(parse_schedule("daily"))
    assert len(delay_band.history()) == 2  # evaluated at creation and after the change


def test_renamed_loaded_alert_is_new(recorder, fs: FeatureStore, delay_band) -> None:
    editor = AlertEditor(fs, alert="delay-band")

    send(editor, "save", form={"name": "delay-band-2", "high": "50"})

    assert [a.name for a in fs.list_alerts()] == ["delay-band", "delay-band-2"]
    assert delay_band.condition == Condition.OUTSIDE(-5.5, 1234567.25)


def test_load_unknown_alert_shows_error(recorder, fs: FeatureStore, flights) -> None:
    editor = AlertEditor(fs)
    form = dict(editor.form)

    send(editor, "load", name="nope")

    assert "Alert 'nope' not found" in editor.errors["form"]
    assert editor.form == form


# -- current state and history ------------------------------------------------------------------


def test_current_after_saving(recorder, fs: FeatureStore, flights) -> None:
    editor = AlertEditor(fs)

    send(editor, "save", form=valid_form())

    alert = fs.get_alert("late-departures")
    history = alert.history()
    current = editor.current
    assert current["alert"] == "late-departures"
    assert current["state"] == expected_state(Condition.GREATER_THAN(30))
    assert list(current["values"].values()) == [pytest.approx(AVERAGE_DELAY)]
    assert [row["state"] for row in current["history"]] == history["state"].tolist()
    assert current["history"][0]["evaluated_at"] == str(history["evaluated_at"][0])[:19]


def test_history_grows_with_each_change(recorder, fs: FeatureStore, flights) -> None:
    editor = AlertEditor(fs)
    send(editor, "save", form=valid_form(low="1000"))

    send(editor, "save", form={"low": "-1000"})

    assert [row["state"] for row in editor.current["history"]] == ["firing", "ok"]
    assert editor.current["state"] == "firing"


def test_editor_messages_under_limit(recorder, fs: FeatureStore, delay_band) -> None:
    editor = AlertEditor(fs, alert="delay-band")
    send(editor, "save", form={"low": "abc"})
    send(editor, "save", form={"low": "-1"})

    for message in recorder.of(editor):
        assert message.size < MESSAGE_LIMIT


# -- test notifications -------------------------------------------------------------------------


def test_test_notification_reaches_webhook(recorder, fs: FeatureStore, flights, webhook) -> None:
    editor = AlertEditor(fs)

    send(editor, "test", form=valid_form(notify=webhook.url))

    assert editor.test_result == {webhook.url: "sent"}
    [body] = webhook.bodies
    assert body["alert"] == "late-departures"
    assert body["state"] == "test"
    assert body["namespace"] == fs.namespace
    assert webhook.content_types == ["application/json"]
    assert fs.list_alerts() == []


def test_test_notification_to_unreachable_target(recorder, fs: FeatureStore, flights, webhook) -> None:
    closed = f"http://127.0.0.1:{free_port()}/hook"
    editor = AlertEditor(fs)

    send(editor, "test", form=valid_form(notify=f"{webhook.url}, {closed}"))

    assert editor.test_result[webhook.url] == "sent"
    assert editor.test_result[closed].startswith("failed: ")
    assert "cannot reach webhook" in editor.test_result[closed]


def test_test_notification_with_invalid_target(recorder, fs: FeatureStore, flights) -> None:
    editor = AlertEditor(fs)

    send(editor, "test", form=valid_form(notify="pager-duty"))

    assert "pager-duty" in editor.errors["notify"]
    assert editor.test_result == {}


# -- found by a review that tried to break the editor --------------------------------------------


def test_edit_keeps_metrics_group_by_and_where(recorder, fs: FeatureStore, flights) -> None:
    analysis = Aggregation("dep_delay", ["p90", "max"], group_by=["carrier"], where="carrier = 'UA'")
    fs.create_alert("ua-delays", analysis, Condition.GREATER_THAN(1000), group="flights")
    editor = AlertEditor(fs, alert="ua-delays")

    editor.form = {**editor.form, "low": "2000"}
    saved = editor.save()

    assert saved is not None
    stored = fs.get_alert("ua-delays")
    assert stored.analysis == analysis
    assert stored.condition == Condition.GREATER_THAN(2000)


@pytest.mark.parametrize("threshold", ["0,5", "1.234,5", "inf", "1e309", "nan"])
def test_threshold_comma_or_infinite_rejected(recorder, fs: FeatureStore, flights, threshold: str) -> None:
    editor = AlertEditor(fs)
    editor.form = valid_form(low=threshold)

    assert editor.save() is None

    assert "low" in editor.errors
    assert fs.list_alerts() == []


def test_on_ingest_text_parsed(recorder, fs: FeatureStore, flights) -> None:
    editor = AlertEditor(fs)
    editor.form = valid_form(on_ingest="false")

    editor.save()

    assert fs.get_alert("late-departures")._row().on_ingest is False


def test_on_ingest_invalid_rejected(recorder, fs: FeatureStore, flights) -> None:
    editor = AlertEditor(fs)
    editor.form = valid_form(on_ingest="maybe")

    assert editor.save() is None
    assert "on_ingest" in editor.errors


def test_options_send_one_groups_features(recorder, fs: FeatureStore, flights) -> None:
    other = fs.create_feature_group("other", keys="id")
    other.create_features_from_schema({"id": "int64", "score": "float64"})
    editor = AlertEditor(fs, group="flights")

    assert editor.options["groups"]["other"] == []
    editor._handle_custom_msg({"type": "group", "form": {"group": "other"}}, [])

    assert [f["name"] for f in editor.options["groups"]["other"]] == ["id", "score"]
    assert editor.options["groups"]["flights"] == []
    assert editor.form["feature"] == "id"


def test_test_notification_skips_older_messages(recorder, fs: FeatureStore, flights, webhook) -> None:
    from raise_jupyter import notify

    # An older message to a closed port is due first, but is not tried.
    notify.enqueue(fs._catalog, notify.parse_targets(["http://127.0.0.1:9/never"]), subject="old", body="old", payload={})
    editor = AlertEditor(fs)
    editor.form = valid_form(notify=webhook.url)

    outcome = editor.send_test()

    assert outcome == {webhook.url: "sent"}
    assert [m["subject"] for m in notify.pending(fs._catalog)] == ["old"]
