"""``POST /api/consents`` (issue 17, item 8): decisions taken on another channel, with their evidence.

Chained like the phone line's, seen by every lookup, receipt and the outbox; refused
(400/422) with nothing stored when the input is wrong or the subject is not verified.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

import asyncpg
import pytest
from click.testing import CliRunner

from ivr.api.channel_consents import MAX_DOCUMENT_BYTES
from ivr.cli import main
from storage.call_story import subject_timeline
from storage.subscriptions import create_subscription, set_disabled
from storage.tokens import create_token
from tests.fake_twilio import new_caller
from tests.helpers import api, token_for, verify

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
SIGNED_TEXT = "I agree that One Stop VoIP may call me about offers. Signed: Ada Lovelace"


async def integration(service) -> str:
    async with service.pool.acquire() as conn:
        sub = await create_subscription(
            conn, "crm", "https://crm.example/hook", ["consent.revoked"], "v1", "whsec_AA=="
        )
        await set_disabled(conn, sub, "nothing is sent during these tests")
        _, secret = await create_token(conn, "crm-sync", "integration", sub)
    return secret


async def counts(db) -> tuple[int, int, int, int]:
    return tuple(
        await db.fetchrow(
            """SELECT (SELECT count(*) FROM consent_events), (SELECT count(*) FROM consent_documents),
                      (SELECT count(*) FROM ledger), (SELECT count(*) FROM events)"""
        )
    )


def decision(subject: str, action: str = "revoke", **changes) -> dict:
    body = {
        "subject": subject,
        "purpose": "telemarketing",
        "action": action,
        "channel": "web_form",
        "text": "Stop calling me about offers.",
        "collected_by": "website",
        "collected_at": "2026-12-01T10:00:00+00:00",
    }
    return body | changes


async def test_a_web_form_revocation_is_stored_chained_revokes_and_makes_its_event(service, http, db, storage) -> None:
    token = await integration(service)
    phone = new_caller()
    status, body = await api(http, "POST", f"{service.base_url}/api/consents", token, decision(phone))

    assert status == 201, body
    event = await db.fetchrow("SELECT * FROM consent_events WHERE event_id = $1::uuid", body["event_id"])
    assert (event["subject"], event["action"], event["channel"], event["call_sid"]) == (
        phone,
        "revoke",
        "web_form",
        None,
    )
    assert event["honor_by"] is not None and body["honor_by"] == event["honor_by"].isoformat()
    behind = await db.fetchrow("SELECT * FROM consent_documents WHERE consent_event_id = $1", event["id"])
    assert behind["text_shown"] == "Stop calling me about offers."
    assert behind["text_sha256"] == hashlib.sha256(b"Stop calling me about offers.").hexdigest()
    assert (behind["verification"], behind["collected_by"], behind["recorded_by"]) == ("none", "website", "crm-sync")
    assert behind["document"] is None
    entries = await db.fetch(
        """SELECT kind FROM ledger WHERE (kind = 'consent_events' AND ref_id = $1)
                                      OR (kind = 'consent_documents' AND ref_id = $2)""",
        event["id"],
        behind["id"],
    )
    assert sorted(e["kind"] for e in entries) == ["consent_documents", "consent_events"]
    report = await verify(storage)
    assert report.intact, report.breaks[:3]

    staff = await token_for(service, "staff", "sam")
    status, state = await api(http, "GET", f"{service.base_url}/api/subjects/{phone}/consents", staff)
    states = {s["purpose"]: s for s in state["consents"][phone]}
    assert status == 200 and states["telemarketing"]["status"] == "revoked"
    assert states["telemarketing"]["event_id"] == body["event_id"]
    [made] = await db.fetch(
        "SELECT e.type FROM events e JOIN ledger l USING (seq) WHERE l.kind = 'consent_events' AND l.ref_id = $1",
        event["id"],
    )
    assert made["type"] == "consent.revoked"
    status, found = await api(
        http, "GET", f"{service.base_url}/api/consent-events?channel=web_form&phone={phone}", staff
    )
    assert status == 200 and [e["event_id"] for e in found["events"]] == [body["event_id"]]
    [told] = await subject_timeline(db, [phone])
    assert (told["how"], told["heard"], told["call_sid"]) == ("web_form", "Stop calling me about offers.", None)


async def test_a_written_form_grant_keeps_its_signed_pdf_with_its_sha256_and_is_in_the_receipt(
    service, http, db, storage, customer
) -> None:
    staff = await token_for(service, "staff", "sue")
    body = decision(
        customer.account_number,
        "grant",
        channel="written_form",
        text=SIGNED_TEXT,
        collected_by="branch 12, clerk Jo",
        verification="signed_document",
        document={"media_type": "application/pdf", "content": base64.b64encode(PDF).decode()},
    )
    status, made = await api(http, "POST", f"{service.base_url}/api/consents", staff, body)

    assert status == 201, made
    assert made["document_sha256"] == hashlib.sha256(PDF).hexdigest()
    row = await db.fetchrow(
        """SELECT d.*, e.subject, e.subject_kind FROM consent_documents d
           JOIN consent_events e ON e.id = d.consent_event_id WHERE e.event_id = $1::uuid""",
        made["event_id"],
    )
    assert (row["subject"], row["subject_kind"]) == (customer.account_number, "customer")
    assert bytes(row["document"]) == PDF and row["document_bytes"] == len(PDF)
    assert (row["media_type"], row["document_sha256"]) == ("application/pdf", hashlib.sha256(PDF).hexdigest())
    assert await db.fetchval("SELECT count(*) FROM ledger WHERE kind = 'consent_documents' AND ref_id = $1", row["id"])
    assert (await verify(storage)).intact

    env = {"DATABASE_URL": storage.database_url}
    result = await asyncio.to_thread(CliRunner().invoke, main, ["export", "--phone", customer.account_number], env=env)
    assert result.exit_code == 0, result.output
    [receipt] = [json.loads(line) for line in result.stdout.splitlines()]
    assert receipt["receipt_id"] == made["event_id"]
    assert receipt["purposes"][0]["consent_type"] == "explicit: written form"
    assert receipt["collected"]["verification"] == "signed_document"
    assert receipt["document"] == {
        "media_type": "application/pdf",
        "sha256": hashlib.sha256(PDF).hexdigest(),
        "size_bytes": len(PDF),
    }
    assert receipt["prompt_heard"]["text_sha256"] == hashlib.sha256(SIGNED_TEXT.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


REFUSED = [
    pytest.param({"action": "grant"}, 422, "needs verification", id="grant-without-verification"),
    pytest.param(
        {"action": "grant", "verification": "vibes"}, 422, "needs verification", id="grant-unknown-verification"
    ),
    pytest.param({"action": "grant", "verification": "account_pin"}, 422, "verifies an account", id="pin-for-a-number"),
    pytest.param(
        {"action": "grant", "verification": "signed_document"}, 422, "needs the signed document", id="unsigned"
    ),
    pytest.param({"channel": "carrier_pigeon"}, 422, "channel must be one of", id="unknown-channel"),
    pytest.param({"purpose": "horoscopes"}, 422, "unknown purpose", id="unknown-purpose"),
    pytest.param({"subject": "not a number"}, 400, "neither a valid phone number", id="bad-subject"),
    pytest.param({"collected_at": "yesterday"}, 400, "collected_at", id="bad-time"),
    pytest.param({"collected_at": "2999-01-01T00:00:00+00:00"}, 422, "future", id="future-time"),
    pytest.param({"text": ""}, 400, "text is required", id="no-text"),
    pytest.param(
        {"document": {"media_type": "application/msword", "content": _b64(PDF)}}, 422, "media_type", id="bad-type"
    ),
    pytest.param(
        {"document": {"media_type": "image/png", "content": _b64(PDF)}}, 422, "not a image/png", id="magic-bytes"
    ),
    pytest.param(
        {"document": {"media_type": "application/pdf", "content": "%%% not base64 %%%"}}, 400, "base64", id="bad-b64"
    ),
    pytest.param(
        {"document": {"media_type": "application/pdf", "content": _b64(PDF + b"\0" * MAX_DOCUMENT_BYTES)}},
        422,
        "larger than",
        id="oversize",
    ),
]


@pytest.mark.parametrize(("changes", "status", "says"), REFUSED)
async def test_bad_input_is_refused_with_a_message_and_stores_nothing(service, http, db, changes, status, says) -> None:
    token = await integration(service)
    before = await counts(db)
    got, body = await api(http, "POST", f"{service.base_url}/api/consents", token, decision(new_caller()) | changes)

    assert (got, says in body["error"]) == (status, True), body
    assert await counts(db) == before


async def test_a_grant_with_an_agent_checked_id_binds_the_number(service, http, db) -> None:
    staff = await token_for(service, "staff", "tom")
    phone = new_caller()
    body = decision(phone, "grant", channel="agent", collected_by="agent-ada", verification="agent_verified_id")
    status, made = await api(http, "POST", f"{service.base_url}/api/consents", staff, body)

    assert status == 201, made
    row = await db.fetchrow(
        "SELECT agent, identification FROM consent_events WHERE event_id = $1::uuid", made["event_id"]
    )
    assert (row["agent"], row["identification"]) == ("agent-ada", "agent_verified_id")


async def test_a_staff_token_may_record_and_an_agent_token_may_not(service, http, db) -> None:
    agent = await token_for(service, "agent", "ann")
    before = await counts(db)
    status, _ = await api(http, "POST", f"{service.base_url}/api/consents", agent, decision(new_caller()))
    assert status == 403 and await counts(db) == before
    staff = await token_for(service, "staff", "sid")
    status, _ = await api(http, "POST", f"{service.base_url}/api/consents", staff, decision(new_caller()))
    assert status == 201


async def test_the_database_refuses_a_phone_channel_decision_without_its_call(db) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            """INSERT INTO consent_events (subject, purpose, action, channel, raw_digits, caller_number, dialed_number,
                                           identification, prompt_text, lang, idempotency_token)
               VALUES ('+14155550100', 'telemarketing', 'revoke', 'keypad', '', '', '', 'ani', 't', 'en', 'x')"""
        )
