"""Numbers with flows of their own, calls we place, and the customer directory import."""

from __future__ import annotations

import asyncio
import base64
import secrets
from pathlib import Path

import asyncpg
from aiohttp.test_utils import unused_port
from click.testing import CliRunner

from ivr.access.pins import PinHasher
from ivr.cli import main
from tests.conftest import AUTH_TOKEN, Storage, running_service
from tests.fake_twilio import FakeTwilio, new_caller

OPT_OUT_NUMBER = "+18445550199"


async def test_a_dialed_number_can_have_its_own_flow(storage: Storage, http) -> None:
    async with running_service(
        storage, unused_port(), IVR_NUMBER_FLOWS=f"{OPT_OUT_NUMBER}=telemarketing-opt-out"
    ) as running:
        twilio = FakeTwilio(http, running.base_url, AUTH_TOKEN)
        dedicated = await twilio.call(dialed=OPT_OUT_NUMBER).dial()
        default = await twilio.call().dial()

    assert dedicated.says == ["This is One Stop VoIP. To stop marketing calls from us, press 1."]
    assert default.says[0].startswith("Thank you for calling the One Stop VoIP consent line.")


async def test_on_a_call_we_placed_the_person_called_is_the_subject(twilio: FakeTwilio, db) -> None:
    customer_number = new_caller()
    call = twilio.call(caller="+18445550100", dialed=customer_number)  # our number calls them
    params = call.params("in-progress") | {"Direction": "outbound-api"}
    offer = await twilio.post(twilio.url("/twilio/voice?flow=telemarketing-opt-out"), params)
    call.current = offer
    answer_params = params | {"Digits": "1", "FinishedOnKey": ""}
    done = await twilio.post(offer.gather.get("action"), answer_params)

    assert "recorded" in done.heard
    event = await db.fetchrow(
        "SELECT subject, caller_number, dialed_number FROM consent_events WHERE call_sid = $1", call.call_sid
    )
    assert tuple(event) == (customer_number, customer_number, "+18445550100")


def test_a_number_flow_naming_no_flow_is_refused_at_start_up(storage: Storage) -> None:
    async def start() -> str:
        try:
            async with running_service(storage, unused_port(), IVR_NUMBER_FLOWS=f"{OPT_OUT_NUMBER}=no-such-flow"):
                return "started"
        except Exception as exc:  # the start-up error is what is under test
            return str(exc)

    assert "no-such-flow" in asyncio.run(start())


def test_customers_import_loads_hashed_pins_and_normalised_numbers(storage: Storage, tmp_path: Path) -> None:
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text(
        "account_number,name,phones,pin\n"
        "5550001,Grace Hopper,(415) 555-0142;+44 20 7946 0958,2468\n"
        "5550002,Alan Turing,,\n"
    )
    pepper = secrets.token_bytes(32)
    env = {"DATABASE_URL": storage.database_url, "PIN_PEPPER": base64.b64encode(pepper).decode()}
    result = CliRunner().invoke(main, ["customers", "import", str(csv_file)], env=env)

    assert result.exit_code == 0, result.output
    assert "imported 2 customer(s), 1 with a PIN" in result.output

    async def look() -> tuple:
        conn = await asyncpg.connect(storage.database_url)
        try:
            pin_hash = await conn.fetchval("SELECT pin_hash FROM customers WHERE account_number = '5550001'")
            phones = await conn.fetch(
                "SELECT phone FROM customer_phones WHERE account_number = '5550001' ORDER BY phone"
            )
            return pin_hash, [p["phone"] for p in phones]
        finally:
            await conn.close()

    pin_hash, phones = asyncio.run(look())
    assert pin_hash.startswith("hmac-scrypt$") and "2468" not in pin_hash  # peppered (ivr.access.pins)
    assert PinHasher(pepper).verify("2468", pin_hash)
    assert not PinHasher(secrets.token_bytes(32)).verify("2468", pin_hash)  # another pepper: no match
    assert phones == ["+14155550142", "+442079460958"]


def test_customers_import_with_a_bad_row_imports_nothing_and_names_the_line(storage: Storage, tmp_path: Path) -> None:
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text("account_number,name,phones,pin\n5550003,Good Row,,1234\n12,Bad Row,not-a-phone,123456789\n")
    result = CliRunner().invoke(
        main, ["customers", "import", str(csv_file)], env={"DATABASE_URL": storage.database_url}
    )

    assert result.exit_code == 1
    assert "line 3: account_number must be 4 to 20 digits" in result.output
    assert "line 3: 'not-a-phone' is not a valid phone number" in result.output
    assert "line 3: pin must be 4 to 8 digits" in result.output
    assert "123456789" not in result.output  # a PIN is never echoed, even a bad one
    assert "nothing imported" in result.output
