"""The consent rules (docs/consent-rules.md), each driven end to end: signed calls, the
words a caller hears, the rows in Postgres, and what the CLI, the API and the pages say."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from click.testing import CliRunner

from flows.loader import builtin_flows
from ivr import appkeys
from ivr.access.passwords import hash_secret
from ivr.cli import main
from storage.consent_state import Status, consent_state
from storage.customers import Customer
from storage.deadlines import honor_deadline, local_date
from tests.conftest import CUSTOMER_PIN, Service
from tests.fake_twilio import FakeTwilio, new_caller
from tests.helpers import api, store_customer, token_for

FLOW = builtin_flows()["consent-line"]
CPNI_NOTICE = FLOW.steps["cpni_notice"].say.text("en")
WITHHELD = "+266696687"  # ANONYMOUS on a keypad: what Twilio sends for a withheld caller ID
HIDDEN_GRANT = FLOW.steps["hidden_grant"].say.text("en")
NOT_IDENTIFIED = FLOW.steps["not_identified"].say.text("en")


async def new_customer(service: Service, *phones: str) -> Customer:
    known = Customer(str(secrets.randbelow(10**9) + 10**9), "Grace Hopper", hash_secret(CUSTOMER_PIN), phones)
    return await store_customer(service, known)


async def cli(service: Service, *args: str):
    env = {"DATABASE_URL": service.app[appkeys.SETTINGS].database_url or ""}
    return await asyncio.to_thread(CliRunner().invoke, main, list(args), env=env)


async def grant_cpni_with_pin(twilio: FakeTwilio, phone: str) -> None:
    call = twilio.call(caller=phone)
    await call.dial()
    await call.keys("1", "1")  # the notice, then "allow"; the caller ID is known: the PIN is asked
    readback = await call.press(CUSTOMER_PIN + "#")
    assert readback.says[0].startswith("You chose to allow")
    await call.press("1")
    await call.hang_up()


async def revoke_from(twilio: FakeTwilio, phone: str, *menu: str) -> str:
    call = twilio.call(caller=phone)
    await call.dial()
    await call.keys(*menu, "1")
    await call.hang_up()
    return call.call_sid


async def state_of(db: asyncpg.Connection, subject: str, purpose: str, *, days: int | None = None):
    return await consent_state(db, subject, purpose, as_of=datetime.now(UTC), opt_out_days=days)


# --- CR-1, CR-2, CR-3, CR-4 -------------------------------------------------------------


async def test_a_revocation_from_a_registered_number_reaches_the_account(service, twilio, db) -> None:
    phone = new_caller()
    customer = await new_customer(service, phone)
    await grant_cpni_with_pin(twilio, phone)
    assert (await state_of(db, customer.account_number, "cpni", days=30)).status is Status.GRANTED

    call_sid = await revoke_from(twilio, phone, "1", "2")  # "restrict", no PIN asked

    account = await state_of(db, customer.account_number, "cpni", days=30)
    revocation = await db.fetchrow("SELECT event_id, subject FROM consent_events WHERE call_sid = $1", call_sid)
    assert revocation["subject"] == phone  # the row is what it was: the decision binds the number
    assert (account.status, account.event_id, account.decided_for) == (Status.REVOKED, revocation["event_id"], phone)
    shown = await cli(service, "consent", customer.account_number)
    assert shown.exit_code == 0, shown.output
    assert re.search(r"cpni\s+revoked", shown.output) and f"made for {phone}" in shown.output


async def test_a_revocation_reaches_every_account_sharing_the_number(service, twilio, db) -> None:
    household = new_caller()
    first, second = await new_customer(service, household), await new_customer(service, household)

    await revoke_from(twilio, household, "6", "2")  # stop publishing my testimonial

    for account in (first, second):
        assert (await state_of(db, account.account_number, "testimonial")).status is Status.REVOKED
    assert (await state_of(db, household, "testimonial")).status is Status.REVOKED


async def test_a_keyed_in_number_can_be_revoked_for_and_is_marked_unverified(twilio, db) -> None:
    call = twilio.call(caller=WITHHELD)
    await call.dial()
    asked = await call.keys("2", "2")
    assert "Enter the 10-digit phone number" in asked.heard
    await call.keys("2125550143#", "1")

    row = await db.fetchrow(
        "SELECT subject, subject_kind, identification FROM consent_events WHERE call_sid = $1", call.call_sid
    )
    assert tuple(row) == ("+12125550143", "phone", "keyed_number")
    assert (await state_of(db, "+12125550143", "telemarketing")).status is Status.REVOKED
    assert (await state_of(db, WITHHELD, "telemarketing")).status is Status.NEVER_ASKED


async def test_an_anonymous_caller_cannot_opt_a_stranger_in(twilio, db, service, http) -> None:
    stranger = "+12125550177"
    earlier = twilio.call(caller=WITHHELD)
    await earlier.dial()
    await earlier.keys("2", "2", stranger[2:] + "#", "1")  # the stranger's own number was revoked for

    for menu in (("2", "1"), ("3", "1"), ("4", "1"), ("5", "1")):
        call = twilio.call(caller=WITHHELD)
        await call.dial()
        told = await call.keys(*menu)
        assert told.says[0] == HIDDEN_GRANT and told.says[-1] == "Enter your account number, then press pound."
        assert "10-digit phone number" not in told.heard
        await call.keys(stranger[2:] + "#")  # typing the stranger's number is read as an account: none
        await call.hang_up()
        granted = await db.fetchval("SELECT count(*) FROM consent_events WHERE call_sid = $1", call.call_sid)
        assert granted == 0

    assert (await state_of(db, stranger, "telemarketing")).status is Status.REVOKED
    staff = await token_for(service, "staff", "rules-suppression")
    status, body = await api(http, "GET", f"{service.base_url}/api/suppression?purpose=telemarketing", staff)
    assert status == 200 and stranger in [n["phone"] for n in body["numbers"]]


async def test_a_later_grant_by_the_account_overrides_an_earlier_revocation(service, twilio, db) -> None:
    phone = new_caller()
    customer = await new_customer(service, phone)
    await revoke_from(twilio, phone, "1", "2")
    assert (await state_of(db, customer.account_number, "cpni", days=30)).status is Status.REVOKED

    await grant_cpni_with_pin(twilio, phone)

    account = await state_of(db, customer.account_number, "cpni", days=30)
    assert (account.status, account.decided_for) == (Status.GRANTED, customer.account_number)
    # The grant binds the account it was made for, not the number's own earlier revocation.
    assert (await state_of(db, phone, "cpni", days=30)).status is Status.REVOKED


# --- CR-5 ----------------------------------------------------------------------------


def page_statuses(html: str, table_id: str = "consents") -> dict[str, str]:
    table = html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'data-purpose="([a-z_]+)">\s*<td>[^<]*</td>\s*<td[^>]*>([^<(]+)', table)
    return {purpose: text.strip().replace(" ", "_") for purpose, text in rows}


def cli_statuses(output: str) -> dict[str, str]:
    return dict(re.findall(r"^\s+([a-z_]+)\s+([a-z_]+)", output, flags=re.MULTILINE))


async def test_pages_cli_api_and_suppression_agree(service, twilio, db, http) -> None:
    from tests.test_staff_pages import signed_in

    phone = new_caller()
    customer = await new_customer(service, phone)
    await grant_cpni_with_pin(twilio, phone)
    await revoke_from(twilio, phone, "2", "2")  # stop marketing calls
    await revoke_from(twilio, phone, "1", "2")  # restrict CPNI: reaches the account's grant

    staff = await token_for(service, "staff", "rules-agree")
    _, by_phone = await api(http, "GET", f"{service.base_url}/api/subjects/{phone}/consents", staff)
    _, by_account = await api(http, "GET", f"{service.base_url}/api/accounts/{customer.account_number}/consents", staff)
    _, suppressed = await api(http, "GET", f"{service.base_url}/api/suppression?purpose=telemarketing", staff)
    browser = await signed_in(service)
    try:
        pages = {}
        for subject in (phone, customer.account_number):
            async with browser.get(f"{service.base_url}/staff/people/{subject}") as resp:
                pages[subject] = page_statuses(await resp.text())
    finally:
        await browser.close()

    for subject in (phone, customer.account_number):
        api_view = {s["purpose"]: s["status"] for s in by_phone["consents"][subject]}
        assert {s["purpose"]: s["status"] for s in by_account["consents"][subject]} == api_view
        assert cli_statuses((await cli(service, "consent", subject)).output) == api_view
        assert pages[subject] == api_view
        direct = {p: (await state_of(db, subject, p, days=30 if p == "cpni" else None)).status.value for p in api_view}
        assert direct == api_view
    account_view = {s["purpose"]: s["status"] for s in by_account["consents"][customer.account_number]}
    assert account_view["cpni"] == "revoked"  # the number's restriction reached the account's grant
    phone_view = {s["purpose"]: s["status"] for s in by_phone["consents"][phone]}
    assert phone_view["telemarketing"] == "revoked" and phone in {n["phone"] for n in suppressed["numbers"]}


# --- CR-7, CR-8, CR-11 --------------------------------------------------------------------


async def test_a_dialed_cpni_grant_hears_the_whole_notice_first(service, twilio, db) -> None:
    phone = new_caller()
    customer = await new_customer(service, phone)
    call = twilio.call(caller=phone)
    await call.dial()

    answer = await call.press("*11#")

    verbs = [(child.tag, child.text) for child in answer.root]
    assert verbs[0] == ("Say", CPNI_NOTICE)  # said before the <Gather> opens: it cannot be barged in on
    assert [tag for tag, _ in verbs[1:]] == ["Gather", "Redirect"]
    assert await db.fetchval("SELECT count(*) FROM notices WHERE call_sid = $1", call.call_sid) == 0
    await call.press(CUSTOMER_PIN + "#")  # answering after it proves the notice was heard
    await call.press("1")

    notice = await db.fetchrow("SELECT notice, notice_text, seq FROM notices WHERE call_sid = $1", call.call_sid)
    decision = await db.fetchrow("SELECT subject, action, seq FROM consent_events WHERE call_sid = $1", call.call_sid)
    assert (notice["notice"], notice["notice_text"]) == ("cpni", CPNI_NOTICE)
    assert (decision["subject"], decision["action"]) == (customer.account_number, "grant")
    assert notice["seq"] < decision["seq"]


async def test_a_caller_who_hangs_up_during_the_notice_is_never_deemed_to_approve(twilio, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.press("1")  # the notice starts playing
    await call.hang_up()  # ... and the caller leaves before it ends

    assert await db.fetchval("SELECT count(*) FROM notices WHERE call_sid = $1", call.call_sid) == 0
    later = await consent_state(db, call.caller, "cpni", as_of=datetime.now(UTC) + timedelta(days=45), opt_out_days=30)
    assert later.status is Status.NEVER_ASKED


async def test_a_cpni_receipt_names_the_notice_heard(service, twilio, db) -> None:
    call = twilio.call()
    await call.dial()
    readback = await call.keys("1", "2")
    await call.press("1")

    result = await cli(service, "export", "--phone", call.caller)
    [receipt] = [json.loads(line) for line in result.stdout.splitlines()]
    notice_id = await db.fetchval("SELECT id FROM notices WHERE call_sid = $1", call.call_sid)
    assert receipt["notice"]["id"] == notice_id and receipt["notice"]["kind"] == "cpni"
    assert receipt["notice"]["text"] == CPNI_NOTICE
    assert receipt["notice"]["text_sha256"] == hashlib.sha256(CPNI_NOTICE.encode()).hexdigest()
    assert receipt["prompt_heard"]["text"] == readback.heard  # the read-back is kept, under its own name


# --- CR-12 ----------------------------------------------------------------------------


async def test_email_and_telemarketing_revocations_carry_an_honor_by_date(twilio, db) -> None:
    eastern = ZoneInfo("America/New_York")
    honored = {}
    for purpose, menu in (("telemarketing", "2"), ("email", "3"), ("direct_mail", "4"), ("call_recording", "5")):
        call_sid = await revoke_from(twilio, new_caller(), menu, "2")
        row = await db.fetchrow("SELECT recorded_at, honor_by FROM consent_events WHERE call_sid = $1", call_sid)
        honored[purpose] = row["honor_by"]
        if row["honor_by"] is not None:
            assert row["honor_by"] == honor_deadline(local_date(row["recorded_at"], eastern), 10)
    assert honored["telemarketing"] is not None and honored["email"] is not None
    assert honored["direct_mail"] is None and honored["call_recording"] is None  # effective at once


# --- CR-15 ----------------------------------------------------------------------------


async def test_the_cli_reads_numbers_like_the_rest_of_the_service(service, twilio) -> None:
    phone = new_caller()
    await revoke_from(twilio, phone, "2", "2")
    national = phone[2:]
    written = f"({national[:3]}) {national[3:6]}-{national[6:]}"

    for typed in (national, written, phone):
        shown = await cli(service, "consent", typed)
        assert shown.exit_code == 0, shown.output
        assert cli_statuses(shown.output)["telemarketing"] == "revoked"
    exported = await cli(service, "export", "--phone", written)
    assert exported.exit_code == 0 and len(exported.stdout.splitlines()) == 1

    for bad in ("not a number", "12"):
        refused = await cli(service, "consent", bad)
        assert refused.exit_code == 2 and "neither a valid phone number nor a known account" in refused.output


async def test_a_hold_on_nothing_is_refused_and_nothing_is_stored(service, db) -> None:
    before = await db.fetchval("SELECT count(*) FROM hold_events")
    refused = await cli(service, "hold", "add", "--subject", "not a number", "--reason", "litigation")
    assert refused.exit_code == 2 and "neither a valid phone number nor a known account" in refused.output
    assert await db.fetchval("SELECT count(*) FROM hold_events") == before

    placed = await cli(service, "hold", "add", "--subject", "(212) 555-0161", "--reason", "litigation")
    assert placed.exit_code == 0, placed.output
    assert await db.fetchval("SELECT subject FROM hold_events ORDER BY id DESC LIMIT 1") == "+12125550161"


async def test_the_account_api_and_subject_filter(service, twilio, http) -> None:
    phone = new_caller()
    customer = await new_customer(service, phone)
    await grant_cpni_with_pin(twilio, phone)
    staff = await token_for(service, "staff", "rules-account")
    base = service.base_url

    status, body = await api(http, "GET", f"{base}/api/accounts/{customer.account_number}/consents", staff)
    assert status == 200 and body["phones"] == [phone]
    assert {s["purpose"]: s["status"] for s in body["consents"][customer.account_number]}["cpni"] == "granted"
    assert (await api(http, "GET", f"{base}/api/accounts/999999999999/consents", staff))[0] == 404
    assert (await api(http, "GET", f"{base}/api/accounts/abc/consents", staff))[0] == 400
    status, found = await api(http, "GET", f"{base}/api/consent-events?subject={customer.account_number}", staff)
    assert status == 200 and [e["subject"] for e in found["events"]] == [customer.account_number]
    assert (await api(http, "GET", f"{base}/api/consent-events?subject=nobody", staff))[0] == 400


# --- CR-16, CR-17, CR-18 ------------------------------------------------------------------


async def test_hanging_up_after_the_description_opens_the_request(twilio, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("8", "1")  # remove my referral information; then the recorded description
    await call.record(seconds=9, ended_by="hangup")
    await call.hang_up()

    request = await db.fetchrow("SELECT request_type, recording_sid FROM requests WHERE call_sid = $1", call.call_sid)
    recording = await db.fetchval("SELECT recording_sid FROM recordings WHERE call_sid = $1", call.call_sid)
    assert request is not None and tuple(request) == ("referral_removal", recording)


async def test_a_locked_out_caller_is_told_how_long_and_that_revoking_still_works(service, twilio, db) -> None:
    phone = new_caller()
    await new_customer(service, phone)
    for wrong in (3, 2):  # five wrong PINs, over two calls (three is as many as one call allows)
        call = twilio.call(caller=phone)
        await call.dial()
        await call.keys("1", "1")  # allow CPNI use: the PIN is asked
        for _ in range(wrong):
            answer = await call.press("00000#")
        await call.hang_up()
    assert answer.says[0].startswith("Because of too many wrong PINs")  # the fifth is told at once

    locked = twilio.call(caller=phone)
    await locked.dial()
    await locked.keys("1", "1")
    told = await locked.press(CUSTOMER_PIN + "#")  # the right PIN, but the account is locked

    assert told.says[0] == "Because of too many wrong PINs, PIN entry on this account is locked for 15 minutes."
    assert told.says[1] == NOT_IDENTIFIED and "withdraw any consent without a PIN" in NOT_IDENTIFIED
    assert await db.fetchval("SELECT count(*) FROM consent_events WHERE call_sid = $1", locked.call_sid) == 0


async def test_only_a_final_status_ends_the_call(twilio, db) -> None:
    call = twilio.call()
    await call.dial()
    for status in ("ringing", "in-progress"):
        await call.status_changes(status)

    kept = await db.fetch("SELECT status FROM call_statuses WHERE call_sid = $1 ORDER BY id", call.call_sid)
    assert [r["status"] for r in kept] == ["ringing", "in-progress"]
    assert await db.fetchval("SELECT count(*) FROM call_endings WHERE call_sid = $1", call.call_sid) == 0
    answer = await call.keys("2", "2", "1")  # the call goes on as if nothing happened
    assert "Your choice has been recorded" in answer.heard
    await call.hang_up()
    ending = await db.fetchval("SELECT status FROM call_endings WHERE call_sid = $1", call.call_sid)
    assert ending == "completed"


@pytest.mark.parametrize("status", ["busy", "failed", "no-answer", "canceled"])
async def test_every_final_status_ends_the_call(twilio, db, status) -> None:
    call = twilio.call()
    await call.dial()
    await call.status_changes(status)

    assert await db.fetchval("SELECT status FROM call_endings WHERE call_sid = $1", call.call_sid) == status
