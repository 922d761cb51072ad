"""Evidence rows: what a call's webhooks store, built here and appended by ``storage.ledger``.

Every insert is idempotent on its natural key (a call, a call's Nth answer, a call's
ending): a webhook Twilio delivers twice stores one row, and the second delivery can
still truthfully tell the caller their choice is recorded. Times are the server's, taken
when the webhook arrived (a keypress kept in the call's session until the next commit
still carries the moment it was pressed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

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
from storage.deadlines import honor_deadline, local_date
from storage.ledger import Chain, EvidenceRow
from storage.postgres import Connection

__all__ = [
    "CallEnding",
    "CallRecord",
    "RecordingStatus",
    "decision_exists",
    "load_flow_definition",
    "next_seq",
    "FINAL_CALL_STATUSES",
    "call_ending_row",
    "call_status_row",
    "call_row",
    "fact_rows",
    "keypress_row",
    "open_request",
    "recording_status_row",
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
    """What Twilio's status callback said of the call: a final status ends it."""

    call_sid: str
    status: str
    duration_s: int | None
    twilio_timestamp: str | None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_CALL_STATUSES


# Twilio's call statuses after which nothing more happens on the call; the others
# (queued, initiated, ringing, in-progress) are kept as status events (CR-18).
FINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


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


def call_row(call: CallRecord, flow: Flow) -> EvidenceRow:
    return EvidenceRow(
        "calls",
        {
            "call_sid": call.call_sid,
            "account_sid": call.account_sid,
            "caller_number": call.caller,
            "dialed_number": call.dialed,
            "direction": call.direction,
            "flow_name": flow.name,
            "flow_version": flow.version,
        },
    )


def fact_rows(
    state: CallState, facts: tuple[Fact, ...], token: str, received: datetime, *, business_tz: tzinfo
) -> list[EvidenceRow]:
    """The rows for what the engine reported for one input of the call in ``state``.

    ``received`` is when the webhook arrived; a revocation's honor-by date counts from its
    date in ``business_tz``. An AbandonFact has none: it is stored with the call's ending.
    """
    rows = []
    for fact in facts:
        if isinstance(fact, DecisionFact):
            rows.append(_decision_row(state, fact, token, received, business_tz))
        elif type(fact) in _ROWS:
            rows.append(_ROWS[type(fact)](state, fact, token, received))
    return rows


def keypress_row(state: CallState, fact: KeypressFact, token: str, received: datetime) -> EvidenceRow:
    return EvidenceRow(
        "keypresses",
        {
            "call_sid": state.call_sid,
            "seq": fact.seq,
            "step": fact.step,
            "digits": fact.digits,
            "finished_on_key": fact.finished_on_key,
            "outcome": fact.outcome.value,
            "prompt_text": fact.heard,
            "lang": fact.lang,
            "flow_version": state.flow_version,
            "idempotency_token": token,
            "agent": state.agent,
            "received_at": received.isoformat(),
        },
    )


def call_status_row(status: CallEnding) -> EvidenceRow:
    """An intermediate status (ringing, in-progress): kept, and it ends nothing."""
    return EvidenceRow(
        "call_statuses",
        {"call_sid": status.call_sid, "status": status.status, "twilio_timestamp": status.twilio_timestamp},
    )


def call_ending_row(ending: CallEnding, facts: tuple[Fact, ...]) -> EvidenceRow:
    return EvidenceRow(
        "call_endings",
        {
            "call_sid": ending.call_sid,
            "status": ending.status,
            "duration_s": ending.duration_s,
            "twilio_timestamp": ending.twilio_timestamp,
            "abandoned_at_step": next((f.step for f in facts if isinstance(f, AbandonFact)), None),
        },
    )


def _decision_row(
    state: CallState, fact: DecisionFact, token: str, received: datetime, business_tz: tzinfo
) -> EvidenceRow:
    days = fact.honor_business_days
    honor_by = honor_deadline(local_date(received, business_tz), days) if days else None
    return EvidenceRow(
        "consent_events",
        {
            "call_sid": state.call_sid,
            "seq": fact.seq,
            "subject": fact.subject,
            "purpose": fact.purpose,
            "action": fact.action.value,
            "channel": fact.channel.value,
            "raw_digits": fact.raw_digits,
            "caller_number": state.caller,
            "dialed_number": state.dialed,
            "identification": fact.identification.value,
            "flow_name": state.flow_name,
            "flow_version": state.flow_version,
            "prompt_text": fact.heard,
            "lang": fact.lang,
            "idempotency_token": token,
            "recording_sid": fact.recording_sid,
            "agent": fact.agent,
            "subject_kind": fact.subject_kind.value,
            "recorded_at": received.isoformat(),
            "honor_by": honor_by.isoformat() if honor_by else None,
            "scope": fact.scope,
        },
    )


def _recording_row(state: CallState, fact: RecordingFact, token: str, received: datetime) -> EvidenceRow:
    return EvidenceRow(
        "recordings",
        {
            "call_sid": state.call_sid,
            "seq": fact.seq,
            "step": fact.step,
            "recording_sid": fact.recording_sid,
            "recording_url": fact.recording_url,
            "duration_s": fact.duration_s,
            "ended_by": fact.ended_by,
            "prompt_text": fact.heard,
            "lang": fact.lang,
            "flow_version": state.flow_version,
            "idempotency_token": token,
        },
    )


def _connection_row(state: CallState, fact: ConnectFact, token: str, received: datetime) -> EvidenceRow:
    return EvidenceRow(
        "connections",
        {
            "call_sid": state.call_sid,
            "seq": fact.seq,
            "step": fact.step,
            "destination": fact.destination,
            "status": fact.status,
            "connected": fact.connected,
            "idempotency_token": token,
        },
    )


def _notice_row(state: CallState, fact: NoticeFact, token: str, received: datetime) -> EvidenceRow:
    return EvidenceRow(
        "notices",
        {
            "call_sid": state.call_sid,
            "seq": fact.seq,
            "step": fact.step,
            "notice": fact.notice,
            "notice_text": fact.text,
            "text_sha256": hashlib.sha256(fact.text.encode("utf-8")).hexdigest(),
            "lang": fact.lang,
            "flow_version": state.flow_version,
            "caller_number": state.caller,
        },
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


_ROWS: dict[type, Callable[[CallState, Any, str, datetime], EvidenceRow]] = {
    KeypressFact: keypress_row,
    RecordingFact: _recording_row,
    ConnectFact: _connection_row,
    NoticeFact: _notice_row,
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


def recording_status_row(status: RecordingStatus) -> EvidenceRow:
    return EvidenceRow(
        "recording_statuses",
        {
            "recording_sid": status.recording_sid,
            "call_sid": status.call_sid,
            "status": status.status,
            "duration_s": status.duration_s,
            "recording_url": status.recording_url,
            "error_code": status.error_code,
        },
    )


async def decision_exists(conn: Connection, call_sid: str, seq: int) -> bool:
    """Did the decision answering prompt ``seq`` of the call get stored?"""
    return bool(await conn.fetchval("SELECT true FROM consent_events WHERE call_sid = $1 AND seq = $2", call_sid, seq))


async def next_seq(conn: Connection, call_sid: str) -> int:
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


async def load_flow_definition(conn: Connection, version: str) -> dict[str, object] | None:
    """The stored definition of a flow version, for calls that began before a deploy."""
    definition: dict[str, object] | None = await conn.fetchval(
        "SELECT definition FROM flow_versions WHERE version = $1", version
    )
    return definition
