"""The notification outbox against a real SMTP server (aiosmtpd) and a real HTTP server."""

from __future__ import annotations

import collections
import datetime as dt
import email
import email.policy
import http.server
import json
import logging
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from raise_jupyter import notify
from servers import SmtpServer, WebhookServer, free_port
from raise_jupyter.engine.catalog import Catalog, utcnow
from raise_jupyter.errors import DefinitionError, StoreError
from raise_jupyter.notify import (
    Target,
    deliver_due,
    enqueue,
    parse_targets,
    pending,
    smtp_configured,
)
from raise_jupyter.store import open_catalog

PASSWORD = "s3cret-Pa55"


# -- servers --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RAISE_SMTP_URL", "RAISE_NOTIFY_RETRY_BASE_S", "RAISE_NOTIFY_LEASE_S"):
        monkeypatch.delenv(name, raising=False)
    # urllib would send requests to 127.0.0.1 through a proxy named in the environment.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def catalog(root: Path) -> Catalog:
    return open_catalog(root)


def only(catalog: Catalog) -> dict[str, Any]:
    messages = pending(catalog)
    assert len(messages) == 1
    return messages[0]


# -- targets and enqueue --------------------------------------------------------------------------


def test_parse_targets_valid_forms() -> None:
    targets = parse_targets(["team@example.com", "https://hooks.example.com/T1/B2", "log", "http://127.0.0.1:9/x"])

    assert targets == [
        Target("email", "team@example.com"),
        Target("webhook", "https://hooks.example.com/T1/B2"),
        Target("log", "log"),
        Target("webhook", "http://127.0.0.1:9/x"),
    ]
    assert parse_targets("ops+alerts@mail.example.org") == [Target("email", "ops+alerts@mail.example.org")]
    assert parse_targets([]) == []


@pytest.mark.parametrize(
    "value",
    ["team", "team@", "@example.com", "a..b@example.com", "a@-example.com", "a@b.com,c@d.com", "ftp://example.com",
     "http://", "https://exa mple.com", "http://example.com:port", "LOG", ""],
)
def test_parse_targets_rejects_invalid(value: str) -> None:
    with pytest.raises(DefinitionError, match="expected an e-mail address such as 'team@example.com', an http"):
        parse_targets([value])
    with pytest.raises(DefinitionError, match=re.escape(f"Invalid notification target '{value}'")):
        parse_targets(value)


def test_parse_targets_rejects_non_strings() -> None:
    with pytest.raises(DefinitionError, match="Invalid notification target 42"):
        parse_targets(["log", 42])  # type: ignore[list-item]
    with pytest.raises(DefinitionError, match="Invalid notification targets 42: expected one target"):
        parse_targets(42)  # type: ignore[arg-type]


def test_parse_targets_redacts_password() -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_targets(f"ftp://user:{PASSWORD}@example.com/")

    assert PASSWORD not in str(raised.value)
    assert "ftp://user:***@example.com/" in str(raised.value)


def test_enqueue_inserts_due_messages(catalog: Catalog) -> None:
    before = utcnow()
    ids = enqueue(catalog, parse_targets(["log", "team@example.com"]), subject="s", body="b", payload={"k": 1})

    messages = pending(catalog)
    assert [message["id"] for message in messages] == ids
    assert [message["channel"] for message in messages] == ["log", "email"]
    assert [message["attempts"] for message in messages] == [0, 0]
    assert all(before <= message["next_attempt_at"] <= utcnow() for message in messages)
    assert all(message["last_error"] is None for message in messages)


def test_enqueue_rejects_bad_input(catalog: Catalog) -> None:
    with pytest.raises(DefinitionError, match="not JSON-serializable"):
        enqueue(catalog, [Target("log", "log")], subject="s", body="b", payload={"when": object()})
    with pytest.raises(DefinitionError, match="pass the Target values that parse_targets"):
        enqueue(catalog, ["log"], subject="s", body="b", payload={})  # type: ignore[list-item]
    with pytest.raises(DefinitionError, match="pass the Target values"):
        enqueue(catalog, [Target("sms", "123")], subject="s", body="b", payload={})

    assert pending(catalog) == []


# -- channels -------------------------------------------------------------------------------------


def test_email_delivered_once(root: Path, catalog: Catalog, smtp: SmtpServer) -> None:
    enqueue(catalog, parse_targets("team@example.com"), subject="Alert firing", body="ctr < 0.01\n", payload={})

    assert deliver_due(root, catalog, owner="worker-1") == 1
    assert deliver_due(root, catalog, owner="worker-1", now=utcnow() + dt.timedelta(days=1)) == 0

    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["Subject"] == "Alert firing"
    assert message["To"] == "team@example.com"
    assert message["From"] == "alerts@example.com"
    assert message.get_content().replace("\r\n", "\n") == "ctr < 0.01\n"
    assert smtp.handler.envelopes == [("alerts@example.com", ["team@example.com"])]
    assert pending(catalog) == []


def test_email_subject_line_breaks_removed(root: Path, catalog: Catalog, smtp: SmtpServer) -> None:
    enqueue(catalog, parse_targets("team@example.com"), subject="two\nlines", body="b", payload={})

    assert deliver_due(root, catalog, owner="worker-1") == 1
    assert smtp.messages[0]["Subject"] == "two lines"


def test_webhook_delivered_json(root: Path, catalog: Catalog, webhook: WebhookServer) -> None:
    payload = {"alert": "low-ctr", "state": "firing", "values": [0.004]}
    enqueue(catalog, parse_targets(webhook.url), subject="Alert firing", body="ctr < 0.01", payload=payload)

    assert deliver_due(root, catalog, owner="worker-1") == 1

    assert webhook.bodies == [{"text": "Alert firing\nctr < 0.01", **payload}]
    assert webhook.content_types == ["application/json"]
    assert pending(catalog) == []


def test_log_channel_logs_warning(root: Path, catalog: Catalog, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="raise_jupyter.notify")
    enqueue(catalog, parse_targets("log"), subject="Alert firing", body="ctr < 0.01", payload={})

    assert deliver_due(root, catalog, owner="worker-1") == 1

    records = [record for record in caplog.records if record.name == "raise_jupyter.notify"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert "Alert firing" in records[0].getMessage()
    assert "ctr < 0.01" in records[0].getMessage()
    assert pending(catalog) == []


def test_email_without_smtp_stays(root: Path, catalog: Catalog) -> None:
    enqueue(catalog, parse_targets("team@example.com"), subject="s", body="b", payload={})
    now = utcnow()

    assert smtp_configured(root) is False
    assert deliver_due(root, catalog, owner="worker-1", now=now) == 0

    message = only(catalog)
    assert message["attempts"] == 1
    assert message["next_attempt_at"] == now + dt.timedelta(seconds=30)
    assert message["last_error"] == (
        f"no SMTP server configured: set smtp_url in {root / 'config.yaml'} or RAISE_SMTP_URL"
    )


def test_smtp_configured_from_config_file(root: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    (root / "config.yaml").write_text("smtp_url: smtp://127.0.0.1:2525\n")

    assert smtp_configured(root) is True


# -- retries --------------------------------------------------------------------------------------


def test_email_retried_after_server_restart(root: Path, catalog: Catalog, smtp: SmtpServer) -> None:
    enqueue(catalog, parse_targets("team@example.com"), subject="Alert firing", body="b", payload={})
    smtp.stop()
    now = utcnow()

    assert deliver_due(root, catalog, owner="worker-1", now=now) == 0

    message = only(catalog)
    assert message["attempts"] == 1
    assert message["next_attempt_at"] == now + dt.timedelta(seconds=30)
    assert "cannot connect to SMTP server smtp://127.0.0.1" in message["last_error"]

    smtp.start()
    assert deliver_due(root, catalog, owner="worker-1", now=now + dt.timedelta(seconds=29)) == 0
    assert smtp.messages == []

    assert deliver_due(root, catalog, owner="worker-1", now=now + dt.timedelta(seconds=30)) == 1
    assert deliver_due(root, catalog, owner="worker-1", now=now + dt.timedelta(hours=2)) == 0
    assert deliver_due(root, catalog, owner="worker-2", now=now + dt.timedelta(days=2)) == 0
    assert [message["Subject"] for message in smtp.messages] == ["Alert firing"]
    assert pending(catalog) == []


def test_webhook_500_then_200(root: Path, catalog: Catalog, webhook: WebhookServer) -> None:
    webhook.statuses.extend([500, 200])
    enqueue(catalog, parse_targets(webhook.url), subject="s", body="b", payload={})
    now = utcnow()

    assert deliver_due(root, catalog, owner="worker-1", now=now) == 0
    message = only(catalog)
    assert message["attempts"] == 1
    assert f"webhook {webhook.url} returned HTTP 500" in message["last_error"]

    assert deliver_due(root, catalog, owner="worker-1", now=now + dt.timedelta(seconds=30)) == 1
    assert deliver_due(root, catalog, owner="worker-1", now=now + dt.timedelta(hours=2)) == 0
    assert len(webhook.bodies) == 2
    assert pending(catalog) == []


def test_webhook_unreachable_recorded(root: Path, catalog: Catalog) -> None:
    enqueue(catalog, parse_targets(f"http://127.0.0.1:{free_port()}/hook"), subject="s", body="b", payload={})

    assert deliver_due(root, catalog, owner="worker-1") == 0
    assert "cannot reach webhook http://127.0.0.1" in only(catalog)["last_error"]


def test_backoff_doubles_up_to_cap(
    root: Path, catalog: Catalog, webhook: WebhookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAISE_NOTIFY_RETRY_BASE_S", "5")
    monkeypatch.setattr(notify, "RETRY_CAP_S", 30.0)
    webhook.statuses.extend([503] * 6)
    enqueue(catalog, parse_targets(webhook.url), subject="s", body="b", payload={})

    now = utcnow()
    delays = []
    for attempt in range(1, 7):
        assert deliver_due(root, catalog, owner="worker-1", now=now) == 0
        message = only(catalog)
        assert message["attempts"] == attempt
        delays.append((message["next_attempt_at"] - now).total_seconds())
        now = message["next_attempt_at"]

    assert delays == [5, 10, 20, 30, 30, 30]
    assert len(webhook.bodies) == 6


def test_invalid_retry_base_rejected(root: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAISE_NOTIFY_RETRY_BASE_S", "soon")
    enqueue(catalog, parse_targets("team@example.com"), subject="s", body="b", payload={})

    expected = r"\$RAISE_NOTIFY_RETRY_BASE_S must be a positive number of seconds, got 'soon'"
    with pytest.raises(StoreError, match=expected):
        deliver_due(root, catalog, owner="worker-1")

    assert only(catalog)["attempts"] == 0
    monkeypatch.delenv("RAISE_NOTIFY_RETRY_BASE_S")
    monkeypatch.setenv("RAISE_NOTIFY_LEASE_S", "-1")
    with pytest.raises(StoreError, match=r"\$RAISE_NOTIFY_LEASE_S must be a positive number of seconds, got '-1'"):
        deliver_due(root, catalog, owner="worker-1")

    monkeypatch.delenv("RAISE_NOTIFY_LEASE_S")
    assert deliver_due(root, catalog, owner="worker-1") == 0
    assert only(catalog)["attempts"] == 1


def test_deliver_due_rejects_bad_arguments(root: Path, catalog: Catalog) -> None:
    with pytest.raises(ValueError, match="owner must be a string"):
        deliver_due(root, catalog, owner="")
    with pytest.raises(ValueError, match="limit must be a positive integer, got 0"):
        deliver_due(root, catalog, owner="worker-1", limit=0)


# -- leases and concurrency -----------------------------------------------------------------------


def test_expired_lease_taken_over(
    root: Path, catalog: Catalog, webhook: WebhookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAISE_NOTIFY_LEASE_S", "60")
    enqueue(catalog, parse_targets(webhook.url), subject="s", body="b", payload={})
    now = utcnow()
    # A sender that claims the message and dies before sending it.
    claimed = notify._claim(catalog, owner="dead-worker", limit=10, now=now)
    assert len(claimed) == 1

    assert deliver_due(root, catalog, owner="worker-1", now=now + dt.timedelta(seconds=59)) == 0
    assert webhook.bodies == []

    assert deliver_due(root, catalog, owner="worker-1", now=now + dt.timedelta(seconds=60)) == 1
    assert len(webhook.bodies) == 1
    assert pending(catalog) == []


def test_limit_caps_claimed_messages(root: Path, catalog: Catalog, webhook: WebhookServer) -> None:
    enqueue(catalog, parse_targets([webhook.url] * 5), subject="s", body="b", payload={})

    assert deliver_due(root, catalog, owner="worker-1", limit=2) == 2
    assert len(pending(catalog)) == 3
    assert deliver_due(root, catalog, owner="worker-1", limit=10) == 3
    assert len(webhook.bodies) == 5


def test_threads_deliver_each_once(root: Path, catalog: Catalog, smtp: SmtpServer) -> None:
    count = 60
    for index in range(count):
        enqueue(catalog, parse_targets("team@example.com"), subject=f"message {index}", body="b", payload={})
    barrier = threading.Barrier(4)
    delivered: list[int] = []
    errors: list[Exception] = []

    def send(owner: str) -> None:
        try:
            barrier.wait()
            while (sent := deliver_due(root, catalog, owner=owner, limit=3)) > 0:
                delivered.append(sent)
        except Exception as error:  # noqa: BLE001 - the assert below reports it
            errors.append(error)

    threads = [threading.Thread(target=send, args=(f"worker-{index}",)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(delivered) == count
    received = collections.Counter(message["Subject"] for message in smtp.messages)
    assert received == collections.Counter(f"message {index}" for index in range(count))
    assert pending(catalog) == []


SENDER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from raise_jupyter.notify import deliver_due
    from raise_jupyter.store import open_catalog

    root, owner, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    catalog = open_catalog(root)
    (go.parent / f"ready-{owner}").touch()
    while not go.exists():
        time.sleep(0.01)
    total = 0
    while (sent := deliver_due(root, catalog, owner=owner, limit=4)) > 0:
        total += sent
    print(total)
    """
)


@pytest.mark.slow
def test_processes_deliver_each_once(root: Path, catalog: Catalog, webhook: WebhookServer, tmp_path: Path) -> None:
    count = 80
    for index in range(count):
        enqueue(catalog, parse_targets(webhook.url), subject="s", body="b", payload={"index": index})
    go = tmp_path / "go"
    owners = ["process-a", "process-b"]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SENDER_SCRIPT, str(root), owner, str(go)], stdout=subprocess.PIPE, text=True
        )
        for owner in owners
    ]
    while not all((tmp_path / f"ready-{owner}").exists() for owner in owners):
        assert all(process.poll() is None for process in processes), "a sender process exited early"
        time.sleep(0.01)
    go.touch()
    outputs = [process.communicate(timeout=120)[0] for process in processes]

    assert [process.returncode for process in processes] == [0, 0]
    assert sum(int(output) for output in outputs) == count
    received = collections.Counter(body["index"] for body in webhook.bodies)
    assert received == collections.Counter(range(count))
    assert pending(catalog) == []


# -- secrets --------------------------------------------------------------------------------------


def test_smtp_login_delivers(root: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    server = SmtpServer(login=("raise-user", PASSWORD))
    server.start()
    try:
        monkeypatch.setenv("RAISE_SMTP_URL", f"smtp://raise-user:{PASSWORD}@127.0.0.1:{server.port}")
        enqueue(catalog, parse_targets("team@example.com"), subject="s", body="b", payload={})

        assert deliver_due(root, catalog, owner="worker-1") == 1
    finally:
        server.stop()

    assert server.logins == ["raise-user"]
    assert server.messages[0]["From"] == "raise@localhost"


def test_smtp_password_never_logged(
    root: Path, catalog: Catalog, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    server = SmtpServer(login=("raise-user", "another-password"))
    server.start()
    closed_port = free_port()
    urls = [
        f"smtp://raise-user:{PASSWORD}@127.0.0.1:{server.port}",  # login rejected
        f"smtp://raise-user:{PASSWORD}@127.0.0.1:{closed_port}",  # connection refused
        f"smtp://raise-user:{PASSWORD}@127.0.0.1:{server.port}?starttls=maybe",  # invalid URL
        f"smtps://raise-user:{PASSWORD}@127.0.0.1:{server.port}?starttls=true",  # invalid URL
    ]
    enqueue(catalog, parse_targets("team@example.com"), subject="s", body="b", payload={})
    now = utcnow()
    errors = []
    try:
        for url in urls:
            monkeypatch.setenv("RAISE_SMTP_URL", url)
            assert deliver_due(root, catalog, owner="worker-1", now=now) == 0
            errors.append(only(catalog)["last_error"])
            now = only(catalog)["next_attempt_at"]
    finally:
        server.stop()

    assert server.messages == []
    assert "raise-user:***@127.0.0.1" in caplog.text
    assert PASSWORD not in caplog.text
    for error in errors:
        assert PASSWORD not in error
        assert "raise-user:***@127.0.0.1" in error
    assert "535" in errors[0]
    assert "cannot connect to SMTP server" in errors[1]
    assert "starttls must be true or false, got 'maybe'" in errors[2]
    assert "use smtps:// or starttls=true, not both" in errors[3]


@pytest.mark.parametrize("password", ["hun/ter2secret", "hu@nter2secret", "pw:zz/qq@yysecret"])
def test_unencoded_password_never_logged(
    root: Path, catalog: Catalog, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("RAISE_SMTP_URL", f"smtp://bob:{password}@127.0.0.1:{free_port()}")
    enqueue(catalog, parse_targets("team@example.com"), subject="s", body="b", payload={})

    assert deliver_due(root, catalog, owner="worker-1") == 0

    error = only(catalog)["last_error"]
    for piece in {password, password.split("@")[-1], password.split("/")[-1], "secret"}:
        assert piece not in error
        assert piece not in caplog.text


def test_webhook_credentials_rejected() -> None:
    with pytest.raises(DefinitionError, match=r"user names and passwords in webhook URLs are not supported"):
        parse_targets(f"https://user:{PASSWORD}@hooks.example.com/x")


def test_webhook_redirect_not_delivered(root: Path, catalog: Catalog, webhook: WebhookServer) -> None:
    webhook.statuses.extend([302])
    enqueue(catalog, parse_targets(webhook.url), subject="s", body="b", payload={})

    assert deliver_due(root, catalog, owner="worker-1") == 0

    assert "redirected (HTTP 302)" in only(catalog)["last_error"]
    assert len(webhook.bodies) == 1  # the redirect was not followed


def test_webhook_body_strict_json(root: Path, catalog: Catalog, webhook: WebhookServer) -> None:
    payload = {"values": {"max": float("inf"), "min": float("-inf"), "avg": float("nan"), "p50": 1.5}}
    enqueue(catalog, parse_targets(webhook.url), subject="s", body="b", payload=payload)

    assert deliver_due(root, catalog, owner="worker-1") == 1

    assert webhook.bodies[0]["values"] == {"max": "inf", "min": "-inf", "avg": "nan", "p50": 1.5}


def test_failing_target_tried_once_per_round(root: Path, catalog: Catalog, webhook: WebhookServer) -> None:
    webhook.statuses.extend([500, 500, 500])
    for _ in range(3):
        enqueue(catalog, parse_targets([webhook.url, "log"]), subject="s", body="b", payload={})

    delivered = deliver_due(root, catalog, owner="worker-1")

    assert delivered == 3  # the log messages
    assert len(webhook.bodies) == 1
    assert [m["attempts"] for m in pending(catalog)] == [1, 1, 1]
    assert "an earlier send to this target in the same round failed" in pending(catalog)[-1]["last_error"]
