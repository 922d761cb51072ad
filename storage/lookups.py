"""Staff lookups over the evidence: searches, a call's whole story, requests, suppression."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from storage.ledger import Chain
from storage.recordings import MediaStore

__all__ = [
    "access_log_entries",
    "accounts_for_phone",
    "call_story",
    "kept_recording",
    "subject_timeline",
    "note_access",
    "request_status_change",
    "requests_by_status",
    "search_events",
    "suppressed_numbers",
]


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


async def search_events(
    conn: asyncpg.Connection,
    *,
    phone: str | None,
    purpose: str | None,
    action: str | None,
    channel: str | None,
    since: datetime | None,
    until: datetime | None,
    after_id: int,
    limit: int,
) -> list[asyncpg.Record]:
    """Decisions matching every given filter, by id after ``after_id`` (keyset pagination).

    Ids only grow, so a page never shifts when new decisions arrive meanwhile.
    """
    return await conn.fetch(
        """
        SELECT id, event_id, recorded_at, call_sid, subject, subject_kind, purpose, action, channel,
               identification, raw_digits, caller_number, dialed_number, agent, recording_sid, lang,
               flow_name, flow_version, honor_by, scope
        FROM consent_events
        WHERE id > $1
          AND ($2::text IS NULL OR subject = $2 OR caller_number = $2)
          AND ($3::text IS NULL OR purpose = $3)
          AND ($4::text IS NULL OR action = $4)
          AND ($5::text IS NULL OR channel = $5)
          AND ($6::timestamptz IS NULL OR recorded_at >= $6)
          AND ($7::timestamptz IS NULL OR recorded_at < $7)
        ORDER BY id
        LIMIT $8
        """,
        after_id,
        phone,
        purpose,
        action,
        channel,
        since,
        until,
        limit,
    )


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


async def call_story(conn: asyncpg.Connection, call_sid: str) -> dict[str, Any] | None:
    """Every evidence row of the call, each with its ledger entry, in order; None if unknown."""
    call = await _rows_with_entries(conn, "calls", "id", call_sid)
    if not call:
        return None
    story: dict[str, Any] = {"call": call[0]}
    for name, table, order in _STORY:
        story[name] = await _rows_with_entries(conn, table, order, call_sid)
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


async def _rows_with_entries(conn: asyncpg.Connection, table: str, order: str, call_sid: str) -> list[dict[str, Any]]:
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


async def requests_by_status(conn: asyncpg.Connection, status: str | None) -> list[asyncpg.Record]:
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


async def suppressed_numbers(conn: asyncpg.Connection, purpose: str) -> list[asyncpg.Record]:
    """Numbers whose latest standing decision for ``purpose`` is a revocation: do not contact."""
    return await conn.fetch(
        """
        SELECT subject AS phone, recorded_at AS revoked_at, honor_by, event_id FROM (
          SELECT DISTINCT ON (subject) subject, action, recorded_at, honor_by, event_id
          FROM consent_events
          WHERE purpose = $1 AND subject_kind = 'phone' AND scope = 'standing'
          ORDER BY subject, recorded_at DESC, id DESC
        ) latest
        WHERE action = 'revoke'
        ORDER BY subject
        """,
        purpose,
    )


async def accounts_for_phone(conn: asyncpg.Connection, phone: str) -> list[str]:
    """Every customer account using ``phone`` (several may share a line)."""
    rows = await conn.fetch("SELECT account_number FROM customer_phones WHERE phone = $1 ORDER BY 1", phone)
    return [r["account_number"] for r in rows]


async def subject_timeline(conn: asyncpg.Connection, subject: str, limit: int = 200) -> list[asyncpg.Record]:
    """Decisions and notices concerning ``subject``, newest first, with the words heard."""
    return await conn.fetch(
        """
        SELECT 'decision' AS kind, recorded_at AS at, call_sid, purpose || ': ' || action AS what,
               channel AS how, prompt_text AS heard
        FROM consent_events WHERE subject = $1 OR caller_number = $1
        UNION ALL
        SELECT 'notice', given_at, call_sid, notice || ' notice heard', lang, notice_text
        FROM notices WHERE caller_number = $1
        ORDER BY at DESC LIMIT $2
        """,
        subject,
        limit,
    )


async def kept_recording(conn: asyncpg.Connection, store: MediaStore, recording_sid: str) -> tuple[bytes, str] | None:
    """A fetched recording's bytes and content type, from wherever they are kept."""
    content_type = await conn.fetchval(
        "SELECT content_type FROM recording_media WHERE recording_sid = $1", recording_sid
    )
    media = await store.get(conn, recording_sid) if content_type is not None else None
    return (media, content_type) if media is not None else None


async def access_log_entries(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM access_log ORDER BY id DESC LIMIT $1", limit)
