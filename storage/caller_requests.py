"""Requests callers opened on the line, and their status history (appended, never overwritten)."""

from __future__ import annotations

import asyncpg

from storage.ledger import Chain
from storage.postgres import Connection

__all__ = ["REQUEST_STATUSES", "request_status_change", "requests_by_status"]

# A request's life: opened on the line, worked on, then done or rejected (with a note).
REQUEST_STATUSES = ("open", "in_progress", "done", "rejected")


async def requests_by_status(conn: Connection, status: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT r.id, r.request_type, r.caller_number, r.recording_sid, r.lang, r.opened_at, r.call_sid,
               coalesce(latest.status, 'open') AS status, latest.note, latest.actor, latest.at AS status_at
        FROM requests r
        LEFT JOIN LATERAL (
          SELECT status, note, actor, at FROM request_events e WHERE e.request_id = r.id ORDER BY id DESC LIMIT 1
        ) latest ON true
        WHERE $1::text IS NULL OR coalesce(latest.status, 'open') = $1
        ORDER BY r.id
        """,
        status,
    )


async def request_status_change(chain: Chain, request_id: int, status: str, note: str | None, actor: str) -> bool:
    exists = await chain.conn.fetchval("SELECT true FROM requests WHERE id = $1", request_id)
    if not exists:
        return False
    await chain.insert(
        "request_events",
        "INSERT INTO request_events (request_id, status, note, actor) VALUES ($1, $2, $3, $4)",
        request_id,
        status,
        note,
        actor,
    )
    return True
