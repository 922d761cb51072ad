"""The access log: who looked at which evidence, when and why (append-only, chained)."""

from __future__ import annotations

import asyncpg

from storage.ledger import Chain
from storage.postgres import Connection

__all__ = ["access_log_entries", "note_access"]


async def note_access(
    chain: Chain,
    *,
    token_id: int | None,
    actor: str,
    role: str,
    action: str,
    target: str,
    reason: str | None,
    remote: str | None,
) -> None:
    await chain.insert(
        "access_log",
        """
        INSERT INTO access_log (token_id, actor, role, action, target, reason, remote)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        token_id,
        actor,
        role,
        action,
        target,
        reason,
        remote,
    )


async def access_log_entries(conn: Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM access_log ORDER BY id DESC LIMIT $1", limit)
