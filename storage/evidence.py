"""Writing evidence rows. Each function takes the transaction's ``Chain``; the caller owns
the transaction and seals the chain just before committing.

Every insert is idempotent on its natural key (a call, a call's Nth answer, a call's
ending): a webhook Twilio delivers twice stores one row, and the second delivery can
still truthfully tell the caller their choice is recorded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from flows.model import (
    AbandonFact,
    CallState,
    ConnectFact,
    DecisionFact,
    Fact,
    Flow,
    KeypressFact,
    NoticeFact,
    RecordingFact,
)
from storage.deadlines import honor_deadline
from storage.ledger import Chain

__all__ = [
    "CallEnding",
    "CallRecord",
    "RecordingStatus",
    "decision_exists",
    "load_flow_definition",
    "next_seq",
    "open_request",
    "record_call",
    "record_call_ending",
    "record_facts",
    "record_recording_status",
    "register_flow_version",
]


@dataclass(frozen=True)
class CallRecord:
    call_sid: str
    account_sid: str
    caller: str
    dialed: str
    direction: str


@dataclass(frozen=True)
class CallEnding:
    call_sid: str
    status: str
    duration_s: int | None
    twilio_timestamp: str | None


async def register_flow_version(chain: Chain, flow: Flow) -> None:
    """Keep the exact definition of ``flow``'s version; an existing version is never rewritten."""
    await chain.insert(
        "flow_versions",
        """
        INSERT INTO flow_versions (version, name, definition) VALUES ($1, $2, $3)
        ON CONFLICT (version) DO NOTHING
        """,
        flow.version,
        flow.name,
        flow.definition,
    )


async def record_call(chain: Chain, call: CallRecord, flow: Flow) -> None:
    await chain.insert(
        "calls",
        """
        INSERT INTO calls (call_sid, account_sid, caller_number, dialed_number, direction,
                           flow_name, flow_version)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (call_sid) DO NOTHING
        """,
        call.call_sid,
        call.account_sid,
        call.caller,
        call.dialed,
        call.direction,
        flow.name,
        flow.version,
    )


async def record_facts(chain: Chain, state: CallState, facts: tuple[Fact, ...], token: str) -> None:
    """Store what the engine reported for one input of the call in ``state``."""
    for fact in facts:
        insert = _INSERTS.get(type(fact))
        if insert is not None:  # an AbandonFact is stored with the call's ending
            await insert(chain, state, fact, token)


async def record_call_ending(chain: Chain, ending: CallEnding, facts: tuple[Fact, ...]) -> None:
    abandoned = next((f.step for f in facts if isinstance(f, AbandonFact)), None)
    await chain.insert(
        "call_endings",
        """
        INSERT INTO call_endings (call_sid, status, duration_s, twilio_timestamp, abandoned_at_step)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (call_sid) DO NOTHING
        """,
        ending.call_sid,
        ending.status,
        ending.duration_s,
        ending.twilio_timestamp,
        abandoned,
    )


async def _insert_keypress(chain: Chain, state: CallState, fact: KeypressFact, token: str) -> None:
    await chain.insert(
        "keypresses",
        """
        INSERT INTO keypresses (call_sid, seq, step, digits, finished_on_key, outcome,
                                prompt_text, lang, flow_version, idempotency_token, agent)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT (call_sid, seq) DO NOTHING
        """,
        state.call_sid,
        fact.seq,
        fact.step,
        fact.digits,
        fact.finished_on_key,
        fact.outcome.value,
        fact.heard,
        fact.lang,
        state.flow_version,
        token,
        state.agent,
    )


async def _insert_decision(chain: Chain, state: CallState, fact: DecisionFact, token: str) -> None:
    received = datetime.now(UTC)
    await chain.insert(
        "consent_events",
        """
        INSERT INTO consent_events (call_sid, seq, subject, purpose, action, channel, raw_digits,
                                    caller_number, dialed_number, identification,
                                    flow_name, flow_version, prompt_text, lang, idempotency_token,
                                    recording_sid, agent, subject_kind, recorded_at, honor_by, scope)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                $19, $20, $21)
        ON CONFLICT (call_sid, seq) DO NOTHING
        """,
        state.call_sid,
        fact.seq,
        fact.subject,
        fact.purpose,
        fact.action.value,
        fact.channel.value,
        fact.raw_digits,
        state.caller,
        state.dialed,
        fact.identification.value,
        state.flow_name,
        state.flow_version,
        fact.heard,
        fact.lang,
        token,
        fact.recording_sid,
        fact.agent,
        fact.subject_kind.value,
        received,
        honor_deadline(received.date(), fact.honor_business_days) if fact.honor_business_days else None,
        fact.scope,
    )


async def _insert_recording(chain: Chain, state: CallState, fact: RecordingFact, token: str) -> None:
    await chain.insert(
        "recordings",
        """
        INSERT INTO recordings (call_sid, seq, step, recording_sid, recording_url, duration_s,
                                ended_by, prompt_text, lang, flow_version, idempotency_token)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT DO NOTHING
        """,
        state.call_sid,
        fact.seq,
        fact.step,
        fact.recording_sid,
        fact.recording_url,
        fact.duration_s,
        fact.ended_by,
        fact.heard,
        fact.lang,
        state.flow_version,
        token,
    )


async def _insert_connection(chain: Chain, state: CallState, fact: ConnectFact, token: str) -> None:
    await chain.insert(
        "connections",
        """
        INSERT INTO connections (call_sid, seq, step, destination, status, connected, idempotency_token)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (call_sid, seq) DO NOTHING
        """,
        state.call_sid,
        fact.seq,
        fact.step,
        fact.destination,
        fact.status,
        fact.connected,
        token,
    )


async def _insert_notice(chain: Chain, state: CallState, fact: NoticeFact, token: str) -> None:
    await chain.insert(
        "notices",
        """
        INSERT INTO notices (call_sid, seq, step, notice, notice_text, text_sha256, lang, flow_version,
                             caller_number)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (call_sid, seq, notice) DO NOTHING
        """,
        state.call_sid,
        fact.seq,
        fact.step,
        fact.notice,
        fact.text,
        hashlib.sha256(fact.text.encode("utf-8")).hexdigest(),
        fact.lang,
        state.flow_version,
        state.caller,
    )


async def open_request(chain: Chain, state: CallState, request_type: str, recording_sid: str | None) -> int:
    """Open the call's request (once, however often the webhook is retried); its id is the reference."""
    row = await chain.insert(
        "requests",
        """
        INSERT INTO requests (call_sid, seq, request_type, caller_number, recording_sid, lang)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (call_sid, seq) DO NOTHING
        """,
        state.call_sid,
        state.seq,
        request_type,
        state.caller,
        recording_sid,
        state.lang,
    )
    opened: int | None = row["id"] if row is not None else None
    if opened is None:
        opened = await chain.conn.fetchval(
            "SELECT id FROM requests WHERE call_sid = $1 AND seq = $2", state.call_sid, state.seq
        )
    assert opened is not None
    return opened


_INSERTS: dict[type, Callable[[Chain, CallState, Any, str], Awaitable[None]]] = {
    KeypressFact: _insert_keypress,
    DecisionFact: _insert_decision,
    RecordingFact: _insert_recording,
    ConnectFact: _insert_connection,
    NoticeFact: _insert_notice,
}


@dataclass(frozen=True)
class RecordingStatus:
    recording_sid: str
    call_sid: str
    account_sid: str
    status: str
    duration_s: int | None
    recording_url: str | None
    error_code: str | None


async def record_recording_status(chain: Chain, status: RecordingStatus) -> None:
    await chain.insert(
        "recording_statuses",
        """
        INSERT INTO recording_statuses (recording_sid, call_sid, status, duration_s, recording_url, error_code)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (recording_sid, status) DO NOTHING
        """,
        status.recording_sid,
        status.call_sid,
        status.status,
        status.duration_s,
        status.recording_url,
        status.error_code,
    )


async def decision_exists(conn: asyncpg.Connection, call_sid: str, seq: int) -> bool:
    """Did the decision answering prompt ``seq`` of the call get stored?"""
    return bool(await conn.fetchval("SELECT true FROM consent_events WHERE call_sid = $1 AND seq = $2", call_sid, seq))


async def next_seq(conn: asyncpg.Connection, call_sid: str) -> int:
    """The first prompt number not yet used on this call (a transfer's flow continues from it)."""
    used: int = await conn.fetchval(
        """
        SELECT greatest(
          (SELECT max(seq) FROM keypresses WHERE call_sid = $1),
          (SELECT max(seq) FROM consent_events WHERE call_sid = $1),
          (SELECT max(seq) FROM recordings WHERE call_sid = $1),
          (SELECT max(seq) FROM connections WHERE call_sid = $1),
          (SELECT max(seq) FROM notices WHERE call_sid = $1),
          (SELECT max(seq) FROM requests WHERE call_sid = $1),
          -1)
        """,
        call_sid,
    )
    return used + 1


async def load_flow_definition(conn: asyncpg.Connection, version: str) -> dict[str, object] | None:
    """The stored definition of a flow version, for calls that began before a deploy."""
    definition: dict[str, object] | None = await conn.fetchval(
        "SELECT definition FROM flow_versions WHERE version = $1", version
    )
    return definition
