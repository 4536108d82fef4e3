"""Bearer tokens that identify users to the HTTP feature server.

A token is a random secret shown once when it is created. The catalog stores only its SHA-256
hash, so reading the catalog does not reveal tokens. Creating, listing and revoking tokens
needs the owner role on the whole store (or a store without grants).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from raise_jupyter import access, audit
from raise_jupyter.engine import tables
from raise_jupyter.engine.catalog import as_utc, utcnow
from raise_jupyter.errors import NotFoundError

if TYPE_CHECKING:
    import pandas

    from raise_jupyter.engine.catalog import Catalog

__all__ = ["CreatedToken", "create_token", "list_tokens", "revoke_token", "user_of_token"]

PREFIX = "raise_"
SECRET_BYTES = 32


@dataclass(frozen=True)
class CreatedToken:
    """A new token: its id (for listing and revoking), its user and the secret itself."""

    id: int
    user: str
    token: str

    def __repr__(self) -> str:
        # The secret stays out of reprs, logs and tracebacks; read .token to use it.
        return f"CreatedToken(id={self.id}, user={self.user!r}, token='{PREFIX}...')"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(actor: access.Actor, user: str) -> CreatedToken:
    """Create a token that identifies ``user``; the secret is returned once and never stored."""
    user = access.validate_user(user)
    access.check(actor, access.CREATE_TOKEN, path="", kind="token", name=f"token for {user}")
    secret = PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    with actor.catalog.write() as conn:
        result = conn.execute(
            tables.tokens.insert().values(user=user, token_hash=hash_token(secret), created_at=utcnow(), created_by=actor.user)
        )
        token_id = int(result.inserted_primary_key[0])
        audit.record(
            actor, action=access.CREATE_TOKEN.action, kind="token", name=f"token {token_id}", namespace="",
            outcome="ok", detail={"user": user, "token_id": token_id}, conn=conn,
        )
    return CreatedToken(token_id, user, secret)


def list_tokens(actor: access.Actor) -> pandas.DataFrame:
    """Return every token without its secret: id, user, created_at, created_by and revoked_at."""
    import pandas as pd

    access.check(actor, access.LIST_TOKENS, path="", kind="token", name="tokens")
    t = tables.tokens
    with actor.catalog.read() as conn:
        rows = conn.execute(sa.select(t).order_by(t.c.id)).all()
    return pd.DataFrame(
        {
            "id": [r.id for r in rows],
            "user": [r.user for r in rows],
            "created_at": [as_utc(r.created_at) for r in rows],
            "created_by": [r.created_by for r in rows],
            "revoked_at": [as_utc(r.revoked_at) for r in rows],
        },
        columns=["id", "user", "created_at", "created_by", "revoked_at"],
    )


def revoke_token(actor: access.Actor, token_id: int) -> bool:
    """Revoke a token; the server rejects it from the next request on.

    Returns False, and records nothing, when the token was revoked already.
    """
    access.check(actor, access.REVOKE_TOKEN, path="", kind="token", name=f"token {token_id}")
    t = tables.tokens
    with actor.catalog.write() as conn:
        row = conn.execute(sa.select(t).where(t.c.id == token_id)).first()
        if row is None:
            raise NotFoundError(f"Token {token_id!r} does not exist; 'raise token list' shows the token ids.")
        if row.revoked_at is not None:
            return False
        conn.execute(t.update().where(t.c.id == token_id).values(revoked_at=utcnow()))
        audit.record(
            actor, action=access.REVOKE_TOKEN.action, kind="token", name=f"token {token_id}", namespace="",
            outcome="ok", detail={"user": row.user, "token_id": token_id}, conn=conn,
        )
    return True


def user_of_token(catalog: Catalog, token: str) -> str | None:
    """Return the user of a valid, unrevoked token, or None."""
    if not token.startswith(PREFIX):
        return None
    t = tables.tokens
    with catalog.read() as conn:
        row: Any = conn.execute(sa.select(t.c.user, t.c.revoked_at).where(t.c.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    return str(row.user)
