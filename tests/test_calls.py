"""Whole signed calls through the HTTP service, asserting what callers hear and what is stored."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg

from flows.loader import builtin_flows
from ivr import appkeys
from ivr.voice.call_desk import MAX_PENDING_PRESSES
from storage.keys import ENDED_SESSION_TTL_S, session_key
from storage.sessions import decode_session
from storage.verify import verify_ledger
from tests.conftest import CUSTOMER_PIN, Service
from tests.fake_twilio import FakeTwilio

FLOW = builtin_flows()["consent-line"]
MAIN_MENU = FLOW.steps["main_menu"].say.text("en")
CPNI_CHOICES = FLOW.steps["cpni_choice"].say.text("en")
ALLOW_READBACK = (
    "You chose to allow One Stop VoIP to use your account information to offer you other "
    "products and services. To confirm, press 1. To go back, press 2."
)
RESTRICT_READBACK = (
    "You chose to restrict the use of your account information for marketing. To confirm, press 1. To go back, press 2."
)


async def decisions(db: asyncpg.Connection, call_sid: str) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM consent_events WHERE call_sid = $1 ORDER BY id", call_sid)


async def keypresses(db: asyncpg.Connection, call_sid: str) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM keypresses WHERE call_sid = $1 ORDER BY seq", call_sid)


async def test_the_call_opens_with_the_main_menu_inside_a_gather(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    answer = await call.dial()

    assert answer.status == 200
    assert answer.verbs == ["Gather", "Redirect"]
    gather = answer.gather
    assert gather is not None
    assert gather.get("action") == f"{twilio.base_url}/twilio/answer?seq=0"
    assert (gather.get("numDigits"), gather.get("timeout"), gather.get("input")) == ("1", "6", "dtmf")
    assert [say.get("language") for say in gather.iter("Say")] == ["en-US", "en-US"]
    assert answer.says[-1] == MAIN_MENU
    assert answer.redirect == f"{twilio.base_url}/twilio/no-input?seq=0"
    row = await db.fetchrow("SELECT * FROM calls WHERE call_sid = $1", call.call_sid)
    assert (row["caller_number"], row["dialed_number"], row["flow_version"]) == (
        call.caller,
        call.dialed,
        FLOW.version,
    )


async def test_allow_and_confirm_records_one_cpni_grant(twilio: FakeTwilio, db, customer) -> None:
    call = twilio.call(caller=customer.phones[0])
    await call.dial()

    notice = await call.press("1")
    assert "Your name, number and address are not part of it." in notice.heard
    assert "restricting it will not change the service you have today" in notice.heard
    assert notice.says[-1] == CPNI_CHOICES
    who = await call.press("1")
    assert who.says == [
        "To record this consent, we first need to confirm who you are.",
        "Enter your PIN, then press pound.",
    ]
    readback = await call.press(CUSTOMER_PIN + "#")
    assert readback.says == [ALLOW_READBACK]
    assert await decisions(db, call.call_sid) == []  # nothing decided before the confirm
    done = await call.press("1")

    assert done.says[0].startswith("Thank you. Your choice has been recorded: you chose to allow")
    assert done.hangs_up
    rows = await db.fetch(
        "SELECT * FROM consent_events WHERE subject = $1 AND purpose = 'cpni'", customer.account_number
    )
    assert len(rows) == 1
    event = rows[0]
    assert (event["action"], event["channel"], event["subject_kind"]) == ("grant", "keypad", "customer")
    assert event["raw_digits"] == "1,1,[pin withheld]#,1"
    assert (event["caller_number"], event["dialed_number"]) == (call.caller, call.dialed)
    assert (event["identification"], event["lang"], event["flow_version"]) == ("ani_pin", "en", FLOW.version)
    assert event["prompt_text"] == ALLOW_READBACK
    assert event["idempotency_token"] == call.last.token
    presses = await keypresses(db, call.call_sid)
    assert [(k["step"], k["digits"], k["outcome"]) for k in presses] == [
        ("main_menu", "1", "valid"),
        ("cpni_choice", "1", "valid"),
        ("who", "[pin withheld]", "valid"),
        ("confirm", "1", "valid"),
    ]
    assert presses[1]["prompt_text"] == notice.heard
    notice_row = await db.fetchrow("SELECT * FROM notices WHERE call_sid = $1", call.call_sid)
    assert (notice_row["notice"], notice_row["caller_number"]) == ("cpni", call.caller)
    assert notice_row["notice_text"] == FLOW.steps["cpni_notice"].say.text("en")


async def test_restrict_and_confirm_records_one_cpni_revoke(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    readback = await call.keys("1", "2")
    assert readback.says == [RESTRICT_READBACK]
    done = await call.press("1")

    assert "Your choice has been recorded: you chose to restrict" in done.heard
    rows = await db.fetch("SELECT action, raw_digits FROM consent_events WHERE subject = $1", call.caller)
    assert [tuple(r) for r in rows] == [("revoke", "1,2,1")]


async def test_going_back_from_the_readback_returns_to_the_choice(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    first = await call.keys("1", "2")
    assert first.says == [RESTRICT_READBACK]
    back = await call.press("2")

    assert back.says == [CPNI_CHOICES]
    assert await decisions(db, call.call_sid) == []
    readback = await call.press("2")
    assert readback.says == [RESTRICT_READBACK]
    await call.press("1")
    rows = await decisions(db, call.call_sid)
    assert [(r["action"], r["raw_digits"]) for r in rows] == [("revoke", "1,2,2,2,1")]


async def test_an_invalid_key_reprompts_and_is_kept_as_evidence(twilio: FakeTwilio, service: Service, db) -> None:
    call = twilio.call()
    await call.dial()
    answer = await call.press("#")

    assert answer.says == ["Sorry, that key is not one of the choices.", MAIN_MENU]
    assert answer.gather is not None and answer.gather.get("action", "").endswith("seq=1")
    # A menu keypress waits in the call's session for the call's next commit.
    assert await keypresses(db, call.call_sid) == []
    stored = await service.app[appkeys.REDIS].get(session_key(call.call_sid))
    session = decode_session(stored)
    assert session is not None
    assert [(p.fact.step, p.fact.digits, p.fact.outcome) for p in session.pending] == [("main_menu", "#", "invalid")]
    await asyncio.sleep(0.2)
    await call.keys("1", "2", "1")

    presses = await keypresses(db, call.call_sid)
    assert [(k["step"], k["digits"], k["outcome"]) for k in presses] == [
        ("main_menu", "#", "invalid"),
        ("main_menu", "1", "valid"),
        ("cpni_choice", "2", "valid"),
        ("confirm", "1", "valid"),
    ]
    decision = (await decisions(db, call.call_sid))[0]
    # Each keypress keeps the moment it was pressed, not the moment it was written.
    assert [k["received_at"] for k in presses] == sorted(k["received_at"] for k in presses)
    assert decision["recorded_at"] - presses[0]["received_at"] >= timedelta(seconds=0.2)
    assert presses[-1]["received_at"] == decision["recorded_at"]
    assert (await verify_ledger(db)).intact


async def test_a_long_wander_through_menus_is_committed_before_the_session_grows(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.press("1")  # the CPNI notice plays: evidence once the caller answers after it
    await call.press("*")  # here * repeats the question, and proves the notice was heard: committed
    assert len(await keypresses(db, call.call_sid)) == 2
    for _ in range(MAX_PENDING_PRESSES):
        await call.press("*")
    assert len(await keypresses(db, call.call_sid)) == 2  # held in the session
    answer = await call.press("*")
    assert answer.says == [CPNI_CHOICES]

    # The press one past what a session may hold took the others to Postgres with it.
    assert len(await keypresses(db, call.call_sid)) == 2 + MAX_PENDING_PRESSES + 1
    await call.hang_up()
    assert len(await keypresses(db, call.call_sid)) == 2 + MAX_PENDING_PRESSES + 1


async def test_hanging_up_before_confirming_leaves_keypresses_and_an_abandon_mark(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("1", "2")
    ack = await call.hang_up(duration_s=31)

    assert ack.status == 200 and ack.verbs == []
    assert await decisions(db, call.call_sid) == []
    assert len(await keypresses(db, call.call_sid)) == 2
    ending = await db.fetchrow("SELECT * FROM call_endings WHERE call_sid = $1", call.call_sid)
    assert (ending["status"], ending["duration_s"], ending["abandoned_at_step"]) == ("completed", 31, "confirm")
    assert ending["twilio_timestamp"] == "Sat, 28 Nov 2026 09:53:19 +0000"


async def test_a_finished_call_is_not_marked_abandoned(twilio: FakeTwilio, service: Service, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("1", "2", "1")
    await call.hang_up()
    # Redis keeps live calls: an ended call's session stays only for a duplicated callback.
    assert 0 < await service.app[appkeys.REDIS].ttl(session_key(call.call_sid)) <= ENDED_SESSION_TTL_S
    await call.retry()  # a duplicated status callback changes nothing

    endings = await db.fetch("SELECT * FROM call_endings WHERE call_sid = $1", call.call_sid)
    assert [(e["status"], e["abandoned_at_step"]) for e in endings] == [("completed", None)]


async def test_a_retried_confirm_gets_the_same_answer_and_stores_nothing_twice(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("1", "2")
    first = await call.press("1")
    again = await call.retry()

    assert again.body == first.body
    assert len(await decisions(db, call.call_sid)) == 1
    assert len(await keypresses(db, call.call_sid)) == 3


async def test_an_unknown_call_hears_a_safe_goodbye(twilio: FakeTwilio, db) -> None:
    stranger = twilio.call()
    params = stranger.params() | {"Digits": "1", "FinishedOnKey": ""}
    answer = await twilio.post(twilio.url("/twilio/answer?seq=0"), params)

    assert answer.status == 200
    assert answer.says == [FLOW.messages["unknown_call"].text("en")]
    assert answer.hangs_up
    assert await keypresses(db, stranger.call_sid) == []
