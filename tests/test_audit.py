"""The audit log: every change, failure and denial, append-only in the catalog."""

from __future__ import annotations

import datetime as dt
import inspect
import sqlite3
from pathlib import Path

import pytest

from raise_jupyter import (
    Aggregation,
    Condition,
    FeatureGroup,
    FeatureGroupSource,
    FeatureStore,
    IngestError,
    Job,
    JobRun,
    PermissionDenied,
    Target,
    sql_transform,
)
from raise_jupyter.alerts import Alert
from raise_jupyter.engine.catalog import utcnow
from raise_jupyter.live import LiveTable

NAMESPACE = "acme/ml/engagement"


def entries(fs: FeatureStore) -> list[tuple[str, str, str, str, str]]:
    log = fs.audit_log(path="")
    return list(zip(log["user"], log["action"], log["object_kind"], log["object"], log["outcome"], strict=True))


def guarded_changes() -> set[str]:
    """Return ``Class.method`` of every public method whose successful calls are audited."""
    found = set()
    for cls in (FeatureStore, FeatureGroup, Alert, LiveTable, Job, JobRun):
        for name, member in inspect.getmembers(cls, inspect.isfunction):
            operation = getattr(member, "operation", None)
            if not name.startswith("_") and operation is not None and operation.audited:
                found.add(f"{cls.__name__}.{name}")
    return found


def test_every_change_is_audited(root: Path, tmp_path: Path) -> None:
    fs = FeatureStore(NAMESPACE, root=root, user="alice")
    called: set[str] = set()

    group = fs.create_feature_group("signals")
    group.set_keys("user_id")
    group.set_event_time("ts")
    group.set_ttl(dt.timedelta(days=30))
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "clicks": "int64"})
    group.create_feature("impressions", dtype="int64")
    group.create_features([{"name": "extra", "dtype": "string"}])
    spec_file = tmp_path / "features.yaml"
    spec_file.write_text("country: string\n")
    group.create_features_from_file(spec_file)
    group.update_feature("clicks", description="Clicks per hour")
    group.delete_feature("extra")
    group.ingest({"user_id": [1, 2], "ts": [utcnow()] * 2, "clicks": [5, 7], "impressions": [10, 10], "country": ["de", "fr"]})
    group.enable_online()
    group.materialize()
    group.disable_online()
    group.compact()
    called |= {"FeatureStore.create_feature_group", *(f"FeatureGroup.{m}" for m in (
        "set_keys", "set_event_time", "set_ttl", "create_features_from_schema", "create_feature", "create_features",
        "create_features_from_file", "update_feature", "delete_feature", "ingest", "enable_online", "materialize",
        "disable_online", "compact",
    ))}

    live = group.create_live_table("daily", Aggregation("clicks", ["sum"], group_by=["date"]), refresh="daily")
    live.refresh()
    live.delete()
    called |= {"FeatureGroup.create_live_table", "LiveTable.refresh", "LiveTable.delete"}

    alert = fs.create_alert("clicks-high", Aggregation("clicks", ["sum"]), Condition.GREATER_THAN(100), notify=["log"])
    alert.pause()
    alert.resume()
    alert.delete()
    called |= {"FeatureStore.create_alert", "Alert.pause", "Alert.resume", "Alert.delete"}

    job = fs.create_job(
        "copy-clicks",
        FeatureGroupSource("signals"),
        sql_transform("SELECT user_id, ts, clicks * 2 AS double_clicks FROM signals"),
        Target("doubled"),
    )
    run = job.run().wait(60)
    run.cancel()
    job.delete()
    called |= {"FeatureStore.create_job", "JobRun.cancel", "Job.delete"}

    fs.grant("bob", "viewer", path="acme")
    fs.revoke("bob", path="acme")
    token = fs.create_token("bob")
    fs.revoke_token(token.id)
    fs.delete_feature_group("doubled")
    called |= {"FeatureStore.delete_feature_group"}

    assert run.status == "succeeded"
    assert guarded_changes() <= called
    log = entries(fs)
    expected = [
        ("define", "feature_group", "signals"),
        ("update", "feature_group", "signals"),
        ("update", "feature", "signals.clicks"),
        ("delete", "feature", "signals.extra"),
        ("ingest", "feature_group", "signals"),
        ("materialize", "feature_group", "signals"),
        ("compact", "feature_group", "signals"),
        ("define", "live_table", "daily"),
        ("refresh", "live_table", "daily"),
        ("delete", "live_table", "daily"),
        ("define", "alert", "clicks-high"),
        ("alert_state", "alert", "clicks-high"),
        ("update", "alert", "clicks-high"),
        ("delete", "alert", "clicks-high"),
        ("define", "job", "copy-clicks"),
        ("job_run", "job", "copy-clicks"),
        ("job_cancel", "job", "copy-clicks"),
        ("delete", "job", "copy-clicks"),
        ("define", "feature_group", "doubled"),
        ("ingest", "feature_group", "doubled"),
        ("grant", "grant", "owner for alice"),
        ("grant", "grant", "viewer for bob"),
        ("revoke", "grant", "viewer for bob"),
        ("token_create", "token", f"token {token.id}"),
        ("token_revoke", "token", f"token {token.id}"),
        ("delete", "feature_group", "doubled"),
    ]
    for action, kind, name in expected:
        assert ("alice", action, kind, name, "ok") in log, (action, kind, name)
    assert all(outcome == "ok" for *_, outcome in log)
    assert all(user == "alice" for user, *_ in log)


def test_entry_counts_and_details(root: Path) -> None:
    fs = FeatureStore(NAMESPACE, root=root, user="alice")
    group = fs.create_feature_group("signals", keys="user_id")
    group.create_features_from_schema({"user_id": "int64", "clicks": "int64"})
    group.ingest({"user_id": [1, 2, 3], "clicks": [1, 2, 3]})

    log = fs.audit_log(action="ingest")

    assert len(log) == 1
    assert log["detail"][0] == {"rows": 3, "version": 2, "mode": "append"}
    assert log["namespace"][0] == NAMESPACE
    assert str(log["at"].dt.tz) == "UTC"


def test_job_run_records_start_and_end(root: Path) -> None:
    fs = FeatureStore(NAMESPACE, root=root, user="alice")
    group = fs.create_feature_group("signals", keys="user_id")
    group.create_features_from_schema({"user_id": "int64", "clicks": "int64"})
    group.ingest({"user_id": [1], "clicks": [1]})
    job = fs.create_job("copy", FeatureGroupSource("signals"), sql_transform("SELECT user_id, clicks AS c FROM signals"), Target("copied"))

    job.run().wait(60)

    runs = fs.audit_log(action="job_run")
    assert [d["event"] for d in runs["detail"]] == ["start", "end"]
    assert runs["detail"].iloc[-1]["status"] == "succeeded"


def test_identical_definition_is_not_recorded(root: Path) -> None:
    fs = FeatureStore(NAMESPACE, root=root, user="alice")
    for _ in range(3):
        group = fs.create_feature_group("signals", keys="user_id")
        group.create_features_from_schema({"user_id": "int64", "clicks": "int64"})

    log = fs.audit_log(action="define")

    assert log["object"].tolist() == ["signals", "signals"]


def test_failed_change_is_recorded(root: Path) -> None:
    fs = FeatureStore(NAMESPACE, root=root, user="alice")
    group = fs.create_feature_group("signals", keys="user_id")
    group.create_features_from_schema({"user_id": "int64", "clicks": "int64"})

    with pytest.raises(IngestError):
        group.ingest({"user_id": [None], "clicks": [1]})

    failed = fs.audit_log(action="ingest")
    assert failed["outcome"].tolist() == ["failed"]
    assert "IngestError" in failed["detail"][0]["error"]


def test_filters_by_user_action_and_time(root: Path) -> None:
    alice = FeatureStore(NAMESPACE, root=root, user="alice")
    alice.create_feature_group("signals")
    alice.grant("bob", "editor", path="acme")
    bob = FeatureStore(NAMESPACE, root=root, user="bob")
    bob.create_feature_group("other")
    later = utcnow()
    bob.create_feature_group("third")

    assert alice.audit_log(user="bob")["object"].tolist() == ["other", "third"]
    assert alice.audit_log(since=later)["object"].tolist() == ["third"]
    assert alice.audit_log(action="grant", path="")["user"].tolist() == ["alice", "alice"]
    assert alice.audit_log(since=later.replace(tzinfo=None).isoformat())["object"].tolist() == ["third"]


def test_namespace_filter_excludes_siblings(root: Path) -> None:
    FeatureStore("acme/ml", root=root, user="alice").create_feature_group("a")
    FeatureStore("acme/mlx", root=root, user="alice").create_feature_group("b")
    FeatureStore("acme/ml/deep", root=root, user="alice").create_feature_group("c")

    log = FeatureStore("acme/ml", root=root, user="alice").audit_log()

    assert log["object"].tolist() == ["a", "c"]


def test_denial_is_recorded_once(root: Path) -> None:
    alice = FeatureStore(NAMESPACE, root=root, user="alice")
    alice.create_feature_group("signals")
    alice.grant("bob", "viewer")
    bob = FeatureStore(NAMESPACE, root=root, user="bob")

    with pytest.raises(PermissionDenied):
        bob.delete_feature_group("signals")

    denied = alice.audit_log(user="bob")
    assert list(zip(denied["action"], denied["object"], denied["outcome"], strict=True)) == [("delete", "signals", "denied")]


def test_scheduled_alert_state_change_is_recorded_as_definer(root: Path) -> None:
    from raise_jupyter import alerts

    fs = FeatureStore(NAMESPACE, root=root, user="alice")
    group = fs.create_feature_group("signals", keys="user_id")
    group.create_features_from_schema({"user_id": "int64", "clicks": "int64"})
    alert = fs.create_alert("many", Aggregation("clicks", ["sum"]), Condition.GREATER_THAN(5), on_ingest=False)
    group.ingest({"user_id": [1], "clicks": [10]})

    alerts.run_task(root, alert._id, None)

    states = fs.audit_log(action="alert_state")
    assert [(d["from"], d["to"]) for d in states["detail"]] == [(None, "no_data"), ("no_data", "firing")]
    assert states["detail"].iloc[-1]["via"] == "scheduler"
    assert states["user"].tolist() == ["alice", "alice"]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET outcome = 'ok'",
        "DELETE FROM audit_log",
        "UPDATE audit_log SET user = 'mallory' WHERE id = 1",
        "INSERT OR REPLACE INTO audit_log SELECT id, at, 'mallory', action, object_kind, object, namespace, outcome, detail FROM audit_log",
        "REPLACE INTO audit_log SELECT id, at, 'mallory', action, object_kind, object, namespace, outcome, detail FROM audit_log",
    ],
)
def test_audit_log_is_append_only(root: Path, statement: str) -> None:
    fs = FeatureStore(NAMESPACE, root=root, user="alice")
    fs.create_feature_group("signals")

    with sqlite3.connect(root / "catalog.db") as conn, pytest.raises(sqlite3.DatabaseError, match="audit_log is append-only"):
        conn.execute(statement)

    assert len(fs.audit_log()) == 1


def test_cascaded_delete_names_what_it_removed(root: Path) -> None:
    fs = FeatureStore("acme/ml", root=root, user="alice")
    group = fs.create_feature_group("signals", keys="user_id")
    group.create_features_from_schema({"user_id": "int64", "clicks": "int64"})
    fs.create_alert("many-clicks", Aggregation("clicks", ["max"]), Condition.GREATER_THAN(5), group="signals")

    fs.delete_feature_group("signals", cascade=True)

    log = fs.audit_log(path="", action="delete")
    [detail] = log.loc[log["object"] == "signals", "detail"].tolist()
    assert detail["cascaded"] == ["alert many-clicks"]
