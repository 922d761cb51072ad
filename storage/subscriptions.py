"""Subscriptions to events: who is told what, where, signed with which secret.

The table is the service's to read and only its functions' to write (migration 0023):
made, disabled or enabled, its secret rotated, removed. The secret is kept as given
(``whsec_…`` or ``whsk_…``) because the service signs with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from storage.postgres import Connection

__all__ = [
    "Subscription",
    "create_subscription",
    "find_subscription",
    "list_subscriptions",
    "remove_subscription",
    "rotate_secret",
    "set_disabled",
    "subscription_scope",
]


@dataclass(frozen=True)
class Subscription:
    id: int
    name: str
    url: str
    event_types: tuple[str, ...]
    scheme: str  # v1 (HMAC-SHA256) or v1a (Ed25519)
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None
    removed_at: datetime | None
    # Delivery counts by state (pending, delivered, dead); filled by list_subscriptions.
    counts: dict[str, int] = field(default_factory=dict)
    secret: str | None = field(default=None, repr=False)
    previous_secret: str | None = field(default=None, repr=False)
    previous_until: datetime | None = None

    @property
    def active(self) -> bool:
        return self.disabled_at is None and self.removed_at is None

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign now: the current one, and the previous one during its grace."""
        current = [self.secret] if self.secret else []
        if self.previous_secret and self.previous_until and now < self.previous_until:
            return [*current, self.previous_secret]
        return current


async def create_subscription(
    conn: Connection, name: str, url: str, event_types: list[str], scheme: str, secret: str
) -> int:
    new_id: int = await conn.fetchval(
        "SELECT create_subscription($1, $2, $3::text[], $4, $5)", name, url, event_types, scheme, secret
    )
    return new_id


async def find_subscription(conn: Connection, subscription_id: int) -> Subscription | None:
    row = await conn.fetchrow(f"{_SELECT} WHERE s.id = $1", subscription_id)
    return _subscription(row) if row else None


async def list_subscriptions(conn: Connection, *, removed: bool = False) -> list[Subscription]:
    rows = await conn.fetch(f"{_SELECT} WHERE $1 OR s.removed_at IS NULL ORDER BY s.id", removed)
    return [_subscription(r) for r in rows]


async def subscription_scope(conn: Connection, subscription_id: int) -> tuple[list[str], int] | None:
    """A live subscription's event types and the last event before it began; None if removed or unknown."""
    row = await conn.fetchrow(
        "SELECT event_types, starts_after FROM subscriptions WHERE id = $1 AND removed_at IS NULL", subscription_id
    )
    return (list(row["event_types"]), row["starts_after"]) if row else None


async def set_disabled(conn: Connection, subscription_id: int, reason: str | None) -> bool:
    """Disable (with ``reason``) or, with None, enable; False if it already was, or is no subscription."""
    changed: bool = await conn.fetchval("SELECT set_subscription_disabled($1, $2)", subscription_id, reason)
    return changed


async def rotate_secret(conn: Connection, subscription_id: int, new_secret: str, grace: timedelta) -> bool:
    rotated: bool = await conn.fetchval(
        "SELECT rotate_subscription_secret($1, $2, $3)", subscription_id, new_secret, grace
    )
    return rotated


async def remove_subscription(conn: Connection, subscription_id: int) -> bool:
    removed: bool = await conn.fetchval("SELECT remove_subscription($1)", subscription_id)
    return removed


_SELECT = """
    SELECT s.*, coalesce((SELECT jsonb_object_agg(state, n) FROM (
      SELECT state, count(*) AS n FROM deliveries d WHERE d.subscription_id = s.id GROUP BY state) c), '{}') AS counts
    FROM subscriptions s
"""


def _subscription(row: asyncpg.Record) -> Subscription:
    return Subscription(
        row["id"],
        row["name"],
        row["url"],
        tuple(row["event_types"]),
        row["scheme"],
        row["created_at"],
        row["disabled_at"],
        row["disabled_reason"],
        row["removed_at"],
        {"pending": 0, "delivered": 0, "dead": 0} | dict(row["counts"]),
        row["secret"],
        row["previous_secret"],
        row["previous_until"],
    )
