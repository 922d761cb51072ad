"""API tokens: created once (shown once), stored as SHA-256, revocable at once."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from storage.postgres import Connection

__all__ = ["ROLES", "Token", "create_token", "find_token", "list_tokens", "revoke_token", "token_live"]

ROLES = ("agent", "staff", "admin", "integration")
# An integration token is one receiver's: it is scoped to its subscription (migration 0024).
INTEGRATION = "integration"
PREFIX = "ivr_"


@dataclass(frozen=True)
class Token:
    id: int
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None
    subscription_id: int | None = None  # an integration token's subscription


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(conn: Connection, name: str, role: str, subscription_id: int | None = None) -> tuple[Token, str]:
    """A new token: its record, and the secret itself (never stored, never shown again).

    An integration token needs ``subscription_id``; no other role may have one.
    """
    secret = PREFIX + secrets.token_urlsafe(32)
    # Through the function the service's role may call (it cannot write the table itself).
    token_id = await conn.fetchval(
        "SELECT create_api_token($1, $2, $3, $4)", name, role, _hash(secret), subscription_id
    )
    row = await conn.fetchrow("SELECT * FROM api_tokens WHERE id = $1", token_id)
    assert row is not None  # the function returned the id of the row it inserted
    return _token(row), secret


async def find_token(conn: Connection, secret: str) -> Token | None:
    """The live token with this secret, or None (unknown or revoked)."""
    row = await conn.fetchrow("SELECT * FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL", _hash(secret))
    return _token(row) if row else None


async def token_live(conn: Connection, token_id: int) -> bool:
    """Whether token #``token_id`` is still live (a primary-key lookup, cheap on every page load)."""
    live: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT FROM api_tokens WHERE id = $1 AND revoked_at IS NULL)", token_id
    )
    return live


async def list_tokens(conn: Connection) -> list[Token]:
    return [_token(r) for r in await conn.fetch("SELECT * FROM api_tokens ORDER BY id")]


async def revoke_token(conn: Connection, token_id: int) -> bool:
    revoked: bool = await conn.fetchval("SELECT revoke_api_token($1)", token_id)
    return revoked


def _token(row: asyncpg.Record) -> Token:
    return Token(row["id"], row["name"], row["role"], row["created_at"], row["revoked_at"], row["subscription_id"])
