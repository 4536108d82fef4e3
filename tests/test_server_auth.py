"""Bearer tokens and roles on the HTTP feature server, run as ``raise serve`` on 127.0.0.1."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from raise_jupyter import FeatureStore, cli
from servers import run_raise_serve

NAMESPACE = "acme/ml/engagement"
LOOKUP = {"features": ["user-signals.clicks"], "entities": {"user_id": [1]}}


def request(url: str, *, token: str | None = None, body: object = None, header: str | None = None) -> tuple[int, dict[str, object]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if header is not None:
        headers["Authorization"] = header
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def lookup(base: str, token: str | None) -> tuple[int, dict[str, object]]:
    return request(f"{base}/v1/online-features", token=token, body=LOOKUP)


def build_store(root: Path) -> FeatureStore:
    fs = FeatureStore(NAMESPACE, root=root, user="alice")
    group = fs.create_feature_group("user-signals", keys="user_id", online=True)
    group.create_features_from_schema({"user_id": "int64", "clicks": "int64"})
    group.ingest({"user_id": [1], "clicks": [7]})
    return fs


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    """A store whose owner alice has granted roles; grants change per test, tokens stay."""
    return build_store(tmp_path_factory.mktemp("governed"))


@pytest.fixture(scope="module")
def tokens(governed: FeatureStore) -> dict[str, str]:
    return {user: governed.create_token(user).token for user in ("alice", "bob", "carol")}


@pytest.fixture(scope="module")
def server(governed: FeatureStore, tokens: dict[str, str]) -> Iterator[str]:
    governed.grant("carol", "viewer", path="acme/other")
    yield from run_raise_serve(governed.root, NAMESPACE)


@pytest.fixture
def bob_grants(governed: FeatureStore) -> Iterator[None]:
    """Remove every grant of bob after the test."""
    yield
    for path in set(governed.permissions("").query("user == 'bob'")["path"]):
        governed.revoke("bob", path=path)


# -- tokens -------------------------------------------------------------------------------------


def test_health_needs_no_token(server: str) -> None:
    assert request(f"{server}/health") == (200, {"status": "ok", "namespace": NAMESPACE})


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "Missing bearer token"),
        ("Basic YWxpY2U6cHc=", "Missing bearer token"),
        ("Bearer ", "Missing bearer token"),
        ("Bearer raise_not-a-real-token", "unknown or revoked"),
        ("Bearer something-else", "unknown or revoked"),
    ],
    ids=["none", "basic", "empty", "unknown", "foreign"],
)
def test_request_without_valid_token_gets_401(server: str, header: str | None, message: str) -> None:
    for path, body in (("/v1/online-features", LOOKUP), ("/openapi.json", None)):
        status, response = request(f"{server}{path}", header=header, body=body)

        assert status == 401
        assert message in str(response["error"])


def test_owner_token_looks_up(server: str, tokens: dict[str, str]) -> None:
    status, body = lookup(server, tokens["alice"])

    assert status == 200
    assert body["results"] == [{"user_id": 1, "clicks": 7, "status": "found"}]
    assert request(f"{server}/openapi.json", token=tokens["alice"])[0] == 200


@pytest.mark.parametrize(
    ("role", "path", "allowed"),
    [
        ("viewer", "acme", True),
        ("viewer", "acme/ml", True),
        ("editor", "acme/ml", True),
        ("owner", "acme/ml/engagement", True),
        ("owner", "acme/ml/engagement/below", False),
        ("owner", "acme/mlx", False),
    ],
)
def test_roles_on_paths_decide_access(
    server: str, governed: FeatureStore, tokens: dict[str, str], bob_grants: None, role: str, path: str, allowed: bool
) -> None:
    governed.grant("bob", role, path=path)

    status, body = lookup(server, tokens["bob"])

    if allowed:
        assert status == 200
        assert body["results"] == [{"user_id": 1, "clicks": 7, "status": "found"}]
    else:
        assert status == 403
        assert str(body["error"]).startswith("bob may not read acme/ml/engagement: that needs the viewer role")


def test_user_without_role_gets_403_naming_owners(server: str, tokens: dict[str, str]) -> None:
    status, body = lookup(server, tokens["carol"])

    assert status == 403
    assert body["error"] == (
        "carol may not read acme/ml/engagement: that needs the viewer role on acme/ml/engagement or a path "
        "above it, and carol has no role there. Owners who can grant it: alice (on the whole store)."
    )


def test_revoked_grant_takes_effect_at_once(server: str, governed: FeatureStore, tokens: dict[str, str], bob_grants: None) -> None:
    governed.grant("bob", "viewer", path="acme/ml")
    assert lookup(server, tokens["bob"])[0] == 200

    governed.revoke("bob", path="acme/ml")

    assert lookup(server, tokens["bob"])[0] == 403


def test_revoked_token_gets_401(server: str, governed: FeatureStore) -> None:
    created = governed.create_token("alice")
    assert lookup(server, created.token)[0] == 200

    first, again = governed.revoke_token(created.id), governed.revoke_token(created.id)

    status, body = lookup(server, created.token)
    assert status == 401
    assert "unknown or revoked" in str(body["error"])
    assert (first, again) == (True, False)
    assert len(governed.audit_log(path="", action="token_revoke")) == 1


def test_server_denials_are_audited(server: str, governed: FeatureStore, tokens: dict[str, str]) -> None:
    lookup(server, tokens["carol"])

    denied = governed.audit_log(user="carol")

    assert "denied" in denied["outcome"].tolist()
    assert set(denied["action"]) == {"read"}


# -- the open store -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FeatureStore]]:
    fs = build_store(tmp_path_factory.mktemp("open"))
    for base in run_raise_serve(fs.root, NAMESPACE):
        yield base, fs


def test_open_store_serves_any_valid_token(open_server: tuple[str, FeatureStore]) -> None:
    base, fs = open_server
    token = fs.create_token("someone").token

    assert lookup(base, token)[0] == 200
    assert lookup(base, None)[0] == 401
    assert fs.permissions("").empty


# -- raise token --------------------------------------------------------------------------------


def test_token_command_creates_lists_and_revokes(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAISE_USER", "alice")
    root = tmp_path / "cli-store"
    FeatureStore("acme", root=root)

    assert cli.main(["token", "create", "bob", "--root", str(root)]) == 0
    created = capsys.readouterr().out.splitlines()
    assert created[0] == "Token 1 for bob (shown only now; store it safely):"
    assert created[1].startswith("raise_")
    assert cli.main(["token", "revoke", "1", "--root", str(root)]) == 0
    assert cli.main(["token", "list", "--root", str(root)]) == 0

    listed = capsys.readouterr().out
    assert "Revoked token 1." in listed
    assert "bob" in listed
    assert created[1] not in listed
    stored = FeatureStore("acme", root=root).list_tokens()
    assert stored["user"].tolist() == ["bob"]
    assert stored["revoked_at"].notna().all()


def test_token_command_needs_an_existing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "typo"

    assert cli.main(["token", "list", "--root", str(missing)]) == 1

    assert f"No store at {missing}" in capsys.readouterr().err
    assert not missing.exists()


def test_token_command_needs_store_owner(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "cli-store"
    FeatureStore("acme", root=root, user="alice").grant("bob", "owner", path="acme")
    monkeypatch.setenv("RAISE_USER", "bob")

    assert cli.main(["token", "create", "bob", "--root", str(root)]) == 1

    error = capsys.readouterr().err
    assert error.startswith("error: bob may not create tokens in the whole store")
