"""Notification outbox: messages wait in the catalog's ``outbox`` table until a sender delivers them.

``enqueue`` stores one row per target. ``deliver_due`` claims due rows with a lease, sends each
outside the transaction and records the outcome. A failed attempt stays in the outbox and is
retried with exponential backoff, so a message is not lost while a mail or webhook server is
down. A lease keeps two senders from sending the same message at once, and a lease whose owner
died expires after ``LEASE_S`` seconds, so another sender takes the message over.

NOTE: a sender that dies after a server accepted a message, but before it recorded the delivery,
leaves that message to be sent again once its lease expires.

Channels: ``email`` through the SMTP server of the ``smtp_url`` setting, ``webhook`` as a JSON
POST with a Slack-compatible ``text`` field, and ``log`` as a WARNING record of this module's
logger.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import logging
import math
import os
import re
import smtplib
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from raise_jupyter.config import setting
from raise_jupyter.engine import tables
from raise_jupyter.engine.catalog import Catalog, utcnow
from raise_jupyter.errors import DefinitionError, StoreError

__all__ = [
    "LEASE_S",
    "RETRY_BASE_S",
    "RETRY_CAP_S",
    "SEND_TIMEOUT_S",
    "Target",
    "deliver_due",
    "enqueue",
    "parse_targets",
    "pending",
    "smtp_configured",
]

logger = logging.getLogger(__name__)

# Delay after the first failed attempt, doubled after each further failure up to RETRY_CAP_S.
# $RAISE_NOTIFY_RETRY_BASE_S overrides the base.
RETRY_BASE_S = 30.0
RETRY_CAP_S = 3600.0

# How long a claimed message stays reserved for its sender, in seconds. $RAISE_NOTIFY_LEASE_S
# overrides it. A sender renews the lease just before each send. The lease must outlast one send, which is a
# few SMTP commands of at most SEND_TIMEOUT_S each.
LEASE_S = 120.0

# Timeout of each connection and each SMTP command or HTTP request, in seconds.
SEND_TIMEOUT_S = 10.0

DEFAULT_SENDER = "raise@localhost"
CHANNELS = ("email", "webhook", "log")

_VALID_FORMS = "an e-mail address such as 'team@example.com', an http:// or https:// webhook URL, or 'log'"
_NO_SMTP = "no SMTP server configured: set smtp_url in {config} or RAISE_SMTP_URL"
_SMTP_URL_FORM = "smtp://[user:password@]host[:port][?from=raise@localhost&starttls=true] or smtps://..."
_MAX_TARGET_LENGTH = 1000

# An e-mail address: dot-separated atoms of RFC 5322, "@", and dot-separated DNS labels.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(_ATOM + r"(?:\." + _ATOM + r")*@" + _LABEL + r"(?:\." + _LABEL + r")*")


@dataclass(frozen=True)
class Target:
    """Destination of a notification. ``channel`` is "email", "webhook" or "log"."""

    channel: str
    target: str


class _DeliveryError(Exception):
    """A failed send attempt. Its text is stored as the outbox row's ``last_error``."""


@dataclass(frozen=True)
class _Message:
    id: int
    channel: str
    target: str
    subject: str
    body: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class _SmtpServer:
    host: str
    port: int
    username: str | None
    password: str | None
    sender: str
    starttls: bool
    implicit_tls: bool
    display_url: str


# -- targets --------------------------------------------------------------------------------------


def parse_targets(targets: Sequence[str] | str) -> list[Target]:
    """Parse notification targets: e-mail addresses, webhook URLs and ``"log"``.

    Parameters
    ----------
    targets
        One target or a list of them; an empty list is allowed.

    Returns
    -------
    list[Target]
        The targets in the given order.

    Raises
    ------
    DefinitionError
        If a value matches no valid form. The message names the value.
    """
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, Sequence):
        raise DefinitionError(
            f"Invalid notification targets {targets!r}: expected one target or a list of targets, each {_VALID_FORMS}."
        )
    return [_parse_target(value) for value in targets]


def _parse_target(value: object) -> Target:
    if not isinstance(value, str):
        raise _invalid_target(value)
    text = value.strip()
    if len(text) > _MAX_TARGET_LENGTH:
        raise DefinitionError(
            f"Invalid notification target {text[:60]!r}...: it has {len(text)} characters, "
            f"at most {_MAX_TARGET_LENGTH} are allowed."
        )
    if text == "log":
        return Target("log", "log")
    if text.lower().startswith(("http://", "https://")):
        if not _is_valid_url(text):
            raise _invalid_target(value)
        if "@" in urllib.parse.urlsplit(text).netloc:
            raise DefinitionError(
                f"Invalid webhook {_redact_url(text)!r}: user names and passwords in webhook URLs are not "
                "supported; put the token in the path or query, as Slack's webhook URLs do."
            )
        return Target("webhook", text)
    if _EMAIL.fullmatch(text):
        return Target("email", text)
    raise _invalid_target(value)


def _is_valid_url(url: str) -> bool:
    if any(character.isspace() for character in url):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return bool(parts.hostname)


def _invalid_target(value: object) -> DefinitionError:
    display_value = repr(_redact_url(value)) if isinstance(value, str) else repr(value)
    return DefinitionError(f"Invalid notification target {display_value}: expected {_VALID_FORMS}.")


# -- outbox ---------------------------------------------------------------------------------------


def enqueue(
    catalog: Catalog | sa.Connection, targets: Sequence[Target], *, subject: str, body: str, payload: dict
) -> list[int]:
    """Insert one outbox message per target, due now, in one catalog write transaction.

    Parameters
    ----------
    catalog
        Catalog of the store, from ``raise_jupyter.store.open_catalog(root)``, or a connection
        inside a write transaction, so that the messages commit together with other changes.
    targets
        Destinations from ``parse_targets``.
    subject, body
        Text of the message. E-mails use ``subject`` as their Subject header.
    payload
        JSON-serializable fields added to webhook requests, such as the alert name and state.
        A ``"text"`` key replaces the text that webhooks get from ``subject`` and ``body``.

    Returns
    -------
    list[int]
        Outbox ids of the new messages, in the order of ``targets``.
    """
    for target in targets:
        _check_target(target)
    _check_payload(payload)
    now = utcnow()
    ids: list[int] = []
    with _write(catalog) as conn:
        for target in targets:
            result = conn.execute(
                tables.outbox.insert().values(
                    channel=target.channel,
                    target=target.target,
                    subject=subject,
                    body=body,
                    payload=payload,
                    created_at=now,
                    attempts=0,
                    next_attempt_at=now,
                )
            )
            ids.append(int(result.inserted_primary_key[0]))
    return ids


@contextlib.contextmanager
def _write(catalog: Catalog | sa.Connection) -> Iterator[sa.Connection]:
    """Yield a write connection: ``catalog``'s own transaction, or the connection given."""
    if isinstance(catalog, sa.Connection):
        yield catalog
        return
    with catalog.write() as conn:
        yield conn


def _check_target(target: object) -> None:
    if not isinstance(target, Target) or target.channel not in CHANNELS:
        raise DefinitionError(
            f"Invalid notification target {target!r}: pass the Target values that parse_targets() returns."
        )


def _check_payload(payload: object) -> None:
    if not isinstance(payload, dict):
        raise DefinitionError(f"Notification payload must be a dict, got {type(payload).__name__}: {payload!r}.")
    try:
        json.dumps(payload)
    except (TypeError, ValueError) as error:
        raise DefinitionError(
            f"Notification payload {payload!r} is not JSON-serializable ({error}). Pass strings, numbers, "
            "booleans, None, lists and dicts."
        ) from None


def pending(catalog: Catalog) -> list[dict]:
    """Return the undelivered messages of the outbox, oldest first.

    Each dict has the keys ``id``, ``channel``, ``target``, ``subject``, ``attempts``,
    ``next_attempt_at`` (UTC) and ``last_error``.
    """
    t = tables.outbox
    columns = [t.c.id, t.c.channel, t.c.target, t.c.subject, t.c.attempts, t.c.next_attempt_at, t.c.last_error]
    with catalog.read() as conn:
        rows = conn.execute(sa.select(*columns).where(t.c.delivered_at.is_(None)).order_by(t.c.id)).all()
    messages = [dict(row._mapping) for row in rows]
    for message in messages:
        message["next_attempt_at"] = _as_utc(message["next_attempt_at"])
    return messages


def smtp_configured(root: Path) -> bool:
    """Return whether the store at ``root`` has an ``smtp_url`` setting for e-mail targets."""
    return bool(setting(root, "smtp_url"))


# -- delivery -------------------------------------------------------------------------------------


def deliver_due(
    root: Path,
    catalog: Catalog,
    *,
    owner: str,
    limit: int = 100,
    now: dt.datetime | None = None,
    ids: Sequence[int] | None = None,
) -> int:
    """Send the due messages of the outbox and record each outcome.

    A message is due when it is not delivered, its ``next_attempt_at`` has passed and no live
    lease holds it. This function claims up to ``limit`` due messages with a lease in one write
    transaction, then sends each one outside any transaction. A sent message gets
    ``delivered_at``. A failed attempt is logged and recorded in ``last_error``, and the message
    is retried after an exponential backoff.

    Parameters
    ----------
    root
        Store root, for the ``smtp_url`` setting.
    catalog
        Catalog of the store at ``root``.
    owner
        Name of this sender, unique among running senders, such as ``"host:pid"``.
    limit
        Maximum number of messages to claim in this call.
    now
        Current time (UTC if naive). Tests pass a later time in place of sleeping; by default
        the system clock is read at each step.
    ids
        Claim only these outbox messages (if due), such as a test notification that must not
        wait behind older messages.

    Returns
    -------
    int
        Number of messages delivered by this call.

    Raises
    ------
    StoreError
        If ``$RAISE_NOTIFY_RETRY_BASE_S`` or ``$RAISE_NOTIFY_LEASE_S`` is not a positive number.
        This is checked before any message is claimed. Any error other than a failed send
        propagates too, and the messages this call claimed become due again when their leases
        expire.
    """
    _check_owner(owner)
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}.")
    _retry_delay(1)
    _lease_seconds()
    fixed_now = _as_utc(now) if now is not None else None

    delivered = 0
    failed_targets: dict[tuple[str, str], str] = {}
    for message in _claim(catalog, owner=owner, limit=limit, now=fixed_now or utcnow(), ids=ids):
        if not _renew_lease(catalog, message.id, owner=owner, now=fixed_now or utcnow()):
            logger.warning("Skipped notification %d: the lease of sender %r expired before sending.", message.id, owner)
            continue
        target = (message.channel, message.target)
        if target in failed_targets:
            # A server that failed or hung once in this call is not tried again before the
            # backoff, so one dead webhook costs one timeout per call, not one per message.
            error = f"not sent: an earlier send to this target in the same round failed ({failed_targets[target]})"
            _record_failure(catalog, message, owner=owner, error=error, now=fixed_now or utcnow())
            continue
        outcome = _attempt(root, catalog, message, owner=owner, now=fixed_now)
        if outcome is None:
            delivered += 1
        else:
            failed_targets[target] = outcome
    return delivered


def _check_owner(owner: object) -> None:
    if not isinstance(owner, str) or not 0 < len(owner) <= 200:
        raise ValueError(f"owner must be a string of 1 to 200 characters naming the sender, got {owner!r}.")


def _claim(
    catalog: Catalog, *, owner: str, limit: int, now: dt.datetime, ids: Sequence[int] | None = None
) -> list[_Message]:
    """Lease up to ``limit`` due messages (of ``ids``, if given) to ``owner`` until ``now`` plus the lease length."""
    t = tables.outbox
    due = sa.and_(
        t.c.delivered_at.is_(None),
        t.c.next_attempt_at <= now,
        sa.or_(t.c.lease_until.is_(None), t.c.lease_until <= now),
    )
    if ids is not None:
        due = sa.and_(due, t.c.id.in_(list(ids)))
    lease_until = now + dt.timedelta(seconds=_lease_seconds())
    with catalog.write() as conn:
        # SQLite ignores FOR UPDATE, because BEGIN IMMEDIATE already serializes writers. On
        # Postgres, SKIP LOCKED lets concurrent senders claim different rows.
        query = sa.select(t).where(due).order_by(t.c.next_attempt_at, t.c.id).limit(limit)
        rows = conn.execute(query.with_for_update(skip_locked=True)).all()
        if not rows:
            return []
        ids = [row.id for row in rows]
        conn.execute(t.update().where(t.c.id.in_(ids)).values(lease_owner=owner, lease_until=lease_until))
    return [_message(row) for row in rows]


def _message(row: Any) -> _Message:
    return _Message(
        id=row.id,
        channel=row.channel,
        target=row.target,
        subject=row.subject,
        body=row.body,
        payload=dict(row.payload or {}),
        attempts=row.attempts,
    )


def _renew_lease(catalog: Catalog, message_id: int, *, owner: str, now: dt.datetime) -> bool:
    """Extend this owner's unexpired lease of a message. Return False if the lease is lost."""
    t = tables.outbox
    with catalog.write() as conn:
        result = conn.execute(
            t.update()
            .where(t.c.id == message_id, t.c.lease_owner == owner, t.c.lease_until > now, t.c.delivered_at.is_(None))
            .values(lease_until=now + dt.timedelta(seconds=_lease_seconds()))
        )
    return result.rowcount == 1


def _attempt(root: Path, catalog: Catalog, message: _Message, *, owner: str, now: dt.datetime | None) -> str | None:
    """Send one claimed message and record the outcome. Return None if delivered, else the error."""
    secrets: list[str] = []
    try:
        _send(root, message, secrets)
    except (_DeliveryError, OSError, smtplib.SMTPException, http.client.HTTPException, ValueError) as error:
        text = _scrub(_describe(error), secrets)
        _record_failure(catalog, message, owner=owner, error=text, now=now or utcnow())
        return text
    _record_delivery(catalog, message, owner=owner, now=now or utcnow())
    return None


def _send(root: Path, message: _Message, secrets: list[str]) -> None:
    """Send a message through its channel, or raise. Append the passwords it uses to ``secrets``."""
    if message.channel == "email":
        _send_email(root, message, secrets)
    elif message.channel == "webhook":
        _post_webhook(message)
    elif message.channel == "log":
        logger.warning("Notification %d: %s\n%s", message.id, message.subject, message.body)
    else:
        raise _DeliveryError(f"unknown channel {message.channel!r} (valid channels: {', '.join(CHANNELS)})")


def _record_delivery(catalog: Catalog, message: _Message, *, owner: str, now: dt.datetime) -> None:
    t = tables.outbox
    with catalog.write() as conn:
        # Recorded even if another sender has taken the lease over meanwhile, because the message
        # did reach its target.
        result = conn.execute(
            t.update()
            .where(t.c.id == message.id, t.c.delivered_at.is_(None))
            .values(delivered_at=now, attempts=t.c.attempts + 1, lease_owner=None, lease_until=None)
        )
    if result.rowcount == 0:
        logger.warning(
            "Notification %d was sent twice: sender %r lost its lease while sending, and another sender delivered it.",
            message.id,
            owner,
        )


def _record_failure(catalog: Catalog, message: _Message, *, owner: str, error: str, now: dt.datetime) -> None:
    attempts = message.attempts + 1
    next_attempt_at = now + dt.timedelta(seconds=_retry_delay(attempts))
    t = tables.outbox
    with catalog.write() as conn:
        conn.execute(
            t.update()
            .where(t.c.id == message.id, t.c.lease_owner == owner, t.c.delivered_at.is_(None))
            .values(
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                last_error=error,
                lease_owner=None,
                lease_until=None,
            )
        )
    logger.warning(
        "Delivery of notification %d to %s %s failed (attempt %d, next attempt at %s): %s",
        message.id,
        message.channel,
        _redact_url(message.target),
        attempts,
        next_attempt_at.isoformat(timespec="seconds"),
        error,
    )


def _retry_delay(attempts: int) -> float:
    """Return the seconds to wait after ``attempts`` failed attempts: base * 2**(attempts - 1), capped."""
    base = _env_seconds("RAISE_NOTIFY_RETRY_BASE_S", RETRY_BASE_S)
    exponent = min(max(attempts - 1, 0), 32)
    return min(RETRY_CAP_S, base * 2**exponent)


def _lease_seconds() -> float:
    return _env_seconds("RAISE_NOTIFY_LEASE_S", LEASE_S)


def _env_seconds(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise StoreError(f"${name} must be a positive number of seconds, got {text!r}. Fix or unset it.")
    return value


def _as_utc(value: dt.datetime) -> dt.datetime:
    """Return ``value`` in UTC. Naive values, as SQLite returns them, are taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


# -- channels -------------------------------------------------------------------------------------


def _send_email(root: Path, message: _Message, secrets: list[str]) -> None:
    url = setting(root, "smtp_url")
    if not url:
        raise _DeliveryError(_NO_SMTP.format(config=root / "config.yaml"))
    server = _parse_smtp_url(url, secrets)
    email = _email_message(message, sender=server.sender)
    try:
        client = _connect_smtp(server)
    except (OSError, smtplib.SMTPException) as error:
        raise _DeliveryError(f"cannot connect to SMTP server {server.display_url}: {_describe(error)}") from None
    try:
        if server.starttls:
            client.starttls(context=ssl.create_default_context())
        if server.username is not None:
            client.login(server.username, server.password or "")
        client.send_message(email)
    except (OSError, smtplib.SMTPException) as error:
        raise _DeliveryError(f"SMTP server {server.display_url} failed: {_describe(error)}") from None
    finally:
        _close_smtp(client)


def _connect_smtp(server: _SmtpServer) -> smtplib.SMTP:
    if server.implicit_tls:
        context = ssl.create_default_context()
        return smtplib.SMTP_SSL(server.host, server.port, timeout=SEND_TIMEOUT_S, context=context)
    return smtplib.SMTP(server.host, server.port, timeout=SEND_TIMEOUT_S)


def _close_smtp(client: smtplib.SMTP) -> None:
    # The server has accepted the message once send_message() returns, so a failed QUIT must not
    # turn a delivery into a failure that would send the message again.
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()


def _email_message(message: _Message, *, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.target
    # Header values must not contain line breaks.
    email["Subject"] = " ".join(message.subject.split())
    email["Date"] = formatdate(localtime=False, usegmt=True)
    email["Message-ID"] = make_msgid(idstring=f"raise-outbox-{message.id}")
    email.set_content(message.body)
    return email


def _raw_credentials(url: str) -> list[str]:
    """Return the password of a URL as written: the text between the first ``:`` after ``://`` and the host.

    URL parsers misread a password that contains ``/`` or ``@`` without percent-encoding, so
    they report a wrong password or none. This raw password is redacted from messages as well.
    """
    _, separator, rest = url.partition("://")
    authority = rest.split("?", 1)[0]
    if not separator or "@" not in authority:
        return []
    userinfo = authority.rsplit("@", 1)[0]
    if ":" not in userinfo:
        return []
    password = userinfo.split(":", 1)[1]
    return [password] if password else []


def _parse_smtp_url(url: str, secrets: list[str]) -> _SmtpServer:
    """Parse ``smtp_url``, or raise ``_DeliveryError`` naming the redacted URL if it is invalid."""
    secrets.extend(_raw_credentials(url))
    display_url = _scrub(url, secrets)
    invalid = f"invalid smtp_url {display_url!r}: expected {_SMTP_URL_FORM}"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise _DeliveryError(invalid) from None

    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    if password:
        secrets.append(password)
    secrets.extend(_raw_credentials(url))
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise _DeliveryError(invalid)
    unknown = sorted(set(query) - {"from", "starttls"})
    if unknown:
        raise _DeliveryError(f"{invalid} (unknown parameters {unknown})")

    starttls = _parse_flag(query.get("starttls", ["false"])[-1], invalid)
    implicit_tls = parts.scheme == "smtps"
    if starttls and implicit_tls:
        raise _DeliveryError(f"{invalid} (use smtps:// or starttls=true, not both)")
    return _SmtpServer(
        host=parts.hostname,
        port=port or (465 if implicit_tls else 25),
        username=urllib.parse.unquote(parts.username) if parts.username is not None else None,
        password=password,
        sender=query.get("from", [DEFAULT_SENDER])[-1],
        starttls=starttls,
        implicit_tls=implicit_tls,
        display_url=display_url,
    )


def _parse_flag(text: str, invalid: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", ""):
        return False
    raise _DeliveryError(f"{invalid} (starttls must be true or false, got {text!r})")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Treat redirects as failures: urllib would repeat a redirected POST as a GET without a body."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise _DeliveryError(f"webhook {_redact_url(req.full_url)} redirected (HTTP {code}) to {_redact_url(newurl)}; use that URL")


def _json_safe(value: Any) -> Any:
    """Return ``value`` with NaN and infinite floats as strings, which strict JSON parsers accept."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def _post_webhook(message: _Message) -> None:
    url = message.target
    body = _json_safe({"text": f"{message.subject}\n{message.body}", **message.payload})
    data = json.dumps(body, allow_nan=False).encode("utf-8")
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json", "User-Agent": "raise-jupyter"}
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=SEND_TIMEOUT_S) as response:
            status, reason = response.status, response.reason
    except urllib.error.HTTPError as error:
        error.close()
        raise _DeliveryError(f"webhook {_redact_url(url)} returned HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise _DeliveryError(f"cannot reach webhook {_redact_url(url)}: {_describe(error.reason)}") from None
    if not 200 <= status < 300:
        raise _DeliveryError(f"webhook {_redact_url(url)} returned HTTP {status} {reason}")


# -- redaction ------------------------------------------------------------------------------------


def _redact_url(text: str) -> str:
    """Replace the passwords of URLs in ``text`` with ``***``."""
    return re.sub(r"(?<=://)([^/@:\s]*):[^/@\s]*@", r"\1:***@", text)


def _scrub(text: str, secrets: Sequence[str]) -> str:
    # Secrets first, longest first: the URL pattern below would otherwise cut a password that
    # contains "@" in two and leave its second half.
    for secret in sorted(secrets, key=len, reverse=True):
        for form in {secret, urllib.parse.quote(secret, safe="")}:
            text = text.replace(form, "***")
    return _redact_url(text)


def _describe(error: object) -> str:
    """Return an error's text, or its class name when the text is empty (as for some timeouts)."""
    return str(error) or type(error).__name__
