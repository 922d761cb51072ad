"""Consent receipts (ISO/IEC TS 27560 / Kantara fields) and the export that streams them."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json

from click.testing import CliRunner

from ivr.cli import main
from tests.conftest import CUSTOMER_PIN
from tests.fake_twilio import FakeTwilio


async def export(storage, *args: str):
    env = {"DATABASE_URL": storage.database_url}
    return await asyncio.to_thread(CliRunner().invoke, main, ["export", *args], env=env)


async def test_a_receipt_carries_what_an_auditor_asks_for(storage, twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    readback = await call.keys("1", "2")
    await call.press("1")
    result = await export(storage, "--phone", call.caller)

    assert result.exit_code == 0, result.output
    [receipt] = [json.loads(line) for line in result.stdout.splitlines()]
    event = await db.fetchrow("SELECT * FROM consent_events WHERE call_sid = $1", call.call_sid)
    entry = await db.fetchrow("SELECT * FROM ledger WHERE kind = 'consent_events' AND ref_id = $1", event["id"])
    assert receipt["schema_version"].startswith("consent-ivr-receipt/1.0")
    assert receipt["receipt_id"] == str(event["event_id"])
    assert (receipt["jurisdiction"], receipt["language"]) == ("US", "en")
    assert receipt["controller"] == {
        "name": "One Stop VoIP LLC",
        "contact": "info@onestopvoip.com",
        "phone": "+18448800330",
    }
    assert receipt["subject"] == {
        "id": call.caller,
        "kind": "phone",
        "identification": "ani",
        "caller_number": call.caller,
    }
    [purpose] = receipt["purposes"]
    assert (purpose["purpose"], purpose["state"], purpose["legal_basis"]) == ("cpni", "withdrawn", "consent")
    assert purpose["consent_type"] == "explicit: telephone keypad"
    assert purpose["description"] == "the use of your account information for marketing"
    assert receipt["prompt_heard"]["text"] == readback.heard
    assert receipt["prompt_heard"]["text_sha256"] == hashlib.sha256(readback.heard.encode()).hexdigest()
    assert len(receipt["prompt_heard"]["flow_version"]) == 64
    assert receipt["notice"]["kind"] == "cpni"  # the CPNI notice heard whole before the choice (CR-11)
    assert receipt["digits"] == "1,2,1"
    assert receipt["recording"] is None
    assert "*12#" in receipt["how_to_withdraw"]
    assert receipt["ledger"] == {"seq": entry["seq"], "hash": entry["hash"], "prev_hash": entry["prev_hash"]}
    assert receipt["consent_timestamp"].endswith("+00:00")


async def test_a_verbal_receipt_names_its_recording(storage, twilio: FakeTwilio, customer) -> None:
    call = twilio.call(caller=customer.phones[0])
    await call.dial()
    await call.keys("7", "1", CUSTOMER_PIN + "#")
    await call.record(seconds=6)
    await call.press("1")
    result = await export(storage, "--phone", customer.account_number)

    [receipt] = [json.loads(line) for line in result.stdout.splitlines()]
    assert receipt["subject"]["kind"] == "customer" and receipt["subject"]["identification"] == "ani_pin"
    assert receipt["purposes"][0]["consent_type"] == "explicit: recorded verbal statement"
    assert receipt["recording"]["id"].startswith("RE") and receipt["recording"]["fetch_status"] == "pending"
    assert "*72#" in receipt["how_to_withdraw"]


async def test_csv_export_has_one_row_per_decision(storage, twilio: FakeTwilio) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("2", "2", "1")
    again = twilio.call(caller=call.caller)
    await again.dial()
    await again.keys("3", "1", "1")
    result = await export(storage, "--phone", call.caller, "--format", "csv")

    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["purpose"], r["state"]) for r in rows] == [("telemarketing", "withdrawn"), ("email", "given")]
    assert rows[0]["honor_by"] and not rows[1]["honor_by"]
    assert "exported 2 decision(s)" in result.stderr
