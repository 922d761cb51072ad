"""A subject's consent now and as of any past moment, derived from the ledger's rows."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from click.testing import CliRunner

from ivr.cli import main
from storage.consent_state import Basis, Status, consent_state
from tests.fake_twilio import FakeTwilio

CPNI_OPT_OUT_DAYS = 30


async def state(db, subject: str, purpose: str, as_of, opt_out_days: int | None = None):
    return await consent_state(db, subject, purpose, as_of=as_of, opt_out_days=opt_out_days)


async def test_cpni_is_deemed_granted_only_from_day_thirty_after_the_notice(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.press("1")  # hears the CPNI notice to its end (the call answers after it), then leaves
    await call.stay_silent()
    await call.hang_up()
    given_at = await db.fetchval("SELECT given_at FROM notices WHERE call_sid = $1", call.call_sid)

    before = await state(db, call.caller, "cpni", given_at - timedelta(seconds=1), CPNI_OPT_OUT_DAYS)
    day_29 = await state(db, call.caller, "cpni", given_at + timedelta(days=29, hours=23), CPNI_OPT_OUT_DAYS)
    day_30 = await state(db, call.caller, "cpni", given_at + timedelta(days=30), CPNI_OPT_OUT_DAYS)

    assert before.status is Status.NEVER_ASKED
    assert day_29.status is Status.NOTICE_PENDING and day_29.since == given_at
    assert (day_30.status, day_30.basis, day_30.since) == (
        Status.DEEMED_GRANTED,
        Basis.DEEMED_AFTER_NOTICE,
        given_at + timedelta(days=30),
    )
    assert day_30.notice_id is not None


async def test_a_restriction_wins_at_once_and_as_of_shows_the_past(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("1", "2", "1")  # notice heard, CPNI restricted on the same call
    event = await db.fetchrow("SELECT event_id, recorded_at FROM consent_events WHERE call_sid = $1", call.call_sid)
    given_at = await db.fetchval("SELECT given_at FROM notices WHERE call_sid = $1", call.call_sid)

    later = await state(db, call.caller, "cpni", event["recorded_at"] + timedelta(days=45), CPNI_OPT_OUT_DAYS)
    in_between = await state(
        db, call.caller, "cpni", given_at + (event["recorded_at"] - given_at) / 2, CPNI_OPT_OUT_DAYS
    )

    assert (later.status, later.basis, later.event_id) == (Status.REVOKED, Basis.EXPLICIT, event["event_id"])
    assert in_between.status is Status.NOTICE_PENDING


async def test_opt_in_purposes_are_never_deemed(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("3", "1", "1")  # opts in to marketing e-mail
    recorded_at = await db.fetchval("SELECT recorded_at FROM consent_events WHERE call_sid = $1", call.call_sid)

    assert (await state(db, call.caller, "email", recorded_at)).status is Status.GRANTED
    assert (await state(db, call.caller, "email", recorded_at - timedelta(microseconds=1))).status is Status.NEVER_ASKED
    assert (await state(db, call.caller, "direct_mail", recorded_at)).status is Status.NEVER_ASKED


async def test_a_telemarketing_revocation_carries_its_honor_by_date(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("2", "2", "1")
    recorded_at, honor_by = await db.fetchrow(
        "SELECT recorded_at, honor_by FROM consent_events WHERE call_sid = $1", call.call_sid
    )

    current = await state(db, call.caller, "telemarketing", recorded_at)
    assert (current.status, current.honor_by) == (Status.REVOKED, honor_by)
    assert honor_by > recorded_at.date()


async def test_ivr_consent_prints_every_purpose(storage, twilio: FakeTwilio) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("2", "2", "1")
    env = {"DATABASE_URL": storage.database_url}
    result = await asyncio.to_thread(CliRunner().invoke, main, ["consent", call.caller], env=env)

    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert set(lines) == {
        "cpni",
        "telemarketing",
        "email",
        "direct_mail",
        "call_recording",
        "testimonial",
        "credit_decisions",
    }
    assert "revoked" in lines["telemarketing"] and "honor by" in lines["telemarketing"]
    assert "never_asked" in lines["email"]
