"""The outbox (migration 0022): every decision, request and status change makes an event
in the same transaction as its evidence, with its ledger entry as its id."""

from __future__ import annotations

import asyncpg
import pytest

from storage.outbox import event_id, events_after, seq_of
from tests.helpers import api, token_for

KINDS = ("consent_events", "requests", "request_events", "deemed_approvals")


async def test_a_revocation_by_phone_makes_one_event_named_by_its_ledger_entry(twilio, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("2", "2", "1")
    await call.retry()  # Twilio retrying the webhook makes no second decision, so no second event

    decision = await db.fetchrow("SELECT * FROM consent_events WHERE call_sid = $1", call.call_sid)
    entry = await db.fetchrow(
        "SELECT seq, hash FROM ledger WHERE kind = 'consent_events' AND ref_id = $1", decision["id"]
    )
    [event] = await db.fetch("SELECT *, event_data(seq) AS data FROM events WHERE seq = $1", entry["seq"])
    assert (event["seq"], event["type"], event["ordering_key"]) == (entry["seq"], "consent.revoked", call.caller)
    assert event["occurred_at"] == decision["recorded_at"]
    data = event["data"]
    assert data["subject"] == call.caller and data["subject_kind"] == "phone"
    assert data["reaches"] == [call.caller]
    assert (data["purpose"], data["action"], data["channel"], data["scope"]) == (
        "telemarketing",
        "revoke",
        "keypad",
        "standing",
    )
    assert data["honor_by"] == decision["honor_by"].isoformat()
    assert data["record"] == {"table": "consent_events", "id": decision["id"], "event_id": str(decision["event_id"])}
    assert data["ledger"] == {"seq": entry["seq"], "hash": entry["hash"]}
    [listed] = [e for e in await events_after(db, entry["seq"] - 1, 10, call.caller) if e.seq == entry["seq"]]
    assert seq_of(listed.id) == entry["seq"] and listed.id == event_id(entry["seq"])


async def test_a_request_and_its_status_changes_are_events_in_order(service, twilio, http, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("8", "2")
    await call.stay_silent()
    request_id = await db.fetchval("SELECT id FROM requests WHERE call_sid = $1", call.call_sid)
    staff = await token_for(service, "staff", "outbox-staff")
    status, _ = await api(
        http, "POST", f"{service.base_url}/api/requests/{request_id}/status", staff, {"status": "done", "note": "gone"}
    )
    assert status == 201

    events = await db.fetch(
        "SELECT *, event_data(seq) AS data FROM events WHERE ordering_key = $1 ORDER BY seq", f"request:{request_id}"
    )
    assert [e["type"] for e in events] == ["request.opened", "request.status_changed"]
    opened, changed = (e["data"] for e in events)
    assert (opened["request_id"], opened["request_type"], opened["subject"], opened["status"]) == (
        request_id,
        "forum_removal",
        call.caller,
        "open",
    )
    assert (changed["status"], changed["note"], changed["actor"], changed["subject"]) == (
        "done",
        "gone",
        "outbox-staff",
        call.caller,
    )


async def test_never_an_event_without_its_evidence_nor_evidence_without_its_event(twilio, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("2", "2", "1")
    unmatched = await db.fetchval(
        """
        SELECT count(*) FROM ledger l FULL JOIN events e ON e.seq = l.seq
        WHERE (l.kind = ANY ($1::text[]) AND e.seq IS NULL) OR (e.seq IS NOT NULL AND l.kind <> ALL ($1::text[]))
           OR (e.seq IS NOT NULL AND l.seq IS NULL)
        """,
        list(KINDS),
    )
    assert unmatched == 0


async def test_a_rolled_back_decision_leaves_no_event(twilio, db) -> None:
    call = twilio.call()
    await call.dial()
    before = await db.fetchval("SELECT count(*) FROM events")
    tx = db.transaction()
    await tx.start()
    await db.execute(
        """
        INSERT INTO consent_events (call_sid, seq, subject, purpose, action, channel, raw_digits, caller_number,
          dialed_number, identification, flow_name, flow_version, prompt_text, lang, idempotency_token)
        SELECT call_sid, 9999, caller_number, 'telemarketing', 'revoke', 'keypad', '1', caller_number, dialed_number,
          'ani', flow_name, flow_version, 'x', 'en', 'rolled-back' FROM calls WHERE call_sid = $1
        """,
        call.call_sid,
    )
    new_id = await db.fetchval("SELECT id FROM consent_events WHERE call_sid = $1", call.call_sid)
    await db.execute("SELECT ledger_append(ARRAY['consent_events'], ARRAY[$1::bigint])", new_id)
    assert await db.fetchval("SELECT count(*) FROM events") == before + 1  # inside: there
    await tx.rollback()
    assert await db.fetchval("SELECT count(*) FROM events") == before


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO events (seq, type, ordering_key, occurred_at) VALUES (0, 'x', 'x', now())",
        "UPDATE events SET type = 'consent.granted'",
        "DELETE FROM events",
    ],
)
async def test_the_service_reads_events_and_writes_none(db, statement: str) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await db.execute(statement)
