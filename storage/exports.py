"""Streaming consent events with everything a receipt needs, oldest first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg

from storage.postgres import Connection

__all__ = ["events_for_receipts"]

_PREFETCH = 500


async def events_for_receipts(
    conn: Connection,
    *,
    subject: str | None = None,
    since: datetime | None = None,
    call_sid: str | None = None,
) -> AsyncIterator[asyncpg.Record]:
    """Decisions joined with their ledger entry, kept recording and the legal notice heard
    before them on their call (if any), or what stands behind a decision from another
    channel; call inside a transaction."""
    query = """
        SELECT e.*, l.seq AS ledger_seq, l.hash AS ledger_hash, l.prev_hash AS ledger_prev_hash,
               m.sha256 AS media_sha256, m.size_bytes AS media_size, f.status AS fetch_status,
               n.id AS notice_id, n.notice AS notice_kind, n.notice_text, n.given_at AS notice_given_at,
               d.collected_by, d.collected_at, d.verification, d.media_type AS document_type,
               d.document_sha256, d.document_bytes
        FROM consent_events e
        LEFT JOIN ledger l ON l.kind = 'consent_events' AND l.ref_id = e.id
        LEFT JOIN consent_documents d ON d.consent_event_id = e.id  -- a decision from another channel (0031)
        LEFT JOIN recording_media m ON m.recording_sid = e.recording_sid
        LEFT JOIN recording_fetches f ON f.recording_sid = e.recording_sid
        LEFT JOIN LATERAL (
          SELECT id, notice, notice_text, given_at FROM notices
          WHERE notices.call_sid = e.call_sid AND notices.seq <= e.seq ORDER BY seq DESC LIMIT 1
        ) n ON true
        WHERE ($1::text IS NULL OR e.subject = $1 OR e.caller_number = $1)
          AND ($2::timestamptz IS NULL OR e.recorded_at >= $2)
          AND ($3::text IS NULL OR e.call_sid = $3)
        ORDER BY e.recorded_at, e.id
    """
    async for row in conn.cursor(query, subject, since, call_sid, prefetch=_PREFETCH):
        yield row
