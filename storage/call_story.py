"""A call's whole story (every evidence row with its ledger entry), a subject's timeline, kept audio."""

from __future__ import annotations

from typing import Any

import asyncpg

from storage.event_receipts import OF_THE_CALL_S_EVENTS
from storage.postgres import Connection

__all__ = ["call_story", "subject_timeline"]


# Each table of a call's story: (name in the story, table, what orders it).
_STORY = (
    ("keypresses", "keypresses", "seq"),
    ("notices", "notices", "seq"),
    ("decisions", "consent_events", "seq"),
    ("recordings", "recordings", "seq"),
    ("recording_statuses", "recording_statuses", "id"),
    ("recording_media", "recording_media", "id"),
    ("connections", "connections", "seq"),
    ("requests", "requests", "seq"),
    ("pin_checks", "pin_checks", "id"),
    ("endings", "call_endings", "id"),
)


async def call_story(conn: Connection, call_sid: str) -> dict[str, Any] | None:
    """Every evidence row of the call, each with its ledger entry, in order; None if unknown."""
    call = await _rows_with_entries(conn, "calls", "id", call_sid)
    if not call:
        return None
    story: dict[str, Any] = {"call": call[0]}
    for name, table, order in _STORY:
        story[name] = await _rows_with_entries(conn, table, order, call_sid)
    # What became of the call's decisions and requests once decided: each system told
    # (event_deliveries) and each that said it applied them (event_applications).
    for name, table, at in (
        ("told", "event_deliveries", "delivered_at"),
        ("applied", "event_applications", "applied_at"),
    ):
        story[name] = await _receipts(conn, table, at, call_sid)
    story["transfers"] = [
        dict(r)
        for r in await conn.fetch(
            """
            SELECT t.transfer_id, t.agent, t.flow_name, t.return_to, t.created_at,
                   coalesce(json_agg(json_build_object('kind', e.kind, 'at', e.at, 'detail', e.detail)
                            ORDER BY e.id) FILTER (WHERE e.id IS NOT NULL), '[]') AS events
            FROM transfers t LEFT JOIN transfer_events e USING (transfer_id)
            WHERE t.call_sid = $1 GROUP BY t.id ORDER BY t.id
            """,
            call_sid,
        )
    ]
    return story


async def _receipts(conn: Connection, table: str, at: str, call_sid: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""
        SELECT to_jsonb(t.*) AS content, l.seq AS ledger_seq, l.prev_hash, l.hash
        FROM {table} t LEFT JOIN ledger l ON l.kind = '{table}' AND l.ref_id = t.id
        WHERE t.{OF_THE_CALL_S_EVENTS}
        ORDER BY t.{at}, t.id
        """,
        call_sid,
    )
    return [
        {"row": r["content"], "ledger": {"seq": r["ledger_seq"], "prev_hash": r["prev_hash"], "hash": r["hash"]}}
        for r in rows
    ]


async def _rows_with_entries(conn: Connection, table: str, order: str, call_sid: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""
        SELECT to_jsonb(t.*) AS content, l.seq AS ledger_seq, l.prev_hash, l.hash
        FROM {table} t LEFT JOIN ledger l ON l.kind = '{table}' AND l.ref_id = t.id
        WHERE t.call_sid = $1 ORDER BY t.{order}, t.id
        """,
        call_sid,
    )
    return [
        {"row": r["content"], "ledger": {"seq": r["ledger_seq"], "prev_hash": r["prev_hash"], "hash": r["hash"]}}
        for r in rows
    ]


async def subject_timeline(conn: Connection, subjects: list[str], limit: int = 200) -> list[asyncpg.Record]:
    """Decisions and notices concerning any of ``subjects`` (a person's account and numbers),
    newest first, each with the subject it binds and the words heard."""
    return await conn.fetch(
        """
        SELECT 'decision' AS kind, recorded_at AS at, call_sid, purpose || ': ' || action AS what,
               channel AS how, prompt_text AS heard, subject AS bound_to
        FROM consent_events WHERE subject = ANY ($1::text[]) OR caller_number = ANY ($1::text[])
        UNION ALL
        SELECT 'notice', given_at, call_sid, notice || ' notice heard', lang, notice_text, caller_number
        FROM notices WHERE caller_number = ANY ($1::text[])
        ORDER BY at DESC LIMIT $2
        """,
        subjects,
        limit,
    )
