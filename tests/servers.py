"""Real SMTP (aiosmtpd) and HTTP servers on 127.0.0.1 that record what they receive."""

from __future__ import annotations

import collections
import email
import email.policy
import http.server
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RecordingHandler:
    """aiosmtpd handler that keeps every received message."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SmtpServer:
    """A real SMTP server on 127.0.0.1 that can be stopped and started again on the same port."""

    def __init__(self, *, login: tuple[str, str] | None = None) -> None:
        self.port = free_port()
        self.handler = RecordingHandler()
        self.login = login
        self.logins: list[str] = []
        self.controller: Controller | None = None

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if not isinstance(data, LoginPassword) or self.login is None:
            return AuthResult(success=False)
        user, password = data.login.decode(), data.password.decode()
        success = (user, password) == self.login
        if success:
            self.logins.append(user)
        return AuthResult(success=success, handled=False)

    def start(self) -> None:
        options: dict[str, Any] = {}
        if self.login is not None:
            options = {"authenticator": self._authenticate, "auth_require_tls": False}
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[email.message.EmailMessage]:
        return self.handler.messages


class WebhookServer(http.server.ThreadingHTTPServer):
    """A real HTTP server that records POSTed JSON bodies and responds with queued status codes."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), WebhookHandler)
        self.bodies: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        self.statuses: collections.deque[int] = collections.deque()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class WebhookHandler(http.server.BaseHTTPRequestHandler):
    server: WebhookServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.bodies.append(json.loads(body))
            self.server.content_types.append(self.headers["Content-Type"])
            status = self.server.statuses.popleft() if self.server.statuses else 200
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", self.server.url + "/moved")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


RAISE_SERVE_STARTUP_S = 60.0


def run_raise_serve(root: Path, namespace: str) -> Iterator[str]:
    """Start ``raise serve`` on a free port of 127.0.0.1, yield its base URL, then stop it.

    Written as a generator for pytest fixtures: ``yield from run_raise_serve(root, namespace)``.
    """
    port = free_port()
    command = [sys.executable, "-m", "raise_jupyter.cli", "--root", str(root), "serve", namespace, "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + RAISE_SERVE_STARTUP_S

    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=5):
                break
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"raise serve did not start:\n{output}")
            time.sleep(0.1)

    yield base
    process.terminate()
    process.wait(timeout=10)
