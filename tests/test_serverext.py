"""The server extension's REST handlers, in a real Jupyter server on 127.0.0.1.

The server runs the installed package with its server extension enabled by the configuration
file that the package installs, as a user's server would.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from raise_jupyter import FeatureStore

pytestmark = pytest.mark.slow


@dataclass
class Server:
    url: str
    token: str
    log: Path

    def get(self, path: str, *, token: str | None = "default") -> tuple[int, object]:
        """GET ``/raise/api/<path>``; return the status and the JSON body (or the text)."""
        request = urllib.request.Request(f"{self.url}/raise/api/{path}")
        token = self.token if token == "default" else token
        if token is not None:
            request.add_header("Authorization", f"token {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = error.read().decode("utf-8", "replace")
            try:
                return error.code, json.loads(body)
            except ValueError:
                return error.code, body


def _start(root: Path, base: Path) -> Iterator[Server]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = secrets.token_hex(16)

    env = dict(os.environ)
    env.update(JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTER_RUNTIME_DIR=str(base / "runtime"))
    command = [
        sys.executable, "-m", "jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={base}", f"--RaiseExtension.root={root}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = base / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)

    server = Server(f"http://127.0.0.1:{port}", token, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            status, _ = server.get("stores")
            if status == 200:
                break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"Jupyter server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    try:
        yield server
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    fs = FeatureStore("acme/ml/engagement", root=root)
    group = fs.create_feature_group("user-signals", keys="user_id", event_time="ts", description="Clicks per user")
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "clicks": "int64", "impressions": "int64"})
    group.create_feature("ctr", dtype="float64", derived_from="clicks / NULLIF(impressions, 0)", description="Click rate")
    frame = pd.DataFrame({"user_id": [1, 2, 3], "ts": pd.Timestamp("2026-01-01", tz="UTC"), "clicks": [1, 2, 3], "impressions": [10, 10, 0]})
    group.ingest(frame)
    FeatureStore("acme/ads", root=root).create_feature_group("campaigns", keys="campaign_id")
    return root


@pytest.fixture(scope="module")
def server(store_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _start(store_root, tmp_path_factory.mktemp("server"))


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _start(tmp_path_factory.mktemp("nothing-here") / "missing", tmp_path_factory.mktemp("server-empty"))


# -- authentication -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["stores", "namespaces", "groups", "group?namespace=acme/ads&name=campaigns"])
def test_request_without_token_rejected(server: Server, path: str) -> None:
    status, _ = server.get(path, token=None)

    assert status == 403


def test_request_with_wrong_token_rejected(server: Server) -> None:
    status, _ = server.get("groups", token="not-the-token")

    assert status == 403


def test_handlers_are_read_only(server: Server) -> None:
    request = urllib.request.Request(f"{server.url}/raise/api/groups", data=b"{}", method="POST")
    request.add_header("Authorization", f"token {server.token}")

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)

    assert caught.value.code == 405


# -- listing ------------------------------------------------------------------------------------


def test_stores_lists_root_and_namespaces(server: Server, store_root: Path) -> None:
    status, body = server.get("stores")

    assert status == 200
    [store] = body["stores"]
    assert store["root"] == str(store_root)
    assert store["exists"] is True
    assert store["namespaces"] == [{"namespace": "acme/ads", "groups": 1}, {"namespace": "acme/ml/engagement", "groups": 1}]


def test_namespaces_lists_group_counts(server: Server) -> None:
    status, body = server.get("namespaces")

    assert status == 200
    assert [n["namespace"] for n in body] == ["acme/ads", "acme/ml/engagement"]


def test_groups_lists_features_and_rows(server: Server) -> None:
    status, body = server.get("groups?namespace=acme/ml/engagement")

    assert status == 200
    [group] = body
    assert group["name"] == "user-signals"
    assert group["description"] == "Clicks per user"
    assert group["keys"] == ["user_id"]
    assert group["event_time"] == "ts"
    assert group["rows"] == 3
    features = {f["name"]: f for f in group["features"]}
    assert features["ctr"]["derived"] == "clicks / NULLIF(impressions, 0)"
    assert features["ctr"]["description"] == "Click rate"
    assert features["ctr"]["dtype"] == "float64"
    assert features["ctr"]["role"] == "derived"
    assert features["user_id"]["role"] == "key"
    assert features["ts"]["role"] == "event time"


def test_groups_without_namespace_lists_all(server: Server) -> None:
    status, body = server.get("groups?rows=0")

    assert status == 200
    assert [(g["namespace"], g["name"]) for g in body] == [("acme/ads", "campaigns"), ("acme/ml/engagement", "user-signals")]
    assert all("rows" not in g for g in body)


def test_group_by_name(server: Server) -> None:
    status, body = server.get("group?namespace=acme/ads&name=campaigns")

    assert status == 200
    assert body["keys"] == ["campaign_id"]
    assert body["rows"] == 0


def test_missing_group_is_404(server: Server) -> None:
    status, body = server.get("group?namespace=acme/ads&name=nope")

    assert status == 404
    assert "nope" in json.dumps(body)


def test_new_group_appears_without_restart(server: Server, store_root: Path) -> None:
    FeatureStore("acme/new", root=store_root).create_feature_group("fresh", keys="id")

    status, body = server.get("groups?namespace=acme/new&rows=0")

    assert status == 200
    assert [g["name"] for g in body] == ["fresh"]


# -- missing stores -----------------------------------------------------------------------------


def test_missing_store_is_404_and_not_created(empty_server: Server) -> None:
    status, body = empty_server.get("groups")

    assert status == 404
    assert "No Raise store at" in json.dumps(body)


def test_missing_store_listed_as_absent(empty_server: Server) -> None:
    status, body = empty_server.get("stores")

    assert status == 200
    [store] = body["stores"]
    assert store["exists"] is False
    assert store["namespaces"] == []
    assert not Path(store["root"]).exists()


# -- concurrent writers -------------------------------------------------------------------------


def test_reads_do_not_block_writers(server: Server, store_root: Path) -> None:
    """A writer creates groups and ingests while the server serves listing requests."""
    fs = FeatureStore("acme/busy", root=store_root)
    errors: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        try:
            for i in range(15):
                group = fs.create_feature_group(f"g{i}", keys="id")
                group.create_features_from_schema({"id": "int64", "value": "float64"})
                group.ingest(pd.DataFrame({"id": range(100), "value": [float(i)] * 100}))
        except BaseException as error:  # reported by the assertions below
            errors.append(error)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    statuses = []
    while not done.is_set():
        statuses.append(server.get("groups?namespace=acme/busy")[0])
    writer.join()

    assert errors == []
    assert statuses and set(statuses) == {200}
    status, body = server.get("groups?namespace=acme/busy")
    assert status == 200
    assert len(body) == 15
    assert all(g["rows"] == 100 for g in body)


# -- read-only access ---------------------------------------------------------------------------


@pytest.fixture
def odd_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("odd-store")


@pytest.fixture
def odd_server(odd_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _start(odd_root, tmp_path_factory.mktemp("server-odd"))


def test_older_catalog_not_migrated(odd_server: Server, odd_root: Path) -> None:
    import sqlite3

    FeatureStore("acme/old", root=odd_root).create_feature_group("g", keys="id")
    with sqlite3.connect(odd_root / "catalog.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0005'")
    before = (odd_root / "catalog.db").read_bytes()

    status, body = odd_server.get("groups")

    assert status == 409
    assert "schema revision '0005'" in body["message"]
    with sqlite3.connect(odd_root / "catalog.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0005",)
    assert (odd_root / "catalog.db").read_bytes() == before


def test_corrupt_catalog_explained(odd_server: Server, odd_root: Path) -> None:
    (odd_root / "catalog.db").write_bytes(b"this is not a database" * 100)

    status, body = odd_server.get("groups")

    assert status == 500
    assert "cannot be read" in body["message"]


def test_recreated_store_read_anew(odd_server: Server, odd_root: Path) -> None:
    import shutil

    FeatureStore("acme/first", root=odd_root).create_feature_group("old-group", keys="id")
    assert [g["name"] for g in odd_server.get("groups?rows=0")[1]] == ["old-group"]
    shutil.rmtree(odd_root)
    # Another process makes the new store: this one still caches a connection to the old file.
    code = f"from raise_jupyter import FeatureStore; FeatureStore('acme/second', root={str(odd_root)!r}).create_feature_group('new-group', keys='id')"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

    status, body = odd_server.get("groups?rows=0")

    assert status == 200
    assert [g["name"] for g in body] == ["new-group"]
