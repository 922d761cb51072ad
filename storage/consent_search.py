"""Searching decisions: by filter with keyset pages, the suppression list, a number's accounts."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from flows.callers import WITHHELD_NUMBERS
from storage.postgres import Connection

__all__ = ["accounts_for_phone", "search_events", "suppressed_numbers"]


async def search_events(
    conn: Connection,
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


async def suppressed_numbers(conn: Connection, purpose: str, *, as_of: datetime | None = None) -> list[asyncpg.Record]:
    """Numbers whose consent for ``purpose`` is revoked now: do not contact.

    The same reading as everywhere (``deciding_decision``): a number is suppressed when
    the latest decision reaching it is a revocation — its own, its accounts', or one made
    from it. A one-time (per-call) decision never suppresses once its call has ended.
    """
    return await conn.fetch(
        """
        WITH candidates AS (
          SELECT subject AS phone FROM consent_events WHERE purpose = $1 AND subject_kind = 'phone'
          UNION
          SELECT caller_number FROM consent_events
          WHERE purpose = $1 AND action = 'revoke' AND identification <> 'keyed_number'
          UNION
          SELECT p.phone FROM customer_phones p
          WHERE p.account_number IN (SELECT subject FROM consent_events WHERE purpose = $1 AND action = 'revoke')
        )
        SELECT c.phone, d.recorded_at AS revoked_at, d.honor_by, d.event_id, d.subject AS decided_for
        FROM candidates c CROSS JOIN LATERAL deciding_decision(c.phone, $1, coalesce($2, now())) d
        WHERE d.action = 'revoke' AND c.phone LIKE '+%' AND c.phone <> ALL ($3::text[])
        ORDER BY c.phone
        """,
        purpose,
        as_of,
        sorted(WITHHELD_NUMBERS),
    )


async def accounts_for_phone(conn: Connection, phone: str) -> list[str]:
    """Every customer account using ``phone`` (several may share a line)."""
    rows = await conn.fetch("SELECT account_number FROM customer_phones WHERE phone = $1 ORDER BY 1", phone)
    return [r["account_number"] for r in rows]
