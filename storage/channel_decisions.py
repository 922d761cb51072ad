"""Decisions taken outside the phone line (a web form, a written form, an agent), and what stands behind them.

A decision from another channel is a ``consent_events`` row with no call (migration 0031),
so every lookup, receipt and the outbox see it as they see the phone line's; its evidence
— the text the person saw or signed, the document, who collected it, when, how the person
was verified — is a ``consent_documents`` row chained in the same transaction.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from storage.ledger import Chain
from storage.postgres import Connection

__all__ = ["ChannelDecision", "Document", "channel_evidence", "record_channel_decision"]


@dataclass(frozen=True)
class Document:
    """A PDF or image the person signed or was shown, as received."""

    content: bytes
    media_type: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class ChannelDecision:
    """One decision from another channel, checked by its door before it comes here."""

    subject: str
    subject_kind: str  # 'phone' or 'customer'
    purpose: str
    action: str  # 'grant' or 'revoke'
    channel: str  # 'web_form', 'written_form', 'agent'
    text_shown: str
    lang: str
    collected_by: str
    collected_at: datetime
    verification: str
    recorded_by: str
    document: Document | None
    honor_by: date | None


async def record_channel_decision(chain: Chain, decision: ChannelDecision) -> asyncpg.Record:
    """Insert the decision and its evidence in ``chain``'s transaction; the decision's row."""
    row = await chain.insert(
        "consent_events",
        """
        INSERT INTO consent_events (subject, subject_kind, purpose, action, channel, raw_digits, caller_number,
                                    dialed_number, identification, agent, prompt_text, lang, idempotency_token,
                                    honor_by, scope)
        VALUES ($1, $2, $3, $4, $5, '', '', '', $6, $7, $8, $9, $10, $11, 'standing')
        """,
        decision.subject,
        decision.subject_kind,
        decision.purpose,
        decision.action,
        decision.channel,
        decision.verification,
        decision.collected_by if decision.channel == "agent" else None,
        decision.text_shown,
        decision.lang,
        str(uuid.uuid4()),
        decision.honor_by,
    )
    assert row is not None  # nothing to conflict with: the row is new
    document = decision.document
    await chain.insert(
        "consent_documents",
        """
        INSERT INTO consent_documents (consent_event_id, text_shown, text_sha256, document, media_type,
                                       document_sha256, document_bytes, collected_by, collected_at,
                                       verification, recorded_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        """,
        row["id"],
        decision.text_shown,
        hashlib.sha256(decision.text_shown.encode()).hexdigest(),
        document.content if document else None,
        document.media_type if document else None,
        document.sha256 if document else None,
        len(document.content) if document else None,
        decision.collected_by,
        decision.collected_at,
        decision.verification,
        decision.recorded_by,
    )
    return row


async def channel_evidence(conn: Connection, event_id: int) -> asyncpg.Record | None:
    """What stands behind a decision from another channel (no document bytes), with its ledger entry."""
    return await conn.fetchrow(
        """
        SELECT d.id, d.text_shown, d.text_sha256, d.media_type, d.document_sha256, d.document_bytes,
               d.collected_by, d.collected_at, d.verification, d.recorded_by, d.recorded_at,
               l.seq AS ledger_seq, l.hash AS ledger_hash
        FROM consent_documents d LEFT JOIN ledger l ON l.kind = 'consent_documents' AND l.ref_id = d.id
        WHERE d.consent_event_id = $1
        """,
        event_id,
    )
