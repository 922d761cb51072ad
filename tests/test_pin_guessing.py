"""PIN guessing (issue 16, finding 11), tried the way an outside tester did, by phone.

Wrong PINs lock PIN entry for longer and longer, then until staff restore it (with an
alert); the line says the same for an unknown account as for a wrong PIN, after the same
number of tries; PINs are hashed with a pepper kept outside the database, and hashes
from before it are upgraded after their next right PIN; PINs of 6 to 8 digits work.

Lock periods last hours, so histories are written as the service writes them — chained
``pin_checks`` rows — dated in the past; the call that meets them is a real one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import unused_port
from click.testing import CliRunner

from flows.loader import builtin_flows
from ivr import appkeys
from ivr.access.passwords import hash_secret
from ivr.access.pins import PepperError, PinHasher, load_pepper
from ivr.cli import main
from ivr.settings import ConfigError, Settings
from storage.customers import Customer
from storage.ledger import chained
from storage.postgres import connect
from tests.conftest import AUTH_TOKEN, CUSTOMER_PIN, Service, Storage, running_service
from tests.fake_twilio import FakeTwilio, Twiml, new_call_sid, new_caller
from tests.helpers import store_customer
from tests.test_logs import logged

FLOW = builtin_flows()["consent-line"]
WHO = FLOW.steps["who"]
NOT_IDENTIFIED = FLOW.steps["not_identified"].say.text("en")
HARD_LOCKED = WHO.hard_locked.text("en")
WRONG_PIN = WHO.wrong_pin.text("en")
ASK_ACCOUNT = WHO.ask_account.text("en")
ASK_PIN = WHO.ask_pin.text("en")
WRONG = "00000"


def locked_for(minutes: int) -> str:
    return WHO.locked.text("en", minutes=str(minutes))


async def new_customer(service: Service, pin_hash: str | None = None) -> Customer:
    account = str(secrets.randbelow(10**9) + 10**9)
    known = Customer(account, "Grace Hopper", pin_hash or hash_secret(CUSTOMER_PIN), (new_caller(),))
    return await store_customer(service, known)


async def wrong_pins_ago(service: Service, account: str, *ago: timedelta) -> None:
    """Wrong PINs the account had, ``ago`` before now, chained as the service chains them."""
    async with service.pool.acquire() as conn, chained(conn) as chain:
        for before in ago:
            await chain.insert(
                "pin_checks",
                "INSERT INTO pin_checks (account_number, call_sid, ok, checked_at)"
                " VALUES ($1, $2, false, now() - $3::interval)",
                account,
                new_call_sid(),
                before,
            )


async def type_pin(twilio: FakeTwilio, caller: str, *pins: str) -> Twiml:
    """Call from ``caller``, ask to allow CPNI use (the PIN is asked), type ``pins``."""
    call = twilio.call(caller=caller)
    await call.dial()
    await call.keys("1", "1")
    for pin in pins:
        answer = await call.press(pin + "#")
    await call.hang_up()
    return answer


def hard_locks(service: Service) -> float:
    return service.app[appkeys.METRICS].registry.get_sample_value("ivr_pin_hard_locks_total") or 0.0


async def owner_reads(service: Service, query: str, *args: object) -> object:
    """``query`` as the tables' owner (the directory's keeper), not as the service."""
    conn = await connect(service.app[appkeys.OWNER_DSN])
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def cli(service: Service, *args: str, **env: str):
    environ = {"DATABASE_URL": service.app[appkeys.SETTINGS].database_url or ""} | env
    return await asyncio.to_thread(CliRunner().invoke, main, list(args), env=environ)


# --- escalation ----------------------------------------------------------------------------


async def test_the_fifth_wrong_pin_locks_for_fifteen_minutes_and_the_caller_hears_so(service, twilio) -> None:
    known = await new_customer(service)
    await type_pin(twilio, known.phones[0], WRONG, WRONG, WRONG)  # three: as many as one call allows
    fifth = await type_pin(twilio, known.phones[0], WRONG, WRONG)

    assert fifth.says[:2] == [locked_for(15), NOT_IDENTIFIED]
    assert "withdraw any consent without a PIN" in NOT_IDENTIFIED


async def test_a_wrong_pin_after_the_first_lock_locks_for_an_hour_and_tries_during_a_lock_add_nothing(
    service, twilio
) -> None:
    known = await new_customer(service)
    five = [timedelta(minutes=40 - n) for n in range(5)]  # locked until 21 minutes ago
    during = [timedelta(minutes=30), timedelta(minutes=25)]  # refused unchecked: not guesses
    await wrong_pins_ago(service, known.account_number, *five, *during)

    sixth = await type_pin(twilio, known.phones[0], WRONG)
    assert sixth.says[:2] == [locked_for(60), NOT_IDENTIFIED]
    refused = await type_pin(twilio, known.phones[0], CUSTOMER_PIN)  # the right PIN, during the lock
    assert refused.says[0] == locked_for(60)


async def test_a_wrong_pin_after_the_hour_locks_for_four_hours(service, twilio, db) -> None:
    known = await new_customer(service)
    await wrong_pins_ago(
        service, known.account_number, *[timedelta(hours=3) - n * timedelta(minutes=1) for n in range(5)]
    )
    await wrong_pins_ago(service, known.account_number, timedelta(hours=2))  # the sixth: locked until an hour ago

    seventh = await type_pin(twilio, known.phones[0], WRONG)
    assert seventh.says[:2] == [locked_for(240), NOT_IDENTIFIED]
    refused = await type_pin(twilio, known.phones[0], CUSTOMER_PIN)
    assert refused.says[0] == locked_for(240)
    assert await db.fetchval("SELECT count(*) FROM consent_events WHERE subject = $1", known.account_number) == 0


# --- the hard lock, and staff lifting it ---------------------------------------------------------


async def test_ten_wrong_pins_in_a_day_lock_until_staff_unlock_with_an_alert(service, twilio, db) -> None:
    known = await new_customer(service)
    account = known.account_number
    # Nine guesses in the last 20 hours, each after the last lock had ended.
    first_five = [timedelta(hours=20) - n * timedelta(minutes=1) for n in range(5)]
    later = [timedelta(hours=h) for h in (19, 17, 12, 7)]
    await wrong_pins_ago(service, account, *first_five, *later)
    alerts_before = hard_locks(service)

    with logged() as lines:
        tenth = await type_pin(twilio, known.phones[0], WRONG)
    assert tenth.says[:2] == [HARD_LOCKED, NOT_IDENTIFIED]
    assert "please contact customer service at 1 844 880 0330" in HARD_LOCKED
    alerts = [json.loads(line) for line in lines.getvalue().splitlines() if "ALERT_pin_hard_locked" in line]
    assert len(alerts) == 1 and alerts[0]["level"] == "error"
    assert alerts[0]["account"] == "*" * (len(account) - 2) + account[-2:] and account not in lines.getvalue()
    assert hard_locks(service) == alerts_before + 1

    right = await type_pin(twilio, known.phones[0], CUSTOMER_PIN)  # the right PIN changes nothing
    assert right.says[:2] == [HARD_LOCKED, NOT_IDENTIFIED]
    revoke = twilio.call(caller=known.phones[0])  # revoking still needs no PIN
    await revoke.dial()
    assert "Your choice has been recorded" in (await revoke.keys("1", "2", "1")).heard
    assert hard_locks(service) == alerts_before + 1  # alerted once, when it locked

    unlocked = await cli(service, "customers", "unlock", account, "--reason", "caller verified by phone")
    assert unlocked.exit_code == 0, unlocked.output
    assert f"PIN entry restored on account {account}: it was locked until restored" in unlocked.output
    row = await db.fetchrow("SELECT id, actor, reason FROM pin_unlocks WHERE account_number = $1", account)
    assert row["reason"] == "caller verified by phone" and row["actor"]
    chained_as = await db.fetchval("SELECT count(*) FROM ledger WHERE kind = 'pin_unlocks' AND ref_id = $1", row["id"])
    assert chained_as == 1

    readback = await type_pin(twilio, known.phones[0], CUSTOMER_PIN)
    assert readback.says[0].startswith("You chose to allow")


async def test_only_staff_can_lift_a_lock(service, db) -> None:
    known = await new_customer(service)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # the service's own login
        await db.execute(
            "INSERT INTO pin_unlocks (account_number, actor, reason) VALUES ($1, 'mallory', 'more tries')",
            known.account_number,
        )
    malformed = await cli(service, "customers", "unlock", "12ab")
    nobody = await cli(service, "customers", "unlock", "98765432109876")
    assert (malformed.exit_code, nobody.exit_code) == (2, 2)
    assert "no customer has account 98765432109876" in nobody.output
    assert await db.fetchval("SELECT count(*) FROM pin_unlocks WHERE account_number = '98765432109876'") == 0


# --- one answer for an unknown account and a wrong PIN ---------------------------------------------


async def test_an_unknown_account_and_a_wrong_pin_get_the_same_answers_and_the_same_tries(service, twilio, db) -> None:
    known = await new_customer(service)
    unknown = str(secrets.randbelow(10**9) + 10**9)
    assert await db.fetchval("SELECT count(*) FROM customers WHERE account_number = $1", unknown) == 0
    heard: dict[str, list[str]] = {known.account_number: [], unknown: []}
    for account in heard:
        for attempts in (3, 2):  # two calls from numbers of no customer's: five tries in all
            call = twilio.call()
            await call.dial()
            answer = await call.keys("1", "1")
            assert answer.says[-1] == ASK_ACCOUNT
            for _ in range(attempts):
                for typed in (account, WRONG):
                    answer = await call.press(typed + "#")
                    heard[account].append(answer.body.replace(call.call_sid, "CA…"))
            await call.hang_up()

    assert heard[unknown] == heard[known.account_number]  # every Say, every Gather attribute, word for word
    first_pin, first_wrong = (Twiml(200, body) for body in heard[unknown][:2])
    assert first_pin.says == [ASK_PIN] and first_wrong.says == [WRONG_PIN, ASK_ACCOUNT]
    gather = first_wrong.gather
    assert (gather.get("finishOnKey"), gather.get("numDigits"), gather.get("timeout")) == ("#", None, "6")
    assert Twiml(200, heard[unknown][-1]).says[:2] == [locked_for(15), NOT_IDENTIFIED]
    # The evidence, which no caller hears, still says which it was.
    outcomes = await db.fetch(
        "SELECT outcome, count(*) FROM keypresses WHERE step = 'who' AND digits = $1 GROUP BY outcome",
        unknown,
    )
    assert [tuple(r) for r in outcomes] == [("invalid", 5)]
    checks = await db.fetchval("SELECT count(*) FROM pin_checks WHERE account_number = $1 AND NOT ok", unknown)
    assert checks == 5


# --- the pepper ---------------------------------------------------------------------------------


async def test_a_pin_hashed_before_the_pepper_still_verifies_and_is_upgraded(service, twilio, db) -> None:
    known = await new_customer(service, hash_secret(CUSTOMER_PIN))
    query = "SELECT pin_hash FROM customers WHERE account_number = $1"
    before = await owner_reads(service, query, known.account_number)
    assert str(before).startswith("scrypt$")

    readback = await type_pin(twilio, known.phones[0], CUSTOMER_PIN)
    assert readback.says[0].startswith("You chose to allow")
    after = str(await owner_reads(service, query, known.account_number))
    assert after.startswith("hmac-scrypt$") and after != before and CUSTOMER_PIN not in after

    again = await type_pin(twilio, known.phones[0], CUSTOMER_PIN)  # the peppered hash verifies
    assert again.says[0].startswith("You chose to allow")
    assert (await type_pin(twilio, known.phones[0], "48318")).says[0] == WRONG_PIN


async def test_the_service_cannot_swap_in_a_pin_hash_of_its_choosing_without_a_right_pin(service, db) -> None:
    known = await new_customer(service, hash_secret(CUSTOMER_PIN))
    stored = await owner_reads(
        service, "SELECT pin_hash FROM customers WHERE account_number = $1", known.account_number
    )
    mine = PinHasher(secrets.token_bytes(32)).hash("0000")

    swapped = await db.fetchval("SELECT upgrade_pin_hash($1, $2, $3)", known.account_number, stored, mine)
    assert swapped is False
    assert (
        await owner_reads(service, "SELECT pin_hash FROM customers WHERE account_number = $1", known.account_number)
        == stored
    )
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await db.execute("UPDATE customers SET pin_hash = $2 WHERE account_number = $1", known.account_number, mine)


async def test_a_seven_digit_pin_imported_with_the_pepper_works_end_to_end(storage: Storage, http, tmp_path) -> None:
    pepper = base64.b64encode(secrets.token_bytes(32)).decode()
    phone, account, pin = new_caller(), str(secrets.randbelow(10**9) + 10**9), "7203518"
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text(f"account_number,name,phones,pin\n{account},Katherine Johnson,{phone},{pin}\n")
    async with running_service(storage, unused_port(), PIN_PEPPER=pepper) as peppered:
        imported = await cli(peppered, "customers", "import", str(csv_file), PIN_PEPPER=pepper)
        assert imported.exit_code == 0, imported.output
        stored = str(await owner_reads(peppered, "SELECT pin_hash FROM customers WHERE account_number = $1", account))
        twilio = FakeTwilio(http, peppered.base_url, AUTH_TOKEN)

        short = await type_pin(twilio, phone, pin[:6])
        readback = await type_pin(twilio, phone, pin)

    key_id = PinHasher(base64.b64decode(pepper)).key_id
    assert stored.startswith(f"hmac-scrypt${key_id}$") and pin not in stored
    assert short.says[0] == WRONG_PIN
    assert readback.says[0].startswith("You chose to allow")


def test_the_pepper_is_generated_once_and_kept_under_the_data_directory(tmp_path: Path) -> None:
    first = load_pepper(None, None, tmp_path)
    second = load_pepper(None, None, tmp_path)

    kept = tmp_path / "pin-pepper"
    assert first.key_id == second.key_id and kept.stat().st_mode & 0o777 == 0o600
    assert second.verify("123456", first.hash("123456"))
    assert [p.name for p in tmp_path.iterdir()] == ["pin-pepper"]  # no draft left behind
    with pytest.raises(PepperError, match="does not exist"):  # a configured file is never made up
        load_pepper(None, tmp_path / "mounted" / "pepper", tmp_path)


def test_a_pepper_that_is_no_key_is_refused_by_name() -> None:
    base = {"IVR_DEV": "1", "TWILIO_AUTH_TOKEN": "t", "PUBLIC_BASE_URL": "https://ivr.example.com"}
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ConfigError) as refused:
            Settings.from_env(base | {"PIN_PEPPER": bad})
        assert refused.value.problems[0].startswith("config error: PIN_PEPPER: must be")
    good = base64.b64encode(secrets.token_bytes(32)).decode()
    assert good not in repr(Settings.from_env(base | {"PIN_PEPPER": good}))
