"""Writing evidence rows. Each function takes a connection; the caller owns the transaction.

Every insert is idempotent on its natural key (a call, a call's Nth answer, a call's
ending): a webhook Twilio delivers twice stores one row, and the second delivery can
still truthfully tell the caller their choice is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from flows.model import AbandonFact, CallState, DecisionFact, Fact, Flow, KeypressFact

__all__ = [
    "CallEnding",
    "CallRecord",
    "load_flow_definition",
    "record_call",
    "record_call_ending",
    "record_facts",
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


async def register_flow_version(conn: asyncpg.Connection, flow: Flow) -> None:
    """Keep the exact definition of ``flow``'s version; an existing version is never rewritten."""
    await conn.execute(
        """
        INSERT INTO flow_versions (version, name, definition) VALUES ($1, $2, $3)
        ON CONFLICT (version) DO NOTHING
        """,
        flow.version,
        flow.name,
        flow.definition,
    )


async def record_call(conn: asyncpg.Connection, call: CallRecord, flow: Flow) -> None:
    await conn.execute(
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


async def record_facts(
    conn: asyncpg.Connection, state: CallState, facts: tuple[Fact, ...], token: str
) -> None:
    """Store what the engine reported for one input of the call in ``state``."""
    for fact in facts:
        if isinstance(fact, KeypressFact):
            await _insert_keypress(conn, state, fact, token)
        elif isinstance(fact, DecisionFact):
            await _insert_decision(conn, state, fact, token)


async def record_call_ending(
    conn: asyncpg.Connection, ending: CallEnding, facts: tuple[Fact, ...]
) -> None:
    abandoned = next((f.step for f in facts if isinstance(f, AbandonFact)), None)
    await conn.execute(
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


async def _insert_keypress(
    conn: asyncpg.Connection, state: CallState, fact: KeypressFact, token: str
) -> None:
    await conn.execute(
        """
        INSERT INTO keypresses (call_sid, seq, step, digits, finished_on_key, outcome,
                                prompt_text, lang, flow_version, idempotency_token)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
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
    )


async def _insert_decision(
    conn: asyncpg.Connection, state: CallState, fact: DecisionFact, token: str
) -> None:
    await conn.execute(
        """
        INSERT INTO consent_events (call_sid, seq, subject, purpose, action, channel, raw_digits,
                                    caller_number, dialed_number, identification,
                                    flow_name, flow_version, prompt_text, lang, idempotency_token)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
        ON CONFLICT (call_sid, seq) DO NOTHING
        """,
        state.call_sid,
        fact.seq,
        state.caller,  # the subject is the calling number until callers are identified
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
    )


async def load_flow_definition(conn: asyncpg.Connection, version: str) -> dict[str, object] | None:
    """The stored definition of a flow version, for calls that began before a deploy."""
    definition: dict[str, object] | None = await conn.fetchval(
        "SELECT definition FROM flow_versions WHERE version = $1", version
    )
    return definition
