"""The default line, purpose by purpose, the way callers use it (issue: the consent line)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from flows.loader import builtin_flows
from storage.customers import Customer
from storage.deadlines import honor_deadline, local_date
from tests.conftest import CUSTOMER_PIN
from tests.fake_twilio import FakeTwilio

FLOW = builtin_flows()["consent-line"]
PURPOSES = {
    "1": "cpni",
    "2": "telemarketing",
    "3": "email",
    "4": "direct_mail",
    "5": "call_recording",
    "6": "testimonial",
    "7": "credit_decisions",
}
NEEDS_IDENTIFICATION = {"1", "6", "7"}
NEEDS_STATEMENT = {"6", "7"}


def readback(purpose: str, action: str, lang: str = "en") -> str:
    choice = getattr(FLOW.purposes[purpose], action).text(lang)
    return FLOW.steps["confirm"].say.text(lang, choice=choice)


async def get_to_readback(call, key: str, action_key: str, *, express: bool) -> object:
    """From the main menu to the read-back, identifying and stating consent where needed."""
    answer = await call.press(f"*{key}{action_key}#") if express else await call.keys(key, action_key)
    if action_key == "1" and key in NEEDS_IDENTIFICATION:
        assert answer.says[-1] == "Enter your PIN, then press pound.", answer.says
        answer = await call.press(CUSTOMER_PIN + "#")
    if action_key == "1" and key in NEEDS_STATEMENT:
        assert answer.root.find("Record") is not None, answer.body
        answer = await call.record(seconds=6)
    return answer


@pytest.mark.parametrize("express", [False, True], ids=["menu", "dialing-string"])
@pytest.mark.parametrize("action_key", ["1", "2"], ids=["grant", "revoke"])
@pytest.mark.parametrize("key", sorted(PURPOSES))
async def test_every_purpose_can_be_granted_and_revoked_by_menu_and_dialing_string(
    twilio: FakeTwilio, db, customer: Customer, key: str, action_key: str, express: bool
) -> None:
    purpose, action = PURPOSES[key], {"1": "grant", "2": "revoke"}[action_key]
    call = twilio.call(caller=customer.phones[0])
    await call.dial()
    answer = await get_to_readback(call, key, action_key, express=express)
    assert answer.says == [readback(purpose, action)]
    done = await call.press("1")

    assert done.says[0].startswith("Thank you. Your choice has been recorded")
    event = await db.fetchrow("SELECT * FROM consent_events WHERE call_sid = $1", call.call_sid)
    assert (event["purpose"], event["action"]) == (purpose, action)
    assert event["channel"] == (
        "verbal" if action == "grant" and key in NEEDS_STATEMENT else ("dialing_string" if express else "keypad")
    )
    identified = action == "grant" and key in NEEDS_IDENTIFICATION
    assert event["subject"] == (customer.account_number if identified else customer.phones[0])
    assert event["identification"] == ("ani_pin" if identified else "ani")
    assert (event["recording_sid"] is not None) == (action == "grant" and key in NEEDS_STATEMENT)
    if purpose in ("telemarketing", "email") and action == "revoke":  # TCPA, CAN-SPAM (CR-12)
        received = local_date(event["recorded_at"], ZoneInfo("America/New_York"))
        assert event["honor_by"] == honor_deadline(received, 10)
    else:
        assert event["honor_by"] is None


async def test_a_grant_needing_identification_is_refused_to_an_unknown_caller(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    answer = await call.keys("7", "1")
    assert answer.says[-1] == "Enter your account number, then press pound."
    for _ in range(3):  # a try is an account and a PIN: an unknown account is asked for one too
        asked = await call.press("12345#")
        assert asked.says == ["Enter your PIN, then press pound."]
        answer = await call.press("0000#")

    assert answer.says[0] == FLOW.steps["not_identified"].say.text("en")
    assert answer.says[-1] == FLOW.steps["main_menu"].say.text("en")  # they may still revoke
    assert await db.fetchval("SELECT count(*) FROM consent_events WHERE call_sid = $1", call.call_sid) == 0


async def test_the_spanish_path_speaks_spanish_to_the_end(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    menu = await call.press("9")
    assert menu.says == [FLOW.steps["main_menu"].say.text("es")]
    assert {say.get("language") for say in menu.root.iter("Say")} == {"es-US"}
    choice = await call.press("2")
    assert choice.says == [FLOW.steps["telemarketing_choice"].say.text("es")]
    confirm = await call.press("2")
    assert confirm.says == [readback("telemarketing", "revoke", "es")]
    done = await call.press("1")

    assert done.says[0].startswith("Gracias. Su elección quedó registrada")
    assert done.says[-1] == "Adiós."
    event = await db.fetchrow("SELECT lang, prompt_text FROM consent_events WHERE call_sid = $1", call.call_sid)
    assert (event["lang"], event["prompt_text"]) == ("es", confirm.heard)


async def test_spanish_can_be_chosen_by_the_number_url(twilio: FakeTwilio) -> None:
    answer = await twilio.call().dial("lang=es")

    assert answer.says == [FLOW.steps["greeting"].say.text("es"), FLOW.steps["main_menu"].say.text("es")]


@pytest.mark.parametrize("withheld", ["anonymous", "+266696687", "+7378742833", ""])
async def test_a_withheld_caller_revokes_for_a_number_they_key_in(twilio: FakeTwilio, db, withheld: str) -> None:
    call = twilio.call(caller=withheld)
    await call.dial()
    asked = await call.keys("2", "2")
    assert asked.says == [FLOW.steps["for_number"].say.text("en")]
    readback_answer = await call.press("4155550177#")
    assert readback_answer.says == [readback("telemarketing", "revoke")]
    await call.press("1")

    event = await db.fetchrow("SELECT * FROM consent_events WHERE call_sid = $1", call.call_sid)
    assert (event["subject"], event["subject_kind"], event["identification"]) == (
        "+14155550177",
        "phone",
        "keyed_number",
    )
    assert event["caller_number"] == withheld


async def test_a_withheld_caller_grants_with_account_and_pin(twilio: FakeTwilio, db, customer: Customer) -> None:
    call = twilio.call(caller="anonymous")
    await call.dial()
    asked = await call.keys("1", "1")
    assert asked.says[-1] == "Enter your account number, then press pound."
    await call.press(customer.account_number + "#")
    await call.press(CUSTOMER_PIN + "#")
    await call.press("1")

    event = await db.fetchrow("SELECT subject, identification FROM consent_events WHERE call_sid = $1", call.call_sid)
    assert tuple(event) == (customer.account_number, "account_pin")


async def test_verbal_consent_links_the_recording_and_its_callback(twilio: FakeTwilio, db, customer: Customer) -> None:
    call = twilio.call(caller=customer.phones[0])
    await call.dial()
    await call.keys("6", "1")
    statement = await call.press(CUSTOMER_PIN + "#")
    assert statement.says == [
        "This part of the call is recorded as evidence of your consent. After the beep, say your full name and: "
        "I agree that One Stop VoIP may publish my testimonial. Then press pound."
    ]
    assert statement.root.find("Record").get("playBeep") == "true"
    await call.record(seconds=8)
    await call.press("1")
    await call.recording_processed("completed")

    row = await db.fetchrow(
        """
        SELECT e.recording_sid, r.duration_s, s.status
        FROM consent_events e
        JOIN recordings r ON r.recording_sid = e.recording_sid
        JOIN recording_statuses s ON s.recording_sid = e.recording_sid
        WHERE e.call_sid = $1
        """,
        call.call_sid,
    )
    assert row is not None and (row["duration_s"], row["status"]) == (8, "completed")


async def test_a_too_short_statement_records_no_grant(twilio: FakeTwilio, db, customer: Customer) -> None:
    call = twilio.call(caller=customer.phones[0])
    await call.dial()
    await call.keys("7", "1", CUSTOMER_PIN + "#")
    again = await call.record(seconds=0)

    assert again.says[0] == "We did not hear your statement."
    assert again.root.find("Record") is not None
    assert await db.fetchval("SELECT count(*) FROM recordings WHERE call_sid = $1", call.call_sid) == 1
    await call.hang_up()
    assert await db.fetchval("SELECT count(*) FROM consent_events WHERE call_sid = $1", call.call_sid) == 0
    ending = await db.fetchval("SELECT abandoned_at_step FROM call_endings WHERE call_sid = $1", call.call_sid)
    assert ending == "statement"


async def test_hanging_up_during_the_statement_records_no_grant(twilio: FakeTwilio, db, customer: Customer) -> None:
    call = twilio.call(caller=customer.phones[0])
    await call.dial()
    await call.keys("6", "1", CUSTOMER_PIN + "#")
    await call.record(seconds=3, ended_by="hangup")
    await call.hang_up()
    await call.recording_processed("completed")

    assert await db.fetchval("SELECT count(*) FROM consent_events WHERE call_sid = $1", call.call_sid) == 0
    recording = await db.fetchrow("SELECT ended_by FROM recordings WHERE call_sid = $1", call.call_sid)
    assert recording["ended_by"] == "hangup"
    assert (
        await db.fetchval("SELECT abandoned_at_step FROM call_endings WHERE call_sid = $1", call.call_sid)
        == "statement"
    )


@pytest.mark.parametrize("describe", [True, False], ids=["described", "skipped"])
async def test_a_request_is_opened_with_a_reference_number(twilio: FakeTwilio, db, describe: bool) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("8", "1")
    done = await (call.record(seconds=12) if describe else call.stay_silent())

    request = await db.fetchrow("SELECT * FROM requests WHERE call_sid = $1", call.call_sid)
    assert request["request_type"] == "referral_removal"
    assert request["caller_number"] == call.caller
    assert (request["recording_sid"] is not None) == describe
    spoken = " ".join(str(request["id"]))
    assert f"Your reference number is {spoken}." in done.heard
    assert done.hangs_up
    again = await call.retry()  # a retried webhook opens no second request
    assert again.body == done.body
    assert await db.fetchval("SELECT count(*) FROM requests WHERE call_sid = $1", call.call_sid) == 1


async def test_zero_puts_the_caller_in_the_agents_queue(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    answer = await call.press("0")

    assert answer.says == ["Please hold while we connect you to an agent."]
    assert answer.root.find("Enqueue").text == "agents"
    back = await call.connection_ends("queue-full")
    assert back.says == ["Sorry, no agent is available right now.", FLOW.steps["main_menu"].say.text("en")]


async def test_the_opt_out_line_records_the_opt_out_with_one_key(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    offer = await call.dial("flow=telemarketing-opt-out")
    assert offer.says == ["This is One Stop VoIP. To stop marketing calls from us, press 1."]
    done = await call.press("1")

    assert done.says[0].startswith("Done. We have recorded that you do not want marketing calls")
    assert done.hangs_up
    event = await db.fetchrow("SELECT * FROM consent_events WHERE call_sid = $1", call.call_sid)
    assert (event["purpose"], event["action"], event["subject"]) == ("telemarketing", "revoke", call.caller)
    assert event["flow_name"] == "telemarketing-opt-out"
    assert event["honor_by"] is not None
