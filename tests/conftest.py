"""Shared fixtures: every test gets its own store root in a temporary directory."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raise_jupyter import FeatureStore
from servers import SmtpServer, WebhookServer


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests away from the developer's ~/.raise."""
    monkeypatch.setenv("RAISE_HOME", str(tmp_path / "raise-home"))
    monkeypatch.delenv("RAISE_CATALOG_URL", raising=False)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def fs(root: Path) -> FeatureStore:
    return FeatureStore("acme/ml/engagement", root=root)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start a real redis-server (Debian's package) on a free port of 127.0.0.1."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; run 'apt-get install -y redis-server' (see README).")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    directory = tmp_path_factory.mktemp("redis")
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """Start a real SMTP server on 127.0.0.1 and point RAISE_SMTP_URL at it."""
    server = SmtpServer()
    server.start()
    monkeypatch.setenv("RAISE_SMTP_URL", f"smtp://127.0.0.1:{server.port}?from=alerts@example.com")
    yield server
    server.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    """Start a real HTTP server on 127.0.0.1 that records POSTed JSON."""
    server = WebhookServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()
