"""Alerts: conditions, states, history, notifications through real SMTP and HTTP servers."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

import pytest

from raise_jupyter import (
    Aggregation,
    Condition,
    ConflictError,
    DefinitionError,
    Distribution,
    FeatureStore,
    NotFoundError,
    RaiseWarning,
    alerts,
    notify,
    scheduler,
)
from raise_jupyter.engine.catalog import utcnow
from raise_jupyter.store import open_catalog

AVG_CTR = Aggregation(feature="ctr", metrics=["avg"])


@pytest.fixture(autouse=True)
def _deliver_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send notifications only when a test calls deliver_due, so that sends are counted exactly."""
    monkeypatch.setattr(alerts, "DELIVER_IN_BACKGROUND", False)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def signals(fs: FeatureStore):
    group = fs.create_feature_group("user-signals", keys="user_id", event_time="ts")
    group.create_features_from_schema(
        {"user_id": "int64", "ts": "timestamp", "clicks": "int64", "impressions": "int64", "country": "string"}
    )
    group.create_feature("ctr", dtype="float64", derived_from="clicks / NULLIF(impressions, 0)")
    return group


def ingest_ctr(group, clicks: int, impressions: int = 100, country: str = "de") -> None:
    group.ingest({"user_id": [1], "ts": [utcnow()], "clicks": [clicks], "impressions": [impressions], "country": [country]})


def outbox_rows(fs: FeatureStore) -> list[dict]:
    import sqlalchemy as sa

    from raise_jupyter.engine import tables

    with open_catalog(fs.root).read() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.select(tables.outbox))]


def deliver(fs: FeatureStore, *, after: dt.timedelta = dt.timedelta(0)) -> int:
    return notify.deliver_due(fs.root, open_catalog(fs.root), owner="test", now=utcnow() + after)


# -- conditions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        (Condition.LESS_THAN(1), 0.5, True),
        (Condition.LESS_THAN(1), 1, False),
        (Condition.GREATER_THAN(1), 1.5, True),
        (Condition.GREATER_THAN(1), 1, False),
        (Condition.BETWEEN(1, 2), 1, True),
        (Condition.BETWEEN(1, 2), 2.5, False),
        (Condition.OUTSIDE(1, 2), 0.5, True),
        (Condition.OUTSIDE(1, 2), 2, False),
        (Condition.EQUALS(3), 3, True),
        (Condition.EQUALS(3), 3.1, False),
        (Condition.NOT_EQUALS(3), 3.1, True),
        (Condition.NOT_EQUALS(3), 3, False),
    ],
)
def test_condition_holds(condition: Condition, value: float, expected: bool) -> None:
    assert condition.holds(value) is expected


def test_changed_by_compares_with_previous() -> None:
    condition = Condition.CHANGED_BY(20)

    assert condition.holds(100, None) is False
    assert condition.holds(119, 100) is False
    assert condition.holds(120, 100) is True
    assert condition.holds(80, 100) is True
    assert condition.holds(1, 0) is True
    assert condition.holds(0, 0) is False


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Condition.LESS_THAN("low"), r"LESS_THAN needs finite numbers, got 'low'"),
        (lambda: Condition.BETWEEN(2, 1), r"BETWEEN\(2.0, 1.0\) needs the lower bound first"),
        (lambda: Condition.CHANGED_BY(0), "positive percentage"),
        (lambda: Condition("above", (1,)), "Unknown condition 'above'"),
        (lambda: Condition.LESS_THAN(float("nan")), "needs finite numbers"),
        (lambda: Condition.GREATER_THAN(float("inf")), "needs finite numbers, got inf"),
    ],
)
def test_condition_rejects_bad_values(build, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        build()


# -- creation -----------------------------------------------------------------------------------


def test_positional_and_keyword_forms_are_one_alert(fs: FeatureStore, signals) -> None:
    first = fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["log"])
    second = fs.create_alert(
        name="ctr-drop", analysis=AVG_CTR, condition=Condition.LESS_THAN(0.01), notify=["log"]
    )

    assert [a.name for a in fs.list_alerts()] == ["ctr-drop"]
    assert first.group == second.group == "user-signals"
    assert scheduler.task_info(open_catalog(fs.root), "alert", first._id)["schedule"] == "hourly"


def test_changed_definition_needs_replace(fs: FeatureStore, signals) -> None:
    fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["log"])

    with pytest.raises(ConflictError, match=r"Alert 'ctr-drop' exists with a different condition; pass replace=True"):
        fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.02), notify=["log"])
    replaced = fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.02), notify=["log"], replace=True)

    assert replaced.condition == Condition.LESS_THAN(0.02)


def test_feature_resolution_across_groups(fs: FeatureStore, signals) -> None:
    other = fs.create_feature_group("ads")
    other.create_features_from_schema({"clicks": "int64"})
    clicks = Aggregation("clicks", ["sum"])

    with pytest.raises(DefinitionError, match=r"Feature 'clicks' is in several groups: 'ads.clicks', 'user-signals.clicks'"):
        fs.create_alert("clicks-high", clicks, Condition.GREATER_THAN(10), notify="log")
    assert fs.create_alert("a1", Aggregation("ads.clicks", ["sum"]), Condition.GREATER_THAN(10), notify="log").group == "ads"
    assert fs.create_alert("a2", clicks, Condition.GREATER_THAN(10), notify="log", group="user-signals").group == "user-signals"
    assert fs.create_alert("a3", AVG_CTR, Condition.LESS_THAN(1), notify="log").group == "user-signals"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"analysis": Aggregation("nope", ["avg"])}, NotFoundError, r"No feature group .* has a feature 'nope'\. Features: .*user-signals\.ctr"),
        ({"analysis": Distribution("ctr")}, DefinitionError, "Alerts watch an Aggregation"),
        ({"analysis": Aggregation("country", ["avg"])}, DefinitionError, "Metric 'avg' needs numbers"),
        ({"condition": "< 0.01"}, DefinitionError, "Expected a Condition such as Condition.LESS_THAN"),
        ({"notify": ["not an address"]}, DefinitionError, "not an address"),
        ({"schedule": "sometimes"}, DefinitionError, "sometimes"),
        ({"name": "CTR Drop"}, DefinitionError, "Alert name 'CTR Drop' is invalid"),
        ({"on_ingest": "yes"}, DefinitionError, "on_ingest must be True or False"),
    ],
)
def test_bad_alert_definitions(fs: FeatureStore, signals, kwargs: dict, error: type, message: str) -> None:
    arguments = {"name": "ctr-drop", "analysis": AVG_CTR, "condition": Condition.LESS_THAN(0.01), "notify": ["log"]}
    arguments.update(kwargs)

    with pytest.raises(error, match=message):
        fs.create_alert(**arguments)
    assert fs.list_alerts() == []


def test_email_without_smtp_warns(fs: FeatureStore, signals, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAISE_SMTP_URL", raising=False)
    monkeypatch.setattr(alerts, "_smtp_warned", set())

    with pytest.warns(RaiseWarning, match="No SMTP server is configured, so alert e-mails wait in the outbox"):
        fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["team@example.com"])


# -- states and history -------------------------------------------------------------------------


def test_states_follow_the_data(fs: FeatureStore, signals) -> None:
    alert = fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["log"], on_ingest=False)

    assert alert.evaluate().state == "no_data"
    ingest_ctr(signals, 0)
    firing = alert.evaluate()
    ingest_ctr(signals, 100)
    recovered = alert.evaluate()

    assert (firing.state, firing.previous_state, firing.notified) == ("firing", "no_data", True)
    assert firing.values == {"avg": 0.0}
    assert (recovered.state, recovered.previous_state, recovered.notified) == ("ok", "firing", True)
    assert recovered.values == {"avg": 0.5}
    history = alert.history()
    assert history["state"].tolist() == ["ok", "firing", "no_data", "no_data"]  # the last: at creation
    assert history["version"].tolist() == sorted(history["version"].tolist(), reverse=True)


def test_notifications_only_on_state_changes(fs: FeatureStore, signals) -> None:
    alert = fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["log"], on_ingest=False)
    ingest_ctr(signals, 0)

    for _ in range(3):
        alert.evaluate()

    assert [m["subject"] for m in notify.pending(open_catalog(fs.root))] == ["[Raise] ctr-drop is firing"]


def test_evaluated_at_creation(fs: FeatureStore, signals) -> None:
    ingest_ctr(signals, 0)

    alert = fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["log"])
    again = fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["log"])

    assert alert.state == "firing"
    assert len(again.history()) == 1  # an identical definition is not evaluated again


def test_deleted_alert_named_in_error(fs: FeatureStore, signals) -> None:
    alert = fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["log"])
    fs.get_alert("ctr-drop").delete()

    with pytest.raises(NotFoundError, match="Alert 'ctr-drop' was deleted; create it again"):
        alert.evaluate()


def test_evaluated_on_ingest(fs: FeatureStore, signals) -> None:
    alert = fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["log"])

    ingest_ctr(signals, 0)

    assert alert.state == "firing"


def test_paused_alert_skips_ingest(fs: FeatureStore, signals) -> None:
    alert = fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["log"]).pause()

    ingest_ctr(signals, 0)
    paused_state = alert.state
    alert.resume()
    ingest_ctr(signals, 0)

    assert paused_state == "no_data"  # evaluated once at creation, not after the paused ingest
    assert alert.state == "firing"
    assert scheduler.task_info(open_catalog(fs.root), "alert", alert._id)["paused"] is False


def test_group_by_series_fire_separately(fs: FeatureStore, signals) -> None:
    by_country = Aggregation("ctr", ["avg"], group_by="country")
    alert = fs.create_alert("ctr-by-country", by_country, Condition.LESS_THAN(0.01), notify=["log"], on_ingest=False)
    ingest_ctr(signals, 0, country="de")
    ingest_ctr(signals, 50, country="fr")

    evaluation = alert.evaluate()

    assert evaluation.state == "firing"
    assert evaluation.firing == ["avg[de]"]
    assert evaluation.values == {"avg[de]": 0.0, "avg[fr]": 0.5}


def test_message_names_firing_series_and_cuts_long_lists(fs: FeatureStore, signals) -> None:
    by_user = Aggregation("ctr", ["avg"], group_by="user_id")
    alert = fs.create_alert("ctr-by-user", by_user, Condition.LESS_THAN(0.01), notify=["log"], on_ingest=False)
    users = list(range(30))
    signals.ingest({"user_id": users, "ts": [utcnow()] * 30, "clicks": [0] * 12 + [50] * 18, "impressions": [100] * 30})

    alert.evaluate()
    message = alert.history()["message"].iloc[0]

    assert message.startswith("Alert ctr-by-user is firing: avg[0] = 0, avg[1] = 0,")
    assert "avg[9] = 0 and 2 more met LESS_THAN(0.01) (12 of 30 series)." in message
    assert "avg[10]" not in message
    assert "0.5" not in message


def test_many_series_keep_firing_values_first(fs: FeatureStore, signals, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alerts, "KEPT_SERIES", 20)
    by_user = Aggregation("ctr", ["avg"], group_by="user_id")
    alert = fs.create_alert("ctr-by-user", by_user, Condition.LESS_THAN(0.01), notify=["log"], on_ingest=False)
    users = list(range(50))
    clicks = [50] * 45 + [0] * 5
    signals.ingest({"user_id": users, "ts": [utcnow()] * 50, "clicks": clicks, "impressions": [100] * 50})

    evaluation = alert.evaluate()
    kept = alert.history()["values"].iloc[0]
    [payload] = [row["payload"] for row in outbox_rows(fs)]

    assert len(evaluation.values) == 50
    assert len(kept) == 20
    assert list(kept)[:5] == [f"avg[{user}]" for user in range(45, 50)]
    assert payload["series"] == 50
    assert len(payload["values"]) == 20


def test_changed_by_uses_previous_evaluation(fs: FeatureStore, signals) -> None:
    alert = fs.create_alert("ctr-moved", AVG_CTR, Condition.CHANGED_BY(50), notify=["log"], on_ingest=False)
    ingest_ctr(signals, 10)

    first = alert.evaluate()
    second = alert.evaluate()
    ingest_ctr(signals, 50)
    third = alert.evaluate()

    assert [first.state, second.state, third.state] == ["ok", "ok", "firing"]


def test_history_survives_new_store_object(fs: FeatureStore, signals) -> None:
    fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["log"]).evaluate()

    again = FeatureStore(fs.namespace, root=fs.root).get_alert("ctr-drop")

    assert again.history()["state"].tolist() == ["no_data", "no_data"]


def test_delete_removes_schedule(fs: FeatureStore, signals) -> None:
    alert = fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["log"])

    alert.delete()

    assert fs.list_alerts() == []
    assert scheduler.task_info(open_catalog(fs.root), "alert", alert._id) is None
    with pytest.raises(NotFoundError, match=r"Alert 'ctr-drop' not found .* Alerts: \(none\)"):
        fs.get_alert("ctr-drop")


def test_deleting_group_with_alert_rejected(fs: FeatureStore, signals) -> None:
    alert = fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["log"])

    with pytest.raises(ConflictError, match="'user-signals' is used by: alert ctr-drop; .*cascade=True"):
        fs.delete_feature_group("user-signals")

    assert [a.name for a in fs.list_alerts()] == ["ctr-drop"]
    assert scheduler.task_info(open_catalog(fs.root), "alert", alert._id) is not None


def test_deleting_group_cascades_to_alerts(fs: FeatureStore, signals) -> None:
    alert = fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["log"])

    fs.delete_feature_group("user-signals", cascade=True)

    assert fs.list_alerts() == []
    assert scheduler.task_info(open_catalog(fs.root), "alert", alert._id) is None


def test_scheduler_evaluates_due_alert(fs: FeatureStore, signals) -> None:
    alert = fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["log"], on_ingest=False)
    ingest_ctr(signals, 0)

    ran = scheduler.run_due(fs.root, owner="test", now=utcnow() + dt.timedelta(hours=2))

    assert ran == 1
    assert alert.state == "firing"


# -- delivery through real servers ---------------------------------------------------------------


def test_firing_and_recovery_reach_email_and_webhook(fs: FeatureStore, signals, smtp, webhook) -> None:
    alert = fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["team@example.com", webhook.url])

    ingest_ctr(signals, 0)
    sent_firing = deliver(fs)
    ingest_ctr(signals, 0)  # still firing: nothing new
    sent_again = deliver(fs)
    ingest_ctr(signals, 100)
    sent_recovered = deliver(fs)

    assert alert.state == "ok"
    assert (sent_firing, sent_again, sent_recovered) == (2, 0, 2)
    assert [m["Subject"] for m in smtp.messages] == ["[Raise] ctr-drop is firing", "[Raise] ctr-drop recovered (ok)"]
    assert [b["state"] for b in webhook.bodies] == ["firing", "ok"]
    assert webhook.bodies[0]["alert"] == "ctr-drop"
    assert "avg = 0 met LESS_THAN(0.01)" in webhook.bodies[0]["text"]


def test_email_waits_for_smtp_and_arrives_once(fs: FeatureStore, signals, smtp) -> None:
    fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["team@example.com"])
    smtp.stop()

    ingest_ctr(signals, 0)
    while_down = deliver(fs)
    smtp.start()
    too_early = deliver(fs, after=dt.timedelta(seconds=5))
    after_backoff = deliver(fs, after=dt.timedelta(minutes=2))
    later = deliver(fs, after=dt.timedelta(days=1))

    assert (while_down, too_early, after_backoff, later) == (0, 0, 1, 0)
    assert [m["Subject"] for m in smtp.messages] == ["[Raise] ctr-drop is firing"]


def test_log_notification_written_before_ingest_returns(
    fs: FeatureStore, signals, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(alerts, "DELIVER_IN_BACKGROUND", True)
    fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["log"])

    with caplog.at_level(logging.WARNING, logger="raise_jupyter.notify"):
        ingest_ctr(signals, 0)
        records = [r for r in caplog.records if "ctr-drop is firing" in r.getMessage()]

    assert len(records) == 1
    assert records[0].threadName == threading.current_thread().name
    assert notify.pending(fs._catalog) == []


def test_background_delivery_after_evaluation(fs: FeatureStore, signals, smtp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alerts, "DELIVER_IN_BACKGROUND", True)
    fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["team@example.com"])

    ingest_ctr(signals, 0)

    deadline = time.monotonic() + 30
    while not smtp.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [m["Subject"] for m in smtp.messages] == ["[Raise] ctr-drop is firing"]
    assert notify.pending(open_catalog(fs.root)) == []


def test_failing_log_handler_keeps_email_going(fs: FeatureStore, signals, smtp, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(record: logging.LogRecord) -> bool:
        raise RuntimeError("this logging filter is broken")

    monkeypatch.setattr(alerts, "DELIVER_IN_BACKGROUND", True)
    logging.getLogger("raise_jupyter.notify").addFilter(broken)
    try:
        fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["log", "team@example.com"])
        ingest_ctr(signals, 0)

        deadline = time.monotonic() + 30
        while not smtp.messages and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        logging.getLogger("raise_jupyter.notify").removeFilter(broken)

    assert [m["Subject"] for m in smtp.messages] == ["[Raise] ctr-drop is firing"]
    assert fs.get_alert("ctr-drop").state == "firing"


def test_deleted_feature_gives_no_data(fs: FeatureStore, signals, caplog: pytest.LogCaptureFixture) -> None:
    alert = fs.create_alert("ctr-drop", AVG_CTR, Condition.LESS_THAN(0.01), notify=["log"], on_ingest=False)
    ingest_ctr(signals, 0)
    assert alert.evaluate().state == "firing"
    # Deleting a watched feature is rejected now, so remove it from the catalog as a store
    # written by an older release may have.
    catalog = open_catalog(fs.root)
    with catalog.write() as conn:
        ctr = next(f for f in catalog.list_features(conn, signals._id) if f.name == "ctr")
        catalog.delete_feature(conn, ctr.id)

    evaluation = alert.evaluate()
    ran = scheduler.run_due(fs.root, owner="test", now=utcnow() + dt.timedelta(hours=2))

    assert (evaluation.state, evaluation.notified) == ("no_data", True)
    assert "cannot run its analysis" in alert.history()["message"].tolist()[0]
    assert ran == 1
    assert scheduler.task_info(open_catalog(fs.root), "alert", alert._id)["last_status"] == "succeeded"


def test_alert_on_group_of_other_namespace_rejected(fs: FeatureStore, signals) -> None:
    other = FeatureStore("acme/other", root=fs.root)

    with pytest.raises(DefinitionError, match="is not in this store's namespace 'acme/other'"):
        other.create_alert("leak", AVG_CTR, Condition.LESS_THAN(0.01), group=signals)

    assert other.list_alerts() == []
