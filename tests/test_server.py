"""The HTTP feature server, run as ``raise serve`` in a separate process on 127.0.0.1."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from raise_jupyter import FeatureStore
from servers import run_raise_serve

NAMESPACE = "acme/ml/engagement"


# The bearer token of the module's store, set by the store fixture.
AUTH: dict[str, str] = {}


def _request(url: str, body: bytes | None = None, *, token: str | None = None) -> tuple[int, dict[str, object]]:
    headers = {"Content-Type": "application/json"}
    token = token if token is not None else AUTH.get("token")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _post(base: str, payload: object) -> tuple[int, dict[str, object]]:
    return _request(f"{base}/v1/online-features", json.dumps(payload).encode())


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    fs = FeatureStore(NAMESPACE, root=tmp_path_factory.mktemp("served"))
    users = fs.create_feature_group("user-signals", keys="user_id", event_time="ts", online=True)
    users.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "clicks": "int64", "impressions": "int64"})
    users.create_feature("ctr", dtype="float64", derived_from="clicks / NULLIF(impressions, 0)")
    users.ingest({"user_id": [0, 1, 2], "ts": ["2024-01-01"] * 3, "clicks": [7, 1, 2], "impressions": [10, 10, 0]})
    planes = fs.create_feature_group("planes", keys="tailnum", online=True)
    planes.create_features_from_schema({"tailnum": "string", "seats": "int32", "since": "date"})
    planes.ingest({"tailnum": ["N1", "N2"], "seats": [100, 200], "since": ["2001-05-01", None]})
    AUTH["token"] = fs.create_token(fs.user).token
    return fs


@pytest.fixture(scope="module")
def server(store: FeatureStore) -> Iterator[str]:
    yield from run_raise_serve(store.root, NAMESPACE)


def test_server_health(server: str) -> None:
    status, body = _request(f"{server}/health")

    assert status == 200
    assert body == {"status": "ok", "namespace": NAMESPACE}


def test_server_matches_python_int_keys(server: str, store: FeatureStore) -> None:
    features = ["user-signals.clicks", "user-signals.ctr"]
    entities = {"user_id": [2, 99, 0, 1]}

    status, body = _post(server, {"features": features, "entities": entities})

    expected = store.get_online_features(features, entities).to_arrow().to_pylist()
    assert status == 200
    assert body["results"] == expected


def test_server_matches_python_string_keys(server: str, store: FeatureStore) -> None:
    features = ["planes.seats", "planes.since"]

    status, body = _post(server, {"features": features, "entities": {"tailnum": ["N2", "N9", "N1"]}})

    assert status == 200
    assert body["results"] == [
        {"tailnum": "N2", "seats": 200, "since": None, "status": "found"},
        {"tailnum": "N9", "seats": None, "since": None, "status": "missing"},
        {"tailnum": "N1", "seats": 100, "since": "2001-05-01", "status": "found"},
    ]


def test_server_coerces_json_numbers(server: str) -> None:
    status, body = _post(server, {"features": ["user-signals.clicks"], "entities": {"user_id": [1.0]}})

    assert status == 200
    assert body["results"] == [{"user_id": 1, "clicks": 1, "status": "found"}]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (json.dumps({"entities": {"user_id": [1]}}).encode(), 400, '"features" must be a non-empty list'),
        (json.dumps({"features": ["user-signals.clicks"], "entities": {"user_id": 1}}).encode(), 400, '"entities" must be an object'),
        (json.dumps({"features": ["user-signals.clicks"], "entities": {"user_id": [1.5]}}).encode(), 400, "cannot be used as int64 keys"),
        (json.dumps({"features": ["user-signals.clicks"], "entities": {"user_id": ["x"]}}).encode(), 400, "cannot be used as int64 keys"),
        (json.dumps({"features": ["user-signals.clicks"], "entities": {"uid": [1]}}).encode(), 400, "no values for key 'user_id'"),
        (json.dumps({"features": ["nope.clicks"], "entities": {"user_id": [1]}}).encode(), 404, "'nope' does not exist"),
        (json.dumps({"features": ["user-signals.nope"], "entities": {"user_id": [1]}}).encode(), 404, "'nope' does not exist"),
        (json.dumps({"features": ["clicks"], "entities": {"user_id": [1]}}).encode(), 400, "write 'group.feature'"),
    ],
    ids=["bad-json", "not-object", "no-features", "entities-not-lists", "fraction-key", "string-key", "missing-key", "unknown-group", "unknown-feature", "bare-name"],
)
def test_server_rejects_bad_requests(server: str, body: bytes, status: int, message: str) -> None:
    code, response = _request(f"{server}/v1/online-features", body)

    assert code == status
    assert message in response["error"]
    assert _request(f"{server}/health")[0] == 200


def test_server_openapi(server: str) -> None:
    status, body = _request(f"{server}/openapi.json")

    assert status == 200
    assert "/v1/online-features" in body["paths"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (json.dumps({"features": ["user-signals.clicks"], "entities": {"user_id": [10**4000]}}).encode(), "cannot be used as int64 keys"),
    ],
    ids=["deep-json", "huge-int"],
)
def test_server_rejects_hostile_bodies(server: str, body: bytes, message: str) -> None:
    code, response = _request(f"{server}/v1/online-features", body)

    assert code == 400
    assert message in response["error"]
    assert _request(f"{server}/health")[0] == 200


def test_server_rejects_large_body_early(server: str) -> None:
    """The server rejects the request from its Content-Length header, before the body arrives."""
    import http.client

    host, port = server.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("POST", "/v1/online-features")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Authorization", f"Bearer {AUTH['token']}")
    connection.putheader("Content-Length", str(300_000_000))
    connection.endheaders()
    response = connection.getresponse()

    assert response.status == 400
    assert "the maximum is 1,000,000" in json.loads(response.read())["error"]
    connection.close()
    assert _request(f"{server}/health")[0] == 200
