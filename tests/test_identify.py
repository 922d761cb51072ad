"""Identifying callers: caller ID or account number, then a PIN that is never stored or logged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import unused_port

from ivr.access.passwords import hash_secret, verify_secret
from storage.consent_state import Status, consent_state
from tests.conftest import AUTH_TOKEN, Service, Storage, running_service
from tests.conftest import CUSTOMER_PIN as PIN
from tests.fake_twilio import FakeTwilio

TEST_FLOWS = Path(__file__).parent / "data" / "flows"
ASK_PIN = "Enter your PIN, then press pound."
ASK_ACCOUNT = "Enter your account number, then press pound."
NOT_IDENTIFIED = "We could not confirm who you are, so nothing has been changed. Goodbye."


@pytest.fixture
async def flows_service(storage: Storage) -> AsyncIterator[Service]:
    async with running_service(storage, unused_port(), IVR_FLOWS_DIR=str(TEST_FLOWS)) as running:
        yield running


@pytest.fixture
def phone(flows_service: Service, http) -> FakeTwilio:
    return FakeTwilio(http, flows_service.base_url, AUTH_TOKEN)


def test_pins_are_salted_hashes_that_verify() -> None:
    first, second = hash_secret(PIN), hash_secret(PIN)

    assert first != second and PIN not in first
    assert first.startswith("scrypt$")
    assert verify_secret(PIN, first) and not verify_secret("48318", first)
    assert not verify_secret(PIN, "garbage")


async def test_a_known_caller_id_asks_only_for_the_pin_and_binds_the_customer(phone, customer, db) -> None:
    call = phone.call(caller=customer.phones[0])
    await call.dial("flow=identify-test")
    asked = await call.press("1")

    assert asked.says == ["First, we need to confirm who you are.", ASK_PIN]
    assert (asked.gather.get("finishOnKey"), asked.gather.get("numDigits")) == ("#", None)
    readback = await call.press(PIN + "#")
    assert readback.says[0].startswith("You chose to allow")
    await call.press("1")

    event = await db.fetchrow("SELECT * FROM consent_events WHERE call_sid = $1", call.call_sid)
    assert (event["subject"], event["subject_kind"], event["identification"]) == (
        customer.account_number,
        "customer",
        "ani_pin",
    )
    assert event["caller_number"] == customer.phones[0]
    pin_row = await db.fetchrow(
        "SELECT digits, outcome FROM keypresses WHERE call_sid = $1 AND step = 'who'", call.call_sid
    )
    assert tuple(pin_row) == ("[pin withheld]", "valid")
    checks = await db.fetch("SELECT ok FROM pin_checks WHERE call_sid = $1", call.call_sid)
    assert [c["ok"] for c in checks] == [True]


async def test_an_unknown_number_is_asked_for_the_account_number_first(phone, customer, db) -> None:
    call = phone.call()
    await call.dial("flow=identify-test")
    asked = await call.press("1")
    assert asked.says[-1] == ASK_ACCOUNT
    unknown = await call.press("999#")
    assert unknown.says == [ASK_PIN]  # an unknown account is asked for a PIN like any other
    again = await call.press(PIN + "#")
    assert again.says == ["That PIN is not right.", ASK_ACCOUNT]  # the pair is asked again
    pin = await call.press(customer.account_number + "#")
    assert pin.says == [ASK_PIN]
    await call.press(PIN + "#")
    await call.press("1")

    event = await db.fetchrow("SELECT subject, identification FROM consent_events WHERE call_sid = $1", call.call_sid)
    assert tuple(event) == (customer.account_number, "account_pin")


async def test_revoking_needs_no_identification(phone, customer, db) -> None:
    call = phone.call(caller=customer.phones[0])
    await call.dial("flow=identify-test")
    await call.keys("2", "1")

    event = await db.fetchrow(
        "SELECT subject, subject_kind, identification FROM consent_events WHERE call_sid = $1", call.call_sid
    )
    assert tuple(event) == (customer.phones[0], "phone", "ani")
    # Bound to the number, it reaches the account the number belongs to (docs/consent-rules.md, CR-1).
    account = await consent_state(db, customer.account_number, "cpni", as_of=datetime.now(UTC))
    assert (account.status, account.decided_for) == (Status.REVOKED, customer.phones[0])


async def test_three_wrong_pins_end_identification_without_a_decision(phone, customer, db) -> None:
    call = phone.call(caller=customer.phones[0])
    await call.dial("flow=identify-test")
    await call.press("1")
    wrong = await call.press("1111#")
    assert wrong.says == ["That PIN is not right.", ASK_PIN]
    await call.press("2222#")
    last = await call.press("3333#")

    assert last.says == [NOT_IDENTIFIED] and last.hangs_up
    assert await db.fetchval("SELECT count(*) FROM consent_events WHERE call_sid = $1", call.call_sid) == 0


async def test_five_wrong_pins_across_calls_lock_the_account_even_for_the_right_pin(phone, customer, db) -> None:
    for wrong_pins in (["1111#", "2222#", "3333#"], ["4444#", "5555#"]):
        call = phone.call(caller=customer.phones[0])
        await call.dial("flow=identify-test")
        await call.press("1")
        for pin in wrong_pins:
            last = await call.press(pin)
    assert last.says == [NOT_IDENTIFIED]  # the fifth wrong PIN locks at once

    later = phone.call()
    await later.dial("flow=identify-test")
    await later.keys("1", customer.account_number + "#")
    refused = await later.press(PIN + "#")

    assert refused.says == [NOT_IDENTIFIED]
    assert await db.fetchval("SELECT count(*) FROM consent_events WHERE call_sid = $1", later.call_sid) == 0
    oks = await db.fetch("SELECT ok FROM pin_checks WHERE account_number = $1 ORDER BY id", customer.account_number)
    assert [r["ok"] for r in oks] == [False] * 6


async def test_pin_digits_are_stored_nowhere(phone, customer, db) -> None:
    call = phone.call(caller=customer.phones[0])
    await call.dial("flow=identify-test")
    await call.keys("1", PIN + "#", "1")

    for table in ("keypresses", "consent_events", "calls", "pin_checks"):
        rows = await db.fetch(f"SELECT row_to_json(t)::text AS j FROM {table} t WHERE call_sid = $1", call.call_sid)
        assert rows and not any(PIN in r["j"] for r in rows), table
