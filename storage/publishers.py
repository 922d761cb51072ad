"""The cursors of the outbox's publishers (migration 0030): how far each broker has the events.

A publisher claims its cursor row for the length of a transaction (``FOR UPDATE SKIP
LOCKED``): while one process publishes, another claiming the same row gets None and waits.
The caller owns the transaction; the row stays locked until it ends.
"""

from __future__ import annotations

from storage.postgres import Connection

__all__ = ["advance_cursor", "claim_cursor"]


async def claim_cursor(conn: Connection, name: str) -> int | None:
    """The seq publisher ``name`` has published up to, its row now locked; None if another holds it."""
    await conn.execute("INSERT INTO event_publishers (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", name)
    after: int | None = await conn.fetchval(
        "SELECT after_seq FROM event_publishers WHERE name = $1 FOR UPDATE SKIP LOCKED", name
    )
    return after


async def advance_cursor(conn: Connection, name: str, after_seq: int) -> None:
    """Publisher ``name`` has the events up to ``after_seq`` acknowledged by its broker."""
    await conn.execute(
        "UPDATE event_publishers SET after_seq = $2, advanced_at = now() WHERE name = $1", name, after_seq
    )
