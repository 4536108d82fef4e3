"""Access control: roles on nested namespace paths, inheritance, revokes and the open store."""

from __future__ import annotations

from pathlib import Path

import pytest

from raise_jupyter import Aggregation, Condition, DefinitionError, FeatureStore, PermissionDenied, alerts
from raise_jupyter.engine.catalog import utcnow

NAMESPACE = "acme/ml/engagement"
SCHEMA = {"user_id": "int64", "ts": "timestamp", "clicks": "int64", "impressions": "int64"}


def store(root: Path, user: str, namespace: str = NAMESPACE) -> FeatureStore:
    return FeatureStore(namespace, root=root, user=user)


def rows(user_id: int = 1) -> dict[str, list[object]]:
    return {"user_id": [user_id], "ts": [utcnow()], "clicks": [3], "impressions": [10]}


@pytest.fixture
def alice(root: Path) -> FeatureStore:
    """Alice's store with one group of one row; the store has no grants yet."""
    fs = store(root, "alice")
    group = fs.create_feature_group("user-signals", keys="user_id", event_time="ts")
    group.create_features_from_schema(SCHEMA)
    group.ingest(rows())
    return fs


def grant_bob(alice: FeatureStore, role: str, path: str = "acme/ml") -> FeatureStore:
    alice.grant("bob", role, path=path)
    return store(alice.root, "bob")


def grants_of(fs: FeatureStore, path: str = "") -> set[tuple[str, str, str]]:
    frame = fs.permissions(path)
    return set(zip(frame["user"], frame["role"], frame["path"], strict=True))


# -- identity -----------------------------------------------------------------------------------


def test_user_defaults_to_raise_user(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAISE_USER", "carol")

    assert FeatureStore(NAMESPACE, root=root).user == "carol"
    assert FeatureStore(NAMESPACE, root=root, user="dave").user == "dave"


def test_user_falls_back_to_os_user(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass

    monkeypatch.delenv("RAISE_USER", raising=False)

    assert FeatureStore(NAMESPACE, root=root).user == getpass.getuser()


@pytest.mark.parametrize("user", ["", "two words", "x" * 201, 7])
def test_user_rejects_invalid_names(root: Path, user: object) -> None:
    with pytest.raises(DefinitionError, match="User name .* is invalid"):
        FeatureStore(NAMESPACE, root=root, user=user)  # type: ignore[arg-type]


# -- the open store -----------------------------------------------------------------------------


def test_store_without_grants_allows_everyone(alice: FeatureStore) -> None:
    bob = store(alice.root, "bob")
    group = bob.get_feature_group("user-signals")

    group.ingest(rows(2))
    group.create_feature("ctr", dtype="float64", derived_from="clicks / impressions")
    bob.create_feature_group("scratch")
    alice.delete_feature_group("scratch")
    bob.delete_feature_group("user-signals")

    assert bob.list_feature_groups() == []
    assert bob.permissions("").empty


def test_creating_groups_in_open_store_records_no_grant(root: Path) -> None:
    fs = store(root, "alice", "team-a")
    fs.create_feature_group("signals")

    assert fs.permissions("").empty


def test_first_grant_makes_granter_owner_of_store(alice: FeatureStore) -> None:
    alice.grant("bob", "viewer", path="acme/ml")

    assert grants_of(alice) == {("alice", "owner", ""), ("bob", "viewer", "acme/ml")}


def test_grant_twice_keeps_one_grant(alice: FeatureStore) -> None:
    alice.grant("bob", "viewer", path="acme/ml")
    alice.grant("bob", "viewer", path="/acme/ml/")

    assert grants_of(alice) == {("alice", "owner", ""), ("bob", "viewer", "acme/ml")}


def test_first_grant_to_granter_as_store_owner(alice: FeatureStore) -> None:
    alice.grant("alice", "owner", path="")

    assert grants_of(alice) == {("alice", "owner", "")}


def test_grant_path_defaults_to_namespace(alice: FeatureStore) -> None:
    alice.grant("bob", "editor")

    assert ("bob", "editor", NAMESPACE) in grants_of(alice)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda fs: fs.grant("bob", "admin"), r"Role 'admin' is invalid: use one of viewer, editor, owner"),
        (lambda fs: fs.grant("bob", "viewer", path="Acme"), r"Namespace 'Acme' is invalid"),
        (lambda fs: fs.grant("b ob", "viewer"), r"User name 'b ob' is invalid"),
        (lambda fs: fs.revoke("bob", path="acme"), r"bob has no role granted on acme; grants of bob: none"),
    ],
    ids=["role", "path", "user", "revoke-missing"],
)
def test_grant_rejects_invalid_arguments(alice: FeatureStore, call, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        call(alice)


# -- roles on nested paths ----------------------------------------------------------------------


def test_viewer_reads_but_cannot_change(alice: FeatureStore) -> None:
    bob = grant_bob(alice, "viewer")
    group = bob.get_feature_group("user-signals")

    assert group.count() == 1
    assert group.to_pandas()["clicks"].tolist() == [3]
    assert [g.name for g in bob.list_feature_groups()] == ["user-signals"]
    assert bob.sql('SELECT sum(clicks) AS s FROM "user-signals"').to_pandas()["s"].tolist() == [3]
    assert group.analyze(Aggregation("clicks", ["sum"]))["sum"] == 3
    with pytest.raises(PermissionDenied, match="bob may not ingest into"):
        group.ingest(rows(2))
    with pytest.raises(PermissionDenied, match="bob may not define"):
        group.create_feature("extra", dtype="int64")
    with pytest.raises(PermissionDenied, match="bob may not define"):
        bob.create_feature_group("other")
    with pytest.raises(PermissionDenied, match="bob may not delete"):
        bob.delete_feature_group("user-signals")


def test_editor_changes_but_cannot_delete_groups_or_grant(alice: FeatureStore) -> None:
    bob = grant_bob(alice, "editor")
    group = bob.get_feature_group("user-signals")

    group.ingest(rows(2))
    group.create_feature("ctr", dtype="float64", derived_from="clicks / impressions")
    group.delete_feature("ctr")
    bob.create_feature_group("other").create_feature("x", dtype="int64")
    alert = bob.create_alert("clicks-high", Aggregation("clicks", ["sum"]), Condition.GREATER_THAN(100), group="user-signals")
    alert.pause()
    alert.delete()

    assert group.count() == 2
    with pytest.raises(PermissionDenied, match="bob may not delete acme/ml/engagement/user-signals: that needs the owner role"):
        bob.delete_feature_group("user-signals")
    with pytest.raises(PermissionDenied, match="bob may not grant roles on acme/ml/engagement"):
        bob.grant("carol", "viewer")


def test_owner_deletes_groups_and_grants_below(alice: FeatureStore) -> None:
    bob = grant_bob(alice, "owner")

    bob.grant("carol", "viewer", path="acme/ml/engagement")
    bob.delete_feature_group("user-signals")

    assert ("carol", "viewer", "acme/ml/engagement") in grants_of(alice)
    assert alice.list_feature_groups() == []
    with pytest.raises(PermissionDenied, match="bob may not grant roles on acme: that needs the owner role on acme or a path above it"):
        bob.grant("carol", "viewer", path="acme")


@pytest.mark.parametrize(
    ("namespace", "allowed"),
    [
        ("acme/ml", True),
        ("acme/ml/engagement", True),
        ("acme/ml/engagement/deep/er", True),
        ("acme", False),
        ("acme/mlx", False),
        ("acme/other", False),
    ],
)
def test_grant_covers_path_and_paths_below(alice: FeatureStore, namespace: str, allowed: bool) -> None:
    grant_bob(alice, "viewer", path="acme/ml")
    bob = store(alice.root, "bob", namespace)

    if allowed:
        assert bob.list_feature_groups() is not None
    else:
        with pytest.raises(PermissionDenied, match=f"bob may not read {namespace}: .* bob has no role there"):
            bob.list_feature_groups()


def test_highest_covering_role_applies(alice: FeatureStore) -> None:
    alice.grant("bob", "viewer", path="acme")
    alice.grant("bob", "editor", path="acme/ml/engagement")
    bob = store(alice.root, "bob")

    bob.get_feature_group("user-signals").ingest(rows(5))

    other = store(alice.root, "bob", "acme/ml/other")
    with pytest.raises(PermissionDenied, match="bob has viewer there"):
        other.create_feature_group("signals")


# -- revokes ------------------------------------------------------------------------------------


def test_revoke_removes_access(alice: FeatureStore) -> None:
    bob = grant_bob(alice, "editor")
    group = bob.get_feature_group("user-signals")
    group.ingest(rows(2))

    alice.revoke("bob", path="acme/ml")

    with pytest.raises(PermissionDenied, match="bob has no role there"):
        group.ingest(rows(3))
    with pytest.raises(PermissionDenied, match="bob may not read"):
        group.to_pandas()
    assert alice.get_feature_group("user-signals").count() == 2


def test_revoke_below_keeps_grant_above(alice: FeatureStore) -> None:
    alice.grant("bob", "viewer", path="acme")
    alice.grant("bob", "editor", path="acme/ml/engagement")

    alice.revoke("bob", path="acme/ml/engagement")

    bob = store(alice.root, "bob")
    assert bob.get_feature_group("user-signals").count() == 1
    with pytest.raises(PermissionDenied, match="bob has viewer there"):
        bob.get_feature_group("user-signals").ingest(rows(2))


def test_revoke_last_store_owner_rejected(alice: FeatureStore) -> None:
    alice.grant("bob", "viewer", path="acme/ml")

    with pytest.raises(DefinitionError, match="without an owner of the whole store while other grants remain"):
        alice.revoke("alice", path="")

    assert ("alice", "owner", "") in grants_of(alice)


def test_revoking_every_grant_reopens_store(alice: FeatureStore) -> None:
    alice.grant("bob", "viewer", path="acme/ml")
    alice.revoke("bob", path="acme/ml")
    alice.revoke("alice", path="")

    store(alice.root, "carol").get_feature_group("user-signals").ingest(rows(9))

    assert alice.permissions("").empty


# -- namespace ownership ------------------------------------------------------------------------


def test_namespace_creator_owns_it(alice: FeatureStore) -> None:
    alice.grant("bob", "editor", path="acme/ml")
    lab = store(alice.root, "bob", "acme/ml/bob-lab")

    lab.create_feature_group("trials")
    lab.create_feature_group("more-trials")
    lab.grant("carol", "viewer")

    assert ("bob", "owner", "acme/ml/bob-lab") in grants_of(alice)
    assert ("carol", "viewer", "acme/ml/bob-lab") in grants_of(alice)
    with pytest.raises(PermissionDenied, match="bob may not grant roles on acme/ml:"):
        lab.grant("carol", "viewer", path="acme/ml")


def test_creating_in_existing_namespace_grants_nothing(alice: FeatureStore) -> None:
    bob = grant_bob(alice, "editor")

    bob.create_feature_group("second")

    assert ("bob", "owner", NAMESPACE) not in grants_of(alice)


def test_group_above_other_namespaces_grants_nothing(alice: FeatureStore) -> None:
    alice.grant("bob", "editor", path="acme")
    above = store(alice.root, "bob", "acme")

    above.create_feature_group("scratch")

    assert ("bob", "owner", "acme") not in grants_of(alice)
    with pytest.raises(PermissionDenied, match="bob may not delete"):
        store(alice.root, "bob").delete_feature_group("user-signals")


def test_creating_namespace_needs_editor(alice: FeatureStore) -> None:
    alice.grant("bob", "viewer", path="acme")
    outside = store(alice.root, "bob", "bob/lab")

    with pytest.raises(PermissionDenied, match="bob may not define bob/lab/trials: .* bob has no role there"):
        outside.create_feature_group("trials")

    assert not (alice.root / "tables" / "bob").exists()


# -- denials ------------------------------------------------------------------------------------


def test_denial_message_names_user_action_path_and_owners(alice: FeatureStore) -> None:
    alice.grant("dora", "owner", path="acme")
    bob = grant_bob(alice, "viewer")

    expected = (
        "bob may not ingest into acme/ml/engagement/user-signals: that needs the editor role on "
        "acme/ml/engagement or a path above it, and bob has viewer there. Owners who can grant it: "
        "dora (on acme), alice (on the whole store)."
    )
    with pytest.raises(PermissionDenied) as raised:
        bob.get_feature_group("user-signals").ingest(rows(2))

    assert str(raised.value) == expected
    assert isinstance(raised.value, PermissionError)


def test_denial_changes_nothing(alice: FeatureStore) -> None:
    bob = grant_bob(alice, "viewer")
    group = bob.get_feature_group("user-signals")
    before = (group.count(), group.version, [f.name for f in group.features], grants_of(alice))

    for call in (
        lambda: group.ingest(rows(2)),
        lambda: group.create_feature("extra", dtype="int64"),
        lambda: group.update_feature("clicks", description="changed"),
        lambda: group.delete_feature("impressions"),
        lambda: group.set_ttl(60),
        lambda: group.compact(),
        lambda: group.enable_online(),
        lambda: bob.create_alert("a", Aggregation("clicks", ["sum"]), Condition.GREATER_THAN(1)),
        lambda: bob.delete_feature_group("user-signals"),
        lambda: bob.grant("bob", "owner"),
        lambda: bob.revoke("bob", path="acme/ml"),
        lambda: bob.create_token("bob"),
    ):
        with pytest.raises(PermissionDenied):
            call()

    after = (group.count(), group.version, [f.name for f in group.features], grants_of(alice))
    assert after == before
    assert group.ttl is None
    assert group.online is False
    assert alice.list_alerts() == []
    assert alice.get_feature_group("user-signals").feature("clicks").description is None


def test_denials_are_audited(alice: FeatureStore) -> None:
    bob = grant_bob(alice, "viewer")
    with pytest.raises(PermissionDenied):
        bob.get_feature_group("user-signals").ingest(rows(2))

    log = alice.audit_log(user="bob")

    assert log["action"].tolist() == ["ingest"]
    assert log["outcome"].tolist() == ["denied"]
    assert log["detail"][0]["needs"] == "editor"
    assert log["detail"][0]["has"] == "viewer"


def test_audit_log_needs_owner(alice: FeatureStore) -> None:
    bob = grant_bob(alice, "editor")

    with pytest.raises(PermissionDenied, match="bob may not read the audit log of acme/ml/engagement"):
        bob.audit_log()


def test_tokens_need_store_owner(alice: FeatureStore) -> None:
    bob = grant_bob(alice, "owner", path="acme")

    with pytest.raises(PermissionDenied, match="bob may not create tokens in the whole store: that needs the owner role on the whole store"):
        bob.create_token("bob")

    assert alice.list_tokens().empty


# -- scheduled work -----------------------------------------------------------------------------


def test_scheduled_alert_runs_as_its_definer(alice: FeatureStore) -> None:
    bob = grant_bob(alice, "editor")
    alert = bob.create_alert("clicks-high", Aggregation("clicks", ["sum"]), Condition.GREATER_THAN(1), group="user-signals")
    alice.get_feature_group("user-signals").ingest(rows(2))

    alerts.run_task(alice.root, alert._id, None)
    alice.revoke("bob", path="acme/ml")

    with pytest.raises(PermissionDenied, match="bob may not evaluate alert"):
        alerts.run_task(alice.root, alert._id, None)
    denied = alice.audit_log(user="bob", action="evaluate")
    assert denied["outcome"].tolist() == ["denied"]
    assert denied["detail"][0]["via"] == "scheduler"


def test_scheduled_alert_stops_when_definer_is_viewer(alice: FeatureStore) -> None:
    bob = grant_bob(alice, "editor")
    alert = bob.create_alert("clicks-high", Aggregation("clicks", ["sum"]), Condition.GREATER_THAN(1), group="user-signals")
    alice.revoke("bob", "editor", path="acme/ml")
    alice.grant("bob", "viewer", path="acme/ml")
    alice.get_feature_group("user-signals").ingest(rows(2))
    state = alice.get_alert("clicks-high").state

    with pytest.raises(PermissionDenied, match="bob may not evaluate alert acme/ml/engagement/clicks-high"):
        alerts.run_task(alice.root, alert._id, None)

    assert alice.get_alert("clicks-high").state == state


def test_scheduled_live_table_and_job_run_as_definer(alice: FeatureStore) -> None:
    from raise_jupyter import FeatureGroupSource, Target, jobs, live, sql_transform

    bob = grant_bob(alice, "editor")
    group = bob.get_feature_group("user-signals")
    table = group.create_live_table("clicks-total", Aggregation("clicks", ["sum"]), refresh="daily")
    job = bob.create_job("copy", FeatureGroupSource("user-signals"), sql_transform('SELECT user_id, ts, clicks FROM "user-signals"'), Target("copied"))

    live.run_task(alice.root, table._id, None)
    jobs.run_task(alice.root, job._id, None)

    refreshes = alice.audit_log(action="refresh")
    assert refreshes["user"].tolist() == ["bob", "bob"]
    assert refreshes["detail"].iloc[-1]["via"] == "scheduler"
    runs = alice.audit_log(action="job_run")
    assert [d["event"] for d in runs["detail"]] == ["start", "end"]
    assert set(runs["user"]) == {"bob"}

    alice.revoke("bob", path="acme/ml")

    with pytest.raises(PermissionDenied, match="bob may not refresh live table acme/ml/engagement/clicks-total"):
        live.run_task(alice.root, table._id, None)
    with pytest.raises(PermissionDenied, match="bob may not run job acme/ml/engagement/copy"):
        jobs.run_task(alice.root, job._id, None)

# -- listings that read the catalog directly ----------------------------------------------------


def test_listings_show_readable_namespaces_only(alice: FeatureStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from raise_jupyter import serverext
    from raise_jupyter.widgets._browser import _listing

    store(alice.root, "alice", "acme/mlx").create_feature_group("sibling")
    store(alice.root, "alice", "other").create_feature_group("elsewhere")
    alice.grant("bob", "viewer", path="acme/ml")
    monkeypatch.setenv("RAISE_USER", "bob")

    listing, hidden = _listing(store(alice.root, "bob"))

    assert [entry["namespace"] for entry in listing] == [NAMESPACE]
    assert hidden == 0
    assert [entry["namespace"] for entry in serverext.list_namespaces(alice.root)] == [NAMESPACE]
    assert [entry["name"] for entry in serverext.list_groups(alice.root, None, rows=False)] == ["user-signals"]
    monkeypatch.setenv("RAISE_USER", "alice")
    assert len(serverext.list_namespaces(alice.root)) == 3



def test_sql_cannot_reach_other_namespaces_by_file(alice: FeatureStore) -> None:
    from raise_jupyter import FeatureGroupSource, Target, sql_transform
    from raise_jupyter.errors import DefinitionError

    secret = store(alice.root, "alice", "acme/secret")
    secret.create_feature_group("salaries", keys="user_id").create_features_from_schema({"user_id": "int64", "pay": "int64"})
    secret["salaries"].ingest({"user_id": [1], "pay": [100]})
    alice.grant("bob", "editor", path=NAMESPACE)
    bob = store(alice.root, "bob")
    files = f"{alice.root}/tables/acme/secret/**/*.parquet"

    with pytest.raises(DefinitionError, match="table function read_parquet"):
        bob.sql(f"SELECT * FROM read_parquet('{files}')")
    with pytest.raises(DefinitionError, match="table function glob"):
        bob.sql(f"SELECT * FROM glob('{alice.root}/tables/**')")
    with pytest.raises(DefinitionError, match="not files such as"):
        bob.sql(f"SELECT * FROM '{files}'")
    with pytest.raises(DefinitionError, match="not files such as"):
        bob.sql(f'SELECT * FROM "{files.removesuffix(".parquet")}".parquet')
    with pytest.raises(DefinitionError, match="table function read_parquet"):
        query = f"SELECT * FROM read_parquet('{files}')"
        bob.create_job("leak", [FeatureGroupSource("user-signals")], sql_transform(query), Target("leaked"))
    assert bob.sql('SELECT count(*) AS n FROM "user-signals"').to_pandas()["n"].tolist() == [1]


def test_grant_replaces_role_on_same_path(alice: FeatureStore) -> None:
    alice.grant("bob", "viewer", path="acme/ml")
    alice.grant("bob", "editor", path="acme/ml")

    assert {g for g in grants_of(alice) if g[0] == "bob"} == {("bob", "editor", "acme/ml")}
    alice.revoke("bob", "editor", path="acme/ml")
    with pytest.raises(PermissionDenied, match="bob has no role there"):
        store(alice.root, "bob").get_feature_group("user-signals")


def test_first_grant_keeps_namespace_creators_owners(root: Path) -> None:
    work = store(root, "bob", "bob/work")
    work.create_feature_group("trials")
    lead = store(root, "lead", "team")
    lead.create_feature_group("shared")

    lead.grant("carol", "viewer", path="team")

    assert ("bob", "owner", "bob/work") in grants_of(lead)
    assert ("lead", "owner", "") in grants_of(lead)
    assert [g.name for g in work.list_feature_groups()] == ["trials"]


@pytest.mark.parametrize("name", ["alice\u200b", "ali\x00ce", "\x1b[31malice", "a b"])
def test_user_names_that_look_alike_rejected(root: Path, name: str) -> None:
    from raise_jupyter.errors import DefinitionError

    with pytest.raises(DefinitionError, match="is invalid: use 1 to 200 visible characters"):
        FeatureStore(NAMESPACE, root=root, user=name)


def test_first_grant_gives_no_path_above_anothers_namespace(root: Path) -> None:
    store(root, "carol", "acme/ml").create_feature_group("models")
    store(root, "dave", "acme").create_feature_group("scratch")
    lead = store(root, "lead", "team")

    lead.grant("bob", "viewer", path="team")

    assert ("carol", "owner", "acme/ml") in grants_of(lead)
    assert ("dave", "owner", "acme") not in grants_of(lead)
